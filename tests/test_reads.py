"""Reads, deletes, listings and presigned URLs across providers (`unistore._reads`), on the
memory and local providers; a provider that is down is a `FaultyProvider` whose reads fail.
The same promises against SeaweedFS and Azurite are in `tests/test_reads_servers.py`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.faulty import FaultyProvider
from unistore import (
    ConfigError,
    FanOutError,
    ListedObject,
    NotFoundError,
    Storage,
    StorageSettings,
    TransientError,
)
from unistore.providers import LocalProvider, MemoryProvider
from unistore.sync import SyncStorage

MakeMemory = Callable[..., MemoryProvider]


def down(name: str) -> TransientError:
    return TransientError("connection refused (injected)", provider=name, code="ClientConnectorError")


async def two(make_memory_provider: MakeMemory) -> tuple[Storage, FaultyProvider, FaultyProvider]:
    first = FaultyProvider(make_memory_provider(name="first"))
    second = FaultyProvider(make_memory_provider(name="second"))
    return Storage([first, second]), first, second


# -- read order -----------------------------------------------------------------------


def test_read_order_defaults_to_upload_order_and_follows_the_setting(make_memory_provider: MakeMemory) -> None:
    a, b, c = (make_memory_provider(name=n) for n in ("a", "b", "c"))
    assert Storage([a, b, c]).read_order == ("a", "b", "c")
    # the named ones first, the rest after in upload order: every copy stays reachable
    assert Storage([a, b, c], read_order=["c"]).read_order == ("c", "a", "b")
    assert Storage([a, b, c], read_order=["b", "a", "c"]).read_order == ("b", "a", "c")
    with pytest.raises(ConfigError, match="STORAGE_READ_ORDER names 'azure'") as caught:
        Storage([a, b], read_order=["azure"])
    assert "STORAGE_READ_ORDER" in caught.value.variables


def test_read_order_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "memory,local")
    monkeypatch.setenv("STORAGE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("STORAGE_READ_ORDER", " Local ")
    assert StorageSettings().read_providers == ("local", "memory")
    assert Storage.from_env().read_order == ("local", "memory")
    monkeypatch.setenv("STORAGE_READ_ORDER", "local,s3")
    with pytest.raises(ConfigError, match="not a configured provider") as caught:
        StorageSettings()
    assert "STORAGE_READ_ORDER" in caught.value.variables
    assert "memory, local" in str(caught.value)


# -- failover ----------------------------------------------------------------------------


async def test_reads_fail_over_to_the_next_provider_when_the_first_lacks_the_key(
    make_memory_provider: MakeMemory, tmp_path: Path
) -> None:
    storage, first, second = await two(make_memory_provider)
    await second.upload_bytes(b"only on the second", "rec.bin")
    assert await storage.download_bytes("rec.bin") == b"only on the second"
    assert b"".join([c async for c in storage.iter_bytes("rec.bin")]) == b"only on the second"
    info = await storage.download_file("rec.bin", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"only on the second" and info.size == 18
    name, located = await storage.locate("rec.bin")
    assert name == "second" and located.size == 18


async def test_reads_fail_over_when_the_first_provider_is_down(
    make_memory_provider: MakeMemory, caplog: pytest.LogCaptureFixture
) -> None:
    storage, first, second = await two(make_memory_provider)
    report = await storage.upload_bytes(b"both copies", "rec.bin")
    assert report.ok
    first.fail_reads_with = down("first")
    caplog.set_level(logging.INFO, logger="unistore")
    caplog.clear()
    assert await storage.download_bytes("rec.bin") == b"both copies"
    assert [c async for c in storage.iter_bytes("rec.bin")] == [b"both copies"]
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines.count(("INFO", "download of rec.bin served by second after first could not")) == 2
    assert sum(1 for level, text in lines if level == "WARNING" and "failed on first, trying the next" in text) == 2
    assert "download_bytes" in first.calls and "download_bytes" in second.calls


async def test_the_read_order_decides_who_serves(make_memory_provider: MakeMemory) -> None:
    a, b = make_memory_provider(name="a"), make_memory_provider(name="b")
    await a.upload_bytes(b"from a", "k")
    await b.upload_bytes(b"from b", "k")
    assert await Storage([a, b]).download_bytes("k") == b"from a"
    assert await Storage([a, b], read_order=["b"]).download_bytes("k") == b"from b"
    assert await Storage([a, b]).download_bytes("k", provider="b") == b"from b"


async def test_a_pinned_provider_never_fails_over(make_memory_provider: MakeMemory) -> None:
    storage, first, second = await two(make_memory_provider)
    await second.upload_bytes(b"x", "k")
    with pytest.raises(NotFoundError) as caught:
        await storage.download_bytes("k", provider="first")
    assert caught.value.provider == "first"
    first.fail_reads_with = down("first")
    with pytest.raises(TransientError):
        [c async for c in storage.iter_bytes("k", provider="first")]
    with pytest.raises(ConfigError, match="no provider named 'azure'"):
        await storage.download_bytes("k", provider="azure")


async def test_not_found_everywhere_names_each_answer(make_memory_provider: MakeMemory) -> None:
    storage, _, _ = await two(make_memory_provider)
    for read in (storage.download_bytes, storage.locate):
        with pytest.raises(NotFoundError) as caught:
            await read("nowhere.bin")
        message = str(caught.value)
        assert "no provider holds this object" in message
        assert "first: [first] no object" in message and "second: [second] no object" in message
    with pytest.raises(NotFoundError):
        [c async for c in storage.iter_bytes("nowhere.bin")]


async def test_one_down_and_one_lacking_is_a_fanout_error_naming_both(make_memory_provider: MakeMemory) -> None:
    storage, first, _ = await two(make_memory_provider)
    first.fail_reads_with = down("first")
    with pytest.raises(FanOutError) as caught:
        await storage.download_bytes("missing.bin")
    error = caught.value
    assert set(error.errors) == {"first", "second"}
    assert isinstance(error.errors["first"], TransientError)
    assert isinstance(error.errors["second"], NotFoundError)
    assert str(error).startswith("download of 'missing.bin' failed on 2 provider(s)")
    assert "connection refused" in str(error) and "no object under this key" in str(error)


async def test_iter_bytes_fails_over_only_before_the_first_chunk(make_memory_provider: MakeMemory) -> None:
    memory = make_memory_provider(name="first")
    first, second = FaultyProvider(memory), FaultyProvider(make_memory_provider(name="second"))
    storage = Storage([first, second])
    data = bytes(range(256)) * 8192  # 2 MiB: two memory chunks
    await storage.upload_bytes(data, "big.bin")
    chunks = storage.iter_bytes("big.bin")
    assert len(await anext(chunks)) == 1024 * 1024
    memory.objects.clear()  # too late to hand over: the rest still comes from `first`'s stream
    rest = [c async for c in chunks]
    assert sum(map(len, rest)) == len(data) - 1024 * 1024
    assert second.calls.count("iter_bytes") == 0


# -- every copy: head, exists, delete ----------------------------------------------------


async def test_head_and_exists_show_a_missing_copy(make_memory_provider: MakeMemory) -> None:
    storage, first, second = await two(make_memory_provider)
    await second.upload_bytes(b"12345", "k")
    heads = await storage.head("k")
    assert heads["first"] is None
    info = heads["second"]
    assert info is not None and info.size == 5
    assert await storage.exists("k") == {"first": False, "second": True}
    assert await storage.exists("other") == {"first": False, "second": False}


async def test_head_raises_when_a_provider_cannot_answer(make_memory_provider: MakeMemory) -> None:
    storage, first, _ = await two(make_memory_provider)
    await storage.upload_bytes(b"12345", "k")
    first.fail_reads_with = down("first")
    with pytest.raises(FanOutError) as caught:
        await storage.exists("k")
    report = caught.value.report
    assert report is not None and report.failed == ["first"] and report.succeeded == ["second"]
    second_info = report.results["second"].info
    assert second_info is not None and second_info.size == 5
    assert list(caught.value.errors) == ["first"]


async def test_delete_removes_every_copy_and_is_idempotent(make_memory_provider: MakeMemory) -> None:
    storage, first, second = await two(make_memory_provider)
    await storage.upload_bytes(b"gdpr", "user/1.mp4")
    report = await storage.delete("user/1.mp4")
    assert report.ok and report.succeeded == ["first", "second"]
    assert await storage.exists("user/1.mp4") == {"first": False, "second": False}
    assert (await storage.delete("user/1.mp4")).ok


async def test_delete_with_one_provider_down_says_where_the_copy_remains(
    make_memory_provider: MakeMemory, caplog: pytest.LogCaptureFixture
) -> None:
    kept, gone = make_memory_provider(name="second"), make_memory_provider(name="first")
    first, second = FaultyProvider(gone), FaultyProvider(kept)
    storage = Storage([first, second])
    await storage.upload_bytes(b"gdpr", "user/1.mp4")
    second.fail_reads_with = down("second")
    report = await storage.delete("user/1.mp4")
    assert not report.ok and report.failed == ["second"] and report.succeeded == ["first"]
    assert isinstance(report.errors["second"], TransientError)
    assert "user/1.mp4" in kept.objects and "user/1.mp4" not in gone.objects
    assert "Failed to delete user/1.mp4 from second, any copy there remains" in caplog.text
    with pytest.raises(FanOutError, match="delete failed on 1 provider"):
        report.raise_for_failures()


# -- merged listing ----------------------------------------------------------------------


async def test_list_merges_and_says_who_holds_each_key(make_memory_provider: MakeMemory, tmp_path: Path) -> None:
    memory = make_memory_provider()
    local = LocalProvider(tmp_path / "root")
    storage = Storage([memory, local])
    await storage.upload_bytes(b"both", "rec/both")
    await memory.upload_bytes(b"m", "rec/memory-only")
    await local.upload_bytes(b"loc", "rec/local-only")
    await memory.upload_bytes(b"journal", ".unistore/journal/1")
    await memory.upload_bytes(b"elsewhere", "other/x")
    listed = [item async for item in storage.list("rec/")]
    assert [item.key for item in listed] == ["rec/both", "rec/local-only", "rec/memory-only"]
    assert [item.providers for item in listed] == [("memory", "local"), ("local",), ("memory",)]
    assert [item.size for item in listed] == [4, 3, 1]
    assert isinstance(listed[0], ListedObject) and listed[0].copies["local"].size == 4
    everything = [item.key async for item in storage.list()]
    assert ".unistore/journal/1" not in everything and "other/x" in everything
    assert storage.reserved_prefix == ".unistore/"
    assert [i.key async for i in storage.list(provider="local")] == ["rec/both", "rec/local-only"]


async def test_list_in_read_order_and_with_a_custom_reserved_prefix(make_memory_provider: MakeMemory) -> None:
    a, b = make_memory_provider(name="a"), make_memory_provider(name="b")
    storage = Storage([a, b], read_order=["b"], reserved_prefix="_sys/")
    await storage.upload_bytes(b"xx", "k")
    await a.upload_bytes(b"j", "_sys/j")
    assert [(i.key, i.providers) async for i in storage.list()] == [("k", ("b", "a"))]


async def test_list_fails_naming_the_provider_that_cannot_list(make_memory_provider: MakeMemory) -> None:
    storage, _, second = await two(make_memory_provider)
    await storage.upload_bytes(b"x", "k")
    second.fail_reads_with = down("second")
    with pytest.raises(FanOutError, match="list of '' failed on 1 provider") as caught:
        [i async for i in storage.list()]
    assert list(caught.value.errors) == ["second"]


async def test_list_pages_through_many_keys_in_order(make_memory_provider: MakeMemory) -> None:
    a, b = make_memory_provider(name="a"), make_memory_provider(name="b")
    for i in range(300):
        await (a if i % 3 else b).upload_bytes(b"x", f"k/{i:04d}")
        if i % 5 == 0:
            await a.upload_bytes(b"x", f"k/{i:04d}")
    listed = [i async for i in Storage([a, b]).list("k/")]
    assert [i.key for i in listed] == [f"k/{i:04d}" for i in range(300)]
    assert sum(1 for i in listed if len(i.providers) == 2) == len([i for i in range(300) if i % 3 == 0 and i % 5 == 0])


# -- presigned URLs ------------------------------------------------------------------------


async def test_presigned_get_comes_from_the_first_provider_that_holds_the_key(
    make_memory_provider: MakeMemory,
) -> None:
    storage, first, second = await two(make_memory_provider)
    await second.upload_bytes(b"x", "k")
    assert (await storage.presigned_url("k")).startswith("memory://second/k?method=GET")
    await first.upload_bytes(b"x", "k")
    assert (await storage.presigned_url("k", 60)).startswith("memory://first/k?method=GET&expires_in=60")
    first.fail_reads_with = down("first")
    assert (await storage.presigned_url("k")).startswith("memory://second/")
    with pytest.raises(FanOutError, match="presign GET"):
        await storage.presigned_url("missing")


async def test_presigned_put_comes_from_the_first_healthy_provider(make_memory_provider: MakeMemory) -> None:
    storage, first, _ = await two(make_memory_provider)
    assert (await storage.presigned_url("new", method="put")).startswith("memory://first/new?method=PUT")
    first.fail_reads_with = down("first")
    assert (await storage.presigned_url("new", method="PUT")).startswith("memory://second/new?method=PUT")
    with pytest.raises(ConfigError, match="GET and PUT, not 'DELETE'"):
        await storage.presigned_url("new", method="DELETE")
    assert (await storage.presigned_url("k", method="GET", provider="second")).startswith("memory://second/k")


# -- SyncStorage -----------------------------------------------------------------------------


def test_sync_storage_reads_fail_over_and_answer_per_provider(tmp_path: Path) -> None:
    first = FaultyProvider(MemoryProvider(name="first"))
    second = FaultyProvider(MemoryProvider(name="second"))
    with SyncStorage(lambda: Storage([first, second], read_order=["second"])) as store:
        assert store.read_order == ("second", "first")
        assert store.upload_bytes(b"abc" * 1000, "rec/1", content_type="video/mp4").ok
        second.fail_reads_with = down("second")
        assert store.download_bytes("rec/1") == b"abc" * 1000
        assert b"".join(store.iter_bytes("rec/1")) == b"abc" * 1000
        assert store.download_file("rec/1", tmp_path / "out").size == 3000
        assert store.locate("rec/1")[0] == "first"
        with pytest.raises(FanOutError):
            store.head("rec/1")
        report = store.delete("rec/1")
        assert report.failed == ["second"] and report.succeeded == ["first"]
        second.fail_reads_with = None
        assert store.exists("rec/1") == {"second": True, "first": False}
        infos = store.head("rec/1")
        assert infos["first"] is None and infos["second"] is not None
        listed = store.list("rec/")
        assert [(i.key, i.providers) for i in listed] == [("rec/1", ("second",))]
        assert store.presigned_url("rec/1").startswith("memory://second/")
        with pytest.raises(NotFoundError):
            store.download_bytes("nowhere")


class TrackedMemory(MemoryProvider):
    """Counts the read streams that were closed (their `finally` ran)."""

    closed_streams = 0

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in super().iter_bytes(key):
                yield chunk
        finally:
            self.closed_streams += 1


async def test_iter_bytes_stopped_early_closes_the_provider_stream() -> None:
    memory = TrackedMemory()
    storage = Storage([memory])
    await storage.upload_bytes(b"z" * (3 * 1024 * 1024), "big")
    async with contextlib.aclosing(storage.iter_bytes("big")) as chunks:
        async for _ in chunks:
            break
    assert memory.closed_streams == 1


def test_sync_iter_bytes_stopped_early_closes_the_stream() -> None:
    memory = TrackedMemory()
    with SyncStorage(lambda: Storage([memory])) as store:
        store.upload_bytes(b"z" * (3 * 1024 * 1024), "big")
        chunks = store.iter_bytes("big")
        assert len(next(chunks)) == 1024 * 1024
        assert memory.closed_streams == 0
        chunks.close()  # runs the async generator's cleanup on the portal's loop
        assert memory.closed_streams == 1
        assert sum(map(len, store.iter_bytes("big"))) == 3 * 1024 * 1024
        assert memory.closed_streams == 2
