"""Azure's error table and `map_error`: what each error code means, with a reason and the fix;
and the credential wrapper that tells a token that could not be obtained apart from one the
service refused (the SDK raises both with the same class).

`map_error` is a pure function of the exception, the request's context and the auth mode,
applied by `unistore._request` (which adds the shared transport fallback).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import (
    BUSY_HINT,
    EXISTS_HINT,
    RETRY_HINT,
    REWRITE_HINT,
    AlreadyExistsError,
    AuthenticationError,
    ContainerNotFoundError,
    Context,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    Rule,
    TransientError,
    already_exists,
    connection_failed,
    from_status,
    precondition_failed,
    short,
)
from ._azure_put import Refused

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
    from azure.core.credentials_async import AsyncTokenCredential

    from .._settings import AzureAuthMode

KEY_HINTS: dict[str, str] = {
    "connection_string": "check the AccountKey in AZURE_STORAGE_CONNECTION_STRING (copy the connection "
    "string again from the storage account's Access keys page)",
    "account_key": "check AZURE_STORAGE_ACCOUNT_KEY / the connection string's AccountKey (key1 or key2 "
    "of the account named by AZURE_STORAGE_ACCOUNT_NAME)",
    "managed_identity": "the service refused the managed identity's token: check that the identity "
    "belongs to the storage account's tenant and that AZURE_STORAGE_ACCOUNT_URL names this account",
}
IDENTITY_HINT = (
    "ensure managed identity is configured for this host (AZURE_CLIENT_ID for a user-assigned "
    "identity) or use AZURE_STORAGE_CONNECTION_STRING"
)
RBAC_HINT = (
    "assign the Storage Blob Data Contributor role to the identity on the storage account or "
    "container (role assignments take a few minutes to apply)"
)
CONTAINER_HINT = "create the container first or check AZURE_STORAGE_CONTAINER_NAME"
NETWORK_HINT = "check the network path to the storage account (DNS, firewall, private endpoint)"
REHYDRATE_HINT = (
    "rehydrate it first: Set Blob Tier to Hot or Cool (`az storage blob set-tier --tier Hot "
    "--rehydrate-priority Standard --container-name <container> --name <key>`); rehydration takes "
    "up to 15 hours at Standard priority (High: under an hour for blobs below 10 GB), and the blob "
    "stays unreadable meanwhile; or read the copy another provider holds"
)
_AUTH = "the hint of the provider's auth mode (KEY_HINTS)"

CODES: dict[str, Rule] = {
    "ContainerNotFound": Rule(ContainerNotFoundError, "the container does not exist", CONTAINER_HINT),
    "ContainerBeingDeleted": Rule(ContainerNotFoundError, "the container is being deleted", CONTAINER_HINT),
    "BlobNotFound": Rule(NotFoundError, "no blob under the key"),
    "ResourceNotFound": Rule(NotFoundError, "no such resource"),
    "AuthenticationFailed": Rule(AuthenticationError, "the signature or token was refused", _AUTH),
    "InvalidAuthenticationInfo": Rule(AuthenticationError, "the credentials are malformed", _AUTH),
    "NoAuthenticationInformation": Rule(AuthenticationError, "no credentials were sent", _AUTH),
    "AuthorizationPermissionMismatch": Rule(PermissionDeniedError, "the role lacks the permission", RBAC_HINT),
    "AuthorizationFailure": Rule(PermissionDeniedError, "the identity may not do this", RBAC_HINT),
    "AuthorizationResourceTypeMismatch": Rule(PermissionDeniedError, "the SAS lacks the resource type", RBAC_HINT),
    "AuthorizationServiceMismatch": Rule(PermissionDeniedError, "the SAS lacks the service", RBAC_HINT),
    "AuthorizationProtocolMismatch": Rule(
        PermissionDeniedError, "http refused",
        "the account refuses this protocol: use https in AZURE_STORAGE_ACCOUNT_URL",
    ),
    "AuthorizationSourceIPMismatch": Rule(
        PermissionDeniedError, "the firewall refused this host",
        "the account's firewall refuses this host: allow its IP or network",
    ),
    "KeyBasedAuthenticationNotPermitted": Rule(
        PermissionDeniedError, "shared keys are disabled",
        "the account disallows shared keys: use managed identity (AZURE_STORAGE_ACCOUNT_NAME alone)",
    ),
    "BlobAlreadyExists": Rule(AlreadyExistsError, "a blob exists under the key", EXISTS_HINT),
    "Md5Mismatch": Rule(IntegrityError, "the body does not match its Content-MD5", REWRITE_HINT),
    "Crc64Mismatch": Rule(IntegrityError, "the body does not match its CRC-64", REWRITE_HINT),
    "InvalidMd5": Rule(IntegrityError, "the Content-MD5 is malformed", REWRITE_HINT),
    "BlobArchived": Rule(
        ProviderError, "the blob is in the Archive tier: it is offline and cannot be read until it "
        "is rehydrated to an online tier", REHYDRATE_HINT,
    ),
    "BlobBeingRehydrated": Rule(
        ProviderError, "the blob is being rehydrated from the Archive tier and is not readable yet",
        "wait for the rehydration to finish (up to 15 hours at Standard priority; `az storage blob "
        "show` reports archiveStatus until then), or read the copy another provider holds",
    ),
    "ServerBusy": Rule(TransientError, "throttled", BUSY_HINT),
    "InternalError": Rule(TransientError, "a fault of the service", RETRY_HINT),
    "OperationTimedOut": Rule(TransientError, "the service timed out", RETRY_HINT),
}
"""Azure error code (`x-ms-error-code`) -> error class, reason, hint. A status no code names
falls back to `_errors.from_status`; 412 / `ConditionNotMet` is a conditional create's
`AlreadyExistsError`, or an `If-Match` read of a replaced blob."""
_ARCHIVED = frozenset({"BlobArchived", "BlobBeingRehydrated"})
_QUIETCODES = frozenset(k for k, r in CODES.items() if r.error is AuthenticationError)
"""Codes whose service message is not echoed (an AuthenticationFailed message quotes the
request's signature and string-to-sign)."""
AZURITE_WORDING = (
    # Azurite answers a wrong shared key with AuthorizationFailure where Azure says
    # AuthenticationFailed; both say "Server failed to authenticate the request".
    (403, "failed to authenticate", "AuthenticationFailed"),
    # Azurite's Md5Mismatch: 400 InvalidOperation "Provided contentMD5 doesn't match."
    (400, "contentmd5 doesn't match", "Md5Mismatch"),
    (400, "crc64 value specified in the request did not match", "Crc64Mismatch"),
)
"""(status, message words, the code Azure itself would answer) for the emulator's wordings."""


class TokenFailure(Exception):
    """A token could not be obtained (raised by `TokenSource` out of the SDK pipeline), as
    opposed to a token the service refused."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class TokenSource:
    """Wraps the azure-identity credential so that its failures are told apart from the
    storage service's own 401/403 answers, which the SDK raises with the same class."""

    def __init__(self, inner: AsyncTokenCredential) -> None:
        self._inner = inner

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        try:
            return await self._inner.get_token(*scopes, **kwargs)
        except Exception as exc:
            raise TokenFailure(exc) from exc

    async def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        getter = getattr(self._inner, "get_token_info", None)
        try:
            if getter is None:
                from azure.core.credentials import AccessTokenInfo

                token = await self._inner.get_token(*scopes)
                return AccessTokenInfo(token.token, token.expires_on)
            info: AccessTokenInfo = await getter(*scopes, options=options)
            return info
        except Exception as exc:
            raise TokenFailure(exc) from exc

    async def close(self) -> None:
        """The provider closes the wrapped credential itself, exactly once."""

    async def __aenter__(self) -> TokenSource:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


def code_of(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        code = headers.get("x-ms-error-code") if headers is not None else None
    if code is None:
        return None
    value = getattr(code, "value", code)
    return str(value) if value else None


def first_line(exc: BaseException) -> str:
    return short(getattr(exc, "message", None) or exc) or type(exc).__name__


def identity_reason(error: BaseException) -> str:
    """The managed-identity line of a DefaultAzureCredential failure, redacted and short."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ManagedIdentityCredential"):
            return short(line)
    return short(lines[0]) if lines else type(error).__name__


def map_error(
    exc: Exception, ctx: Context, auth_mode: AzureAuthMode, container: str = "", account: str | None = None
) -> ProviderError | None:
    """azure-core's and the signed path's errors as unistore errors, through `CODES`; None for
    what `unistore._request` maps itself (aiohttp's errors, timeouts, resets). A missing
    container's message names the container (and the account, when known)."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    fields: dict[str, Any] = {"provider": ctx.provider, "key": ctx.key}
    token_failure = isinstance(exc, TokenFailure)
    if token_failure or (isinstance(exc, ClientAuthenticationError) and getattr(exc, "response", None) is None):
        # a token the credential could not get (ours wraps it; a bare one raised it outside)
        what = "no credential for Azure Storage"
        cause: BaseException = exc
        if isinstance(exc, TokenFailure):
            what, cause = "no token for Azure Storage from the managed identity", exc.error
        return AuthenticationError(
            f"{ctx.op} failed: {what} ({identity_reason(cause)})", code="CredentialUnavailable",
            hint=IDENTITY_HINT, **fields,
        )
    if isinstance(exc, HttpResponseError | Refused) and exc.status_code is not None:
        status = int(exc.status_code)
        code = code_of(exc)
        said = str(getattr(exc, "message", "") or "").lower()
        for answered, words, meant in AZURITE_WORDING:
            if status == answered and words in said:
                code = meant
        message = f"{ctx.op} failed" + ("" if code in _QUIETCODES else f": {first_line(exc)}")
        if status == 412 or code == "ConditionNotMet":
            if ctx.conditional:
                return already_exists(ctx, code, status)
            return precondition_failed(ctx, code, status)
        rule = CODES.get(code or "")
        if rule is None:
            if status == 401:
                message = f"{ctx.op} failed: the service refused the credentials"
            hint = {401: KEY_HINTS[auth_mode], 403: RBAC_HINT}.get(status)
            return from_status(ctx, status, message, code, hint)
        if rule.error is AlreadyExistsError:
            return already_exists(ctx, code, status)
        hint = KEY_HINTS[auth_mode] if rule.hint == _AUTH else rule.hint
        if code in _ARCHIVED:
            message = f"{ctx.op} failed: {rule.reason}"
            hint = (hint or "").replace("<container>", container or "<container>").replace(
                "<key>", ctx.key or "<key>"
            )
        if rule.error is ContainerNotFoundError:
            gone = "is being deleted" if code == "ContainerBeingDeleted" else "does not exist"
            message = f"{ctx.op} failed: container {container!r} {gone}" + (
                f" in storage account {account!r}" if account else ""
            )
        return rule.error(message, code=code, status=status, hint=hint, **fields)
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return connection_failed(exc, ctx, NETWORK_HINT)
    if isinstance(exc, AzureError):
        return ProviderError(f"{ctx.op} failed: {type(exc).__name__}: {first_line(exc)}", code=type(exc).__name__,
                             **fields)
    return None  # aiohttp's, timeouts and resets: `_errors.from_transport`
