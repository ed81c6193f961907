"""The part threads (`unistore._threads`): where part buffers are read, joined and hashed."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from unistore import _io, _multipart, _threads
from unistore.providers.memory import MemoryProvider


def _thread_name() -> str:
    return threading.current_thread().name


async def test_file_parts_are_read_in_the_part_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = _io.read_range

    def spy(*args: object) -> tuple[bytes, bytes]:
        seen.append(_thread_name())
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_io, "read_range", spy)
    path = tmp_path / "rec.bin"
    path.write_bytes(os.urandom(3 * 5 * 1024 * 1024 + 1))
    transfer = _multipart.Transfer(threshold=5 * 1024 * 1024, chunk_size=5 * 1024 * 1024)
    async with MemoryProvider(transfer=transfer) as provider:
        await provider.upload_file(path, "rec.bin")
        assert await provider.download_bytes("rec.bin") == path.read_bytes()
    assert len(seen) == 4
    assert all(name.startswith("unistore-parts") for name in seen), seen


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_a_forked_child_gets_part_threads_of_its_own() -> None:
    # the parent's executor has idle threads; a child that inherited it would wait for ever
    assert (await _threads.run_in_part_thread(_thread_name)).startswith("unistore-parts")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            name = asyncio.run(asyncio.wait_for(_threads.run_in_part_thread(_thread_name), 10))
            code = 0 if name.startswith("unistore-parts") else 2
        finally:
            os._exit(code)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
