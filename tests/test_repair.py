"""The journal of missed copies, `STORAGE_REQUIRE=primary`, and `Storage.repair()` over the memory
and local providers (faults from FaultyProvider). The same behaviours against SeaweedFS and
Azurite, through the real `unistore repair` command, are in `tests/test_repair_servers.py`."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL_TRANSFER
from tests.faulty import FaultyProvider
from unistore import ConfigError, ObjectInfo, Storage, TransientError
from unistore._journal import DEFAULT_JOURNAL_PREFIX, PendingRecord, check_journal_prefix
from unistore._multipart import MiB
from unistore._repair import RepairReport
from unistore._settings import StorageSettings
from unistore.providers import LocalProvider, MemoryProvider

SECRET = "AccountKey=c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw=="


def memory(name: str) -> MemoryProvider:
    return MemoryProvider(name=name, transfer=SMALL_TRANSFER)


def journal_keys(provider: MemoryProvider) -> list[str]:
    return sorted(k for k in provider.objects if k.startswith(DEFAULT_JOURNAL_PREFIX))


def recordings(provider: MemoryProvider) -> dict[str, bytes]:
    return {k: v[0] for k, v in provider.objects.items() if not k.startswith(".unistore/")}


def failing(name: str, message: str = "down") -> FaultyProvider:
    bad = FaultyProvider(memory(name))
    bad.fail_with = TransientError(f"{message}; {SECRET}", provider=name, code="ServerBusy")
    return bad


class JournalRefused(FaultyProvider):
    """Stores recordings, refuses the journal's keys."""

    async def upload_bytes(self, data: bytes, key: str, **opts: Any) -> ObjectInfo:
        if key.startswith(".unistore/"):
            raise TransientError("journal write refused", provider=self.name, code="Injected")
        return await super().upload_bytes(data, key, **opts)


# -- the journal -----------------------------------------------------------------------------


async def test_a_missed_copy_is_recorded_in_the_provider_that_holds_it_before_the_call_returns() -> None:
    """`any`: S3-like `a` stores it, `b` fails; the report is ok, and `a` holds one JSON record
    naming the key, what `a` holds (size, checksum) and why `b` missed it (code, redacted error)."""
    a, b = memory("a"), failing("b")
    async with Storage([a, b], require="any") as storage:
        report = await storage.upload_bytes(b"meeting" * 100, "rec/1.mp4")
    assert report.ok and report.failed == ["b"]
    assert report.journal is not None and report.journal.written == ("a",) and not report.journal.errors
    [key] = journal_keys(a)
    assert key == report.journal.journal_key
    assert not b.inner.objects  # type: ignore[attr-defined]
    record = PendingRecord.from_json(key, a.objects[key][0])
    assert record.key == "rec/1.mp4"
    held = a.objects["rec/1.mp4"][1]
    assert record.held["a"].size == 700 and record.held["a"].checksum == held.checksum
    assert record.missing["b"].code == "ServerBusy" and record.missing["b"].kind == "TransientError"
    assert "down" in record.missing["b"].error
    assert "c2VjcmV0" not in a.objects[key][0].decode() and "REDACTED" in record.missing["b"].error


async def test_no_record_on_full_success_nor_when_every_provider_failed() -> None:
    a, b = memory("a"), memory("b")
    async with Storage([a, b]) as storage:
        report = await storage.upload_bytes(b"x" * 10, "rec/ok.mp4")
    assert report.ok and report.journal is None
    assert not journal_keys(a) and not journal_keys(b)

    c, d = failing("c"), failing("d")
    async with Storage([c, d], require="any") as storage:
        report = await storage.upload_bytes(b"x" * 10, "rec/lost.mp4")
    assert not report.ok and report.journal is None


async def test_journal_keys_are_unique_per_attempt_and_safe() -> None:
    """The same key missed twice: two records, neither overwriting the other; their names hold
    only the prefix, a UTC time and random hex, whatever the recording's key."""
    a, b = memory("a"), failing("b")
    key = "rec/ünïcode name with spaces & ? #/" + "x" * 900 + ".mp4"
    async with Storage([a, b], require="any") as storage:
        first = await storage.upload_bytes(b"1", key)
        second = await storage.upload_bytes(b"2", key)
    assert first.journal and second.journal
    assert first.journal.journal_key != second.journal.journal_key
    for name in journal_keys(a):
        tail = name[len(DEFAULT_JOURNAL_PREFIX) :]
        assert tail.endswith(".json") and all(ch.isalnum() or ch in "-." for ch in tail), name
        assert len(name) < 80


async def test_a_journal_that_cannot_be_written_is_logged_and_reported_never_hides_the_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = JournalRefused(memory("a")), failing("b")
    caplog.set_level(logging.ERROR, "unistore")
    async with Storage([a, b], require="any") as storage:
        report = await storage.upload_bytes(b"rec" * 10, "rec/2.mp4")
    assert report.ok and report.failed == ["b"]  # the upload's own outcome, unchanged
    assert report.journal is not None and not report.journal.ok and report.journal.written == ()
    assert "journal write refused" in str(report.journal.errors["a"])
    assert any("Could not record the missed copy of rec/2.mp4" in r.getMessage() for r in caplog.records)
    assert isinstance(report.errors["b"], TransientError)

    async with Storage([JournalRefused(memory("c")), failing("d")], require="all") as storage:
        report = await storage.upload_bytes(b"rec", "rec/3.mp4")
    assert not report.ok and report.journal is not None and not report.journal.ok  # still a failure


def test_the_journal_prefix_must_be_a_folder_under_the_reserved_prefix() -> None:
    assert check_journal_prefix(".unistore/pending-bot-a/") == ".unistore/pending-bot-a/"
    for bad in ("pending/", ".unistore/pending", ".unistore/", ".unistore//x/", "other/.unistore/"):
        with pytest.raises(ConfigError) as info:
            check_journal_prefix(bad)
        assert "STORAGE_JOURNAL_PREFIX" in str(info.value)


def test_settings_read_the_journal_prefix_and_require_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "memory")
    monkeypatch.setenv("STORAGE_REQUIRE", "Primary")
    monkeypatch.setenv("STORAGE_JOURNAL_PREFIX", ".unistore/pending-x/")
    settings = StorageSettings()
    assert settings.require == "primary" and settings.journal_prefix == ".unistore/pending-x/"
    storage = Storage.from_settings(settings)
    assert storage.require == "primary" and storage.journal_prefix == ".unistore/pending-x/"
    monkeypatch.setenv("STORAGE_JOURNAL_PREFIX", "pending/")
    with pytest.raises(ConfigError) as info:
        StorageSettings()
    assert list(info.value.variables) == ["STORAGE_JOURNAL_PREFIX"]


# -- require=primary -------------------------------------------------------------------------


async def test_require_primary_succeeds_with_the_first_provider_and_records_the_others() -> None:
    """The first provider of the mode stored it: ok, although `b` failed in the same call (it
    was attempted: its error is in the report) and its miss is recorded in `a`."""
    a, b = memory("a"), failing("b")
    async with Storage([a, b], require="primary") as storage:
        report = await storage.upload_bytes(b"p" * 100, "rec/p.mp4")
    assert report.ok and report.require == "primary"
    assert b.calls == ["upload_bytes"] and isinstance(report.errors["b"], TransientError)
    assert report.journal is not None and report.journal.written == ("a",)


async def test_require_primary_fails_when_the_first_provider_failed_even_if_another_stored_it() -> None:
    a, b = failing("a"), memory("b")
    async with Storage([a, b], require="primary") as storage:
        report = await storage.upload_bytes(b"p" * 100, "rec/q.mp4")
    assert not report.ok and report.succeeded == ["b"]
    assert report.journal is not None and report.journal.written == ("b",)
    assert len(journal_keys(b)) == 1


async def test_require_primary_with_local_first_and_a_stream(tmp_path: Path) -> None:
    """Local first (journal under `.unistore/pending/` beside its own staging folders), memory
    second and failing mid-stream: ok, the record is on disk, and local's listing shows the
    record but never its staging or metadata files."""
    local = LocalProvider(tmp_path / "root", transfer=SMALL_TRANSFER)
    bad = FaultyProvider(memory("memory"))
    bad.fail_after_bytes = 6 * MiB
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB: parts
    async with Storage([local, bad], require="primary") as storage:
        report = await storage.upload_stream(_chunks(data), "rec/live.webm")
    assert report.ok and report.failed == ["memory"]
    assert report.journal is not None and report.journal.written == ("local",)
    listed = [info.key async for info in local.list()]
    assert "rec/live.webm" in listed and report.journal.journal_key in listed
    assert not [k for k in listed if k.startswith((".unistore/staging", ".unistore/meta"))]
    async with Storage([local, memory("memory")]) as storage:
        repaired = await storage.repair()
    assert repaired.ok and [c.key for c in repaired.copied] == ["rec/live.webm"]
    assert not (tmp_path / "root" / report.journal.journal_key).exists()


async def _chunks(data: bytes, size: int = 1024 * 1024) -> Any:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_require_all_and_any_keep_their_meaning() -> None:
    a, b = memory("a"), failing("b")
    async with Storage([a, b]) as storage:
        assert not (await storage.upload_bytes(b"1", "k1")).ok
    async with Storage([failing("c"), memory("d")], require="any") as storage:
        assert (await storage.upload_bytes(b"1", "k1")).ok
    with pytest.raises(ConfigError):
        Storage([memory("e")], require="most")  # type: ignore[arg-type]


# -- repair ----------------------------------------------------------------------------------


async def _missed(a: MemoryProvider, key: str, data: bytes) -> None:
    async with Storage([a, failing("b")], require="any") as storage:
        report = await storage.upload_bytes(data, key)
    assert report.journal is not None and report.journal.ok


async def test_repair_copies_the_pending_record_verifies_and_removes_it_then_has_nothing_to_do() -> None:
    a, b = memory("a"), memory("b")
    await _missed(a, "rec/1.mp4", b"one" * 1000)
    await _missed(a, "rec/2.mp4", b"two" * 1000)
    progress: list[tuple[str, int, int]] = []
    async with Storage([a, b]) as storage:
        dry = await storage.repair(dry_run=True)
        assert not dry.ok and sorted(c.key for c in dry.planned) == ["rec/1.mp4", "rec/2.mp4"]
        assert not recordings(b) and len(journal_keys(a)) == 2  # a dry run changes nothing

        report = await storage.repair(progress=lambda *p: progress.append(p))
        assert report.ok, report.to_dict()
        assert sorted((c.key, c.source, c.target) for c in report.copied) == [
            ("rec/1.mp4", "a", "b"), ("rec/2.mp4", "a", "b")
        ]
        assert recordings(b) == recordings(a)
        assert not journal_keys(a) and len(report.resolved) == 2
        assert progress[-1][1:] == (6000, 6000)

        again = await storage.repair(full=True)
        assert again.ok and not again.copied and again.checked == 2
    assert json.loads(json.dumps(again.to_dict()))["ok"] is True


async def test_repair_keeps_content_type_and_metadata() -> None:
    a, b = memory("a"), memory("b")
    async with Storage([a, failing("b")], require="any") as storage:
        await storage.upload_bytes(b"v" * 10, "rec/m.webm", content_type="video/webm", metadata={"bot": "7"})
    async with Storage([a, b]) as storage:
        assert (await storage.repair()).ok
    info = b.objects["rec/m.webm"][1]
    assert info.content_type == "video/webm" and dict(info.metadata) == {"bot": "7"}


async def test_same_key_different_bytes_is_a_conflict_nothing_is_overwritten() -> None:
    a, b = memory("a"), memory("b")
    await _missed(a, "rec/c.mp4", b"A" * 100)
    await b.upload_bytes(b"B" * 100, "rec/c.mp4")  # appeared meanwhile, other bytes
    await a.upload_bytes(b"short", "rec/d.mp4")
    await b.upload_bytes(b"longer!", "rec/d.mp4")
    async with Storage([a, b]) as storage:
        report = await storage.repair(full=True)
    assert not report.ok and not report.copied
    reasons = {c.key: c.reason for c in report.conflicts}
    assert set(reasons) == {"rec/c.mp4", "rec/d.mp4"}
    assert "checksums differ" in reasons["rec/c.mp4"] and "sizes differ" in reasons["rec/d.mp4"]
    assert b.objects["rec/c.mp4"][0] == b"B" * 100 and a.objects["rec/c.mp4"][0] == b"A" * 100
    assert len(journal_keys(a)) == 1 and report.pending == journal_keys(a)  # kept for a person


async def test_a_copy_that_appeared_meanwhile_identical_is_left_alone_and_the_record_removed() -> None:
    a, b = memory("a"), memory("b")
    await _missed(a, "rec/e.mp4", b"E" * 100)
    await b.upload_bytes(b"E" * 100, "rec/e.mp4")
    async with Storage([a, b]) as storage:
        report = await storage.repair()
    assert report.ok and not report.copied and not journal_keys(a)


async def test_full_finds_what_no_record_names_and_ignores_the_journal_and_other_prefixes() -> None:
    a, b = memory("a"), memory("b")
    await a.upload_bytes(b"only in a" * 10, "rec/x/1.mp4")
    await b.upload_bytes(b"only in b" * 10, "rec/x/2.mp4")
    await a.upload_bytes(b"elsewhere", "other/3.mp4")
    async with Storage([a, b]) as storage:
        assert (await storage.repair("rec/")).ok  # no record: nothing without --full
        report = await storage.repair("rec/x/", full=True)
        assert report.ok, report.to_dict()
        assert sorted((c.key, c.source, c.target) for c in report.copied) == [
            ("rec/x/1.mp4", "a", "b"), ("rec/x/2.mp4", "b", "a")
        ]
    assert "other/3.mp4" not in b.objects


async def test_a_failed_copy_keeps_the_record_and_a_later_run_finishes() -> None:
    a = memory("a")
    await _missed(a, "rec/f.mp4", b"F" * 100)
    b = failing("b", "still down")
    async with Storage([a, b]) as storage:
        report = await storage.repair()
    assert not report.ok and [f.provider for f in report.failed] == ["b"] and "still down" in report.failed[0].error
    assert report.pending == journal_keys(a)
    async with Storage([a, b.inner]) as storage:
        assert (await storage.repair()).ok
    assert not journal_keys(a)


async def test_a_record_whose_recording_was_deleted_everywhere_is_dropped() -> None:
    a, b = memory("a"), memory("b")
    await _missed(a, "rec/g.mp4", b"G")
    await a.delete("rec/g.mp4")
    async with Storage([a, b]) as storage:
        report = await storage.repair()
    assert report.ok and len(report.dropped) == 1 and not journal_keys(a)


def test_repair_report_ok_and_json_shape() -> None:
    report = RepairReport()
    assert report.ok and set(report.to_dict()) >= {"copied", "conflicts", "failed", "pending", "ok"}
    report.pending.append("x")
    assert not report.ok


async def test_storage_list_never_shows_the_journal() -> None:
    a, b = memory("a"), memory("b")
    await _missed(a, "rec/h.mp4", b"H" * 10)
    assert journal_keys(a)
    async with Storage([a, b]) as storage:
        assert [o.key async for o in storage.list()] == ["rec/h.mp4"]
        assert [o.key async for o in storage.list(".unistore/")] == []
    assert Storage([memory("c")], reserved_prefix=".internal/").journal_prefix == ".internal/pending/"
    with pytest.raises(ConfigError):
        Storage([memory("c")], reserved_prefix=".internal/", journal_prefix=".unistore/pending/")
    assert Storage([memory("d")], reserved_prefix=".internal/", journal_prefix=".internal/p/").journal_prefix


def test_sync_storage_repairs_too() -> None:
    from unistore.sync import SyncStorage

    a, b = memory("a"), memory("b")
    with SyncStorage(lambda: Storage([a, failing("b")], require="any")) as sync:
        assert sync.upload_bytes(b"S" * 10, "rec/s.mp4").journal is not None
    with SyncStorage(lambda: Storage([a, b])) as sync:
        report = sync.repair(full=True)
    assert report.ok and [c.key for c in report.copied] == ["rec/s.mp4"] and b.objects["rec/s.mp4"][0] == b"S" * 10


async def test_two_records_of_one_conflicting_key_make_one_conflict_and_both_stay() -> None:
    a, b = memory("a"), memory("b")
    await _missed(a, "rec/two.mp4", b"1" * 10)
    await _missed(a, "rec/two.mp4", b"2" * 10)
    await b.upload_bytes(b"3" * 11, "rec/two.mp4")
    async with Storage([a, b]) as storage:
        report = await storage.repair()
    assert [c.key for c in report.conflicts] == ["rec/two.mp4"] and len(report.pending) == 2
    assert b.objects["rec/two.mp4"][0] == b"3" * 11


async def test_a_caller_cancelled_while_the_record_is_written_still_gets_it_written() -> None:
    import asyncio

    class SlowJournal(FaultyProvider):
        async def upload_bytes(self, data: bytes, key: str, **opts: Any) -> ObjectInfo:
            if key.startswith(".unistore/"):
                self.calls.append("journal")
                await asyncio.sleep(0.2)
            return await super().upload_bytes(data, key, **opts)

    a = SlowJournal(memory("a"))
    storage = Storage([a, failing("b")], require="any")
    task = asyncio.create_task(storage.upload_bytes(b"z" * 10, "rec/z.mp4"))
    while "journal" not in a.calls:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.4)
    assert len(journal_keys(a.inner)) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [1000, 4 * MiB])  # the target's single put; with threshold 1 MiB, parts
async def test_bytes_read_wrong_from_the_source_fail_the_copy_before_the_target_commits(size: int) -> None:
    """The source vouches for one MD5 (of the whole object: a multipart source's digest of its
    parts cannot be checked this way) but serves other bytes of the same size: the copy fails
    with `SourceDigestMismatch` before the target commits (nothing appears there, whether it
    stores by one put or in parts), and the record stays."""
    a = memory("a")
    b = MemoryProvider(name="b", transfer=replace(SMALL_TRANSFER, threshold=1 * MiB, chunk_size=1 * MiB))
    await _missed(a, "rec/rot.mp4", b"good" * (size // 4))
    data, info = a.objects["rec/rot.mp4"]
    a.objects["rec/rot.mp4"] = (b"evil" * (size // 4), info)
    async with Storage([a, b]) as storage:
        report = await storage.repair()
    assert not report.ok and [f.code for f in report.failed] == ["SourceDigestMismatch"]
    assert "rec/rot.mp4" not in b.objects and not b.uploads and len(report.pending) == 1


async def test_min_age_leaves_keys_that_changed_recently_for_a_later_run() -> None:
    """`full` with `min_age_s`: a key written just now in one provider may still be on its way to
    the other (an upload in flight); it is listed as recent, not copied. Without it, copied."""
    a, b = memory("a"), memory("b")
    await a.upload_bytes(b"fresh" * 10, "rec/fresh.mp4")
    async with Storage([a, b]) as storage:
        report = await storage.repair(full=True, min_age_s=300)
        assert report.ok and report.recent == ["rec/fresh.mp4"] and not report.copied and report.checked == 0
        assert "rec/fresh.mp4" not in b.objects
        report = await storage.repair(full=True)
        assert [c.key for c in report.copied] == ["rec/fresh.mp4"] and not report.recent


async def test_a_refused_conditional_create_is_not_recorded_as_a_missed_copy() -> None:
    """One provider already holds the key (overwrite off): that is a conflict, not a missing
    copy a repair could fill, so no record is written for it."""
    a, b = memory("a"), memory("b")
    await a.upload_bytes(b"first", "rec/taken.mp4")
    async with Storage([a, b]) as storage:
        report = await storage.upload_bytes(b"second", "rec/taken.mp4", overwrite=False)
    assert report.failed == ["a"] and report.succeeded == ["b"]
    assert report.journal is None
    assert journal_keys(a) == [] and journal_keys(b) == []
    assert await a.download_bytes("rec/taken.mp4") == b"first"
