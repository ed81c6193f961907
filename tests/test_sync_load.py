"""`SyncStorage` as a worker uses it, against the real servers (`STORAGE_UPLOAD_MODE=both`):
32 threads x 20 uploads through one instance (a threaded dev server, a Celery thread pool), and a
prefork child that uploads through a loop of its own. After `close()` the process has the
threads and file descriptors it had before: no loop thread, executor thread, socket or selector
is left behind.
"""

from __future__ import annotations

import gc
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import servers
from tests.test_cancellation import open_fds
from unistore.sync import SyncStorage

pytestmark = pytest.mark.servers

THREADS = 32
UPLOADS_PER_THREAD = 20


@pytest.fixture
def both_env(
    monkeypatch: pytest.MonkeyPatch,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    azure_container: str,
) -> None:
    for name, value in {**s3_server.env(s3_bucket), **azurite.env(azure_container)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "both")


def _threads() -> set[tuple[int | None, str]]:
    return {(t.ident, t.name) for t in threading.enumerate()}


def test_32_threads_x_20_uploads_through_one_sync_storage(both_env: None) -> None:
    # a first instance imports the SDKs and starts the process-wide part threads (a pool of two,
    # reused by every later Storage); it must leave nothing else behind
    threads_at_start = _threads()
    with SyncStorage.from_env() as warm:
        assert warm.upload_bytes(b"warm-up", "load/warm-up").ok
    gc.collect()
    extra = {name for _, name in _threads() - threads_at_start}
    assert all(name.startswith("unistore-parts") for name in extra), extra

    threads_before, fds_before = _threads(), open_fds()
    store = SyncStorage.from_env()
    payloads = {
        f"load/t{t:02d}/u{u:02d}.bin": random.Random(t * 1000 + u).randbytes(random.Random(t + u).randint(1, 64 * 1024))
        for t in range(THREADS)
        for u in range(UPLOADS_PER_THREAD)
    }
    by_thread = [[key for key in payloads if key.startswith(f"load/t{t:02d}/")] for t in range(THREADS)]
    callers: set[int] = set()

    def work(keys: list[str]) -> list[str]:
        callers.add(threading.get_ident())
        failed = []
        for key in keys:
            report = store.upload_bytes(payloads[key], key)
            if not report.ok:
                failed.append(f"{key}: {report.errors}")
        return failed

    with ThreadPoolExecutor(THREADS) as pool:
        failures = [line for lines in pool.map(work, by_thread) for line in lines]
    assert not failures, failures[:5]
    assert len(callers) == THREADS

    def check(key: str) -> list[str]:
        return [
            f"{key} on {name}"
            for name in ("s3", "azure")
            if store.download_bytes(key, provider=name) != payloads[key]
        ]

    with ThreadPoolExecutor(THREADS) as pool:
        mismatches = [line for lines in pool.map(check, payloads) for line in lines]
    assert not mismatches, mismatches[:5]
    assert len(store.list("load/t", provider="s3")) == THREADS * UPLOADS_PER_THREAD
    assert len(store.list("load/t", provider="azure")) == THREADS * UPLOADS_PER_THREAD

    store.close()
    gc.collect()
    assert _threads() == threads_before
    left = {fd: target for fd, target in open_fds().items() if fds_before.get(fd) != target}
    assert not left, left


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uploads_to_both_servers_through_its_own_loop(both_env: None) -> None:
    with SyncStorage.from_env() as store:
        # the parent's pools now hold connections to both servers, which the child inherits
        assert store.upload_bytes(b"from the parent", "fork/parent.bin").ok
        parent_loop = [t for t in threading.enumerate() if t.name == "unistore-sync-loop"]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                report = store.upload_bytes(b"from the child", "fork/child.bin")
                loops = [t for t in threading.enumerate() if t.name == "unistore-sync-loop"]
                own = bool(loops) and loops[0].ident not in {t.ident for t in parent_loop}
                code = 0 if report.ok and own else 2
                store.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        for name in ("s3", "azure"):
            assert store.download_bytes("fork/child.bin", provider=name) == b"from the child"
        # the child never touched the connections it inherited: the parent's still work
        assert store.upload_bytes(b"the parent again", "fork/parent.bin").ok
        assert store.download_bytes("fork/parent.bin", provider="azure") == b"the parent again"
