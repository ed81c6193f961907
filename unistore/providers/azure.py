"""AzureBlobProvider: Azure Blob Storage through azure-storage-blob's aio client.

The SDKs (azure-storage-blob, azure-identity, aiohttp) are imported when the provider first
talks to the service, never when this module is imported.

Choices made here, and why (each departs from an SDK default):
- **Retries: off in the storage pipeline** (`retry_total=0`). `unistore._retry` is the only
  retry layer; the SDK's ExponentialRetry would otherwise multiply attempts past our deadline.
  The azure-identity credential keeps its own retry policy: a token that cannot be obtained
  becomes a permanent `AuthenticationError` that `_retry` never retries, so nothing is stacked,
  and IMDS needs the identity library's own handling of its 410/429 answers.
- **aiohttp's own resend is off too**: since 3.10, `ClientSession` resends an idempotent request
  (PUT and GET included) once when its connection breaks, below every other layer; the
  provider's session clears that private flag (`_retry_connection`), so a reset reaches
  `_retry`, which logs it and counts it against the deadline.
- **Timeouts on the transport** (`connection_timeout`, `read_timeout` from
  `STORAGE_CONNECT_TIMEOUT` / `STORAGE_READ_TIMEOUT`). A call's `timeout=` is only the server-side
  timeout (azure-sdk-for-python #20447).
- **One aiohttp session per provider**, with a connector limit of
  `max(64, 4 x STORAGE_MAX_CONCURRENCY)` connections, so that the parts of several uploads and
  a fan-in of small objects do not queue behind each other. `auto_decompress=False` and a dummy
  cookie jar, as azure-core's own transport sets them; 256 KiB read blocks, as the storage SDK
  sets them (azure-core's transport default is 4 KiB).
- **One client and one credential per provider**, made on first use under a lock and closed
  exactly once by `aclose()` (async credentials own an aiohttp session, #8990, #32309).
- **Single puts are one Put Blob**, signed by `_azure_put` on the SDK's own aiohttp session
  (through the generated client's `block_blob.upload` where no signer applies), with a sliced
  body (`unistore._body`): `upload_blob()` would pass aiohttp raw bytes, which it writes in one
  piece and warns about (a `ResourceWarning`) past 1 MiB.
- **Every put and block carries the digest computed during our single read**
  (`AZURE_STORAGE_CHECKSUM`): by default a CRC-64 as `x-ms-content-crc64` (Azure's CRC-64 is
  CRC-64/NVME, which awscrt computes 25x faster than MD5), or an MD5 as `Content-MD5` (then also
  stored as the blob's `x-ms-blob-content-md5`). The service refuses a body that does not match;
  a digest it reports back is compared with ours as well.
- **Blocks**: `stage_block` with that digest passed as `transactional_content_crc64` or
  `transactional_content_md5` (the SDK forwards either to the generated client instead of
  hashing again). Block ids are
  a random per-upload prefix plus the block number, all the same length, so two uploads to one
  key never mix their blocks. The commit names exactly our blocks, in order.
- **No abort**: Azure has no call that deletes uncommitted blocks. They are never visible, and
  the service discards them after 7 days (or when another commit to the blob replaces the list).
  A failed or cancelled upload simply never commits.
- **Presigned URLs are SAS URLs**: service SAS signed with the account key where there is one,
  user delegation SAS (`get_user_delegation_key`) under managed identity.
- **Errors are mapped in one place**, `_map_errors()` and the `_CODES` table. Messages are
  built from codes and names; anything echoed from the SDK goes through `redact()`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import functools
import importlib.util
import logging
import os
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from pydantic import SecretStr

from .. import _heap, _integrity
from .._body import part_body
from .._budget import BufferBudget
from .._errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConfigError,
    ContainerNotFoundError,
    IntegrityError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    TransientError,
    UnistoreError,
)
from .._keys import check_key
from .._logging import redact
from .._multipart import MiB, PartLimits, PutOptions, Transfer
from .._retry import retry
from .._settings import AzureAuthMode, AzureSettings, StorageSettings, as_secret
from ._azure_put import Answer, BlobPut
from ._base import BaseProvider, drain_to_file
from ._http import new_session
from ._protocol import ObjectInfo

if TYPE_CHECKING:
    import aiohttp
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.blob import BlobProperties, UserDelegationKey
    from azure.storage.blob.aio import BlobServiceClient, ContainerClient

logger = logging.getLogger("unistore.azure")
T = TypeVar("T")

MAX_PUT_BLOB = 5000 * MiB
"""Largest single Put Blob the service accepts (Azurite accepts more: Azurite #2334)."""
DOWNLOAD_PART = 8 * MiB
"""Bytes per ranged GET of `iter_bytes`, each read whole into memory (the SDK's single-get and
chunk sizes are set to it, so each range is one request)."""
FILE_RANGE = 32 * MiB
"""Bytes per ranged GET of `download_file`, streamed to the file. Every Get Blob through the SDK
costs ~5 ms of client CPU here besides its bytes (256 MiB from Azurite: 0.38 CPU-s in 8 MiB
ranges, 0.26 in 32 MiB ones), and Azurite's own CPU per request is similar; 32 MiB still gives
a 128 MiB recording four ranges in flight."""
POOL_MIN = 64
"""Smallest connection pool: room for a fan-in of small uploads beside the parts in flight."""
LIST_PAGE_SIZE: int | None = None
"""Blobs per List Blobs page; None: the service's default (5000)."""
DELEGATION_KEY_MAX = timedelta(days=7)
"""A user delegation key (and so its SAS) is valid for at most 7 days."""
_SAS_SKEW = timedelta(minutes=5)
_READ_BLOCK = 256 * 1024

_KEY_HINTS: dict[str, str] = {
    "connection_string": "check the AccountKey in AZURE_STORAGE_CONNECTION_STRING (copy the connection "
    "string again from the storage account's Access keys page)",
    "account_key": "check AZURE_STORAGE_ACCOUNT_KEY / the connection string's AccountKey (key1 or key2 "
    "of the account named by AZURE_STORAGE_ACCOUNT_NAME)",
    "managed_identity": "the service refused the managed identity's token: check that the identity "
    "belongs to the storage account's tenant and that AZURE_STORAGE_ACCOUNT_URL names this account",
}
_IDENTITY_HINT = (
    "ensure managed identity is configured for this host (AZURE_CLIENT_ID for a user-assigned "
    "identity) or use AZURE_STORAGE_CONNECTION_STRING"
)
_RBAC_HINT = (
    "assign the Storage Blob Data Contributor role to the identity on the storage account or "
    "container (role assignments take a few minutes to apply)"
)
_CONTAINER_HINT = "create the container first or check AZURE_STORAGE_CONTAINER_NAME"
_EXISTS_HINT = "use another key, or pass overwrite=True to replace it"
_BUSY_HINT = "the service is overloaded or throttling: retry later or lower STORAGE_MAX_CONCURRENCY"
_NETWORK_HINT = "check the network path to the storage account (DNS, firewall, private endpoint)"
_AUTH = "auth"  # stands for the hint of the provider's auth mode


class _Rule(NamedTuple):
    """How one service error code maps: the class (its `transient` says whether `_retry`
    retries it), and the hint that names the fix."""

    cls: type[ProviderError]
    hint: str | None


_CODES: dict[str, _Rule] = {
    "ContainerNotFound": _Rule(ContainerNotFoundError, _CONTAINER_HINT),
    "ContainerBeingDeleted": _Rule(ContainerNotFoundError, _CONTAINER_HINT),
    "BlobNotFound": _Rule(NotFoundError, None),
    "ResourceNotFound": _Rule(NotFoundError, None),
    "AuthenticationFailed": _Rule(AuthenticationError, _AUTH),
    "InvalidAuthenticationInfo": _Rule(AuthenticationError, _AUTH),
    "NoAuthenticationInformation": _Rule(AuthenticationError, _AUTH),
    "AuthorizationPermissionMismatch": _Rule(PermissionDeniedError, _RBAC_HINT),
    "AuthorizationFailure": _Rule(PermissionDeniedError, _RBAC_HINT),
    "AuthorizationResourceTypeMismatch": _Rule(PermissionDeniedError, _RBAC_HINT),
    "AuthorizationServiceMismatch": _Rule(PermissionDeniedError, _RBAC_HINT),
    "AuthorizationProtocolMismatch": _Rule(
        PermissionDeniedError, "the account refuses this protocol: use https in AZURE_STORAGE_ACCOUNT_URL"
    ),
    "AuthorizationSourceIPMismatch": _Rule(
        PermissionDeniedError, "the account's firewall refuses this host: allow its IP or network"
    ),
    "KeyBasedAuthenticationNotPermitted": _Rule(
        PermissionDeniedError,
        "the account disallows shared keys: use managed identity (AZURE_STORAGE_ACCOUNT_NAME alone)",
    ),
    "BlobAlreadyExists": _Rule(AlreadyExistsError, _EXISTS_HINT),
    "Md5Mismatch": _Rule(IntegrityError, "retry; if it persists, check proxies that rewrite request bodies"),
    "Crc64Mismatch": _Rule(IntegrityError, "retry; if it persists, check proxies that rewrite request bodies"),
    "InvalidMd5": _Rule(IntegrityError, "retry; if it persists, check proxies that rewrite request bodies"),
    "ServerBusy": _Rule(TransientError, _BUSY_HINT),
    "InternalError": _Rule(TransientError, None),
    "OperationTimedOut": _Rule(TransientError, None),
}
_QUIET_CODES = frozenset(k for k, r in _CODES.items() if r.cls is AuthenticationError)
"""Codes whose service message is not echoed (an AuthenticationFailed message quotes the
request's signature and string-to-sign)."""


class _TokenFailure(Exception):
    """A token could not be obtained (raised by `_TokenSource` out of the SDK pipeline), as
    opposed to a token the service refused."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _TokenSource:
    """Wraps the azure-identity credential so that its failures are told apart from the
    storage service's own 401/403 answers, which the SDK raises with the same class."""

    def __init__(self, inner: AsyncTokenCredential) -> None:
        self._inner = inner

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        try:
            return await self._inner.get_token(*scopes, **kwargs)
        except Exception as exc:
            raise _TokenFailure(exc) from exc

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
            raise _TokenFailure(exc) from exc

    async def close(self) -> None:
        """The provider closes the wrapped credential itself, exactly once."""

    async def __aenter__(self) -> _TokenSource:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


@dataclass(frozen=True)
class _Blocks:
    """State of one block upload: the key and the block-id prefix unique to this upload."""

    key: str
    prefix: str
    kind: _integrity.Kind = "md5"
    """The digest every block of this upload carries."""

    def block_id(self, number: int) -> str:
        # Every id of a blob must have the same length; 50,000 blocks fit in 6 digits.
        return f"{self.prefix}-{number:06d}"


def _require(module: str, package: str) -> None:
    if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
        raise MissingDependencyError("azure", package)


_DIGEST_HEADER = {"md5": "Content-MD5", "crc64": "x-ms-content-crc64"}
"""The header that carries each digest kind on a request, and echoes it on the answer."""
_SDK_DIGEST = {
    "md5": ("transactional_content_md5", "content_md5"),
    "crc64": ("transactional_content_crc64", "content_crc64"),
}
"""The same through the SDK: the keyword its call takes, and the key of the headers it returns."""


def _echoed(answer: Answer, kind: _integrity.Kind) -> bytes | None:
    stored = answer.headers.get(_DIGEST_HEADER[kind])
    return base64.b64decode(stored) if stored else None


def _raise_for(answer: Answer) -> None:
    """A signed request's error answer as the SDK would raise it, for `_map_errors`."""
    if answer.status < 300:
        return
    from azure.core.exceptions import HttpResponseError

    error = HttpResponseError(message=answer.message or f"HTTP {answer.status}")
    error.status_code = answer.status
    error.error_code = answer.code  # type: ignore[attr-defined]  # what _code_of reads
    raise error


def _code_of(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        code = headers.get("x-ms-error-code") if headers is not None else None
    if code is None:
        return None
    value = getattr(code, "value", code)
    return str(value) if value else None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return redact(line)[:300]


class AzureBlobProvider(BaseProvider):
    """Azure Blob Storage: one container, three auth modes (see `AzureSettings.auth_mode`)."""

    label = "Azure Blob Storage"
    limits = PartLimits(max_parts=50_000, min_part=1, max_part=4000 * MiB)

    def __init__(
        self,
        *,
        container: str,
        account_name: str | None = None,
        connection_string: str | SecretStr | None = None,
        account_key: str | SecretStr | None = None,
        account_url: str | None = None,
        client_id: str | None = None,
        connection_verify: bool | str | os.PathLike[str] = True,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        transfer: Transfer | None = None,
        overwrite: bool = True,
        budget: BufferBudget | None = None,
        name: str = "azure",
        checksum: Literal["auto", "crc64", "md5"] = "auto",
    ) -> None:
        transfer = transfer or Transfer()
        if transfer.threshold > MAX_PUT_BLOB:
            transfer = replace(transfer, threshold=MAX_PUT_BLOB)
        super().__init__(name=name, transfer=transfer, overwrite=overwrite, budget=budget)
        # Every field is given, so nothing is read from the environment here: the auth-mode
        # rules and the checks are those of AzureSettings, written once.
        self._settings = AzureSettings(
            container=container,
            account_name=account_name,
            connection_string=as_secret(connection_string),
            account_key=as_secret(account_key),
            account_url=account_url,
            client_id=client_id,
            checksum=checksum,
        )
        self.container = self._settings.require_container()
        self.auth_mode: AzureAuthMode = self._settings.auth_mode
        _require("azure.storage.blob", "azure-storage-blob")
        _require("aiohttp", "aiohttp")
        if self.auth_mode == "managed_identity":
            _require("azure.identity", "azure-identity")
        self.checksum: Literal["crc64", "md5"] = self._settings.effective_checksum
        """The digest kind in use (`auto` resolved for this endpoint)."""
        if self.checksum == "crc64" and not _integrity.crc64_available():
            raise MissingDependencyError("azure", "awscrt", instead="set AZURE_STORAGE_CHECKSUM=md5")
        self.digests: tuple[_integrity.Kind, ...] = ("crc64", "md5") if self.checksum == "crc64" else ("md5",)
        self._verify: bool | str = (
            connection_verify if isinstance(connection_verify, bool) else os.fspath(connection_verify)
        )
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool_size = max(POOL_MIN, 4 * self.transfer.max_concurrency)
        self._lock = asyncio.Lock()
        self._service: BlobServiceClient | None = None
        self._container: ContainerClient | None = None
        self._credential: AsyncTokenCredential | None = None
        self._session: aiohttp.ClientSession | None = None
        self._blob_put: BlobPut | None = None
        self._delegation: UserDelegationKey | None = None
        self._delegation_expiry: datetime | None = None
        self._closed = False
        if self.auth_mode == "managed_identity":
            logger.info("Using managed identity authentication for Azure Storage")
        elif self.auth_mode == "connection_string":
            logger.info("Using connection string authentication for Azure Storage")
        else:
            logger.warning(
                "Using account key authentication for Azure Storage "
                "(not recommended for production: prefer managed identity)"
            )

    @classmethod
    def from_settings(
        cls, az: AzureSettings, root: StorageSettings | None = None, *, transfer: Transfer | None = None
    ) -> AzureBlobProvider:
        extra: dict[str, Any] = {}
        if root is not None:
            extra = {
                "connect_timeout": root.connect_timeout,
                "read_timeout": root.read_timeout,
                "overwrite": root.overwrite,
            }
        return cls(
            container=az.require_container(),
            account_name=az.account_name,
            connection_string=az.connection_string,
            account_key=az.account_key,
            account_url=az.account_url,
            client_id=az.client_id,
            transfer=transfer,
            checksum=az.checksum,
            **extra,
        )

    def __repr__(self) -> str:
        account = self._settings.account_name or "-"
        return (
            f"<AzureBlobProvider name={self.name!r} container={self.container!r} "
            f"account={account!r} auth={self.auth_mode}>"
        )

    # -- client ------------------------------------------------------------------------

    async def _client(self) -> ContainerClient:
        """The container client, made on first use (one per provider)."""
        if self._container is not None:
            return self._container
        async with self._lock:
            if self._closed:
                raise UnistoreError(f"{self!r} is closed: make a new provider")
            if self._container is None:
                await self._connect()
            assert self._container is not None
            return self._container

    async def _connect(self) -> None:
        from azure.core.pipeline.transport import AioHttpTransport
        from azure.storage.blob.aio import BlobServiceClient

        if self.checksum == "crc64":
            # ~50 ms: here with the SDK, not inside the first upload's digest
            import awscrt.checksums  # noqa: F401

        ssl_param: bool | ssl.SSLContext = self._verify if isinstance(self._verify, bool) else True
        if isinstance(self._verify, str):
            # One context for every request (azure-core would build one per request from a path).
            ssl_param = await asyncio.to_thread(ssl.create_default_context, cafile=self._verify)
        session = new_session(self._pool_size, ssl_param, trust_env=True)
        credential: AsyncTokenCredential | None = None
        try:
            transport = AioHttpTransport(
                session=session,
                session_owner=False,
                connection_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                connection_verify=self._verify is not False,
                connection_data_block_size=_READ_BLOCK,
            )
            options: dict[str, Any] = {
                "transport": transport,
                "retry_total": 0,
                "max_single_get_size": DOWNLOAD_PART,
                "max_chunk_get_size": DOWNLOAD_PART,
            }
            settings = self._settings
            service: BlobServiceClient
            if self.auth_mode == "connection_string":
                assert settings.connection_string is not None
                service = BlobServiceClient.from_connection_string(
                    settings.connection_string.get_secret_value(), **options
                )
            elif self.auth_mode == "account_key":
                from azure.core.credentials import AzureNamedKeyCredential

                assert settings.account_name and settings.account_key and settings.effective_account_url
                service = BlobServiceClient(
                    settings.effective_account_url,
                    credential=AzureNamedKeyCredential(settings.account_name, settings.account_key.get_secret_value()),
                    **options,
                )
            else:
                from azure.identity.aio import DefaultAzureCredential

                assert settings.effective_account_url
                credential = DefaultAzureCredential(managed_identity_client_id=settings.client_id)
                service = BlobServiceClient(
                    settings.effective_account_url, credential=_TokenSource(credential), **options
                )
        except BaseException:
            if credential is not None:
                await credential.close()
            await session.close()
            raise
        self._session = session
        self._credential = credential
        self._service = service
        self._container = service.get_container_client(self.container)
        self._open_blob_put(session)
        _heap.settle()

    def _open_blob_put(self, session: aiohttp.ClientSession) -> None:
        """The single-put path (`_azure_put`), on the provider's one aiohttp session (the one
        azure-core's transport uses: one pool, closed once), authorised like the container client."""
        import aiohttp

        assert self._container is not None
        put = BlobPut(
            session, self._container,
            aiohttp.ClientTimeout(sock_connect=self._connect_timeout, sock_read=self._read_timeout),
        )
        self._blob_put = put if put.usable else None

    async def aclose(self) -> None:
        """Close the client, the credential and the connection pool, once each."""
        async with self._lock:
            self._closed = True
            service, credential, session = self._service, self._credential, self._session
            self._service = self._container = self._credential = self._session = None
            self._blob_put = None
        tls = service is not None and str(service.url).startswith("https")
        try:
            if service is not None:
                await service.close()
        finally:
            try:
                if credential is not None:
                    await credential.close()
            finally:
                if session is not None:
                    await session.close()
                if tls and session is not None:
                    # A request cancelled mid-body leaves its TLS connection in a graceful
                    # shutdown that needs the loop a moment longer; without it, an event
                    # loop closed right after aclose() (tests, short scripts) leaks the
                    # socket (aiohttp's "graceful shutdown" advice).
                    await asyncio.sleep(0.1)

    # -- errors ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _map_errors(self, key: str | None, op: str, *, conditional_create: bool = False) -> Iterator[None]:
        """The one place SDK and network errors become unistore errors."""
        try:
            yield
        except UnistoreError:
            raise
        except _TokenFailure as exc:
            raise AuthenticationError(
                f"{op} failed: no token for Azure Storage from the managed identity ({_identity_reason(exc.error)})",
                provider=self.name,
                key=key,
                code="CredentialUnavailable",
                hint=_IDENTITY_HINT,
            ) from None
        except Exception as exc:
            error = self._translate(exc, key, op, conditional_create)
            if isinstance(error, AuthenticationError):
                raise error from None
            raise error from exc

    def _translate(self, exc: Exception, key: str | None, op: str, conditional_create: bool) -> ProviderError:
        import aiohttp
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        name = self.name
        if isinstance(exc, ClientAuthenticationError) and getattr(exc, "response", None) is None:
            # raised by a credential outside our wrapper (e.g. CredentialUnavailableError)
            return AuthenticationError(
                f"{op} failed: no credential for Azure Storage ({_identity_reason(exc)})",
                provider=name,
                key=key,
                code="CredentialUnavailable",
                hint=_IDENTITY_HINT,
            )
        if isinstance(exc, HttpResponseError) and exc.status_code is not None:
            status = int(exc.status_code)
            code = _code_of(exc)
            said = "" if code in _QUIET_CODES else f": {_first_line(exc)}"
            message = f"{op} failed{said}"
            rule = _CODES.get(code or "")
            if status == 403 and "failed to authenticate" in str(getattr(exc, "message", "")):
                # Azurite answers a wrong shared key with AuthorizationFailure where Azure says
                # AuthenticationFailed; both say "Server failed to authenticate the request".
                rule, message = _CODES["AuthenticationFailed"], f"{op} failed"
            elif status == 400 and "contentmd5 doesn't match" in str(getattr(exc, "message", "")).lower():
                # Azurite's Md5Mismatch: 400 InvalidOperation "Provided contentMD5 doesn't match."
                rule = _CODES["Md5Mismatch"]
            elif status == 400 and "crc64 value specified in the request did not match" in str(
                getattr(exc, "message", "")
            ).lower():
                rule = _CODES["Crc64Mismatch"]  # Azurite's wording; Azure's code is Crc64Mismatch
            if status == 412 or code == "ConditionNotMet":
                if conditional_create:
                    return AlreadyExistsError(
                        "an object already exists under this key and overwrite=False",
                        provider=name,
                        key=key,
                        code=code,
                        status=status,
                        hint=_EXISTS_HINT,
                    )
                return TransientError(
                    f"{op} failed: the object changed while it was being read",
                    provider=name,
                    key=key,
                    code=code,
                    status=status,
                    hint="retry the download",
                )
            if rule is not None:
                hint = _KEY_HINTS[self.auth_mode] if rule.hint == _AUTH else rule.hint
                if rule.cls is AlreadyExistsError:
                    message = "an object already exists under this key and overwrite=False"
                elif rule.cls is ContainerNotFoundError:
                    account = self._service.account_name if self._service is not None else None
                    gone = "is being deleted" if code == "ContainerBeingDeleted" else "does not exist"
                    message = f"{op} failed: container {self.container!r} {gone}" + (
                        f" in storage account {account!r}" if account else ""
                    )
                return rule.cls(message, provider=name, key=key, code=code, status=status, hint=hint)
            if status == 404:
                return NotFoundError(message, provider=name, key=key, code=code, status=status)
            if status == 401:
                return AuthenticationError(
                    f"{op} failed: the service refused the credentials",
                    provider=name,
                    key=key,
                    code=code,
                    status=status,
                    hint=_KEY_HINTS[self.auth_mode],
                )
            if status == 403:
                return PermissionDeniedError(message, provider=name, key=key, code=code, status=status, hint=_RBAC_HINT)
            if status in (408, 429) or status >= 500:
                return TransientError(
                    message,
                    provider=name,
                    key=key,
                    code=code,
                    status=status,
                    hint=_BUSY_HINT if status in (429, 503) else None,
                )
            if 200 <= status < 300:  # a body that broke off or could not be decoded
                return TransientError(message, provider=name, key=key, code=code, status=status)
            return ProviderError(message, provider=name, key=key, code=code, status=status)
        if isinstance(exc, ServiceRequestError | ServiceResponseError | aiohttp.ClientError | TimeoutError | OSError):
            return TransientError(
                f"{op} failed: {type(exc).__name__}: {_first_line(exc)}",
                provider=name,
                key=key,
                code=type(exc).__name__,
                hint=_NETWORK_HINT,
            )
        return ProviderError(
            f"{op} failed: {type(exc).__name__}: {_first_line(exc)}",
            provider=name,
            key=key,
            code=type(exc).__name__,
        )

    # -- uploads -----------------------------------------------------------------------

    def _object_info(self, key: str, size: int, headers: dict[str, Any], opts: PutOptions, checksum: str) -> ObjectInfo:
        etag = headers.get("etag")
        return ObjectInfo(
            key=key,
            size=size,
            etag=str(etag).strip('"') if etag else None,
            content_type=opts.content_type,
            last_modified=headers.get("last_modified"),
            metadata=dict(opts.metadata),
            checksum=checksum,
        )

    async def _put_object(self, key: str, data: bytes, digest: bytes, opts: PutOptions) -> ObjectInfo:
        # The generated Put Blob call, not upload_blob(): upload_blob hands aiohttp raw bytes,
        # which it writes in one piece (and warns about past 1 MiB); see `unistore._body`.
        from azure.core.exceptions import HttpResponseError
        from azure.storage.blob._generated.models import BlobHTTPHeaders, ModifiedAccessConditions
        from azure.storage.blob._shared.response_handlers import process_storage_error

        container = await self._client()
        if self._blob_put is not None:
            return await self._put_signed(self._blob_put, key, data, digest, opts)
        md5 = digest if opts.digest == "md5" else None
        sent, echoed = _SDK_DIGEST[opts.digest]
        blob = container.get_blob_client(key)
        with self._map_errors(key, "Put Blob", conditional_create=not opts.overwrite):
            try:
                headers: dict[str, Any] = await blob._client.block_blob.upload(
                    content_length=len(data),
                    body=part_body(data),
                    blob_http_headers=BlobHTTPHeaders(blob_content_type=opts.content_type, blob_content_md5=md5),
                    # overwrite=False: If-None-Match: * makes the put a conditional create
                    modified_access_conditions=None if opts.overwrite else ModifiedAccessConditions(if_none_match="*"),
                    # the generated `metadata=` sends one malformed x-ms-meta header: name each one
                    headers={f"x-ms-meta-{name}": value for name, value in opts.metadata.items()},
                    cls=_response_headers,
                    **{sent: digest},
                )
            except HttpResponseError as error:
                process_storage_error(error)  # what the SDK's own calls do: error_code, message
        stored = headers.get(echoed)
        _integrity.verify(self.name, key, "Put Blob", digest, bytes(stored) if stored else None)
        return self._object_info(key, len(data), headers, opts, _integrity.label(opts.digest, digest))

    async def _put_signed(self, put: BlobPut, key: str, data: bytes, digest: bytes, opts: PutOptions) -> ObjectInfo:
        """`_put_object` through `_azure_put`: the same Put Blob, without azure-core's pipeline."""
        encoded = _integrity.b64(digest)
        headers = {_DIGEST_HEADER[opts.digest].lower(): encoded}
        if opts.digest == "md5":
            # stored as the blob's property too; with a CRC-64 the service computes it itself
            headers["x-ms-blob-content-md5"] = encoded
        if opts.content_type:
            headers["x-ms-blob-content-type"] = opts.content_type
        if not opts.overwrite:
            headers["if-none-match"] = "*"  # a conditional create
        headers.update({f"x-ms-meta-{name}": value for name, value in opts.metadata.items()})
        with self._map_errors(key, "Put Blob", conditional_create=not opts.overwrite):
            answer = await put.put(key, data, headers)
            _raise_for(answer)
        # Azurite 3.37 answers a CRC-64 Put Blob with no x-ms-content-crc64, but checks it:
        # tests/test_azure_provider.py pins that it refuses a body that does not match
        _integrity.verify(self.name, key, "Put Blob", digest, _echoed(answer, opts.digest))
        modified = answer.headers.get("Last-Modified")
        info = {
            "etag": answer.headers.get("ETag"),
            "last_modified": email.utils.parsedate_to_datetime(modified) if modified else None,
        }
        return self._object_info(key, len(data), info, opts, _integrity.label(opts.digest, digest))

    async def _start_parts(self, key: str, opts: PutOptions) -> Any:
        await self._client()
        return _Blocks(key=key, prefix=uuid.uuid4().hex, kind=opts.digest)

    async def _put_part(self, handle: Any, number: int, data: bytes, digest: bytes) -> Any:
        blocks: _Blocks = handle
        block_id = blocks.block_id(number)
        container = await self._client()
        if self._blob_put is not None:
            stored = await self._put_block_signed(self._blob_put, blocks, number, block_id, data, digest)
        else:
            blob = container.get_blob_client(blocks.key)
            # the SDK forwards either keyword to the generated call, which sends it as the header
            sent, echoed = _SDK_DIGEST[blocks.kind]
            keywords: dict[str, Any] = {sent: digest}
            with self._map_errors(blocks.key, f"Put Block {number}"):
                body = part_body(data)
                headers: dict[str, Any] = await blob.stage_block(block_id, body, length=len(data), **keywords)
            value = headers.get(echoed)
            stored = bytes(value) if value else None
        # Azurite reports no Content-MD5 for a block (its answer leaves it unset), but does echo a CRC-64
        _integrity.verify(self.name, blocks.key, f"block {number}", digest, stored)
        return block_id

    async def _put_block_signed(
        self, put: BlobPut, blocks: _Blocks, number: int, block_id: str, data: bytes, digest: bytes
    ) -> bytes | None:
        """`_put_part` through `_azure_put`; returns the digest the service echoed, if any."""
        headers = {_DIGEST_HEADER[blocks.kind].lower(): _integrity.b64(digest)}
        with self._map_errors(blocks.key, f"Put Block {number}"):
            answer = await put.put_block(blocks.key, block_id, data, headers)
            _raise_for(answer)
        return _echoed(answer, blocks.kind)

    async def _complete_parts(
        self, handle: Any, key: str, parts: Sequence[Any], digests: Sequence[bytes], size: int, opts: PutOptions
    ) -> ObjectInfo:
        from azure.core import MatchConditions
        from azure.storage.blob import ContentSettings

        blob = (await self._client()).get_blob_client(key)
        conditions: dict[str, Any] = {}
        if not opts.overwrite:
            # If-None-Match: * (with IfMissing the SDK must not be given etag="*": it would
            # leave it in the call's options and pass it on to aiohttp)
            conditions = {"match_condition": MatchConditions.IfMissing}
        with self._map_errors(key, "Put Block List", conditional_create=not opts.overwrite):
            # The Content-MD5 of this answer is the MD5 of the block list we sent, not of the blob.
            headers: dict[str, Any] = await blob.commit_block_list(
                list(parts),
                content_settings=ContentSettings(content_type=opts.content_type),
                metadata=opts.metadata or None,
                **conditions,
            )
        checksum = _integrity.parts_label(opts.digest, digests)
        return self._object_info(key, size, headers, opts, checksum)

    async def _abort_parts(self, handle: Any, key: str) -> None:
        """Nothing to delete: Azure has no call that removes uncommitted blocks. They are never
        visible, and the service discards them after 7 days."""
        return None

    # -- reads -------------------------------------------------------------------------

    def _info(self, props: BlobProperties) -> ObjectInfo:
        settings = props.content_settings
        md5 = settings.content_md5 if settings is not None else None
        etag = props.etag
        return ObjectInfo(
            key=props.name,
            size=int(props.size or 0),
            etag=etag.strip('"') if etag else None,
            content_type=settings.content_type if settings is not None else None,
            last_modified=props.last_modified,
            metadata=dict(props.metadata or {}),
            checksum=("md5:" + bytes(md5).hex()) if md5 else None,
        )

    async def _call(self, key: str | None, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One idempotent request (a read, a delete, a listing page) under the error map,
        retried on transient faults like the upload requests are."""

        async def once() -> T:
            with self._map_errors(key, op):
                return await fn()

        return await retry(once, self.transfer.retry, f"{op} of {key!r}" if key else op)

    async def head(self, key: str) -> ObjectInfo:
        check_key(key)
        blob = (await self._client()).get_blob_client(key)
        props = await self._call(key, "Get Blob Properties", blob.get_blob_properties)
        return replace(self._info(props), key=key)

    async def _get_range(self, key: str, offset: int, length: int, etag: str | None) -> bytes:
        """Exactly `length` bytes at `offset`, pinned to `etag` (If-Match): an object replaced
        meanwhile fails instead of mixing versions."""
        from azure.core import MatchConditions

        blob = (await self._client()).get_blob_client(key)
        pinned: dict[str, Any] = {}
        if etag:  # ObjectInfo holds it unquoted; the header carries it as the service sent it
            pinned = {"etag": f'"{etag}"', "match_condition": MatchConditions.IfNotModified}

        async def once() -> bytes:
            downloader = await blob.download_blob(offset=offset, length=length, max_concurrency=1, **pinned)
            data: bytes = await downloader.readall()
            if len(data) != length:
                raise TransientError(
                    f"Get Blob returned {len(data)} of {length} bytes at offset {offset}",
                    provider=self.name,
                    key=key,
                    code="IncompleteDownload",
                )
            return data

        return await self._call(key, "Get Blob", once)

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        """Ranged GETs of `DOWNLOAD_PART` bytes, one at a time, each read whole, retried on
        its own and pinned to the ETag `head` saw: stopping early leaves no response open."""
        info = await self.head(key)
        for offset in range(0, info.size, DOWNLOAD_PART):
            yield await self._get_range(key, offset, min(DOWNLOAD_PART, info.size - offset), info.etag)

    async def download_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Ranged GETs, `max_concurrency` at a time, each pinned to the ETag seen first and
        written by offset in a worker thread into a temporary file beside `path`, which is
        renamed into place only when complete."""
        info = await self.head(key)

        async def fetch(fd: int, start: int, end: int) -> None:
            await self._call(key, "Get Blob", functools.partial(self._fetch_range, fd, key, start, end, info.etag))

        await self._download_ranges(path, info.size, FILE_RANGE, fetch)
        return info

    async def _fetch_range(self, fd: int, key: str, start: int, end: int, etag: str | None) -> None:
        """Bytes [start, end) into `fd` by offset, pinned to `etag`: the generated Get Blob call,
        drained by `drain_to_file`. The SDK's downloader joins each range into one buffer on the
        loop thread, and closes the connection after every range instead of giving it back."""
        from azure.core.exceptions import HttpResponseError
        from azure.storage.blob._generated.models import ModifiedAccessConditions
        from azure.storage.blob._shared.response_handlers import process_storage_error

        blob = (await self._client()).get_blob_client(key)
        conditions = ModifiedAccessConditions(if_match=f'"{etag}"') if etag else None
        try:
            stream = await blob._client.blob.download(
                range=f"bytes={start}-{end - 1}", modified_access_conditions=conditions, decompress=False
            )
        except HttpResponseError as error:
            process_storage_error(error)  # what the SDK's own calls do: error_code, message
        offset = start + await drain_to_file(stream.response.internal_response, fd, start)
        if offset != end:
            raise TransientError(
                f"Get Blob returned {offset - start} of {end - start} bytes at offset {start}",
                provider=self.name, key=key, code="IncompleteDownload",
            )

    async def delete(self, key: str) -> None:
        """Idempotent: a blob already gone is success (its snapshots go with it)."""
        check_key(key)
        blob = (await self._client()).get_blob_client(key)
        try:
            await self._call(key, "Delete Blob", functools.partial(blob.delete_blob, delete_snapshots="include"))
        except NotFoundError:
            pass

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every blob under `prefix`, page by page (each page one request, retried on its own)."""
        container = await self._client()
        token: str | None = None
        while True:

            async def page(token: str | None = token) -> tuple[list[BlobProperties], str | None]:
                pager = container.list_blobs(
                    name_starts_with=prefix or None, include=["metadata"], results_per_page=LIST_PAGE_SIZE
                ).by_page(continuation_token=token)
                items = [props async for props in await anext(pager)]
                return items, pager.continuation_token  # type: ignore[attr-defined]

            items, token = await self._call(None, "List Blobs", page)
            for props in items:
                yield self._info(props)
            if not token:
                return

    # -- SAS ---------------------------------------------------------------------------

    async def presigned_url(self, key: str, expires_in: int = 3600, method: str = "GET") -> str:
        """A SAS URL: GET may read the blob, PUT may create or replace it (`x-ms-blob-type:
        BlockBlob` is required on the PUT, as for any Put Blob)."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        check_key(key)
        verb = method.upper()
        if verb == "GET":
            permission = BlobSasPermissions(read=True)
        elif verb == "PUT":
            permission = BlobSasPermissions(create=True, write=True)
        else:
            raise ConfigError(f"presigned_url supports GET and PUT, not {method!r}")
        if expires_in <= 0:
            raise ConfigError(f"expires_in must be a positive number of seconds (got {expires_in})")
        container = await self._client()
        assert self._service is not None
        # the service client's account name: a BlobClient's is wrong for path-style (IP) URLs
        # such as Azurite's ('devstoreaccount1/container')
        account = self._service.account_name or ""
        now = datetime.now(UTC)
        start, expiry = now - _SAS_SKEW, now + timedelta(seconds=expires_in)
        blob = container.get_blob_client(key)
        if self.auth_mode == "managed_identity":
            if expires_in > DELEGATION_KEY_MAX.total_seconds():
                raise ConfigError(
                    "a user delegation SAS (managed identity) is valid for at most 7 days: "
                    f"lower expires_in (got {expires_in} s)"
                )
            delegation = await self._delegation_key(expiry)
            sas = generate_blob_sas(
                account,
                self.container,
                key,
                user_delegation_key=delegation,
                permission=permission,
                start=start,
                expiry=expiry,
            )
        else:
            account_key = getattr(self._service.credential, "account_key", None)
            if not account_key:
                raise ConfigError(
                    "presigned URLs need an account key or managed identity: "
                    "AZURE_STORAGE_CONNECTION_STRING has only a SharedAccessSignature",
                    variables=["AZURE_STORAGE_CONNECTION_STRING"],
                )
            sas = generate_blob_sas(
                account,
                self.container,
                key,
                account_key=account_key,
                permission=permission,
                start=start,
                expiry=expiry,
            )
        return f"{blob.url}?{sas}"

    async def _delegation_key(self, expiry: datetime) -> UserDelegationKey:
        """A user delegation key valid until at least `expiry`, reused while it lasts."""
        if self._delegation is not None and self._delegation_expiry and self._delegation_expiry >= expiry:
            return self._delegation
        assert self._service is not None
        now = datetime.now(UTC)
        # at least an hour, so that a burst of short-lived URLs shares one key
        key_expiry = min(max(expiry, now + timedelta(hours=1)), now + DELEGATION_KEY_MAX)
        delegation = await self._call(
            None,
            "Get User Delegation Key",
            functools.partial(self._service.get_user_delegation_key, now - _SAS_SKEW, key_expiry),
        )
        self._delegation, self._delegation_expiry = delegation, key_expiry
        return delegation


def _identity_reason(error: BaseException) -> str:
    """The managed-identity line of a DefaultAzureCredential failure, redacted and short."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ManagedIdentityCredential"):
            return redact(line)[:300]
    return redact(lines[0])[:300] if lines else type(error).__name__


def _response_headers(_response: Any, _body: Any, headers: dict[str, Any]) -> dict[str, Any]:
    """`cls=` of a generated call: its deserialized headers, named as the SDK's public calls
    name them (`content_md5`, `etag`, `last_modified`)."""
    return {name.lower().removeprefix("x-ms-").replace("-", "_"): value for name, value in headers.items()}


