"""`unistore upload` on a real pseudo-terminal (pexpect): one rich progress bar per provider is
drawn there, and none when stdout is a pipe or when rich is not installed (plain lines instead).
Both against SeaweedFS (or MinIO) and Azurite, with parts small enough for several updates."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pexpect
import pytest

from tests import servers
from tests.clirun import REPO, SMALL_PARTS, child_env, run_cli
from tests.conftest import unique_name
from tests.faultproxy import ThreadedFaultProxy

pytestmark = pytest.mark.servers

BAR = "━"
"""The character rich draws its bars with."""
ANSI = "\x1b["
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
CURSOR = re.compile(r"\x1b\[[0-9;?]*[A-Za-ln-z]|\r")
"""Cursor moves and line clears: rich redraws its bars in place with them."""
SIZE_MIB = 24
PLAIN_PROGRESS = re.compile(r"^(s3|azure): (\d+)% \([\d.]+ MiB of 24.0 MiB\)$", re.MULTILINE)
WITHOUT_RICH = (
    "import sys; sys.modules['rich'] = sys.modules['rich.console'] = None; "
    "from unistore.cli import main; sys.exit(main())"
)
"""`python -c` as if rich were not installed: importing it raises ImportError."""


@pytest.fixture
def container(azurite: servers.AzuriteServer) -> str:
    name = unique_name("tty")
    azurite.create_container(name)
    return name


@pytest.fixture
def env(s3_server: servers.S3Server, s3_bucket: str, azurite: servers.AzuriteServer, container: str) -> dict[str, str]:
    return {"STORAGE_UPLOAD_MODE": "both", **s3_server.env(s3_bucket), **azurite.env(container), **SMALL_PARTS}


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(SIZE_MIB * 1024 * 1024))
    return path


def spawn(args: list[str], env: dict[str, str]) -> pexpect.spawn:
    """`python ARGS` on a 120x30 pseudo-terminal."""
    terminal_env = child_env({**env, "TERM": "xterm-256color"})
    terminal_env.pop("NO_COLOR", None)
    terminal_env.pop("COLUMNS", None)
    return pexpect.spawn(
        sys.executable, args, env=terminal_env, cwd=str(REPO), dimensions=(30, 120), timeout=120, encoding="utf-8",
        codec_errors="replace",
    )


def on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run on a pseudo-terminal; (exit status, everything it wrote there)."""
    child = spawn(args, env)
    child.expect(pexpect.EOF)
    screen: str = child.before
    child.close()
    assert child.exitstatus is not None
    return child.exitstatus, screen


def test_progress_bars_render_on_a_tty_and_none_when_piped(env: dict[str, str], big: Path) -> None:
    status, screen = on_terminal(["-m", "unistore", "upload", str(big), "--key", "rec/tty.bin"], env)
    assert status == 0, screen
    assert ANSI in screen  # drawn with terminal control sequences
    frames = [line.strip() for line in CURSOR.sub("\n", COLOUR.sub("", screen)).splitlines() if BAR in line]
    for name in ("s3", "azure"):
        bars = [line for line in frames if line.split()[0] == name]
        assert bars, screen
        percents = [int(m.group(1)) for m in map(re.compile(r" (\d+)% ").search, bars) if m]
        assert percents[0] == 0 and any(0 < p < 100 for p in percents), bars  # drawn at the start, redrawn...
        assert re.search(r" 100% 24\.0/24\.0 MiB [\d.]+ MiB/s .*done$", bars[-1]), bars  # ...to the end
    assert "s3: stored 'rec/tty.bin' (24.0 MiB in " in screen and "azure: stored 'rec/tty.bin'" in screen

    piped = run_cli("upload", str(big), "--key", "rec/piped.bin", env=env)
    assert piped.returncode == 0, piped.stderr
    assert BAR not in piped.stdout and ANSI not in piped.stdout
    quarters = PLAIN_PROGRESS.findall(piped.stdout)
    assert {name for name, _ in quarters} == {"s3", "azure"}, piped.stdout
    assert all(0 < int(percent) < 100 for _, percent in quarters)
    assert "uploaded 'rec/piped.bin' to 2 of 2 providers" in piped.stdout


def test_without_rich_a_terminal_gets_plain_lines(env: dict[str, str], big: Path) -> None:
    status, screen = on_terminal(["-c", WITHOUT_RICH, "upload", str(big), "--key", "rec/plain.bin"], env)
    assert status == 0, screen
    assert BAR not in screen and ANSI not in screen
    assert {name for name, _ in PLAIN_PROGRESS.findall(screen.replace("\r\n", "\n"))} == {"s3", "azure"}, screen
    assert "uploaded 'rec/plain.bin' to 2 of 2 providers" in screen


def test_ctrl_c_mid_upload_aborts_everywhere_and_exits_130(
    env: dict[str, str],
    tmp_path: Path,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    container: str,
) -> None:
    """Ctrl-C once S3 has parts in, while S3 answers slowly (the fault proxy delays every chunk
    by 1.5 s, so its abort takes longer than the library's 2 s grace for a cancelled upload):
    no object on either service, no incomplete multipart upload left on S3 (the CLI waits for
    the background abort that asyncio.run would otherwise cancel at shutdown), exit 130."""
    source = tmp_path / "long.bin"
    source.write_bytes(os.urandom(160 * 1024 * 1024))
    proxy = ThreadedFaultProxy.for_url(s3_server.endpoint, seed=17)
    proxy.start()
    try:
        slow_env = {**env, "AWS_ENDPOINT_URL": proxy.proxied_url(s3_server.endpoint)}
        child = spawn(["-m", "unistore", "upload", str(source), "--key", "rec/interrupted.bin"], slow_env)
        child.expect(r"s3 .*?[1-9][0-9]*\.[0-9]/160\.0 MiB")  # a part is in: the upload is under way
        proxy.latency_s = 1.5
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
    finally:
        proxy.stop()
    assert child.exitstatus == 130, child.before
    status, _, body = s3_server.request("GET", f"/{s3_bucket}", query={"uploads": ""})
    assert status == 200 and b"<Upload>" not in body, body
    assert s3_server.request("GET", f"/{s3_bucket}/rec/interrupted.bin")[0] == 404
    assert azurite.request("GET", f"/{container}/rec/interrupted.bin")[0] == 404
    assert "unistore upload: interrupted; aborting 1 incomplete upload(s)" in child.before, child.before
    assert "Traceback" not in child.before
