"""S3-only behaviour of `S3Provider`, against the real S3-compatible server of the session
(the generic provider contract runs in `tests/contract/`)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import subprocess
import sys
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from tests import servers
from tests.faultproxy import FaultProxy
from tests.fixtures_s3 import new_bucket_name, s3_provider_kwargs
from unistore import _integrity
from unistore._errors import (
    AlreadyExistsError,
    AuthenticationError,
    ContainerNotFoundError,
    IntegrityError,
    MissingDependencyError,
    NotFoundError,
    ProviderError,
    TransientError,
    UnistoreError,
)
from unistore._multipart import MiB, PutOptions, Transfer
from unistore._settings import S3Settings, StorageSettings
from unistore.providers import ObjectInfo
from unistore.providers._s3_checksums import verify_put
from unistore.providers._s3_errors import CODES as _CODES
from unistore.providers.s3 import S3Provider

pytestmark = pytest.mark.servers

T = 5 * MiB  # part size and threshold of the test providers
Factory = Callable[..., S3Provider]


def payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 4096
    return (block * (size // len(block) + 1))[:size]


def key(prefix: str = "k") -> str:
    return f"{prefix}/{os.urandom(6).hex()}"


async def incomplete_uploads(provider: S3Provider) -> list[dict[str, Any]]:
    client = await provider._client()
    response = await client.list_multipart_uploads(Bucket=provider.bucket)
    uploads: list[dict[str, Any]] = response.get("Uploads") or []
    return uploads


def opts(overwrite: bool = True) -> PutOptions:
    return PutOptions(content_type=None, metadata={}, overwrite=overwrite, allow_empty=False)


# -- nothing lost, nothing partial ---------------------------------------------------------


async def test_failure_in_the_third_part_aborts_the_upload(make_s3_provider: Factory) -> None:
    provider, k = make_s3_provider(), key()

    async def source() -> AsyncIterator[bytes]:
        yield payload(T, 1)
        yield payload(T, 2)
        yield payload(T // 2, 3)
        raise OSError("recorder crashed in part 3")

    with pytest.raises(OSError, match="part 3"):
        await provider.upload_stream(source(), k)
    assert await incomplete_uploads(provider) == []
    assert not await provider.exists(k)


async def test_cancellation_mid_multipart_leaves_no_incomplete_upload(make_s3_provider: Factory) -> None:
    provider, k = make_s3_provider(), key()
    two_parts_read = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        yield payload(T, 1)
        yield payload(T, 2)
        two_parts_read.set()
        await asyncio.sleep(3600)
        yield b"never"

    task = asyncio.create_task(provider.upload_stream(source(), k))
    await asyncio.wait_for(two_parts_read.wait(), 30)
    while not await incomplete_uploads(provider):  # the upload really started on the server
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await incomplete_uploads(provider) == []
    assert not await provider.exists(k)


@pytest.mark.parametrize("size", [10, int(2.5 * T)], ids=["single-put", "multipart"])
async def test_no_overwrite_keeps_the_old_bytes(make_s3_provider: Factory, size: int) -> None:
    provider, k = make_s3_provider(), key()
    await provider.upload_bytes(b"original", k)
    with pytest.raises(AlreadyExistsError) as caught:
        await provider.upload_bytes(payload(size), k, overwrite=False)
    assert caught.value.code in ("PreconditionFailed", "412", "ConditionalRequestConflict")
    assert await provider.download_bytes(k) == b"original"
    assert await incomplete_uploads(provider) == [], "the refused multipart upload was aborted"
    # and a conditional create of a fresh key succeeds
    fresh = key()
    info = await provider.upload_bytes(payload(size), fresh, overwrite=False)
    assert info.size == size


# -- errors ----------------------------------------------------------------------------------


async def test_wrong_credentials_are_an_authentication_error(
    make_s3_provider: Factory, s3_server: servers.S3Server
) -> None:
    wrong_secret = "WrongSecret-" + os.urandom(12).hex()
    cases = [
        make_s3_provider(access_key_id="AKUNKNOWN0000000", secret_access_key=wrong_secret),
        make_s3_provider(secret_access_key=wrong_secret),  # right key id, wrong secret
    ]
    for provider in cases:
        with pytest.raises(AuthenticationError) as caught:
            await provider.upload_bytes(b"data", key())
        err = caught.value
        assert err.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch")
        assert not err.transient
        assert "AWS_ACCESS_KEY_ID" in (err.hint or "") and "AWS_SECRET_ACCESS_KEY" in (err.hint or "")
        for text in (str(err), repr(err), str(err.__cause__), repr(provider)):
            assert wrong_secret not in text
            assert s3_server.secret_key not in text


async def test_missing_credentials_are_an_authentication_error(
    make_s3_provider: Factory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    provider = make_s3_provider(access_key_id=None, secret_access_key=None)
    with pytest.raises(AuthenticationError, match="no usable AWS credentials") as caught:
        await provider.upload_bytes(b"data", key())
    assert "AWS_ACCESS_KEY_ID" in (caught.value.hint or "")


async def test_missing_bucket_is_container_not_found(
    make_s3_provider: Factory, s3_server: servers.S3Server
) -> None:
    provider = make_s3_provider(bucket=new_bucket_name("missing"))
    with pytest.raises(ContainerNotFoundError) as caught:
        [info async for info in provider.list()]
    assert "AWS_RECORDING_STORAGE_BUCKET_NAME" in (caught.value.hint or "")
    assert f"bucket {provider.bucket!r} does not exist at {s3_server.endpoint}" in str(caught.value)
    assert not caught.value.transient
    with pytest.raises(ContainerNotFoundError, match=f"bucket {provider.bucket!r} does not exist"):
        await provider.download_bytes("k")
    # HEAD answers carry no body: a missing bucket must not pass for a missing key
    for probe in (provider.head, provider.exists):
        with pytest.raises(ContainerNotFoundError, match=f"HeadBucket failed: bucket {provider.bucket!r}"):
            await probe("k")
    if s3_server.kind != "seaweedfs":  # SeaweedFS creates a missing bucket on PutObject
        with pytest.raises(ContainerNotFoundError):
            await provider.upload_bytes(b"data", "k")


async def test_a_missing_key_in_an_existing_bucket_is_not_found(make_s3_provider: Factory) -> None:
    provider = make_s3_provider()
    with pytest.raises(NotFoundError):
        await provider.head("missing-key")
    assert provider._bucket_seen, "the HeadBucket probe ran once and proved the bucket"
    assert not await provider.exists("missing-key")


@pytest.mark.parametrize("kind", ["crc32", "md5"])
async def test_a_corrupted_part_is_detected(make_s3_provider: Factory, kind: _integrity.Kind) -> None:
    provider, k = make_s3_provider(), key()
    handle = await provider._start_parts(k, dataclasses.replace(opts(), digest=kind))
    try:
        data = payload(T, 5)
        with pytest.raises(IntegrityError) as caught:
            await provider._put_part(handle, 1, data, _integrity.digest(kind, data + b"!"))
        assert caught.value.code in ("BadDigest", "InvalidDigest", "DigestMismatch")
        assert caught.value.transient, "retried while the bytes are in hand"
    finally:
        await provider._abort_parts(handle, k)


async def test_our_own_comparison_with_what_the_service_echoes(make_s3_provider: Factory) -> None:
    provider = make_s3_provider()
    sent, stored = b"sent", b"stored"
    with pytest.raises(IntegrityError, match="digest mismatch"):
        etag = {"ETag": f'"{_integrity.md5(stored).hex()}"'}
        verify_put(provider.name, "k", "part 1", "md5", _integrity.md5(sent), etag)
    with pytest.raises(IntegrityError, match="digest mismatch"):
        echoed = {"x-amz-checksum-crc32": _integrity.b64(_integrity.crc32(stored))}
        verify_put(provider.name, "k", "part 1", "crc32", _integrity.crc32(sent), echoed)
    # a server that ignores x-amz-checksum-crc32 echoes nothing: unverifiable, and the fix is named
    with pytest.raises(IntegrityError, match="AWS_S3_CHECKSUM=md5") as caught:
        verify_put(provider.name, "k", "upload", "crc32", _integrity.crc32(sent), {"ETag": '"abc"'})
    assert caught.value.code == "ChecksumNotEchoed"
    good = {"x-amz-checksum-crc32": _integrity.b64(_integrity.crc32(sent))}
    verify_put(provider.name, "k", "part 1", "crc32", _integrity.crc32(sent), good)


async def test_md5_mode_for_servers_without_flexible_checksums(make_s3_provider: Factory) -> None:
    provider = make_s3_provider(checksum="md5")
    assert provider.digests == ("md5",)
    small, big = payload(1000, 1), payload(T + 7, 2)
    a = await provider.upload_bytes(small, key())
    b = await provider.upload_bytes(big, key())
    assert a.checksum == "md5:" + _integrity.md5(small).hex()
    assert b.checksum and b.checksum.startswith("md5-parts:") and b.checksum.endswith("-2")


async def test_crc32_is_the_default_and_what_head_reports(make_s3_provider: Factory) -> None:
    provider = make_s3_provider()
    assert provider.digests == ("crc32", "md5")
    small, big = payload(1000, 3), payload(T + 7, 4)
    ks, kb = key(), key()
    a = await provider.upload_bytes(small, ks)
    b = await provider.upload_bytes(big, kb)
    assert a.checksum == "crc32:" + _integrity.crc32(small).hex()
    parts = [_integrity.crc32(big[:T]), _integrity.crc32(big[T:])]
    assert b.checksum == "crc32-parts:" + _integrity.composite_crc32(parts)
    assert (await provider.head(ks)).checksum == a.checksum, "the CRC32 the service stored"


async def test_bytes_corrupted_in_transit_are_refused_then_retried(
    make_s3_provider: Factory, s3_server: servers.S3Server
) -> None:
    async with FaultProxy.for_url(s3_server.endpoint) as proxy:
        provider = make_s3_provider(endpoint_url=proxy.proxied_url(s3_server.endpoint))
        data, k = payload(int(1.5 * T), 9), key()
        proxy.corrupt_next = 1  # one flipped byte in the next request body (part 1)
        info = await provider.upload_bytes(data, k)
        assert proxy.corrupt_next == 0, "the fault was injected"
        assert info.size == len(data)
        assert await provider.download_bytes(k) == data
        await provider.aclose()


async def test_connection_resets_are_transient_and_retried(
    make_s3_provider: Factory, s3_server: servers.S3Server
) -> None:
    async with FaultProxy.for_url(s3_server.endpoint) as proxy:
        provider = make_s3_provider(endpoint_url=proxy.proxied_url(s3_server.endpoint))
        proxy.reset_every, proxy.reset_budget = 1, 1  # the first connection is reset
        k = key()
        await provider.upload_bytes(b"survives a reset", k)
        assert await provider.download_bytes(k) == b"survives a reset"
        proxy.reset_every, proxy.reset_budget = 1, None  # every new connection is reset
        await provider.aclose()
        with pytest.raises(TransientError, match=r"gave up after 3 attempt"):
            await provider.head(k)
        await provider.aclose()


def test_error_table_is_consistent() -> None:
    for code, rule in _CODES.items():
        assert issubclass(rule.error, ProviderError), code
        assert rule.transient == issubclass(rule.error, TransientError), code
    assert _CODES["NoSuchBucket"].error is ContainerNotFoundError
    assert _CODES["NoSuchKey"].error is NotFoundError
    for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
        assert _CODES[code].error is AuthenticationError
    for code in ("SlowDown", "InternalError", "RequestTimeout", "ServiceUnavailable", "500", "502", "503", "504"):
        assert _CODES[code].transient, code


# -- reads -----------------------------------------------------------------------------------


async def test_download_file_of_a_multipart_object(make_s3_provider: Factory, tmp_path: Path) -> None:
    provider, k = make_s3_provider(), key()
    provider.download_part_size = 1  # ranges of transfer.chunk_size (5 MiB): 4 ranges in parallel
    data = payload(int(3.5 * T) + 123, 4)
    info = await provider.upload_bytes(data, k)
    assert info.checksum and info.checksum.startswith("crc32-parts:")
    target = tmp_path / "copy.bin"
    got = await provider.download_file(k, target)
    assert got.size == len(data)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert [p.name for p in tmp_path.iterdir()] == ["copy.bin"]
    # an empty object downloads too
    await provider.upload_bytes(b"", "empty", allow_empty=True)
    await provider.download_file("empty", tmp_path / "empty.bin")
    assert (tmp_path / "empty.bin").read_bytes() == b""


class _ReplacedAfterHead(S3Provider):
    """The object is replaced between the HEAD and the ranged GETs of `download_file`."""

    async def head(self, key: str) -> ObjectInfo:
        info = await super().head(key)
        await self.upload_bytes(b"a newer version", key)
        return info


async def test_object_replaced_during_download_fails_and_leaves_no_file(
    s3_server: servers.S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    k = key()
    async with _ReplacedAfterHead(**s3_provider_kwargs(s3_server, s3_bucket)) as provider:
        await provider.upload_bytes(payload(3 * T), k)
        with pytest.raises(ProviderError) as caught:
            await provider.download_file(k, tmp_path / "copy.bin")
    assert caught.value.status == 412, "every range is pinned to the ETag seen first"
    assert not caught.value.transient
    assert list(tmp_path.iterdir()) == [], "the temporary file was removed"


async def test_download_range_pinned_to_the_etag(make_s3_provider: Factory, tmp_path: Path) -> None:
    provider, k = make_s3_provider(), key()
    await provider.upload_bytes(b"version one", k)
    fd = os.open(tmp_path / "x", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider._fetch_range(fd, k, 0, 4, "0" * 32)  # another version's ETag
        assert caught.value.status == 412
        assert not caught.value.transient
    finally:
        os.close(fd)


async def test_iter_bytes_stopped_early_releases_the_connection(make_s3_provider: Factory) -> None:
    provider, k = make_s3_provider(max_pool_connections=1), key()
    await provider.upload_bytes(payload(3 * MiB), k)
    chunks = cast(AsyncGenerator[bytes, None], provider.iter_bytes(k))
    first = await anext(chunks)
    assert 0 < len(first) <= 1 * MiB
    await chunks.aclose()  # consumer stops early
    # with one pooled connection, a leaked response would block this forever
    assert (await asyncio.wait_for(provider.head(k), 10)).size == 3 * MiB
    async for _chunk in provider.iter_bytes(k):
        break  # no aclose(): the generator is finalized when dropped
    assert (await asyncio.wait_for(provider.head(k), 10)).size == 3 * MiB
    sizes = [len(c) async for c in provider.iter_bytes(k)]
    assert sizes == [MiB, MiB, MiB]


async def test_list_pages_through_everything(make_s3_provider: Factory) -> None:
    provider = make_s3_provider()
    provider.list_page_size = 2
    keys = [f"pages/{i:02d}" for i in range(7)]
    await asyncio.gather(*(provider.upload_bytes(k.encode(), k) for k in keys))
    await provider.upload_bytes(b"x", "other/0")
    calls: list[str] = []
    client = await provider._client()
    client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: calls.append("list"))
    listed = [info async for info in provider.list("pages/")]
    assert [i.key for i in listed] == keys
    assert all(i.size == len(i.key) and i.checksum and i.last_modified for i in listed)
    assert len(calls) >= 4, "7 keys in pages of 2"


async def test_presigned_get_and_put_with_a_plain_http_client(make_s3_provider: Factory) -> None:
    provider, k = make_s3_provider(), key() + ".bin"
    put_url = await provider.presigned_url(k, expires_in=300, method="PUT")
    body = payload(100_000, 6)

    def put() -> int:
        request = urllib.request.Request(put_url, data=body, method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status

    assert await asyncio.to_thread(put) == 200
    assert await provider.download_bytes(k) == body

    get_url = await provider.presigned_url(k, expires_in=300)
    assert "X-Amz-Signature=" in get_url

    def get() -> bytes:
        with urllib.request.urlopen(get_url, timeout=10) as response:
            data: bytes = response.read()
            return data

    assert await asyncio.to_thread(get) == body
    with pytest.raises(UnistoreError):
        await provider.presigned_url(k, method="DELETE")
    with pytest.raises(UnistoreError):
        await provider.presigned_url(k, expires_in=8 * 24 * 3600)


async def test_cleanup_incomplete_uploads(make_s3_provider: Factory) -> None:
    provider = make_s3_provider()
    await provider._start_parts("old/a", opts())
    await provider._start_parts("keep/b", opts())
    assert await provider.cleanup_incomplete_uploads(older_than=3600) == 0
    assert len(await incomplete_uploads(provider)) == 2
    assert await provider.cleanup_incomplete_uploads(older_than=0, prefix="old/") == 1
    assert [u["Key"] for u in await incomplete_uploads(provider)] == ["keep/b"]
    assert await provider.cleanup_incomplete_uploads(older_than=0) == 1
    assert await incomplete_uploads(provider) == []


# -- configuration ---------------------------------------------------------------------------


def test_config_with_a_custom_endpoint() -> None:
    provider = S3Provider(
        bucket="recordings",
        endpoint_url="http://127.0.0.1:9000",
        transfer=Transfer(max_concurrency=48),
    )
    config = provider.config
    assert config.signature_version == "s3v4"
    assert config.s3["addressing_style"] == "path"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.retries["total_max_attempts"] == 1
    assert config.max_pool_connections == 96
    assert (config.connect_timeout, config.read_timeout) == (10.0, 60.0)


def test_config_for_aws_keeps_botocore_checksums() -> None:
    provider = S3Provider(bucket="recordings", region="eu-west-1")
    assert provider.config.s3["addressing_style"] == "auto"
    assert provider.checksum_calculation is None
    assert provider.config.request_checksum_calculation in (None, "when_supported")
    assert provider.config.max_pool_connections == 64
    explicit = S3Provider(
        bucket="recordings",
        endpoint_url="http://127.0.0.1:9000",
        addressing_style="virtual",
        checksum_calculation="when_supported",
    )
    assert explicit.config.s3["addressing_style"] == "virtual"
    assert explicit.config.request_checksum_calculation == "when_supported"


def test_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "SettingsSecret-" + os.urandom(8).hex()
    s3 = S3Settings(
        bucket="recordings",
        access_key_id="AKSETTINGS",
        secret_access_key=secret,
        endpoint_url="http://127.0.0.1:9000",
        region="eu-central-1",
    )
    root = StorageSettings(upload_mode="s3", s3=s3, connect_timeout=3, read_timeout=7, overwrite=False)
    provider = S3Provider.from_settings(s3, root, transfer=Transfer(max_concurrency=2))
    assert provider.bucket == "recordings" and provider.region == "eu-central-1"
    assert provider.overwrite is False
    assert (provider.config.connect_timeout, provider.config.read_timeout) == (3, 7)
    assert provider.config.s3["addressing_style"] == "path"
    assert provider.name == "s3" and provider.label == "AWS S3"
    assert secret not in repr(provider) and secret not in str(vars(provider))


@pytest.mark.parametrize("kind", ["crc32", "md5"])
async def test_requests_are_path_style_with_one_checksum_and_no_default_checksums(
    make_s3_provider: Factory, kind: str
) -> None:
    provider = make_s3_provider(checksum=kind)
    sent: list[tuple[str, dict[str, str]]] = []
    client = await provider._client()

    def capture(request: Any, **_: Any) -> None:
        headers = {k.lower(): v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()}
        sent.append((request.url, headers))

    client.meta.events.register("before-send.s3", capture)  # botocore's requests
    assert provider._put is not None
    session = provider._put._session
    real_put = session.put

    def spy(url: Any, **kwargs: Any) -> Any:  # the signed body PUTs on the provider's own session
        sent.append((str(url), {k.lower(): v for k, v in kwargs["headers"].items()}))
        return real_put(url, **kwargs)

    session.put = spy  # type: ignore[method-assign]
    await provider.upload_bytes(b"small", "cfg/small")
    await provider.upload_bytes(payload(T + 1), "cfg/multi")
    header = "x-amz-checksum-crc32" if kind == "crc32" else "content-md5"
    other = "content-md5" if kind == "crc32" else "x-amz-checksum-crc32"
    bodies = [h for _, h in sent if header in h]
    assert len(bodies) == 3, f"one PutObject and two UploadPart, each with {header}"
    assert not any(other in h for _, h in sent), "one digest per request, not two"
    assert len(sent) == 5, "plus CreateMultipartUpload and CompleteMultipartUpload through botocore"
    for url, headers in sent:
        assert url.startswith(f"{provider.endpoint_url}/{provider.bucket}/cfg/"), "path-style"
        declared = (header, "x-amz-checksum-algorithm")
        defaults = [h for h in headers if h.startswith("x-amz-checksum") and h not in declared]
        assert not defaults and "x-amz-trailer" not in headers, "no botocore default checksums"
        assert "aws-chunked" not in headers.get("content-encoding", "")
        assert headers.get("x-amz-content-sha256") == "UNSIGNED-PAYLOAD"


# -- life cycle ------------------------------------------------------------------------------


async def test_one_client_reused_closed_and_reopened(make_s3_provider: Factory) -> None:
    provider = make_s3_provider()
    first = await provider._client()
    await asyncio.gather(*(provider.exists(key()) for _ in range(20)))
    assert await provider._client() is first
    await provider.aclose()
    await provider.aclose()  # idempotent
    await provider.upload_bytes(b"again", "reopened")  # a new client on first use
    assert await provider._client() is not first
    # it belongs to this loop: another loop must wait for aclose()
    with pytest.raises(UnistoreError, match="another event loop"):
        await asyncio.to_thread(asyncio.run, provider.exists("reopened"))
    await provider.aclose()
    assert await asyncio.to_thread(asyncio.run, _exists_and_close(provider, "reopened"))


async def _exists_and_close(provider: S3Provider, k: str) -> bool:
    async with provider:
        return await provider.exists(k)


def test_importing_the_module_loads_no_sdk() -> None:
    code = (
        "import sys, unistore.providers.s3; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('aioboto3', 'aiobotocore', 'botocore', 'boto3')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aioboto3", None)
    with pytest.raises(MissingDependencyError, match=r"unistore\[s3\]"):
        S3Provider(bucket="recordings")
