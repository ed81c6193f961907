"""`Storage.afrom_env()` builds the Storage in a worker thread (issue #22): awaited, or entered."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from unistore import ConfigError, Storage
from unistore.providers import MemoryProvider

REPO = Path(__file__).resolve().parents[1]


class Probe(Storage):
    """Records the thread `from_env` ran in, and whether the Storage was closed."""

    built_in: int | None = None
    closed = 0

    @classmethod
    def from_env(cls, **kwargs: Any) -> Storage:
        Probe.built_in = threading.get_ident()
        return super().from_env(**kwargs)

    async def aclose(self) -> None:
        Probe.closed += 1
        await super().aclose()


@pytest.fixture
def memory_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("STORAGE_", "AWS_", "AZURE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "memory")
    Probe.built_in, Probe.closed = None, 0


@pytest.mark.usefixtures("memory_env")
async def test_awaited_it_builds_in_another_thread() -> None:
    storage = await Probe.afrom_env()
    assert isinstance(storage, Probe)
    assert isinstance(storage.provider("memory"), MemoryProvider)
    assert Probe.built_in is not None and Probe.built_in != threading.get_ident()
    async with storage:
        report = await storage.upload_bytes(b"x", "k")
    assert report.ok and Probe.closed == 1


@pytest.mark.usefixtures("memory_env")
async def test_entered_it_opens_and_closes_the_storage() -> None:
    events: list[Any] = []
    async with Probe.afrom_env(on_event=events.append) as storage:
        assert isinstance(storage, Probe)
        assert (await storage.upload_bytes(b"abc", "k")).ok
        assert Probe.closed == 0
    assert Probe.closed == 1
    assert Probe.built_in != threading.get_ident()
    assert events, "on_event was not passed on"


@pytest.mark.usefixtures("memory_env")
async def test_a_bad_environment_raises_from_await_and_from_async_with(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "ftp")
    with pytest.raises(ConfigError, match="STORAGE_UPLOAD_MODE"):
        await Storage.afrom_env()
    with pytest.raises(ConfigError, match="STORAGE_UPLOAD_MODE"):
        async with Storage.afrom_env():
            pytest.fail("entered a Storage built from a bad environment")


@pytest.mark.usefixtures("memory_env")
async def test_the_loop_keeps_running_while_it_builds() -> None:
    ticks = 0
    building = asyncio.ensure_future(Storage.afrom_env())

    while not building.done():
        ticks += 1
        await asyncio.sleep(0)
    async with await building:
        pass
    assert ticks > 1, "the loop did not run while the Storage was built"


CHILD = r"""
import asyncio, json, sys, threading

import unistore

where = {}


class FirstImport:
    def find_spec(self, name, path=None, target=None):
        if name in ("pydantic", "pydantic_settings", "unistore._settings") and name not in where:
            where[name] = threading.get_ident()
        return None


sys.meta_path.insert(0, FirstImport())


async def main():
    async with unistore.Storage.afrom_env() as storage:
        assert (await storage.upload_bytes(b"x", "k")).ok
    print(json.dumps({"loop": threading.get_ident(), "where": where}))


asyncio.run(main())
"""


def test_from_a_fresh_process_the_settings_stack_is_imported_off_the_loop() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "AZURE_"))}
    env["STORAGE_UPLOAD_MODE"] = "memory"
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(seen["where"]) == ["pydantic", "pydantic_settings", "unistore._settings"], (
        "`import unistore` imported the settings stack itself, or the probe no longer sees it"
    )
    on_loop = sorted(name for name, thread in seen["where"].items() if thread == seen["loop"])
    assert on_loop == [], f"imported on the event loop thread: {on_loop}"
