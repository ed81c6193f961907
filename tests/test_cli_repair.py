"""`unistore repair` plumbing with the local provider (and an empty in-process memory provider as
the target, so each command starts with nothing there): exit statuses, --dry-run, --json, the
progress bar on a real terminal (a pty) and the plain one. The command against SeaweedFS and
Azurite is in `tests/test_repair_servers.py`."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from unistore import _cli_repair, cli
from unistore._multipart import MiB

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith(("STORAGE_", "AWS_", "AZURE_")):
            monkeypatch.delenv(name)
    root = tmp_path / "root"
    (root / "rec").mkdir(parents=True)
    (root / "rec" / "a.bin").write_bytes(os.urandom(3 * MiB))
    (root / "rec" / "b.bin").write_bytes(b"b" * 1000)
    env = {"STORAGE_UPLOAD_MODE": "local,memory", "STORAGE_LOCAL_ROOT": str(root)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_dry_run_json_and_exit_statuses(local_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing recorded: 0 without --full. `--full --dry-run --json`: exit 1 (work to do), the
    planned copies listed. `--full`: both copied, exit 0, a plain summary line."""
    assert cli.main(["repair"]) == 0
    assert "repair: 0 copied" in capsys.readouterr().out

    assert cli.main(["repair", "rec/", "--full", "--dry-run", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] and not out["ok"] and out["copied"] == []
    assert sorted((p["key"], p["source"], p["target"]) for p in out["planned"]) == [
        ("rec/a.bin", "local", "memory"), ("rec/b.bin", "local", "memory")
    ]

    assert cli.main(["repair", "rec/", "--full", "--min-age", "600", "--json"]) == 0  # just written
    out = json.loads(capsys.readouterr().out)
    assert out["recent"] == ["rec/a.bin", "rec/b.bin"] and out["copied"] == []

    assert cli.main(["repair", "rec/", "--full"]) == 0
    text = capsys.readouterr().out
    assert "copied 'rec/a.bin' from local to memory (3.0 MiB)" in text
    assert "repair: 2 copied, 0 conflict(s), 0 failed" in text and "nothing left" in text


def test_a_bad_environment_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "memory")
    monkeypatch.setenv("STORAGE_JOURNAL_PREFIX", "not-reserved/")
    assert cli.main(["repair"]) == 2
    assert "STORAGE_JOURNAL_PREFIX" in capsys.readouterr().err


def test_a_progress_bar_on_a_terminal(local_env: dict[str, str]) -> None:
    """stderr on a pty: rich draws its bar there (the bytes copied and the total); stdout, a
    pipe, gets only the summary."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "AZURE_"))}
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "unistore", "repair", "--full"],
            env={**keep, **local_env, "COLUMNS": "120"}, cwd=REPO, stdout=subprocess.PIPE, stderr=follower,
        )
        os.close(follower)
        follower = -1
        seen = b""
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(leader, 65536)
            except OSError:  # the pty closes when the process exits
                break
            if not data:
                break
            seen += data
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert proc.returncode == 0, seen
    screen = seen.decode(errors="replace")
    assert "repair" in screen and "3.1" in screen and "MB" in screen, screen  # rich's decimal units
    assert "━" in screen
    assert b"repair: 2 copied" in out and b"\x1b[" not in out


def test_the_plain_bar_without_rich() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = _cli_repair._plain_bar(screen)
    update = next(bar)
    assert update is not None
    update("rec/a.bin", MiB, 4 * MiB)
    update("rec/a.bin", 4 * MiB, 4 * MiB)
    with pytest.raises(StopIteration):
        next(bar)
    assert "\rrepair:  25% 1.0 MiB of 4.0 MiB rec/a.bin" in screen.getvalue()
    assert "100% 4.0 MiB of 4.0 MiB" in screen.getvalue() and screen.getvalue().endswith("\n")

    with _cli_repair.progress_bar(io.StringIO()) as none:  # not a terminal: no bar
        assert none is None


async def test_ls_never_shows_the_journal(local_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """A missed copy recorded in the local provider: `unistore ls` (merged, and pinned to the
    provider) lists the recordings, never the record; `repair` then finds it."""
    from tests.conftest import SMALL_TRANSFER
    from tests.faulty import FaultyProvider
    from unistore import Storage, TransientError
    from unistore.providers import LocalProvider, MemoryProvider

    bad = FaultyProvider(MemoryProvider(name="memory", transfer=SMALL_TRANSFER))
    bad.fail_with = TransientError("down", provider="memory")
    local = LocalProvider(local_env["STORAGE_LOCAL_ROOT"], transfer=SMALL_TRANSFER)
    async with Storage([local, bad], require="any") as storage:
        report = await storage.upload_bytes(b"c" * 100, "rec/c.bin")
    assert report.journal is not None and report.journal.written == ("local",)
    assert (Path(local_env["STORAGE_LOCAL_ROOT"]) / report.journal.journal_key).is_file()
    for extra in ([], ["--provider", "local"]):
        assert await asyncio.to_thread(cli.main, ["ls", "--json", *extra]) == 0
        listed = capsys.readouterr().out
        assert "rec/c.bin" in listed and ".unistore" not in listed, listed
    assert await asyncio.to_thread(cli.main, ["repair", "--dry-run", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["pending"] == [report.journal.journal_key] and out["planned"][0]["key"] == "rec/c.bin"
