"""Reads, deletes, listings and presigned URLs across providers against the real servers
(SeaweedFS or MinIO for S3, Azurite for Azure). A provider that is down is one pointed at a dead
loopback port, or one behind the fault proxy (`tests/faultproxy.py`) while it blackholes or
after it stopped (connections refused). What was stored is always checked on the servers
through providers without the proxy."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.faultproxy import FaultProxy
from tests.fixtures_s3 import new_bucket_name
from unistore import FanOutError, NotFoundError, Storage, TransientError
from unistore._multipart import MiB, Transfer
from unistore._retry import RetryPolicy
from unistore.sync import SyncStorage

pytestmark = pytest.mark.servers

Factory = Callable[..., Any]

QUICK = Transfer(
    threshold=5 * MiB, chunk_size=5 * MiB, max_concurrency=4,
    retry=RetryPolicy(attempts=2, deadline=5, base_delay=0.01),
)
"""A provider that is down must fail fast for failover to be quick: two attempts, short waits."""
TIMEOUTS = {"connect_timeout": 1.0, "read_timeout": 2.0}
SLACK_S = 3.0


def dead_endpoint() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def fetch(url: str, *, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        body: bytes = response.read()
        return body


@pytest.fixture
async def azure_proxy(azurite: servers.AzuriteServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy.for_url(azurite.blob_url, seed=21) as proxy:
        yield proxy


@pytest.fixture
async def s3_proxy(s3_server: servers.S3Server) -> AsyncIterator[FaultProxy]:
    async with FaultProxy.for_url(s3_server.endpoint, seed=22) as proxy:
        yield proxy


def proxied_azure(make_azure_provider: Factory, azurite: servers.AzuriteServer, proxy: FaultProxy) -> Any:
    connection_string = azurite.connection_string.replace(azurite.blob_url, proxy.proxied_url(azurite.blob_url))
    return make_azure_provider(connection_string=connection_string, transfer=QUICK, **TIMEOUTS)


async def test_read_fails_over_from_a_dead_s3_to_azure(
    make_s3_provider: Factory, make_azure_provider: Factory, tmp_path: Path
) -> None:
    azure = make_azure_provider()
    s3_dead = make_s3_provider(endpoint_url=dead_endpoint(), transfer=QUICK, **TIMEOUTS)
    await azure.upload_bytes(b"recording bytes" * 1000, "rec/a.mp4")
    async with Storage([s3_dead, azure]) as storage:
        assert storage.read_order == ("s3", "azure")
        began = time.monotonic()
        assert await storage.download_bytes("rec/a.mp4") == b"recording bytes" * 1000
        assert time.monotonic() - began < 5 + SLACK_S
        assert b"".join([c async for c in storage.iter_bytes("rec/a.mp4")]) == b"recording bytes" * 1000
        info = await storage.download_file("rec/a.mp4", tmp_path / "a.mp4")
        assert info.size == 15_000 and (tmp_path / "a.mp4").read_bytes() == b"recording bytes" * 1000
        assert (await storage.locate("rec/a.mp4"))[0] == "azure"
        with pytest.raises(FanOutError) as caught:
            await storage.download_bytes("rec/nowhere.mp4")
        error = caught.value
        assert isinstance(error.errors["s3"], TransientError) and isinstance(error.errors["azure"], NotFoundError)
        text = str(error)
        assert "download of 'rec/nowhere.mp4' failed on 2 provider(s)" in text
        assert "s3: [s3]" in text and "azure: [azure]" in text and "BlobNotFound" in text


async def test_read_fails_over_when_the_first_provider_lacks_the_key(
    make_s3_provider: Factory, make_azure_provider: Factory
) -> None:
    s3, azure = make_s3_provider(), make_azure_provider()
    await s3.upload_bytes(b"only in s3", "rec/b.mp4")
    async with Storage([s3, azure], read_order=["azure"]) as storage:
        assert storage.read_order == ("azure", "s3")
        assert await storage.download_bytes("rec/b.mp4") == b"only in s3"
        with pytest.raises(NotFoundError) as caught:
            await storage.download_bytes("rec/none.mp4")
        text = str(caught.value)
        assert "no provider holds this object" in text and "azure: " in text and "s3: " in text


async def test_read_fails_over_when_azure_is_blackholed(
    make_s3_provider: Factory, make_azure_provider: Factory, azurite: servers.AzuriteServer,
    azure_proxy: FaultProxy,
) -> None:
    """A blackhole answers nothing: the read waits out the read timeout (per attempt), then the
    bytes come from S3, within the bound those timeouts set."""
    azure, s3 = proxied_azure(make_azure_provider, azurite, azure_proxy), make_s3_provider()
    data = bytes(range(256)) * 4096
    async with Storage([azure, s3]) as storage:
        assert (await storage.upload_bytes(data, "rec/c.mp4")).ok
        azure_proxy.blackhole = True
        began = time.monotonic()
        assert b"".join([c async for c in storage.iter_bytes("rec/c.mp4")]) == data
        elapsed = time.monotonic() - began
        assert azure_proxy.stats.blackholed > 0
        assert elapsed < 2 * (TIMEOUTS["connect_timeout"] + TIMEOUTS["read_timeout"]) + SLACK_S


async def test_delete_with_azure_refusing_says_where_the_copy_remains(
    make_s3_provider: Factory, make_azure_provider: Factory, azurite: servers.AzuriteServer,
    azure_proxy: FaultProxy,
) -> None:
    azure, s3 = proxied_azure(make_azure_provider, azurite, azure_proxy), make_s3_provider()
    direct = make_azure_provider()  # the same container, without the proxy
    async with Storage([s3, azure]) as storage:
        assert (await storage.upload_bytes(b"personal data", "user/42.mp4")).ok
        await azure_proxy.stop()  # connections to Azure are now refused
        report = await storage.delete("user/42.mp4")
        assert not report.ok and report.succeeded == ["s3"] and report.failed == ["azure"]
        assert isinstance(report.errors["azure"], TransientError)
        assert "ClientConnectorError" in str(report.errors["azure"]) or "Connect" in str(report.errors["azure"])
        assert await direct.exists("user/42.mp4"), "the copy the report names is really still there"
        assert not await s3.exists("user/42.mp4")
        with pytest.raises(FanOutError, match="delete failed on 1 provider") as caught:
            report.raise_for_failures()
        assert list(caught.value.errors) == ["azure"]
    await direct.delete("user/42.mp4")


async def test_delete_everywhere_is_idempotent_on_the_servers(
    make_s3_provider: Factory, make_azure_provider: Factory
) -> None:
    async with Storage([make_s3_provider(), make_azure_provider()]) as storage:
        await storage.upload_bytes(b"x" * 10, "gone.mp4")
        assert (await storage.delete("gone.mp4")).ok
        assert await storage.exists("gone.mp4") == {"s3": False, "azure": False}
        assert (await storage.delete("gone.mp4")).ok


async def test_head_and_exists_show_a_missing_copy_on_the_servers(
    make_s3_provider: Factory, make_azure_provider: Factory
) -> None:
    s3, azure = make_s3_provider(), make_azure_provider()
    await azure.upload_bytes(b"12345", "rec/only-azure.mp4", content_type="video/mp4")
    async with Storage([s3, azure]) as storage:
        heads = await storage.head("rec/only-azure.mp4")
        assert heads["s3"] is None
        info = heads["azure"]
        assert info is not None and info.size == 5 and info.content_type == "video/mp4"
        assert await storage.exists("rec/only-azure.mp4") == {"s3": False, "azure": True}


async def test_head_with_a_dead_provider_raises_with_every_result(
    make_s3_provider: Factory, make_azure_provider: Factory
) -> None:
    azure = make_azure_provider()
    await azure.upload_bytes(b"12345", "k.mp4")
    s3_dead = make_s3_provider(endpoint_url=dead_endpoint(), transfer=QUICK, **TIMEOUTS)
    async with Storage([s3_dead, azure]) as storage:
        with pytest.raises(FanOutError, match="head of 'k.mp4' failed on 1 provider") as caught:
            await storage.exists("k.mp4")
        report = caught.value.report
        assert report is not None and report.failed == ["s3"]
        held = report.results["azure"].info
        assert held is not None and held.size == 5


async def test_merged_listing_on_the_servers(make_s3_provider: Factory, make_azure_provider: Factory) -> None:
    """The services list in different orders (SeaweedFS by path segment: 'rec/a/b' before
    'rec/a-b'); the merged listing is in code-point order whatever they do, with mixed case,
    punctuation that sorts around '/', and non-ASCII keys, and hides the reserved prefix."""
    s3, azure = make_s3_provider(), make_azure_provider()
    both = ["rec/A.mp4", "rec/a-b.mp4", "rec/a.mp4", "rec/a/b.mp4", "rec/é.mp4", "rec/z.mp4"]
    only_s3 = ["rec/B.mp4", "rec/a_b.mp4"]
    only_azure = ["rec/a0.mp4", "rec/ü.mp4"]
    async with Storage([s3, azure]) as storage:
        for key in both:
            assert (await storage.upload_bytes(key.encode(), key)).ok
        for key in only_s3:
            await s3.upload_bytes(b"s3!" + key.encode(), key)
        for key in only_azure:
            await azure.upload_bytes(key.encode(), key)
        await s3.upload_bytes(b"journal", ".unistore/journal/1.json")
        await azure.upload_bytes(b"journal", ".unistore/journal/1.json")
        listed = [item async for item in storage.list("")]
        assert [item.key for item in listed] == sorted(both + only_s3 + only_azure)
        holders = {item.key: item.providers for item in listed}
        assert all(holders[k] == ("s3", "azure") for k in both)
        assert all(holders[k] == ("s3",) for k in only_s3)
        assert all(holders[k] == ("azure",) for k in only_azure)
        sizes = {item.key: item.size for item in listed}
        assert sizes["rec/B.mp4"] == len(b"s3!rec/B.mp4")
        assert all(item.copies["azure"].size == len(item.key.encode()) for item in listed if item.key in both)
        assert [i.key async for i in storage.list("rec/a/")] == ["rec/a/b.mp4"]


async def test_presigned_urls_work_with_plain_urllib(
    make_s3_provider: Factory, make_azure_provider: Factory
) -> None:
    s3, azure = make_s3_provider(), make_azure_provider()
    await azure.upload_bytes(b"azure copy", "rec/p.mp4")
    async with Storage([s3, azure]) as storage:
        # GET: S3 lacks it, so the URL is Azure's
        url = await storage.presigned_url("rec/p.mp4", expires_in=300)
        assert "sig=" in url and await asyncio.to_thread(fetch, url) == b"azure copy"
        await s3.upload_bytes(b"s3 copy", "rec/p.mp4")
        url = await storage.presigned_url("rec/p.mp4")
        assert "X-Amz-Signature=" in url and await asyncio.to_thread(fetch, url) == b"s3 copy"
        url = await storage.presigned_url("rec/p.mp4", provider="azure")
        assert await asyncio.to_thread(fetch, url) == b"azure copy"
        # PUT: from the first provider that answers
        put = await storage.presigned_url("rec/put.mp4", method="PUT")
        await asyncio.to_thread(fetch, put, method="PUT", data=b"put via s3")
        assert await s3.download_bytes("rec/put.mp4") == b"put via s3"
        put = await storage.presigned_url("rec/put.mp4", method="PUT", provider="azure")
        await asyncio.to_thread(
            fetch, put, method="PUT", data=b"put via azure", headers={"x-ms-blob-type": "BlockBlob"}
        )
        assert await azure.download_bytes("rec/put.mp4") == b"put via azure"


async def test_presigned_put_skips_a_dead_provider(make_s3_provider: Factory, make_azure_provider: Factory) -> None:
    """S3 signs offline: without a probe, a dead S3 would still hand out a URL that cannot work."""
    s3_dead = make_s3_provider(endpoint_url=dead_endpoint(), transfer=QUICK, **TIMEOUTS)
    azure = make_azure_provider()
    async with Storage([s3_dead, azure]) as storage:
        put = await storage.presigned_url("rec/new.mp4", method="PUT")
        await asyncio.to_thread(fetch, put, method="PUT", data=b"fresh", headers={"x-ms-blob-type": "BlockBlob"})
        assert await azure.download_bytes("rec/new.mp4") == b"fresh"


def test_sync_storage_on_the_servers(
    s3_server: servers.S3Server, s3_bucket: str, azurite: servers.AzuriteServer, azure_container: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """SyncStorage from the environment: reads fail over (Azure's container missing the key),
    delete reports per provider, the listing merges, the iterator streams."""
    for name, value in {**s3_server.env(s3_bucket), **azurite.env(azure_container)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "both")
    monkeypatch.setenv("STORAGE_READ_ORDER", "azure")
    data = bytes(range(256)) * 40_000  # ~10 MiB: multipart on both
    with SyncStorage.from_env() as store:
        assert store.read_order == ("azure", "s3")
        assert store.upload_bytes(data, "rec/sync.mp4").ok
        assert store.delete("rec/sync.mp4").ok
        report = store.upload_bytes(data, "rec/sync.mp4")
        assert report.ok
        store._call(store.storage.provider("azure").delete, "rec/sync.mp4")  # azure loses its copy
        assert store.exists("rec/sync.mp4") == {"s3": True, "azure": False}
        assert store.download_bytes("rec/sync.mp4") == data
        assert sum(len(c) for c in store.iter_bytes("rec/sync.mp4")) == len(data)
        assert store.download_file("rec/sync.mp4", tmp_path / "out.mp4").size == len(data)
        assert (tmp_path / "out.mp4").read_bytes() == data
        assert [(i.key, i.providers) for i in store.list("rec/")] == [("rec/sync.mp4", ("s3",))]
        assert store.locate("rec/sync.mp4")[0] == "s3"
        assert fetch(store.presigned_url("rec/sync.mp4")) == data
        assert store.delete("rec/sync.mp4").ok
        with pytest.raises(NotFoundError):
            store.download_bytes("rec/sync.mp4")


async def test_a_missing_bucket_is_never_a_missing_copy(
    make_s3_provider: Factory, make_azure_provider: Factory
) -> None:
    """S3 answers a HEAD in a missing bucket with a bare 404, like a missing key: the storage
    must report the bucket (by name), not claim the copy is absent."""
    s3, azure = make_s3_provider(bucket=new_bucket_name("gone")), make_azure_provider()
    await azure.upload_bytes(b"still here", "rec/m.mp4")
    async with Storage([s3, azure]) as storage:
        with pytest.raises(FanOutError) as caught:
            await storage.exists("rec/m.mp4")
        assert f"bucket {s3.bucket!r} does not exist" in str(caught.value)
        assert await storage.download_bytes("rec/m.mp4") == b"still here"
        with pytest.raises(FanOutError, match=f"bucket {s3.bucket!r} does not exist"):
            await storage.download_bytes("rec/nowhere.mp4")
