"""Fan-out: each provider's outcome is its own; none cancels or delays another; the source is
read once; nothing is lost. Faults come from FaultyProvider over MemoryProvider."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import typing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import unistore._io as io_module
from tests.conftest import SMALL_TRANSFER
from tests.faulty import FaultyProvider, forwarded_members
from unistore import (
    AlreadyExistsError,
    AuthenticationError,
    ConfigError,
    EmptySourceError,
    FanOutError,
    Provider,
    Storage,
    TransientError,
    UploadReport,
)
from unistore._multipart import MiB
from unistore.providers import LocalProvider, MemoryProvider


def memory(name: str) -> MemoryProvider:
    return MemoryProvider(name=name, transfer=SMALL_TRANSFER)


def test_faulty_provider_forwards_every_protocol_member() -> None:
    members = {
        n for n in dir(Provider)
        if (not n.startswith("_") or n in ("__aenter__", "__aexit__")) and n not in {"_is_protocol"}
    }
    members -= {n for n in dir(typing.Protocol) if not n.startswith("__a")}
    assert members <= forwarded_members(), members - forwarded_members()
    assert isinstance(FaultyProvider(memory("m")), Provider)


async def test_one_fails_the_other_succeeds() -> None:
    good, bad = memory("good"), FaultyProvider(memory("bad"))
    bad.fail_with = AuthenticationError("wrong key", provider="bad", hint="fix the key")
    async with Storage([good, bad]) as storage:
        report = await storage.upload_bytes(b"recording", "r/1.bin")
    assert report.succeeded == ["good"] and report.failed == ["bad"]
    assert not report.ok
    assert report.results["good"].ok and report.results["good"].info is not None
    assert report.results["good"].bytes == len(b"recording")
    assert isinstance(report.results["bad"].error, AuthenticationError)
    assert good.objects["r/1.bin"][0] == b"recording"
    with pytest.raises(FanOutError) as info:
        report.raise_for_failures()
    assert set(info.value.errors) == {"bad"}


async def test_require_any() -> None:
    good, bad = memory("good"), FaultyProvider(memory("bad"))
    bad.fail_with = TransientError("down", provider="bad")
    async with Storage([good, bad], require="any") as storage:
        report = await storage.upload_bytes(b"x", "k")
    assert report.ok and report.failed == ["bad"]
    assert report.raise_for_failures() is report
    bad2 = FaultyProvider(memory("bad2"))
    bad2.fail_with = TransientError("down", provider="bad2")
    async with Storage([bad, bad2], require="any") as storage:
        assert not (await storage.upload_bytes(b"x", "k")).ok


async def test_slow_provider_does_not_delay_the_fast_one() -> None:
    fast, slow = FaultyProvider(memory("fast")), FaultyProvider(memory("slow"))
    slow.stall = asyncio.Event()
    storage = Storage([fast, slow])
    task = asyncio.create_task(storage.upload_bytes(b"payload", "k"))
    await asyncio.wait_for(fast.finished.wait(), 5)
    # the fast provider has stored the object while the slow one is still held
    assert fast.inner.objects if isinstance(fast.inner, MemoryProvider) else False
    assert slow.started.is_set() and not slow.finished.is_set()
    assert not task.done()
    slow.stall.set()
    report = await asyncio.wait_for(task, 5)
    assert report.ok


async def test_a_failure_does_not_cancel_a_slow_provider() -> None:
    bad, slow = FaultyProvider(memory("bad")), FaultyProvider(memory("slow"))
    bad.fail_with = TransientError("boom", provider="bad")
    slow.stall = asyncio.Event()
    task = asyncio.create_task(Storage([bad, slow]).upload_bytes(b"payload", "k"))
    await asyncio.wait_for(slow.started.wait(), 5)
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()
    slow.stall.set()
    report = await task
    assert report.succeeded == ["slow"] and report.failed == ["bad"]


@pytest.mark.parametrize("require", ["all", "any"])
async def test_delete_local_keeps_the_file_when_any_provider_failed(tmp_path: Path, require: str) -> None:
    src = tmp_path / "meeting.mp4"
    src.write_bytes(b"frames" * 1000)
    bad = FaultyProvider(memory("bad"))
    bad.fail_with = TransientError("down", provider="bad")
    storage = Storage([memory("good"), bad], require=require)  # type: ignore[arg-type]
    report = await storage.upload_file(src, "m.mp4", delete_local=True)
    assert report.failed == ["bad"]
    assert src.exists(), "the recording is kept while any provider lacks it"


async def test_delete_local_removes_the_file_when_all_succeeded(tmp_path: Path) -> None:
    src = tmp_path / "meeting.mp4"
    src.write_bytes(b"frames" * 1000)
    a, b = memory("a"), memory("b")
    report = await Storage([a, b]).upload_file(src, "m.mp4", delete_local=True)
    assert report.ok
    assert not src.exists()
    assert a.objects["m.mp4"][0] == b.objects["m.mp4"][0] == b"frames" * 1000
    assert a.objects["m.mp4"][1].content_type == "video/mp4"


async def test_operator_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="unistore")
    await Storage([memory("a"), memory("b")]).upload_bytes(b"x", "k")
    text = caplog.text
    assert "Uploading to configured providers: memory, memory" in text
    assert "Successfully uploaded recording to memory" in text
    assert "Unified storage manager finished uploading to all providers" in text


async def test_large_file_is_read_once_for_all_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * (4 * 4096 * 5)  # 20 MiB
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    reads: list[int] = []
    original = io_module.read_range

    def counting(path: str, offset: int, length: int, kind: Any = "md5") -> tuple[bytes, bytes]:
        reads.append(length)
        return original(path, offset, length, kind)

    monkeypatch.setattr(io_module, "read_range", counting)
    providers = [memory("a"), memory("b"), LocalProvider(tmp_path / "root", transfer=SMALL_TRANSFER)]
    storage = Storage(providers)
    report = await storage.upload_file(src, "big.bin")
    assert report.ok, report.errors
    assert sum(reads) == len(data), "every byte read exactly once"
    for p in providers:
        assert await p.download_bytes("big.bin") == data


async def chunks_of(data: bytes, step: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]


async def test_stream_provider_failing_midway_is_dropped_others_complete() -> None:
    a, c = memory("a"), memory("c")
    inner_b = memory("b")
    b = FaultyProvider(inner_b)
    b.fail_after_bytes = 7 * MiB
    storage = Storage([a, b, c])
    data = bytes(range(251)) * (4 * 41_000)  # ~40 MiB
    async with storage.open_writer("live.webm") as writer:
        async for chunk in chunks_of(data, 300_001):
            await writer.write(chunk)
    report = writer.report
    assert isinstance(report, UploadReport)
    assert report.succeeded == ["a", "c"] and report.failed == ["b"]
    assert await a.download_bytes("live.webm") == data == await c.download_bytes("live.webm")
    assert "live.webm" not in inner_b.objects and not inner_b.uploads, "b's partial upload was aborted"


async def test_exception_in_writer_block_aborts_every_provider() -> None:
    a, b = memory("a"), memory("b")
    storage = Storage([a, b])
    with pytest.raises(RuntimeError, match="bot crashed"):
        async with storage.open_writer("live.webm") as writer:
            for _ in range(4):
                await writer.write(b"\x01" * (3 * MiB))
            raise RuntimeError("bot crashed")
    for p in (a, b):
        assert not p.objects and not p.uploads
    assert writer.report is not None and not writer.report.ok


async def test_cancelled_writer_leaves_nothing_and_no_task() -> None:
    a, b = memory("a"), memory("b")
    storage = Storage([a, b])
    wrote = asyncio.Event()
    before = asyncio.all_tasks()

    async def record() -> None:
        async with storage.open_writer("live.webm") as writer:
            for i in range(1000):
                await writer.write(b"\x02" * MiB)
                if i == 12:
                    wrote.set()
                await asyncio.sleep(0.001)

    task = asyncio.create_task(record())
    await asyncio.wait_for(wrote.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(5):
        await asyncio.sleep(0)
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()
    for p in (a, b):
        assert not p.objects and not p.uploads


async def test_writer_backpressure_bounds_buffered_bytes() -> None:
    """With one provider stalled, write() stops returning after a bounded number of chunks."""
    fast = memory("fast")
    stalled = FaultyProvider(memory("stalled"))
    stalled.stall = asyncio.Event()
    storage = Storage([fast, stalled])
    written = 0

    async def produce() -> None:
        nonlocal written
        async with storage.open_writer("k") as writer:
            for _ in range(200):
                await writer.write(b"\x03" * MiB)
                written += MiB

    task = asyncio.create_task(produce())
    for _ in range(500):
        await asyncio.sleep(0)
    # chunk buffer (5 MiB) + channel depth (2 x 5 MiB) + one chunk being fed: far below 200 MiB
    assert written <= 25 * MiB
    assert not task.done()
    stalled.stall.set()
    await asyncio.wait_for(task, 30)
    assert written == 200 * MiB


async def test_empty_stream_is_refused_and_nothing_written() -> None:
    a = memory("a")
    with pytest.raises(EmptySourceError):
        async with Storage([a, memory("b")]).open_writer("k"):
            pass
    assert not a.objects


async def test_upload_stream_through_storage() -> None:
    a, b = memory("a"), memory("b")
    data = b"z" * (11 * MiB + 5)
    report = await Storage([a, b]).upload_stream(chunks_of(data, 65536), "s")
    assert report.ok
    assert await a.download_bytes("s") == data == await b.download_bytes("s")


def test_storage_rejects_duplicate_names_and_unknown_lookups() -> None:
    with pytest.raises(ConfigError, match="distinct"):
        Storage([memory("x"), memory("x")])
    with pytest.raises(ConfigError):
        Storage([])
    with pytest.raises(ConfigError, match="configured: a"):
        Storage([memory("a")]).provider("s3")


async def test_from_env_memory_and_local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "memory,local")
    monkeypatch.setenv("STORAGE_LOCAL_ROOT", str(tmp_path))
    async with Storage.from_env() as storage:
        assert list(storage.providers) == ["memory", "local"]
        report = await storage.upload_bytes(b"abc", "a/b")
        assert report.ok
    assert (tmp_path / "a" / "b").read_bytes() == b"abc"


async def test_fan_out_hashes_each_byte_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Integrity costs one MD5 pass over the source, however many providers there are."""
    import unistore._integrity as integrity

    data = bytes(range(256)) * (4 * 4096 * 5)  # 20 MiB = 4 parts of 5 MiB
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    hashed: list[int] = []
    original = integrity.md5

    def counting(buffer: bytes | memoryview) -> bytes:
        hashed.append(len(buffer))
        return original(buffer)

    monkeypatch.setattr(integrity, "md5", counting)
    storage = Storage([memory("a"), memory("b"), memory("c")])
    report = await storage.upload_file(src, "big.bin")
    assert report.ok
    assert sum(hashed) == len(data)
    hashed.clear()
    async with storage.open_writer("live.bin") as writer:
        for i in range(0, len(data), 1 << 20):
            await writer.write(data[i : i + (1 << 20)])
    assert writer.report is not None and writer.report.ok
    assert sum(hashed) == len(data)


@pytest.mark.parametrize(
    ("kinds", "expected", "own"),
    [
        ((("crc32", "md5"), ("crc32", "md5")), "crc32", ("crc32", "crc32")),
        ((("crc32", "md5"), ("md5",)), "md5", ("md5", "md5")),
        ((("crc32", "md5"), ("crc64", "md5")), "crc32", ("crc32", "crc64")),
    ],
    ids=["all-take-crc32", "one-takes-md5-only", "s3-crc32-azure-crc64"],
)
async def test_fan_out_hashes_each_chunk_once_per_kind_it_needs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kinds: tuple[tuple[str, ...], ...],
    expected: str,
    own: tuple[str, str],
) -> None:
    """S3 alone verifies the cheap CRC32; next to an MD5-only Azure one MD5 pass serves both;
    next to a CRC-64 Azure, the fan-out computes CRC32 and Azure its own CRC-64 (far cheaper
    than MD5 for both)."""
    import unistore._integrity as integrity

    data = bytes(range(256)) * (4 * 4096 * 5)  # 20 MiB = 4 parts of 5 MiB
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    hashed: dict[str, int] = {"md5": 0, "crc32": 0, "crc64": 0}
    for name in hashed:
        original = getattr(integrity, name)

        def counting(buffer: bytes | memoryview, _name: str = name, _original: Any = original) -> bytes:
            if len(buffer) > 64:  # not the digests of digests that multipart checksums are made of
                hashed[_name] += len(buffer)
            return typing.cast(bytes, _original(buffer))

        monkeypatch.setattr(integrity, name, counting)
    providers = [memory("a"), memory("b")]
    for provider, accepted in zip(providers, kinds, strict=True):
        provider.declared = dataclasses.replace(provider.declared, digests=accepted)  # type: ignore[arg-type]
    storage = Storage(providers)
    assert storage.digest_kind == expected
    report = await storage.upload_file(src, "big.bin")
    assert report.ok
    assert hashed == {"md5": 0, "crc32": 0, "crc64": 0} | {kind: len(data) for kind in own}
    for name, kind in zip(("a", "b"), own, strict=True):
        info = report.results[name].info
        assert info is not None and info.checksum and info.checksum.startswith(f"{kind}-parts:")


async def test_file_fan_out_is_not_held_back_by_a_stalled_provider(tmp_path: Path) -> None:
    """A re-readable source: a provider that stops consuming is handed its own reader after
    the lag limit, so the healthy one finishes; the stalled one still gets every byte later."""
    data = bytes(range(256)) * (4 * 4096 * 6)  # 24 MiB
    src = tmp_path / "meeting.mp4"
    src.write_bytes(data)
    fast = FaultyProvider(memory("fast"))
    stalled = FaultyProvider(memory("stalled"))
    stalled.stall = asyncio.Event()
    storage = Storage([fast, stalled], fanout_lag_s=0.05)
    task = asyncio.create_task(storage.upload_file(src, "m.mp4"))
    await asyncio.wait_for(fast.finished.wait(), 10)
    assert not task.done() and not stalled.finished.is_set()
    stalled.stall.set()
    report = await asyncio.wait_for(task, 10)
    assert report.ok
    assert await fast.download_bytes("m.mp4") == data == await stalled.download_bytes("m.mp4")


class SlowParts(MemoryProvider):
    """Each part takes a little while: the provider keeps falling behind the shared reader."""

    async def _put_part(self, handle: object, number: int, data: bytes, md5: bytes) -> object:
        await asyncio.sleep(0.01)
        return await super()._put_part(handle, number, data, md5)


@pytest.mark.parametrize("lag", [0.0001, 0.005, 10.0])
async def test_switching_to_its_own_reader_midway_keeps_every_byte(tmp_path: Path, lag: float) -> None:
    data = os.urandom(1 << 20) * 23 + b"tail"
    src = tmp_path / "rec.bin"
    src.write_bytes(data)
    slow = SlowParts(name="slow", transfer=SMALL_TRANSFER)
    storage = Storage([memory("fast"), slow], fanout_lag_s=lag)
    report = await storage.upload_file(src, "rec.bin")
    assert report.ok, report.errors
    for provider in storage.providers.values():
        assert await provider.download_bytes("rec.bin") == data


class LostAnswer(MemoryProvider):
    """The first put is stored, but its answer is lost on the way back (a reset)."""

    lost = 0

    async def _put_object(self, key: str, data: bytes, md5: bytes, opts: Any) -> Any:
        info = await super()._put_object(key, data, md5, opts)
        if self.lost == 0:
            self.lost += 1
            raise TransientError("connection reset after the write", provider=self.name, code="Reset")
        return info


async def test_a_retried_conditional_create_recognises_its_own_first_write() -> None:
    provider = LostAnswer(transfer=SMALL_TRANSFER)
    info = await provider.upload_bytes(b"recording", "k", overwrite=False)
    assert info.size == len(b"recording") and provider.lost == 1
    other = LostAnswer(transfer=SMALL_TRANSFER)
    await other.upload_bytes(b"someone else's", "k", overwrite=True)
    other.lost = 0
    with pytest.raises(AlreadyExistsError):
        await other.upload_bytes(b"recording", "k", overwrite=False)


async def test_one_provider_uploads_in_the_callers_task_several_in_tasks_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task and a gather per upload are measurable CPU for small objects: with one provider the
    upload runs in the caller's task; a fan-out still runs each provider in its own."""
    seen: dict[str, asyncio.Task[Any] | None] = {}
    providers = [memory("a"), memory("b")]
    for provider in providers:
        upload = provider.upload_bytes

        async def recorded(*args: Any, _upload: Any = upload, _name: str = provider.name, **kwargs: Any) -> Any:
            seen[_name] = asyncio.current_task()
            return await _upload(*args, **kwargs)

        monkeypatch.setattr(provider, "upload_bytes", recorded)
    async with Storage([providers[0]]) as single:
        (await single.upload_bytes(b"x", "one")).raise_for_failures()
    assert seen["a"] is asyncio.current_task()
    seen.clear()
    async with Storage(providers) as both:
        (await both.upload_bytes(b"x", "two")).raise_for_failures()
    assert seen["a"] is not asyncio.current_task() and seen["b"] is not asyncio.current_task()
    assert seen["a"] is not seen["b"]
