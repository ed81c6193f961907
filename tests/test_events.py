"""Upload events (`Storage(on_event=...)`): one per provider as it settles, then one for the
upload; a raising callback never changes the outcome. Memory providers, faults from FaultyProvider."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.conftest import SMALL_TRANSFER
from tests.faulty import FaultyProvider
from unistore import AuthenticationError, Storage, UploadEvent
from unistore.providers import MemoryProvider


def memory(name: str) -> MemoryProvider:
    return MemoryProvider(name=name, transfer=SMALL_TRANSFER)


async def test_success_tells_each_provider_then_the_settled_upload() -> None:
    events: list[UploadEvent] = []
    async with Storage([memory("a"), memory("b")], on_event=events.append) as storage:
        report = await storage.upload_bytes(b"recording", "r/1.bin")
    kinds = [(e.kind, e.provider) for e in events]
    assert sorted(kinds[:2]) == [("provider_committed", "a"), ("provider_committed", "b")]
    assert kinds[2] == ("upload_settled", None) and len(events) == 3
    assert all(e.ok and e.key == "r/1.bin" and e.bytes == len(b"recording") for e in events)
    assert events[2].report is report and events[2].error_code is None
    assert events[0].duration_s >= 0


async def test_partial_failure_names_the_code_and_settles_not_ok() -> None:
    events: list[UploadEvent] = []

    async def record(event: UploadEvent) -> None:  # a coroutine function is awaited
        await asyncio.sleep(0)
        events.append(event)

    bad = FaultyProvider(memory("bad"))
    bad.fail_with = AuthenticationError("wrong key AccountKey=c2VjcmV0;", provider="bad", code="AuthFailed")
    async with Storage([memory("good"), bad], on_event=record) as storage:
        report = await storage.upload_bytes(b"recording", "r/2.bin")
    by_kind = {e.kind: e for e in events}
    assert by_kind["provider_committed"].provider == "good"
    failed = by_kind["provider_failed"]
    assert failed.provider == "bad" and not failed.ok and failed.error_code == "AuthFailed"
    assert failed.error is not None and "c2VjcmV0" not in failed.error
    settled = events[-1]
    assert settled.kind == "upload_settled" and not settled.ok and settled.report is report
    assert settled.error_code == "AuthFailed"
    assert settled.as_dict()["event"] == "upload_settled"


async def test_require_any_settles_ok_with_one_provider_failed() -> None:
    events: list[UploadEvent] = []
    bad = FaultyProvider(memory("bad"))
    bad.fail_with = AuthenticationError("no", provider="bad")
    async with Storage([memory("good"), bad], require="any", on_event=events.append) as storage:
        await storage.upload_bytes(b"x", "r/3.bin")
    assert events[-1].kind == "upload_settled" and events[-1].ok


async def test_cancelled_upload_settles_as_cancelled() -> None:
    events: list[UploadEvent] = []
    stalled = FaultyProvider(memory("slow"))
    stalled.stall = asyncio.Event()
    async with Storage([memory("fast"), stalled], on_event=events.append) as storage:
        task = asyncio.ensure_future(storage.upload_bytes(b"recording", "r/4.bin"))
        await stalled.started.wait()
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    kinds = [(e.kind, e.provider, e.error_code) for e in events]
    assert ("provider_committed", "fast", None) in kinds
    assert ("provider_failed", "slow", "cancelled") in kinds
    assert kinds[-1] == ("upload_settled", None, "cancelled")
    assert not events[-1].ok and events[-1].report is None


async def test_cancelled_writer_reports_each_abort() -> None:
    events: list[UploadEvent] = []
    async with Storage([memory("a"), memory("b")], on_event=events.append) as storage:
        with pytest.raises(RuntimeError):
            async with storage.open_writer("r/5.bin") as writer:
                await writer.write(b"part")
                raise RuntimeError("the bot crashed")
    assert {e.provider for e in events if e.kind == "provider_failed"} == {"a", "b"}
    assert events[-1].kind == "upload_settled" and not events[-1].ok


async def test_a_raising_callback_is_logged_and_the_upload_stands(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def broken(event: UploadEvent) -> None:
        calls.append(event.kind)
        raise ValueError("bot bug")

    with caplog.at_level(logging.ERROR, logger="unistore.events"):
        async with Storage([memory("a"), memory("b")], on_event=broken) as storage:
            report = await storage.upload_bytes(b"recording", "r/6.bin")
    assert report.ok and len(calls) == 3
    assert sum("on_event callback raised" in r.getMessage() for r in caplog.records) == 3


def test_from_settings_takes_the_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "memory")
    storage = Storage.from_env(on_event=print)
    assert storage.on_event is print


def test_sync_storage_passes_the_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    from unistore.sync import SyncStorage

    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "memory")
    events: list[UploadEvent] = []
    with SyncStorage.from_env(on_event=events.append) as storage:
        assert storage.upload_bytes(b"abc", "r/sync.bin").ok
    assert [e.kind for e in events] == ["provider_committed", "upload_settled"]
