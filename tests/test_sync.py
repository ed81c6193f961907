"""SyncStorage: blocking calls from many threads, one loop underneath."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from unistore import Storage
from unistore._budget import default_budget
from unistore.providers import LocalProvider, MemoryProvider
from unistore.sync import SyncStorage


def test_sync_round_trip_from_many_threads(tmp_path: Path) -> None:
    main_thread = threading.get_ident()
    with SyncStorage(lambda: Storage([MemoryProvider(), LocalProvider(tmp_path)])) as store:
        def work(i: int) -> bool:
            assert threading.get_ident() != main_thread or i >= 0
            return store.upload_bytes(f"payload {i}".encode(), f"k/{i}").ok

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(work, range(40)))
        assert store.download_bytes("k/7", provider="local") == b"payload 7"
        assert store.exists("k/3") == {"memory": True, "local": True}
        assert store.exists("k/nope") == {"memory": False, "local": False}
        assert len(store.list("k/")) == 40
        assert [info.size if info else None for info in store.head("k/1").values()] == [len(b"payload 1")] * 2
        src = tmp_path / "rec.bin"
        src.write_bytes(b"r" * 1000)
        assert store.upload_file(src, "rec.bin", delete_local=True).ok
        assert not src.exists()
        store.download_file("rec.bin", tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == b"r" * 1000
        assert store.delete("rec.bin").ok
        assert store.exists("rec.bin") == {"memory": False, "local": False}
    with pytest.raises(RuntimeError, match="closed"):
        store.upload_bytes(b"x", "late")


def test_sync_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "memory")
    with SyncStorage.from_env() as store:
        assert list(store.providers) == ["memory"]
        assert store.upload_bytes(b"x", "a").ok


class _CountingMemory(MemoryProvider):
    """A memory provider that records how often it was closed."""

    closes = 0

    async def aclose(self) -> None:
        type(self).closes += 1
        await super().aclose()


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "unistore-sync-loop"]


def test_close_waits_for_calls_in_flight_and_joins_the_loop_thread() -> None:
    before = len(_loop_threads())
    store = SyncStorage(lambda: Storage([MemoryProvider()]))
    assert len(_loop_threads()) == before + 1
    writer = store.open_writer("slow")
    writer.__enter__()
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive(), "close() returned while a writer was still open"
    writer.write(b"late but whole")
    writer.__exit__(None, None, None)
    closer.join(10)
    assert not closer.is_alive()
    assert writer.report is not None and writer.report.ok
    assert len(_loop_threads()) == before
    with pytest.raises(RuntimeError, match="closed"):
        store.upload_bytes(b"x", "after")


def test_upload_stream_from_a_blocking_iterable() -> None:
    with SyncStorage(lambda: Storage([MemoryProvider()])) as store:
        parts = [os.urandom(100_000) for _ in range(7)]
        assert store.upload_stream(iter(parts), "rec/stream.bin").ok
        assert store.download_bytes("rec/stream.bin") == b"".join(parts)

        def failing() -> Iterator[bytes]:
            yield b"half"
            raise OSError("the source went away")

        with pytest.raises(OSError, match="went away"):
            store.upload_stream(failing(), "rec/broken.bin")
        assert not any(store.exists("rec/broken.bin").values()), "an aborted stream must leave nothing visible"


def test_a_collected_sync_storage_stops_its_loop_thread() -> None:
    before = len(_loop_threads())
    _CountingMemory.closes = 0
    store = SyncStorage(lambda: Storage([_CountingMemory()]))
    assert store.upload_bytes(b"x", "a").ok
    del store
    gc.collect()
    assert len(_loop_threads()) == before
    assert _CountingMemory.closes == 1


def test_an_unclosed_sync_storage_is_closed_at_exit_and_the_interpreter_exits(tmp_path: Path) -> None:
    # a daemon loop thread still running at interpreter finalization used to hang the exit
    script = tmp_path / "unclosed.py"
    script.write_text(
        "from unistore import Storage\n"
        "from unistore.providers import MemoryProvider\n"
        "from unistore.sync import SyncStorage\n"
        "class Loud(MemoryProvider):\n"
        "    async def aclose(self):\n"
        "        print('providers closed', flush=True)\n"
        "        await super().aclose()\n"
        "store = SyncStorage(lambda: Storage([Loud()]))\n"
        "print('uploaded', store.upload_bytes(b'x', 'k').ok, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["uploaded True", "providers closed"], done.stdout + done.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_builds_its_own_loop(tmp_path: Path) -> None:
    with SyncStorage(lambda: Storage([LocalProvider(tmp_path)])) as store:
        assert store.upload_bytes(b"parent", "parent.bin").ok
        parent_loop = _loop_threads()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                # the parent's loop thread does not exist here: a call through it would hang
                ok = store.upload_bytes(b"child", "child.bin").ok
                own = _loop_threads()
                # native ids: glibc hands a forked child the parent's thread stacks for reuse,
                # so a new thread's `ident` (its pthread_t) can equal an old one's
                code = 0 if ok and own and own[0].native_id not in {t.native_id for t in parent_loop} else 2
                store.close()
                if _loop_threads():
                    code = 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.download_bytes("child.bin") == b"child"
        assert store.upload_bytes(b"parent again", "parent.bin").ok  # the parent's loop is untouched
        assert _loop_threads() == parent_loop


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_mid_upload_gets_the_whole_budget() -> None:
    budget = default_budget()
    held = budget.limit
    asyncio.run(budget.acquire(held))  # as if the parent's threads had every part in flight
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                asyncio.run(asyncio.wait_for(default_budget().acquire(1024), 5))
                code = 0 if default_budget().held == 1024 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        budget.release(held)
