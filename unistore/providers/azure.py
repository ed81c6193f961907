"""AzureBlobProvider: Azure Blob Storage through azure-storage-blob's aio client.

The SDKs (azure-storage-blob, azure-identity, aiohttp) are imported when the provider first
talks to the service, never when this module is imported.

The SDK defaults this provider changes (the storage pipeline's retries off, aiohttp's own
resend off, transport timeouts, one pool of `max(64, 4 x STORAGE_MAX_CONCURRENCY)` connections,
256 KiB read blocks) are listed with their reasons in the README's table of overrides.

- **One client, one credential and one aiohttp session per provider**, made on first use under
  a lock and closed once by `aclose()` (async credentials own a session: #8990, #32309); the
  next use after `aclose()` opens new ones.
- **Put Blob and Put Block go through `_azure_put`** (Shared Key, a SAS or a bearer token, as
  the client is authorised), on the client's own session, with a sliced body (`unistore._body`)
  and the digest computed during our single read (`AZURE_STORAGE_CHECKSUM`: CRC-64 as
  `x-ms-content-crc64`, or MD5 as `Content-MD5`, then also stored as the blob's MD5). The
  service refuses a body that does not match; a digest it echoes is compared with ours.
- **Blocks**: ids are a random per-upload prefix plus the block number, all the same length, so
  two uploads to one key never mix their blocks; the commit (Put Block List, through the SDK)
  names exactly our blocks, in order. There is no abort: uncommitted blocks are never visible,
  and the service discards them after 7 days.
- **Presigned URLs are SAS URLs** (`_azure_sas`): a service SAS signed with the account key
  where there is one, a user delegation SAS under managed identity.
- Listings and blob properties as `ObjectInfo`: `_azure_listing`.
- Every request goes through `unistore._request` (deadline, retry, this file's `map_error` over
  the code table of `_azure_errors`, the shared fallbacks). Messages are built from codes and
  names; anything echoed from the SDK is redacted.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.util
import logging
import os
import ssl
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import SecretStr

from .. import _gcfreeze, _integrity
from .._budget import BufferBudget
from .._download import even_step, fetch_ranges, short_read
from .._errors import Context, MissingDependencyError, NotFoundError, ProviderError, UnistoreError
from .._multipart import Transfer
from .._request import call, mapped
from .._settings import AzureAuthMode, AzureSettings, StorageSettings, as_secret
from .._types import MiB, ObjectInfo, PartLimits, ProviderInfo, PutOptions, unquote_etag
from .._validate import check_key, check_presign
from . import _warmup
from ._azure_errors import NETWORK_HINT, TokenSource, map_error
from ._azure_listing import blob_info, list_blobs
from ._azure_put import DIGEST_HEADER, BlobPut
from ._azure_sas import SasSigner
from ._base import BaseProvider
from ._from_settings import azure_provider
from ._http import close_session, drain_to_file, new_session

if TYPE_CHECKING:
    import aiohttp
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.blob import BlobProperties
    from azure.storage.blob.aio import BlobServiceClient, ContainerClient

logger = logging.getLogger("unistore.azure")
T = TypeVar("T")

MAX_PUT_BLOB = 5000 * MiB
"""Largest single Put Blob the service accepts (Azurite accepts more: Azurite #2334)."""
DOWNLOAD_PART = 8 * MiB
"""Bytes per ranged GET of `iter_bytes`, each read whole into memory (the SDK's single-get and
chunk sizes are set to it, so each range is one request)."""
FILE_RANGE = 32 * MiB
"""Fewest bytes per ranged GET of `download_file`, streamed to the file: every Get Blob through
the SDK costs a few ms of client CPU besides its bytes, and Azurite's own CPU per request is
similar; 32 MiB still gives a 128 MiB recording four ranges in flight."""
FILE_RANGE_MAX = 64 * MiB
"""Most bytes per ranged GET: a larger object is read in `max_concurrency` equal ranges up to
this, no more requests than the streams in flight. Azurite runs on one thread, and its CPU
per byte served is what bounds a download from it (the `download256-azure` bench case: server
CPU beside the rate); fewer, longer ranges cost it less."""
POOL_MIN = 64
"""Smallest connection pool: room for a fan-in of small uploads beside the parts in flight."""
_READ_BLOCK = 256 * 1024


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


NO_CLEANUP_NOTE = (
    "nothing to clean: Azure has no incomplete uploads to abort; uncommitted blocks are never "
    "visible and the service discards them after 7 days"
)

LIMITS = PartLimits(max_parts=50_000, min_part=1, max_part=4000 * MiB, max_single_put=MAX_PUT_BLOB)


class AzureBlobProvider(BaseProvider):
    """Azure Blob Storage: one container, three auth modes (see `AzureSettings.auth_mode`)."""

    list_page_size: int | None = None
    """Blobs per List Blobs page; None: the service's default (5000)."""

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
        access_tier: str | None = None,
    ) -> None:
        super().__init__(name=name, transfer=transfer, overwrite=overwrite, budget=budget, tier=access_tier)
        # The auth-mode rules and the checks are those of AzureSettings, written once; nothing
        # is read from the environment here.
        self._settings = AzureSettings.given(
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
        self.declared = ProviderInfo(
            label="Azure Blob Storage", no_cleanup_note=NO_CLEANUP_NOTE,
            digests=("crc64", "md5") if self.checksum == "crc64" else ("md5",),
            limits=LIMITS,
        )
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
        self._sas = SasSigner(self.auth_mode, self.container)
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
        """A provider configured from the `AZURE_*` settings (and the root `STORAGE_*` ones)."""
        return azure_provider(cls, az, root, transfer)

    def __repr__(self) -> str:
        account = self._settings.account_name or "-"
        return (
            f"<AzureBlobProvider name={self.name!r} container={self.container!r} "
            f"account={account!r} auth={self.auth_mode}>"
        )

    # -- client ------------------------------------------------------------------------

    async def _client(self) -> ContainerClient:
        """The container client, made on first use (one per provider; after `aclose()`, a new
        one on the next use)."""
        if self._container is not None:
            return self._container
        async with self._lock:
            if self._container is None:
                await self._connect()
            assert self._container is not None
            return self._container

    async def _connect(self) -> None:
        await _warmup.import_off_loop(*_warmup.azure_modules(self.auth_mode, self.checksum))
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
                    settings.effective_account_url, credential=TokenSource(credential), **options
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
        _gcfreeze.settle()

    def _open_blob_put(self, session: aiohttp.ClientSession) -> None:
        """The single-put path (`_azure_put`), on the provider's one aiohttp session (the one
        azure-core's transport uses: one pool, closed once), authorised like the container client."""
        import aiohttp

        assert self._container is not None
        put = BlobPut(
            session, self._container,
            aiohttp.ClientTimeout(sock_connect=self._connect_timeout, sock_read=self._read_timeout),
        )
        if not put.usable:  # pragma: no cover - every AzureSettings auth mode gives a key, a SAS or a token
            raise UnistoreError(f"{self!r}: the client's credential is of no kind the signed path knows")
        self._blob_put = put

    async def aclose(self) -> None:
        """Close the client, the credential and the connection pool, once each; idempotent. The
        provider may be used again afterwards (it opens new ones)."""
        async with self._lock:
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
                    await close_session(session, tls)

    # -- errors ------------------------------------------------------------------------

    network_hint = NETWORK_HINT
    tier_service = "azure"

    def map_error(self, exc: Exception, ctx: Context) -> ProviderError | None:
        account = self._service.account_name if self._service is not None else None
        return map_error(exc, ctx, self.auth_mode, self.container, account)

    # -- uploads -----------------------------------------------------------------------

    def _object_info(self, key: str, size: int, headers: dict[str, Any], opts: PutOptions, checksum: str) -> ObjectInfo:
        etag = headers.get("etag")
        return ObjectInfo(
            key=key,
            size=size,
            etag=unquote_etag(str(etag)) if etag else None,
            content_type=opts.content_type,
            last_modified=headers.get("last_modified"),
            metadata=dict(opts.metadata),
            checksum=checksum,
            tier=opts.tier,
        )

    async def _put_object(self, key: str, data: bytes, digest: bytes, opts: PutOptions) -> ObjectInfo:
        """One Put Blob through `_azure_put` (not `upload_blob()`, which hands aiohttp raw bytes
        that it writes in one piece, warning past 1 MiB: see `unistore._body`)."""
        await self._client()
        assert self._blob_put is not None
        put = self._blob_put
        encoded = _integrity.b64(digest)
        headers = {DIGEST_HEADER[opts.digest].lower(): encoded}
        if opts.digest == "md5":
            # stored as the blob's property too; with a CRC-64 the service computes it itself
            headers["x-ms-blob-content-md5"] = encoded
        if opts.content_type:
            headers["x-ms-blob-content-type"] = opts.content_type
        if not opts.overwrite:
            headers["if-none-match"] = "*"  # a conditional create
        if opts.tier:
            headers["x-ms-access-tier"] = opts.tier
        headers.update({f"x-ms-meta-{name}": value for name, value in opts.metadata.items()})
        with mapped(self, "Put Blob", key, not opts.overwrite):
            answer = await put.put(key, data, headers)
            answer.raise_for_status()
        # Azurite 3.37 answers a CRC-64 Put Blob with no x-ms-content-crc64, but checks it:
        # tests/test_azure_provider.py pins that it refuses a body that does not match
        _integrity.verify(self.name, key, "Put Blob", digest, answer.echoed(opts.digest))
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
        """One Put Block through `_azure_put`, with the block's digest; checks what was echoed."""
        blocks: _Blocks = handle
        block_id = blocks.block_id(number)
        await self._client()
        assert self._blob_put is not None
        headers = {DIGEST_HEADER[blocks.kind].lower(): _integrity.b64(digest)}
        with mapped(self, f"Put Block {number}", blocks.key):
            answer = await self._blob_put.put_block(blocks.key, block_id, data, headers)
            answer.raise_for_status()
        # Azurite reports no Content-MD5 for a block (its answer leaves it unset), but does echo a CRC-64
        _integrity.verify(self.name, blocks.key, f"block {number}", digest, answer.echoed(blocks.kind))
        return block_id

    async def _complete_parts(
        self, handle: Any, key: str, parts: Sequence[Any], digests: Sequence[bytes], size: int, opts: PutOptions
    ) -> ObjectInfo:
        from azure.core import MatchConditions
        from azure.storage.blob import ContentSettings, StandardBlobTier

        blob = (await self._client()).get_blob_client(key)
        conditions: dict[str, Any] = {}
        if opts.tier:
            conditions["standard_blob_tier"] = StandardBlobTier(opts.tier)  # the SDK reads `.value`
        if not opts.overwrite:
            # If-None-Match: * (with IfMissing the SDK must not be given etag="*": it would
            # leave it in the call's options and pass it on to aiohttp)
            conditions = {"match_condition": MatchConditions.IfMissing}
        with mapped(self, "Put Block List", key, not opts.overwrite):
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

    async def head(self, key: str) -> ObjectInfo:
        check_key(key)
        props = await call(self, "Get Blob Properties", key, self._properties, key)
        return replace(blob_info(props), key=key)

    async def _properties(self, key: str) -> BlobProperties:
        return await (await self._client()).get_blob_client(key).get_blob_properties()

    async def _get_range(self, key: str, offset: int, length: int, etag: str | None) -> bytes:
        """Exactly `length` bytes at `offset`, pinned to `etag` (If-Match): an object replaced
        meanwhile fails instead of mixing versions."""
        from azure.core import MatchConditions

        blob = (await self._client()).get_blob_client(key)
        pinned: dict[str, Any] = {}
        if etag:  # ObjectInfo holds it unquoted; the header carries it quoted
            pinned = {"etag": f'"{etag}"', "match_condition": MatchConditions.IfNotModified}
        downloader = await blob.download_blob(offset=offset, length=length, max_concurrency=1, **pinned)
        data: bytes = await downloader.readall()
        if len(data) != length:
            raise short_read(self.name, key, len(data), length, offset)
        return data

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        """Ranged GETs of `DOWNLOAD_PART` bytes, one at a time, each read whole, retried on
        its own and pinned to the ETag `head` saw: stopping early leaves no response open."""
        info = await self.head(key)
        for offset in range(0, info.size, DOWNLOAD_PART):
            length = min(DOWNLOAD_PART, info.size - offset)
            yield await call(self, "Get Blob", key, self._get_range, key, offset, length, info.etag)

    async def download_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Ranged GETs, `max_concurrency` at a time, each pinned to the ETag seen first and
        written by offset in a worker thread into a temporary file beside `path`, which is
        renamed into place only when complete."""
        info = await self.head(key)
        step = even_step(info.size, self.transfer.max_concurrency, FILE_RANGE, FILE_RANGE_MAX)
        await fetch_ranges(self, key, path, info.size, step, info.etag, "Get Blob")
        return info

    async def _fetch_range(self, fd: int, key: str, start: int, end: int, etag: str | None) -> int:
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
        return await drain_to_file(stream.response.internal_response, fd, start)

    async def delete(self, key: str) -> None:
        """Idempotent: a blob already gone is success (its snapshots go with it)."""
        check_key(key)
        blob = (await self._client()).get_blob_client(key)
        try:
            await call(self, "Delete Blob", key, blob.delete_blob, "include")
        except NotFoundError:
            pass

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every blob under `prefix`, page by page (each page one request, retried on its own)."""
        return list_blobs(self, prefix)

    # -- SAS ---------------------------------------------------------------------------

    async def presigned_url(self, key: str, expires_in: int = 3600, method: str = "GET") -> str:
        """A SAS URL (`_azure_sas`): GET may read the blob, PUT may create or replace it
        (`x-ms-blob-type: BlockBlob` is required on the PUT, as for any Put Blob)."""
        verb = check_presign(key, expires_in, method)
        container = await self._client()
        assert self._service is not None
        return await self._sas.url(self, self._service, container.get_blob_client(key).url, key, expires_in, verb)
