"""Azure's presigned URLs are SAS URLs: a service SAS signed with the account key where there
is one; under managed identity a user delegation SAS, signed with a user delegation key that is
fetched once and reused while it outlives the URLs asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._request import Target, call

if TYPE_CHECKING:
    from azure.storage.blob import UserDelegationKey
    from azure.storage.blob.aio import BlobServiceClient

    from .._settings import AzureAuthMode

DELEGATION_KEY_MAX = timedelta(days=7)
"""A user delegation key (and so its SAS) is valid for at most 7 days."""
SAS_SKEW = timedelta(minutes=5)
"""A SAS starts this much before now, for clocks a little ahead of this host's."""


class SasSigner:
    """Signs the SAS URLs of one provider's container."""

    def __init__(self, auth_mode: AzureAuthMode, container: str) -> None:
        self.auth_mode = auth_mode
        self.container = container
        self.delegation: UserDelegationKey | None = None
        self._delegation_expiry: datetime | None = None

    async def url(
        self, target: Target, service: BlobServiceClient, blob_url: str, key: str, expires_in: int, verb: str
    ) -> str:
        """`blob_url` with a SAS for `verb` (GET: read; PUT: create or write), valid
        `expires_in` seconds."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        permission = BlobSasPermissions(read=True) if verb == "GET" else BlobSasPermissions(create=True, write=True)
        # the service client's account name: a BlobClient's is wrong for path-style (IP) URLs
        # such as Azurite's ('devstoreaccount1/container')
        account = service.account_name or ""
        now = datetime.now(UTC)
        start, expiry = now - SAS_SKEW, now + timedelta(seconds=expires_in)
        signing: dict[str, Any]
        if self.auth_mode == "managed_identity":
            if expires_in > DELEGATION_KEY_MAX.total_seconds():
                raise ConfigError(
                    "a user delegation SAS (managed identity) is valid for at most 7 days: "
                    f"lower expires_in (got {expires_in} s)"
                )
            signing = {"user_delegation_key": await self._delegation_key(target, service, expiry)}
        else:
            account_key = getattr(service.credential, "account_key", None)
            if not account_key:
                raise ConfigError(
                    "presigned URLs need an account key or managed identity: "
                    "AZURE_STORAGE_CONNECTION_STRING has only a SharedAccessSignature",
                    variables=["AZURE_STORAGE_CONNECTION_STRING"],
                )
            signing = {"account_key": account_key}
        sas = generate_blob_sas(
            account, self.container, key, permission=permission, start=start, expiry=expiry, **signing
        )
        return f"{blob_url}?{sas}"

    async def _delegation_key(self, target: Target, service: BlobServiceClient, expiry: datetime) -> UserDelegationKey:
        """A user delegation key valid until at least `expiry`, reused while it lasts."""
        if self.delegation is not None and self._delegation_expiry and self._delegation_expiry >= expiry:
            return self.delegation
        now = datetime.now(UTC)
        # at least an hour, so that a burst of short-lived URLs shares one key
        key_expiry = min(max(expiry, now + timedelta(hours=1)), now + DELEGATION_KEY_MAX)
        delegation = await call(
            target, "Get User Delegation Key", None, service.get_user_delegation_key, now - SAS_SKEW, key_expiry
        )
        self.delegation, self._delegation_expiry = delegation, key_expiry
        return delegation
