"""SyncStorage: blocking calls from many threads, one loop underneath."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from unistore import Storage
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
