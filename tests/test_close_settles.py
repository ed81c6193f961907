"""`Storage.aclose` waits for the work a cancelled upload leaves running on its providers.

A cancelled multipart upload aborts itself in the background once a short grace is over, and a
cancelled fan-out still writes its record of a missed copy. Closing the providers first would
turn the first into orphaned parts (billed on S3) and lose the second (nobody repairs the copy),
as `async with Storage(...)` around a cancelled task did before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Unpack

import pytest

from unistore import ObjectInfo, Storage, UploadOptions
from unistore._multipart import MiB, Transfer
from unistore.providers import MemoryProvider

DELAY_S = 0.4


class Recorded(MemoryProvider):
    """A memory provider whose aborts and journal writes are slow, and which logs the order in
    which those and its close happen."""

    def __init__(self, name: str, log: list[str], journal_prefix: str = "") -> None:
        super().__init__(name=name, transfer=Transfer(threshold=MiB, chunk_size=MiB))
        self.log = log
        self.journal_prefix = journal_prefix

    async def _put_part(self, handle: Any, number: int, data: bytes, digest: bytes) -> Any:
        await asyncio.sleep(0.05)  # keeps the upload in flight long enough to be cancelled in it
        return await super()._put_part(handle, number, data, digest)

    async def _abort_parts(self, handle: Any, key: str) -> None:
        await asyncio.sleep(DELAY_S)
        await super()._abort_parts(handle, key)
        self.log.append(f"{self.name} aborted")

    async def upload_bytes(self, data: bytes, key: str, **options: Unpack[UploadOptions]) -> ObjectInfo:
        if self.journal_prefix and key.startswith(self.journal_prefix):
            await asyncio.sleep(DELAY_S)
            info = await super().upload_bytes(data, key, **options)
            self.log.append(f"{self.name} recorded")
            return info
        return await super().upload_bytes(data, key, **options)

    async def aclose(self) -> None:
        self.log.append(f"{self.name} closed")
        await super().aclose()


async def test_close_waits_for_the_aborts_of_a_cancelled_upload(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("unistore._multipart.ABORT_GRACE_S", 0.01)  # the upload returns before its abort ends
    source = tmp_path / "meeting.webm"
    source.write_bytes(b"x" * 16 * MiB)
    log: list[str] = []
    a, b = Recorded("a", log), Recorded("b", log)
    storage = Storage([a, b])
    task = asyncio.create_task(storage.upload_file(source, "rec/meeting.webm"))
    while not (a.uploads and b.uploads):
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "a aborted" not in log, "the abort should still be running when the upload returns"
    await storage.aclose()
    assert sorted(log[:2]) == ["a aborted", "b aborted"] and sorted(log[2:]) == ["a closed", "b closed"], log
    assert not a.uploads and not b.uploads and not a.objects and not b.objects


async def test_close_waits_for_the_record_of_a_cancelled_fan_out() -> None:
    log: list[str] = []
    held = Recorded("held", log, journal_prefix=".unistore/")
    missed = Recorded("missed", log)

    async def refuse(*args: Any, **kwargs: Any) -> ObjectInfo:
        raise OSError("down")

    missed.upload_bytes = refuse  # type: ignore[method-assign]
    storage = Storage([held, missed], require="any")
    assert storage.journal_prefix == ".unistore/pending/", "the test's journal prefix is out of date"
    task = asyncio.create_task(storage.upload_bytes(b"recording", "rec/a.webm"))
    while "rec/a.webm" not in held.objects:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # the record's write has begun and sleeps
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "held recorded" not in log
    await storage.aclose()
    assert log[0] == "held recorded" and sorted(log[1:]) == ["held closed", "missed closed"], log
    assert any(k.startswith(".unistore/pending/") for k in held.objects), sorted(held.objects)
