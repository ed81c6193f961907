"""S3Provider: AWS S3 and S3-compatible servers (MinIO, SeaweedFS), through aioboto3.

One aioboto3 session and one client per provider, opened on first use (on the event loop
that uses it first) and closed by `aclose()`; aioboto3 itself is imported when the client is
opened, in a worker thread (`_warmup`), never when this module is imported.

The SDK defaults this provider changes (botocore's retries off, s3v4 signing, path-style
addressing and `when_required` checksums for custom endpoints, unsigned payloads, the pool size,
the timeouts) are listed with their reasons in the README's table of overrides.

PutObject and UploadPart do not go through botocore: `_s3_put` signs them (SigV4) and sends
them on an aiohttp session of our own, with the upload's digest (CRC32 by default, or MD5 with
`AWS_S3_CHECKSUM=md5`), which the server checks and echoes; the rest (multipart create,
complete and abort, reads, listing, presigning) are botocore calls, on aiohttp sessions that
never resend a request by themselves (`_http.botocore_session_class`). botocore adds `Expect:
100-continue` only to a body that is a file object, which no call left on botocore has
(`tests/test_sdk_pins.py` checks every request it sends): aiohttp would wait for "100 Continue"
with no timeout at all.

Every request goes through `unistore._request` (deadline, retry, this file's `map_error` over
the code table of `_s3_errors`, the shared fallbacks). What S3 must echo for an upload to count
as verified is in `_s3_checksums`; the listings, page by page, in `_s3_listing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from .. import _gcfreeze, _integrity
from .._budget import BufferBudget
from .._download import fetch_ranges
from .._errors import (
    ContainerNotFoundError,
    Context,
    MissingDependencyError,
    NotFoundError,
    ProviderError,
    UnistoreError,
)
from .._io import read_up_to
from .._logging import logger
from .._multipart import Transfer
from .._request import call, mapped
from .._settings import AddressingStyle, S3Settings, as_secret
from .._types import MiB, ObjectInfo, PartLimits, ProviderInfo, PutOptions, unquote_etag
from .._validate import check_key, check_presign
from . import _warmup
from ._base import BaseProvider
from ._from_settings import s3_provider
from ._http import botocore_session_class, drain_to_file, env_proxy, new_session
from ._s3_checksums import checksum_headers, verify_multipart, verify_put
from ._s3_errors import HINT_NETWORK, map_error
from ._s3_listing import head_info, list_objects, stale_uploads
from ._s3_put import Credentials, SignedPut, Signer, refuse_encryption_metadata

if TYPE_CHECKING:
    from .._settings import StorageSettings

ChecksumMode = Literal["when_supported", "when_required"]

READ_CHUNK = 1 * MiB
"""Size of the chunks `iter_bytes` yields (the last may be smaller)."""
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
"""SigV4 presigned URLs live at most 7 days."""


def _import_sdk() -> tuple[Any, Any]:
    """aioboto3 and aiobotocore's config class, or the pip command that installs them."""
    try:
        import aioboto3
        from aiobotocore.config import AioConfig
    except ImportError:
        raise MissingDependencyError("s3", "aioboto3") from None
    return aioboto3, AioConfig


@dataclasses.dataclass(frozen=True)
class _Upload:
    """Handle of one multipart upload (the driver passes it back to every primitive)."""

    key: str
    upload_id: str
    kind: _integrity.Kind = "md5"


LIMITS = PartLimits(max_parts=10_000, min_part=5 * MiB, max_part=5 * 1024 * MiB, max_single_put=5 * 1024 * MiB)


class S3Provider(BaseProvider):
    """Uploads to one S3 bucket. See the module docstring for the SDK settings it changes."""

    list_page_size: int = 1000
    """Keys per ListObjectsV2 page (S3's maximum is 1000)."""
    download_part_size: int = 16 * MiB
    """Smallest range of a parallel `download_file` (grown to `transfer.chunk_size`). Ranges
    of 8-32 MiB measured alike on loopback (SeaweedFS, 256 MiB); larger ones slightly faster."""

    def __init__(
        self,
        *,
        bucket: str,
        region: str | None = "us-east-1",
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | SecretStr | None = None,
        session_token: str | SecretStr | None = None,
        addressing_style: AddressingStyle | None = None,
        checksum_calculation: ChecksumMode | None = None,
        checksum: Literal["crc32", "md5"] = "crc32",
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_pool_connections: int | None = None,
        transfer: Transfer | None = None,
        overwrite: bool = True,
        budget: BufferBudget | None = None,
        name: str = "s3",
        storage_class: str | None = None,
    ) -> None:
        super().__init__(name=name, transfer=transfer, overwrite=overwrite, budget=budget, tier=storage_class)
        # The checks and derived defaults are those of S3Settings, written once; nothing is read
        # from the environment here.
        settings = S3Settings.given(
            bucket=bucket, endpoint_url=endpoint_url, access_key_id=access_key_id,
            secret_access_key=as_secret(secret_access_key), session_token=as_secret(session_token),
            addressing_style=addressing_style, checksum_calculation=checksum_calculation, checksum=checksum,
            **({"region": region} if region else {}),
        )
        if not _warmup.installed("aioboto3", "aiobotocore"):
            raise MissingDependencyError("s3", "aioboto3")
        self.bucket = settings.require_bucket()
        self._bucket_seen = False
        """Set once an answer proved the bucket exists (see `head`)."""
        self.region = region
        self.endpoint_url = settings.endpoint_url.rstrip("/") if settings.endpoint_url else None
        self._access_key_id = settings.access_key_id
        self._secret_access_key = settings.secret_access_key
        self._session_token = settings.session_token
        self.addressing_style: AddressingStyle = settings.effective_addressing_style
        self.checksum_calculation: ChecksumMode | None = settings.effective_checksum_calculation
        self.max_pool_connections = max_pool_connections or max(64, 2 * self.transfer.max_concurrency)
        options: dict[str, Any] = {
            "region_name": region,
            "signature_version": "s3v4",
            "s3": {"addressing_style": self.addressing_style, "payload_signing_enabled": False},
            "retries": {"total_max_attempts": 1, "mode": "standard"},
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "max_pool_connections": self.max_pool_connections,
            "user_agent_extra": "unistore",
        }
        if self.checksum_calculation is not None:
            options["request_checksum_calculation"] = self.checksum_calculation
            options["response_checksum_validation"] = self.checksum_calculation
        self._config_options = options
        self._config: Any = None
        logger.info(
            "AWS S3 bucket %s%s: %s",
            bucket,
            f" at {self.endpoint_url}" if self.endpoint_url else "",
            "static credentials (AWS_ACCESS_KEY_ID)" if access_key_id else "the standard AWS credential chain",
        )
        self.checksum = settings.checksum
        self.declared = ProviderInfo(
            label="AWS S3", digests=("crc32", "md5") if self.checksum == "crc32" else ("md5",), limits=LIMITS,
            cleans_incomplete_uploads=True,
        )
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._s3: Any = None
        self._creds: Any = None
        self._put: SignedPut | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(
        cls, s3: S3Settings, root: StorageSettings | None = None, *, transfer: Transfer | None = None
    ) -> S3Provider:
        """A provider configured from the `AWS_*` settings (and the root `STORAGE_*` ones)."""
        return s3_provider(cls, s3, root, transfer)

    def __repr__(self) -> str:
        where = f" endpoint={self.endpoint_url!r}" if self.endpoint_url else ""
        return f"<S3Provider name={self.name!r} bucket={self.bucket!r} region={self.region!r}{where}>"

    # -- the client ----------------------------------------------------------------------

    @property
    def config(self) -> Any:
        """The `AioConfig` every client of this provider is created with (made on first use: it
        imports aiobotocore)."""
        if self._config is None:
            _, config_cls = _import_sdk()
            self._config = config_cls(**self._config_options, http_session_cls=botocore_session_class())
        return self._config

    def _new_session(self) -> Any:
        """The aioboto3 session, with botocore's files loaded: the loop-free part of opening the
        client, run in a worker thread (`_warmup`)."""
        sdk, _ = _import_sdk()
        self.config  # noqa: B018 - made here, off the loop
        session = sdk.Session(
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret_access_key.get_secret_value() if self._secret_access_key else None,
            aws_session_token=self._session_token.get_secret_value() if self._session_token else None,
            region_name=self.region,
        )
        _warmup.warm_botocore(session, "s3")
        return session

    async def _client(self) -> Any:
        """The provider's one client, created on first use. It belongs to the event loop that
        created it (aiohttp sessions cannot move between loops): use the provider from another
        loop only after `aclose()`."""
        loop = asyncio.get_running_loop()
        if self._s3 is not None and self._loop is loop:
            return self._s3
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            if self._s3 is not None:
                if self._loop is not loop:
                    raise UnistoreError(
                        f"{self!r} is open on another event loop: call `await provider.aclose()` "
                        "there before using it from this one"
                    )
                return self._s3
            stack = contextlib.AsyncExitStack()
            try:
                with mapped(self, "connect", None):
                    session = await _warmup.off_loop(self._new_session)
                    client = await stack.enter_async_context(
                        session.client("s3", endpoint_url=self.endpoint_url, config=self.config)
                    )
                    self._creds = await session.get_credentials()
                    self._put = await self._signed_put(client, stack)
            except BaseException:
                await stack.aclose()
                raise
            self._s3, self._stack, self._loop = client, stack, loop
            _gcfreeze.settle()
            return client

    async def _signed_put(self, client: Any, stack: contextlib.AsyncExitStack) -> SignedPut:
        """The body path (`_s3_put`): the bucket's URL as botocore resolves it (from a presigned
        URL, built locally), and a session of our own, closed with the client."""
        import aiohttp

        probe = await client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": "k"}, ExpiresIn=60
        )
        url = urllib.parse.urlsplit(probe)
        if not url.path.endswith("/k"):  # pragma: no cover - botocore always appends the key
            raise UnistoreError(f"unexpected S3 URL layout from botocore for bucket {self.bucket!r}")
        base = f"{url.scheme}://{url.netloc}{url.path[:-2]}"
        ssl_param: bool | ssl.SSLContext = True
        bundle = os.environ.get("AWS_CA_BUNDLE")
        if url.scheme == "https" and bundle:
            ssl_param = await asyncio.to_thread(ssl.create_default_context, cafile=bundle)
        http = new_session(self.max_pool_connections, ssl_param)
        stack.push_async_callback(http.close)
        timeout = aiohttp.ClientTimeout(sock_connect=self._connect_timeout, sock_read=self._read_timeout)
        proxy = await asyncio.to_thread(env_proxy, base)
        return SignedPut(http, base, Signer(client.meta.region_name or self.region or "us-east-1"), timeout, proxy)

    async def _frozen_credentials(self) -> Credentials:
        from botocore.exceptions import NoCredentialsError

        if self._creds is None:
            raise NoCredentialsError()
        frozen = await self._creds.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    async def _send_body(
        self, key: str, op: str, data: bytes, headers: dict[str, str], *,
        query: dict[str, str] | None = None, conditional: bool = False,
    ) -> Mapping[str, str]:
        """One PutObject / UploadPart through `_s3_put`; an error answer is mapped like botocore's
        errors (`map_error`). Returns the response headers."""
        from botocore.exceptions import ClientError

        await self._client()
        assert self._put is not None
        with mapped(self, op, key, conditional):
            answer = await self._put.put(key, data, headers, await self._frozen_credentials(), query)
            if answer.error is not None:
                raise ClientError(answer.error, op)
        return answer.headers

    async def aclose(self) -> None:
        """Close the client and its connections; idempotent. The provider may be used again
        afterwards (a new client is created, on the loop that uses it)."""
        lock = self._lock
        if lock is not None and self._lock_loop is asyncio.get_running_loop():
            async with lock:  # not while another task is opening the client
                await self._close_client()
        else:
            await self._close_client()

    async def _close_client(self) -> None:
        stack, self._stack, self._s3, self._loop = self._stack, None, None, None
        self._put = self._creds = None
        if stack is not None:
            await stack.aclose()

    # -- errors --------------------------------------------------------------------------

    network_hint = HINT_NETWORK
    tier_service = "s3"

    def map_error(self, exc: Exception, ctx: Context) -> ProviderError | None:
        location = f"at {self.endpoint_url}" if self.endpoint_url else f"in region {self.region}"
        return map_error(exc, ctx, self.bucket, location)

    # -- uploads -------------------------------------------------------------------------

    async def _put_object(self, key: str, data: bytes, digest: bytes, opts: PutOptions) -> ObjectInfo:
        refuse_encryption_metadata(opts.metadata)
        headers = checksum_headers(opts.digest, digest)
        headers.update({f"x-amz-meta-{name.lower()}": value for name, value in opts.metadata.items()})
        if opts.content_type:
            headers["content-type"] = opts.content_type
        if not opts.overwrite:
            headers["if-none-match"] = "*"
        if opts.tier:
            headers["x-amz-storage-class"] = opts.tier
        answer = await self._send_body(key, "PutObject", data, headers, conditional=not opts.overwrite)
        verify_put(self.name, key, "upload", opts.digest, digest, answer)
        return ObjectInfo(
            key=key, size=len(data), etag=unquote_etag(answer.get("ETag")), content_type=opts.content_type,
            metadata=dict(opts.metadata), checksum=_integrity.label(opts.digest, digest), tier=opts.tier,
        )

    async def _start_parts(self, key: str, opts: PutOptions) -> Any:
        refuse_encryption_metadata(opts.metadata)
        client = await self._client()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Metadata": opts.metadata}
        if opts.content_type:
            params["ContentType"] = opts.content_type
        if opts.tier:
            params["StorageClass"] = opts.tier
        if opts.digest == "crc32":
            params["ChecksumAlgorithm"] = "CRC32"  # parts must then carry one, and get a composite
        with mapped(self, "CreateMultipartUpload", key):
            response = await client.create_multipart_upload(**params)
        return _Upload(key, response["UploadId"], opts.digest)

    async def _put_part(self, handle: Any, number: int, data: bytes, digest: bytes) -> Any:
        upload: _Upload = handle
        answer = await self._send_body(
            upload.key, "UploadPart", data, checksum_headers(upload.kind, digest),
            query={"partNumber": str(number), "uploadId": upload.upload_id},
        )
        verify_put(self.name, upload.key, f"part {number}", upload.kind, digest, answer)
        token = {"PartNumber": number, "ETag": answer.get("ETag")}
        if upload.kind == "crc32":
            token["ChecksumCRC32"] = _integrity.b64(digest)
        return token

    async def _complete_parts(
        self, handle: Any, key: str, parts: Sequence[Any], digests: Sequence[bytes], size: int, opts: PutOptions
    ) -> ObjectInfo:
        upload: _Upload = handle
        client = await self._client()
        crc = upload.kind == "crc32"
        expected = _integrity.composite_crc32(digests) if crc else _integrity.multipart_etag(list(digests))
        checksum = _integrity.parts_label(upload.kind, digests)
        params: dict[str, Any] = {
            "Bucket": self.bucket, "Key": key, "UploadId": upload.upload_id,
            "MultipartUpload": {"Parts": list(parts)},
        }
        if not opts.overwrite:
            params["IfNoneMatch"] = "*"
        try:
            with mapped(self, "CompleteMultipartUpload", key, not opts.overwrite):
                response = await client.complete_multipart_upload(**params)
            etag = unquote_etag(response.get("ETag"))
            stored = response.get("ChecksumCRC32") if crc else etag
        except NotFoundError as exc:
            # A retried completion whose first answer was lost finds the upload gone: it
            # succeeded if the object now carries exactly our parts' digest.
            if exc.code != "NoSuchUpload":
                raise
            try:
                info = await self.head(key)
            except NotFoundError:
                raise exc from None
            if info.checksum != checksum and not (not crc and (info.etag or "").lower() == expected):
                raise
            etag, stored = info.etag, expected
        verify_multipart(self.name, key, crc, expected, stored, etag)
        return ObjectInfo(
            key=key, size=size, etag=etag, content_type=opts.content_type,
            metadata=dict(opts.metadata), checksum=checksum if crc else (_integrity.s3_etag_checksum(etag) or checksum),
            tier=opts.tier,
        )

    async def _abort_parts(self, handle: Any, key: str) -> None:
        upload: _Upload = handle
        client = await self._client()
        try:
            with mapped(self, "AbortMultipartUpload", key):
                await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload.upload_id)
        except NotFoundError as exc:
            if exc.code not in ("NoSuchUpload", "404"):
                raise

    async def cleanup_incomplete_uploads(
        self,
        *,
        older_than: float = 3600.0,
        prefix: str = "",
        on_abort: Callable[[str, datetime | None], object] | None = None,
    ) -> int:
        """Abort multipart uploads started more than `older_than` seconds ago under `prefix`
        (leftovers of crashed processes: S3 bills their parts until they are aborted). Returns
        how many were aborted; `on_abort(key, initiated)` is called after each abort. Keep
        `older_than` above the longest upload in progress."""
        stale = await stale_uploads(self, prefix, older_than)
        for key, upload_id, started in stale:
            await call(self, "AbortMultipartUpload", key, self._abort_parts, _Upload(key, upload_id), key)
            if on_abort is not None:
                on_abort(key, started)
        return len(stale)

    # -- reads ---------------------------------------------------------------------------

    async def _api(self, method: str, params: dict[str, Any]) -> Any:
        """One botocore call, for `_request.call` (the client is made on first use)."""
        client = await self._client()
        return await getattr(client, method)(**params)

    async def head(self, key: str) -> ObjectInfo:
        """A HEAD answer has no body, so a missing bucket and a missing key are the same bodiless
        404: on the first 404, HeadBucket tells them apart (then the bucket is known to exist),
        so that `exists()` never answers False for a bucket that is not there."""
        check_key(key)
        params = {"Bucket": self.bucket, "Key": key, "ChecksumMode": "ENABLED"}
        try:
            response = await call(self, "HeadObject", key, self._api, "head_object", params)
        except NotFoundError as missing:
            if not self._bucket_seen and missing.code == "404":
                try:
                    await call(self, "HeadBucket", None, self._api, "head_bucket", {"Bucket": self.bucket})
                except ContainerNotFoundError:
                    raise
                except ProviderError:
                    raise missing from None  # the probe proved nothing: keep the object's answer
                self._bucket_seen = True
            raise
        self._bucket_seen = True
        return head_info(key, response)

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks of about `READ_CHUNK`; the response is released
        however the consumer stops (end, break, error, cancellation)."""
        check_key(key)
        response = await call(self, "GetObject", key, self._api, "get_object", {"Bucket": self.bucket, "Key": key})
        body = response["Body"]
        finished = False
        try:
            while True:
                with mapped(self, "GetObject", key):
                    chunk = await read_up_to(body, READ_CHUNK)
                if not chunk:
                    finished = True
                    return
                yield chunk
        finally:
            if finished:
                body.release()  # back to the pool
            else:
                body.close()  # unread bytes: drop the connection

    async def delete(self, key: str) -> None:
        check_key(key)
        try:
            await call(self, "DeleteObject", key, self._api, "delete_object", {"Bucket": self.bucket, "Key": key})
        except NotFoundError as exc:
            if exc.code not in ("NoSuchKey", "404", "NotFound"):
                raise

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object under `prefix`, ListObjectsV2 page by page (`list_page_size` keys a
        page; each page request retried on its own). Listings carry no content type or user
        metadata: `head()` a key for those."""
        return list_objects(self, prefix)

    async def presigned_url(self, key: str, expires_in: int = 3600, method: str = "GET") -> str:
        """A SigV4 URL for a plain HTTP GET or PUT of `key`, valid `expires_in` seconds
        (at most 7 days). Treat it as a secret: it is a bearer credential."""
        verb = check_presign(key, expires_in, method, MAX_PRESIGN_SECONDS)
        operation = "get_object" if verb == "GET" else "put_object"
        client = await self._client()
        with mapped(self, "presign", key):
            url: str = await client.generate_presigned_url(
                operation, Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
            )
        return url

    async def download_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Ranged GETs in parallel (`transfer.max_concurrency`), each written by offset
        (`pwritev`, in worker threads) into a temporary file beside `path`, renamed into place
        when complete and removed on any failure. Every range is pinned to the ETag seen first
        (`If-Match`), so an object replaced meanwhile fails the download instead of mixing
        versions; each range is retried on its own."""
        info = await self.head(key)
        step = max(self.download_part_size, self.transfer.chunk_size, math.ceil(info.size / 10_000))
        await fetch_ranges(self, key, path, info.size, step, info.etag, "GetObject")
        return info

    async def _fetch_range(self, fd: int, key: str, start: int, end: int, etag: str | None) -> int:
        client = await self._client()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Range": f"bytes={start}-{end - 1}"}
        if etag:
            params["IfMatch"] = f'"{etag}"'
        with mapped(self, "GetObject", key):
            response = await client.get_object(**params)
            return await drain_to_file(response["Body"], fd, start)


