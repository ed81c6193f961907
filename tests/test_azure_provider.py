"""AzureBlobProvider behaviour of its own, against Azurite: the three auth modes, SAS URLs, the
error mapping and hints, nothing visible after a failed or cancelled upload, no secret in any
string. The generic contract runs in `tests/contract/`."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import logging
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.faultproxy import FaultProxy
from unistore import _integrity
from unistore._errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConfigError,
    ContainerNotFoundError,
    IntegrityError,
    MissingDependencyError,
    NotFoundError,
    ProviderError,
    TransientError,
)
from unistore._multipart import MiB
from unistore._request import mapped
from unistore._settings import AzureSettings, StorageSettings
from unistore.providers import _azure_errors as azure_errors
from unistore.providers import azure as azure_module
from unistore.providers.azure import AzureBlobProvider

pytestmark = pytest.mark.servers

MakeProvider = Callable[..., AzureBlobProvider]
AUTH_MODES = ["connection_string", "account_key", "managed_identity"]
MODE_LINES = {
    "connection_string": (logging.INFO, "Using connection string authentication for Azure Storage"),
    "account_key": (
        logging.WARNING,
        "Using account key authentication for Azure Storage (not recommended for production: prefer managed identity)",
    ),
    "managed_identity": (logging.INFO, "Using managed identity authentication for Azure Storage"),
}
BIG = 12 * MiB + 123  # above the 5 MiB threshold: three blocks


def payload(size: int) -> bytes:
    return os.urandom(size)


def server_for(request: pytest.FixtureRequest, auth: str) -> servers.AzuriteServer:
    server: servers.AzuriteServer = request.getfixturevalue(
        "azurite_oauth" if auth == "managed_identity" else "azurite"
    )
    return server


def http_get(url: str, ca: Path | None = None, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    """A plain HTTP client (no SDK, no credentials): what a browser or ffmpeg would do."""
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    headers = {"x-ms-blob-type": "BlockBlob"} if method == "PUT" else {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def azurite_version() -> tuple[int, ...]:
    out = subprocess.run([servers._find_azurite(), "--version"], capture_output=True, text=True, timeout=60)
    return tuple(int(p) for p in out.stdout.strip().split(".")[:3] if p.isdigit())


# -- auth modes ----------------------------------------------------------------------------


@pytest.mark.parametrize("auth", AUTH_MODES)
async def test_auth_mode_round_trip_and_logs_mode_once(
    auth: str, make_azure_provider: MakeProvider, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="unistore")
    provider = make_azure_provider(auth)
    small, big = payload(1000), payload(BIG)
    info = await provider.upload_bytes(small, "rec/small.bin", content_type="video/mp4", metadata={"bot": "b1"})
    assert info.checksum == "crc64:" + _integrity.crc64(small).hex()  # the default: AZURE_STORAGE_CHECKSUM=crc64
    src = tmp_path / "big.bin"
    src.write_bytes(big)
    big_info = await provider.upload_file(src, "rec/big.bin")
    assert big_info.size == BIG and big_info.checksum and big_info.checksum.startswith("crc64-parts:")
    assert await provider.download_bytes("rec/small.bin") == small
    await provider.download_file("rec/big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == big
    head = await provider.head("rec/small.bin")
    assert (head.content_type, dict(head.metadata), head.size) == ("video/mp4", {"bot": "b1"}, 1000)
    assert head.checksum == "md5:" + _integrity.md5(small).hex()  # the MD5 Azure computes on Put Blob
    assert sorted([i.key async for i in provider.list("rec/")]) == ["rec/big.bin", "rec/small.bin"]

    level, line = MODE_LINES[auth]
    records = [r for r in caplog.records if r.getMessage() == line]
    assert len(records) == 1 and records[0].levelno == level
    others = [m for a, (_, m) in MODE_LINES.items() if a != auth]
    assert not [r for r in caplog.records if r.getMessage() in others]


async def test_managed_identity_uses_the_token_endpoint_and_client_id(
    request: pytest.FixtureRequest,
    identity_endpoint: servers.IdentityEndpoint,
    azure_oauth_container: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server: servers.AzuriteServer = request.getfixturevalue("azurite_oauth")
    for name, value in server.env(azure_oauth_container, auth="managed_identity", identity=identity_endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_CLIENT_ID", "0aa1a2b3-user-assigned")
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "azure")
    settings = StorageSettings()
    assert settings.azure is not None and settings.azure.auth_mode == "managed_identity"
    before = len(identity_endpoint.requests)
    provider = AzureBlobProvider.from_settings(settings.azure, settings)
    provider._verify = str(server.ca_cert)  # SSL_CERT_FILE is read only when aiohttp is imported
    async with provider:
        await provider.upload_bytes(b"token please", "mi.txt")
        assert await provider.download_bytes("mi.txt") == b"token please"
    new = identity_endpoint.requests[before:]
    assert new and all(r.status == 200 for r in new)
    assert {r.client_id for r in new} == {"0aa1a2b3-user-assigned"}
    assert {r.resource for r in new} == {"https://storage.azure.com"}
    assert len(new) == 1, "one credential per provider: its token is cached and reused"


async def test_token_endpoint_failing_is_an_authentication_error_with_the_hint(
    make_azure_provider: MakeProvider, identity_endpoint: servers.IdentityEndpoint
) -> None:
    provider = make_azure_provider("managed_identity")
    identity_endpoint.fail_with = 403
    with pytest.raises(AuthenticationError) as caught:
        await provider.upload_bytes(b"x", "denied.txt")
    err = caught.value
    assert err.provider == "azure" and err.code == "CredentialUnavailable"
    assert err.hint and "managed identity" in err.hint and "AZURE_CLIENT_ID" in err.hint
    assert "AZURE_STORAGE_CONNECTION_STRING" in err.hint
    assert "token refused" in str(err)  # the identity endpoint's own reason is kept
    assert err.__cause__ is None
    identity_endpoint.fail_with = None
    await provider.upload_bytes(b"x", "allowed.txt")  # the same provider recovers


async def test_token_endpoint_blip_is_retried_by_the_credential(
    make_azure_provider: MakeProvider, identity_endpoint: servers.IdentityEndpoint
) -> None:
    provider = make_azure_provider("managed_identity")
    identity_endpoint.fail_with, identity_endpoint.fail_times = 500, 1
    before = len(identity_endpoint.requests)
    await provider.upload_bytes(b"x", "blip.txt")
    assert [r.status for r in identity_endpoint.requests[before:]] == [500, 200]


# -- error mapping -------------------------------------------------------------------------


async def test_wrong_account_key_is_an_authentication_error(make_azure_provider: MakeProvider) -> None:
    wrong = base64.b64encode(os.urandom(64)).decode()
    provider = make_azure_provider("account_key", account_key=wrong)
    with pytest.raises(AuthenticationError) as caught:
        await provider.upload_bytes(b"x", "k.txt")
    err = caught.value
    # Azure says AuthenticationFailed, Azurite AuthorizationFailure ("failed to authenticate")
    assert err.code in ("AuthenticationFailed", "AuthorizationFailure") and err.status == 403
    assert err.hint and "AZURE_STORAGE_ACCOUNT_KEY" in err.hint
    assert wrong not in str(err) and "signature" not in str(err).lower()
    with pytest.raises(AuthenticationError):
        await provider.head("k.txt")


async def test_wrong_key_in_connection_string(
    make_azure_provider: MakeProvider, azurite: servers.AzuriteServer
) -> None:
    wrong = base64.b64encode(os.urandom(64)).decode()
    provider = make_azure_provider(connection_string=azurite.connection_string.replace(azurite.account_key, wrong))
    with pytest.raises(AuthenticationError) as caught:
        await provider.upload_bytes(b"x", "k.txt")
    assert (
        caught.value.hint
        and "AccountKey" in caught.value.hint
        and "AZURE_STORAGE_CONNECTION_STRING" in caught.value.hint
    )
    assert wrong not in str(caught.value) and wrong not in repr(provider)


@pytest.mark.parametrize("auth", AUTH_MODES)
async def test_missing_container(auth: str, make_azure_provider: MakeProvider) -> None:
    provider = make_azure_provider(auth, container="no-such-container-here")
    for attempt in (
        lambda: provider.upload_bytes(b"x", "a.txt"),
        lambda: provider.upload_bytes(payload(6 * MiB), "big.bin"),
        lambda: provider.head("a.txt"),
        lambda: provider.download_bytes("a.txt"),
    ):
        with pytest.raises(ContainerNotFoundError) as caught:
            await attempt()
        assert caught.value.hint == "create the container first or check AZURE_STORAGE_CONTAINER_NAME"
        assert "container 'no-such-container-here' does not exist in storage account 'devstoreaccount1'" in str(
            caught.value
        )
        assert not caught.value.transient
    with pytest.raises(ContainerNotFoundError, match="container 'no-such-container-here' does not exist"):
        [i async for i in provider.list()]


async def test_missing_blob(make_azure_provider: MakeProvider, tmp_path: Path) -> None:
    provider = make_azure_provider()
    for attempt in (
        lambda: provider.head("nope"),
        lambda: provider.download_bytes("nope"),
        lambda: provider.download_file("nope", tmp_path / "f"),
    ):
        with pytest.raises(NotFoundError):
            await attempt()
    assert not await provider.exists("nope")
    await provider.delete("nope")  # idempotent
    assert list(tmp_path.iterdir()) == []


async def test_unreachable_service_is_transient_and_retried_once_per_attempt(
    make_azure_provider: MakeProvider,
) -> None:
    (port,) = servers.free_ports(1)
    cs = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={servers.AZURITE_ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    provider = make_azure_provider(connection_string=cs)
    with pytest.raises(TransientError) as caught:
        await provider.upload_bytes(b"x", "a.txt")
    # unistore's retry made the 3 attempts; the SDK made no retries of its own under them
    assert "gave up after 3 attempt(s)" in str(caught.value)
    assert servers.AZURITE_ACCOUNT_KEY not in str(caught.value)


@pytest.mark.parametrize("checksum", ["crc64", "md5"])
@pytest.mark.parametrize("size", [1000, BIG], ids=["put-blob", "blocks"])
async def test_body_corrupted_in_transit_is_refused_then_retried(
    size: int, checksum: str, make_azure_provider: MakeProvider, azurite: servers.AzuriteServer
) -> None:
    """Our digest travels as x-ms-content-crc64 or Content-MD5, so the service refuses bytes
    flipped on the way (Azure: Crc64Mismatch / Md5Mismatch; Azurite 3.37: 400 "The CRC64 value
    specified in the request did not match..." / "Provided contentMD5 doesn't match."): an
    IntegrityError, retried while the bytes are in hand. Azurite echoes no CRC-64 for a Put
    Blob, so there its own check is the only one, and this test is what shows it holds."""
    async with FaultProxy.for_url(azurite.blob_url) as proxy:
        provider = make_azure_provider(checksum=checksum, **_via(proxy, azurite))
        proxy.corrupt_next = 1
        data = payload(size)
        await provider.upload_bytes(data, "flip.bin")
        assert proxy.stats.corrupted == 1
        assert await provider.download_bytes("flip.bin") == data
        proxy.corrupt_next = 10
        with pytest.raises(IntegrityError) as caught:
            await provider.upload_bytes(payload(1000), "flip2.bin")
        assert "gave up after 3 attempt(s)" in str(caught.value)
        proxy.clear_faults()
        assert not await provider.exists("flip2.bin")


async def test_reset_and_timeout_are_transient(
    make_azure_provider: MakeProvider, azurite: servers.AzuriteServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="unistore.retry")
    async with FaultProxy.for_url(azurite.blob_url) as proxy:
        provider = make_azure_provider(read_timeout=0.5, **_via(proxy, azurite))
        proxy.reset_every, proxy.reset_budget = 1, 1  # one reset, then healthy
        await provider.upload_bytes(b"after a reset", "reset.txt")
        assert proxy.stats.resets == 1
        # the reset reached unistore's retry: neither the SDK nor aiohttp resent it unseen
        assert [r for r in caplog.records if "[azure] Put Blob failed" in r.getMessage()]
        proxy.clear_faults()
        proxy.blackhole = True
        with pytest.raises(TransientError) as caught:
            await provider.head("reset.txt")
        assert "gave up after 3 attempt(s)" in str(caught.value)
        proxy.blackhole = False
        assert (await provider.head("reset.txt")).size == len(b"after a reset")


def _via(proxy: FaultProxy, server: servers.AzuriteServer) -> dict[str, Any]:
    """Account-key arguments that reach `server` through `proxy`."""
    return {
        "auth": "account_key",
        "account_name": server.account_name,
        "account_key": server.account_key,
        "account_url": proxy.proxied_url(server.blob_url),
    }


def test_integrity_verify_on_a_reported_digest() -> None:
    with pytest.raises(IntegrityError):
        _integrity.verify("azure", "k", "Put Blob", b"a" * 16, bytes(bytearray(b"b" * 16)))
    _integrity.verify("azure", "k", "Put Blob", b"a" * 16, bytes(bytearray(b"a" * 16)))


# -- nothing partial is ever visible --------------------------------------------------------


async def test_block_upload_failing_midway_leaves_no_blob(make_azure_provider: MakeProvider) -> None:
    provider = make_azure_provider()
    staged = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield payload(MiB)
        await asyncio.wait_for(staged.wait(), 30)  # a block is stored: the failure is mid-upload
        raise OSError("recorder crashed")

    with pytest.raises(OSError, match="recorder crashed"):
        await provider.upload_stream(chunks(), "crash.bin", progress=lambda _n, _done, _t: staged.set())
    assert not await provider.exists("crash.bin")
    assert [i async for i in provider.list("crash")] == []


async def test_cancelled_block_upload_leaves_no_blob(make_azure_provider: MakeProvider) -> None:
    provider = make_azure_provider()
    two_blocks = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            yield payload(MiB)

    def progress(_name: str, done: int, _total: int | None) -> None:
        if done >= 10 * MiB:
            two_blocks.set()

    task = asyncio.create_task(provider.upload_stream(chunks(), "cancelled.bin", progress=progress))
    await asyncio.wait_for(two_blocks.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await provider.exists("cancelled.bin")


# -- conditional create --------------------------------------------------------------------


@pytest.mark.parametrize("size", [1000, BIG], ids=["put-blob", "block-commit"])
async def test_overwrite_false_keeps_the_old_object(size: int, make_azure_provider: MakeProvider) -> None:
    provider = make_azure_provider()
    old = payload(size)
    await provider.upload_bytes(old, "keep.bin", overwrite=False)
    with pytest.raises(AlreadyExistsError) as caught:
        await provider.upload_bytes(payload(size), "keep.bin", overwrite=False)
    assert caught.value.hint and "overwrite=True" in caught.value.hint
    assert await provider.download_bytes("keep.bin") == old
    new = payload(size)
    await provider.upload_bytes(new, "keep.bin", overwrite=True)
    assert await provider.download_bytes("keep.bin") == new


async def test_provider_default_overwrite_false(make_azure_provider: MakeProvider) -> None:
    provider = make_azure_provider(overwrite=False)
    await provider.upload_bytes(b"first", "once.txt")
    with pytest.raises(AlreadyExistsError):
        await provider.upload_bytes(b"second", "once.txt")
    assert await provider.download_bytes("once.txt") == b"first"


# -- SAS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["connection_string", "account_key"])
async def test_sas_url_signed_with_the_account_key(
    auth: str, make_azure_provider: MakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make_azure_provider(auth)
    await provider.upload_bytes(b"shared recording", "sas/rec 1.mp4")
    url = await provider.presigned_url("sas/rec 1.mp4", expires_in=600)
    assert "sig=" in url and "sp=r" in url
    assert await asyncio.to_thread(http_get, url) == (200, b"shared recording")
    # read-only: the same URL cannot write
    status, _ = await asyncio.to_thread(http_get, url, None, "PUT", b"overwritten")
    assert status == 403
    put_url = await provider.presigned_url("sas/upload.bin", expires_in=600, method="PUT")
    status, _ = await asyncio.to_thread(http_get, put_url, None, "PUT", b"uploaded by a browser")
    assert status == 201
    assert await provider.download_bytes("sas/upload.bin") == b"uploaded by a browser"
    signature = url.split("sig=")[1].split("&")[0]
    assert signature not in caplog.text


async def test_user_delegation_sas_under_managed_identity(
    make_azure_provider: MakeProvider, request: pytest.FixtureRequest
) -> None:
    provider = make_azure_provider("managed_identity")
    ca = server_for(request, "managed_identity").ca_cert
    await provider.upload_bytes(b"delegated", "udk.txt")
    url = await provider.presigned_url("udk.txt", expires_in=300)
    assert "skoid=" in url and "sig=" in url  # signed with a user delegation key
    status, body = await asyncio.to_thread(http_get, url, ca)
    if status == 403 and azurite_version() < (3, 37):
        pytest.xfail(
            "Azurite < 3.37 signs user delegation SAS without the srh/srq lines of SAS version "
            "2026-10-06, which azure-storage-blob 12.31 uses"
        )
    assert (status, body) == (200, b"delegated")
    key = provider._sas.delegation
    assert key is not None
    await provider.presigned_url("udk.txt", expires_in=600)
    assert provider._sas.delegation is key, "one delegation key serves every URL it outlives"
    with pytest.raises(ConfigError):
        await provider.presigned_url("udk.txt", expires_in=8 * 24 * 3600)


async def test_presigned_url_rejects_other_methods(make_azure_provider: MakeProvider) -> None:
    provider = make_azure_provider()
    with pytest.raises(ConfigError):
        await provider.presigned_url("x", method="DELETE")


# -- secrets, life cycle, imports ----------------------------------------------------------


async def test_no_secret_in_repr_errors_or_logs(
    make_azure_provider: MakeProvider, azurite: servers.AzuriteServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = azurite.account_key
    texts: list[str] = []
    for auth in ("connection_string", "account_key"):
        provider = make_azure_provider(auth)
        texts.append(repr(provider))
        gone = make_azure_provider(auth, container="gone-container")
        with pytest.raises(NotFoundError) as missing:
            await provider.head("missing")
        with pytest.raises(ContainerNotFoundError) as no_container:
            await gone.upload_bytes(b"x", "k")
        for error in (missing.value, no_container.value):
            texts += [str(error), repr(error)]
    bad = make_azure_provider("account_key", account_key=base64.b64encode(b"w" * 64).decode())
    with pytest.raises(AuthenticationError) as caught:
        await bad.upload_bytes(b"x", "k")
    texts += [str(caught.value), repr(bad)]
    texts.append(caplog.text)
    joined = "\n".join(texts)
    assert key not in joined and "AccountKey=" not in joined.replace("AccountKey=REDACTED", "")
    assert base64.b64encode(b"w" * 64).decode() not in joined
    assert "auth=connection_string" in texts[0] and "container=" in texts[0]


async def test_aclose_closes_once_and_reopens_on_later_use(make_azure_provider: MakeProvider) -> None:
    provider = make_azure_provider("managed_identity")
    await provider.upload_bytes(b"x", "x.txt")
    session, credential = provider._session, provider._credential
    assert session is not None and credential is not None
    await provider.aclose()
    await provider.aclose()
    assert session.closed
    assert (await provider.head("x.txt")).size == 1, "the provider opens a new client after aclose()"
    assert provider._session is not None and provider._session is not session


async def test_one_client_for_concurrent_first_use(make_azure_provider: MakeProvider) -> None:
    provider = make_azure_provider()
    await asyncio.gather(*(provider.upload_bytes(b"%d" % i, f"many/{i}") for i in range(40)))
    assert provider._session is not None
    assert len([i async for i in provider.list("many/")]) == 40


async def test_list_follows_every_page(make_azure_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = make_azure_provider()
    provider.list_page_size = 2
    for i in range(5):
        await provider.upload_bytes(b"x", f"page/{i}", metadata={"n": str(i)})
    await provider.upload_bytes(b"x", "other")
    listed = [i async for i in provider.list("page/")]
    assert [i.key for i in listed] == [f"page/{i}" for i in range(5)]
    assert [dict(i.metadata) for i in listed] == [{"n": str(i)} for i in range(5)]


async def test_download_file_in_parallel_ranges(
    make_azure_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(azure_module, "FILE_RANGE", 256 * 1024)
    provider = make_azure_provider()
    data = payload(3 * MiB + 17)
    await provider.upload_bytes(data, "ranges.bin")
    info = await provider.download_file("ranges.bin", tmp_path / "out.bin")
    assert info.size == len(data) and (tmp_path / "out.bin").read_bytes() == data
    await provider.upload_bytes(b"", "empty.bin", allow_empty=True)
    await provider.download_file("empty.bin", tmp_path / "empty.bin")
    assert (tmp_path / "empty.bin").read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.bin", "out.bin"]


async def test_download_file_reads_one_range_per_stream_in_flight(
    make_azure_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Azurite's CPU per request bounds a download from it: an object is read in
    `max_concurrency` equal ranges (not more requests), up to FILE_RANGE_MAX each."""
    monkeypatch.setattr(azure_module, "FILE_RANGE", 256 * 1024)
    monkeypatch.setattr(azure_module, "FILE_RANGE_MAX", 512 * 1024)
    provider = make_azure_provider()
    data = payload(3 * MiB + 17)
    await provider.upload_bytes(data, "even.bin")
    ranges: list[tuple[int, int]] = []
    fetch = provider._fetch_range

    async def recorded(fd: int, key: str, start: int, end: int, etag: str | None) -> int:
        ranges.append((start, end))
        return await fetch(fd, key, start, end, etag)

    monkeypatch.setattr(provider, "_fetch_range", recorded)
    await provider.download_file("even.bin", tmp_path / "capped.bin")
    assert (tmp_path / "capped.bin").read_bytes() == data
    assert len(ranges) == 7 and all(end - start <= 512 * 1024 for start, end in ranges)  # capped
    ranges.clear()
    monkeypatch.setattr(azure_module, "FILE_RANGE_MAX", 64 * MiB)
    await provider.download_file("even.bin", tmp_path / "even.bin")
    assert (tmp_path / "even.bin").read_bytes() == data
    concurrency = provider.transfer.max_concurrency
    assert len(ranges) == concurrency, ranges  # one range per stream in flight
    assert max(e - s for s, e in ranges) - min(e - s for s, e in ranges) <= len(data) // concurrency


async def test_iter_bytes_stops_early(make_azure_provider: MakeProvider) -> None:
    provider = make_azure_provider()
    await provider.upload_bytes(payload(20 * MiB), "stream.bin")
    async for chunk in provider.iter_bytes("stream.bin"):
        assert chunk
        break


async def test_md5_mode_round_trip(make_azure_provider: MakeProvider, tmp_path: Path) -> None:
    provider = make_azure_provider(checksum="md5")
    assert provider.digests == ("md5",)
    small, big = payload(1000), payload(BIG)
    info = await provider.upload_bytes(small, "md5/small.bin")
    assert info.checksum == "md5:" + _integrity.md5(small).hex()
    assert (await provider.head("md5/small.bin")).checksum == info.checksum  # stored as x-ms-blob-content-md5
    big_info = await provider.upload_bytes(big, "md5/big.bin")
    assert big_info.checksum and big_info.checksum.startswith("md5-parts:")
    assert await provider.download_bytes("md5/big.bin") == big


async def test_auto_checksum_against_azurite_is_md5(make_azure_provider: MakeProvider) -> None:
    # Azurite checks MD5 natively but CRC-64 in JavaScript (3.5x its CPU): `auto` picks MD5 there
    provider = make_azure_provider(checksum="auto")
    assert provider.checksum == "md5" and provider.digests == ("md5",)
    info = await provider.upload_bytes(b"auto", "auto.bin")
    assert info.checksum == "md5:" + _integrity.md5(b"auto").hex()


def test_crc64_without_awscrt_names_both_fixes(azurite: servers.AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from unistore import MissingDependencyError

    monkeypatch.setattr(_integrity, "crc64_available", lambda: False)
    with pytest.raises(MissingDependencyError) as caught:
        AzureBlobProvider(container="recordings", connection_string=azurite.connection_string, checksum="crc64")
    assert "awscrt" in str(caught.value) and "unistore[azure]" in str(caught.value)
    assert "AZURE_STORAGE_CHECKSUM=md5" in str(caught.value)
    # MD5 needs nothing more
    AzureBlobProvider(container="recordings", connection_string=azurite.connection_string, checksum="md5")


def test_from_settings_and_config_errors(azurite: servers.AzuriteServer) -> None:
    az = AzureSettings(container="recordings", connection_string="UseDevelopmentStorage=true")
    provider = AzureBlobProvider.from_settings(az)
    assert provider.auth_mode == "connection_string" and provider.name == "azure"
    assert provider.label == "Azure Blob Storage" and provider.limits.max_parts == 50_000
    from unistore._errors import ConfigError

    with pytest.raises(ConfigError):
        AzureBlobProvider(container="recordings", account_key="a2V5")
    with pytest.raises(ConfigError):
        AzureBlobProvider(container="Bad_Name", connection_string=azurite.connection_string)


def test_import_loads_no_sdk() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import unistore.providers.azure"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    ).stderr
    loaded = [line.split("|")[-1].strip() for line in out.splitlines() if "|" in line]
    assert not [m for m in loaded if m.startswith(("azure", "aiohttp"))]


async def test_object_replaced_while_read_fails_instead_of_mixing(
    make_azure_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azure_module, "DOWNLOAD_PART", 64 * 1024)
    provider = make_azure_provider()
    await provider.upload_bytes(payload(256 * 1024), "moving.bin")
    chunks = provider.iter_bytes("moving.bin")
    assert isinstance(chunks, AsyncGenerator)
    assert len(await anext(chunks)) == 64 * 1024
    await provider.upload_bytes(payload(256 * 1024), "moving.bin")
    with pytest.raises(ProviderError) as caught:
        await anext(chunks)
    assert caught.value.status == 412 and "changed while it was being read" in str(caught.value)
    assert not caught.value.transient, "a replaced object is not retried: one behaviour on every provider"
    await chunks.aclose()


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("azure.identity") else real(name, *a),
    )
    with pytest.raises(MissingDependencyError) as caught:
        AzureBlobProvider(container="recordings", account_name="acct")
    assert "pip install 'unistore[azure]'" in str(caught.value) and caught.value.module == "azure-identity"


def test_error_map_covers_transport_and_credential_errors() -> None:
    import aiohttp
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError, ServiceResponseTimeoutError
    from azure.identity import CredentialUnavailableError

    provider = AzureBlobProvider(container="recordings", connection_string="UseDevelopmentStorage=true")
    cases: list[tuple[Exception, type[ProviderError]]] = [
        (ServiceRequestError("connect failed"), TransientError),
        (ServiceResponseError("broken response"), TransientError),
        (ServiceResponseTimeoutError("read timed out"), TransientError),
        (aiohttp.ClientPayloadError("payload broke off"), TransientError),
        (ConnectionResetError(104, "reset"), TransientError),
        (TimeoutError(), TransientError),
        (CredentialUnavailableError("no managed identity endpoint"), AuthenticationError),
        (ValueError("unexpected"), ProviderError),
    ]
    for exc, expected in cases:
        with pytest.raises(expected) as caught:
            with mapped(provider, "Put Blob", "k"):
                raise exc
        assert type(caught.value) is expected and caught.value.provider == "azure"
    for code, rule in azure_errors.CODES.items():
        assert issubclass(rule.error, ProviderError), code


async def test_connection_string_with_a_container_sas(
    azurite: servers.AzuriteServer, azure_container: str, make_azure_provider: MakeProvider
) -> None:
    """A connection string that carries a SAS instead of a key: single puts (the signed-PUT
    path) and blocks (the SDK) both ride on the SAS, and it never reaches a log line."""
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(
        azurite.account_name, azure_container, account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, write=True, create=True, delete=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    provider = make_azure_provider(
        "connection_string", connection_string=f"BlobEndpoint={azurite.blob_url};SharedAccessSignature={sas}"
    )
    small, big = b"a recording chunk", payload(int(2.5 * MiB) + 3)
    await provider.upload_bytes(small, "sas-conn/small.bin")
    await provider.upload_bytes(big, "sas-conn/big.bin")
    assert await provider.download_bytes("sas-conn/small.bin") == small
    assert await provider.download_bytes("sas-conn/big.bin") == big
    assert provider._blob_put is not None, "single puts went through the signed path"
