"""Missed copies and `unistore repair` against the real servers (SeaweedFS or MinIO, and Azurite).

Uploads run in this process (Azure behind the fault proxy where a test needs it dead); the
repair always runs as a real `python -m unistore repair` subprocess configured by the
environment alone; every check of what was stored uses the servers' signed stdlib requests
(`S3Server.request`, `AzuriteServer.request`), not unistore, so the command under test is never
its own witness.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.faultproxy import FaultProxy, ThreadedFaultProxy
from unistore import Storage
from unistore._journal import DEFAULT_JOURNAL_PREFIX, PendingRecord
from unistore._multipart import MiB

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parent.parent
Env = dict[str, str]


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def base_env(
    monkeypatch: pytest.MonkeyPatch,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    azure_container: str,
) -> Env:
    """`STORAGE_UPLOAD_MODE=both` straight at the servers, small parts and short timeouts;
    nothing from the outer environment leaks in (also set in this process, for `from_env`)."""
    for name in list(os.environ):
        if name.startswith(("STORAGE_", "AWS_", "AZURE_")):
            monkeypatch.delenv(name)
    env = {
        **s3_server.env(s3_bucket),
        **azurite.env(azure_container),
        "STORAGE_UPLOAD_MODE": "both",
        "STORAGE_MULTIPART_THRESHOLD": "5MiB",
        "STORAGE_CHUNK_SIZE": "5MiB",
        "STORAGE_CONNECT_TIMEOUT": "2",
        "STORAGE_READ_TIMEOUT": "3",
        "STORAGE_RETRY_ATTEMPTS": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def run_cli(env: Env, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "AZURE_"))}
    return subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-m", "unistore", *args],
        env={**keep, **env}, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )


def repair_json(env: Env, *args: str) -> tuple[int, dict[str, Any]]:
    done = run_cli(env, "repair", "--json", *args)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def s3_get(server: servers.S3Server, bucket: str, key: str) -> tuple[int, bytes]:
    status, _, body = server.request("GET", f"/{bucket}/{key}")
    return status, body


def azure_get(server: servers.AzuriteServer, container: str, key: str) -> tuple[int, bytes]:
    status, _, body = server.request("GET", f"/{container}/{key}")
    return status, body


def s3_journal(server: servers.S3Server, bucket: str) -> list[str]:
    status, _, body = server.request("GET", f"/{bucket}", query={"list-type": "2", "prefix": DEFAULT_JOURNAL_PREFIX})
    assert status == 200, body
    import xml.etree.ElementTree as ET

    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    return sorted(el.text or "" for el in ET.fromstring(body).iter(f"{ns}Key"))


@pytest.fixture
async def azure_proxy(azurite: servers.AzuriteServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy.for_url(azurite.blob_url, seed=18) as proxy:
        yield proxy


async def test_a_copy_missed_while_azure_was_blackholed_is_repaired_by_the_cli(
    base_env: Env,
    monkeypatch: pytest.MonkeyPatch,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    azure_container: str,
    azure_proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    """`both`, `require=any`, Azure blackholed: the upload succeeds on S3 and leaves one record
    in S3 (naming the key, S3's size and checksum, Azure's error); Azure back, `unistore
    repair` copies it byte-identical, removes the record and exits 0; a second run copies
    nothing and exits 0."""
    monkeypatch.setenv("STORAGE_REQUIRE", "any")
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        azurite.connection_string.replace(azurite.blob_url, azure_proxy.proxied_url(azurite.blob_url)),
    )
    data = payload(12 * MiB + 123, 1)  # parts on both sides
    source = tmp_path / "meeting.mp4"
    source.write_bytes(data)
    key = "rec/blackholed/meeting.mp4"
    azure_proxy.blackhole = True
    async with Storage.from_env() as storage:
        report = await storage.upload_file(source, key, content_type="video/mp4")
    azure_proxy.blackhole = False
    assert report.ok and report.succeeded == ["s3"] and report.failed == ["azure"]
    assert azure_proxy.stats.blackholed >= 1
    assert report.journal is not None and report.journal.written == ("s3",)
    [journal_key] = s3_journal(s3_server, s3_bucket)
    assert journal_key == report.journal.journal_key
    record = PendingRecord.from_json(journal_key, s3_get(s3_server, s3_bucket, journal_key)[1])
    assert record.key == key and record.held["s3"].size == len(data) and "azure" in record.missing
    assert azure_get(azurite, azure_container, key)[0] == 404

    status, out = repair_json(base_env)
    assert status == 0, out
    assert out["copied"] == [{"key": key, "source": "s3", "target": "azure", "size": len(data)}]
    assert out["resolved"] == [journal_key] and out["ok"]
    assert azure_get(azurite, azure_container, key) == (200, data)
    _, headers, _ = azurite.request("HEAD", f"/{azure_container}/{key}")
    assert {k.lower(): v for k, v in headers.items()}.get("content-type") == "video/mp4"
    assert s3_journal(s3_server, s3_bucket) == []

    again = run_cli(base_env, "repair")
    assert again.returncode == 0, again.stderr
    assert "repair: 0 copied, 0 conflict(s), 0 failed, 0 record(s) removed, 0 pending; nothing left" in again.stdout
    assert again.stderr == ""


UPLOADER = textwrap.dedent(
    """
    import asyncio, sys
    from unistore import Storage

    async def main() -> None:
        async with Storage.from_env() as storage:
            await storage.upload_file(sys.argv[1], sys.argv[2])
        print("returned", flush=True)

    asyncio.run(main())
    """
)


@pytest.fixture
def threaded_azure_proxy(azurite: servers.AzuriteServer) -> Iterator[ThreadedFaultProxy]:
    with ThreadedFaultProxy.for_url(azurite.blob_url, seed=19) as proxy:
        yield proxy


def test_kill_9_after_s3_committed_is_found_and_fixed_by_repair_full(
    base_env: Env,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    azure_container: str,
    threaded_azure_proxy: ThreadedFaultProxy,
    tmp_path: Path,
) -> None:
    """A bot process uploads in `both`; Azure is held up by the proxy (blackholed) while S3
    commits; the process is killed with SIGKILL before it could return or record anything.
    `repair` (records only) has nothing to go on; `repair --full` finds the key missing from
    Azure by the listings, copies it byte-identical, and a second `--full` run copies nothing."""
    data = payload(7 * MiB + 5, 2)
    source = tmp_path / "killed.mp4"
    source.write_bytes(data)
    key = "rec/killed/meeting.mp4"
    env = {
        **base_env,
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string.replace(
            azurite.blob_url, threaded_azure_proxy.proxied_url(azurite.blob_url)
        ),
        "STORAGE_READ_TIMEOUT": "60",
    }
    threaded_azure_proxy.blackhole = True
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "AZURE_"))}
    bot = subprocess.Popen(
        [sys.executable, "-c", UPLOADER, str(source), key], env={**keep, **env}, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while s3_get(s3_server, s3_bucket, key)[0] != 200:
            assert bot.poll() is None, bot.communicate()
            assert time.monotonic() < deadline, "S3 never committed"
            time.sleep(0.05)
        assert bot.poll() is None  # still waiting for Azure
        os.kill(bot.pid, signal.SIGKILL)
        out, _ = bot.communicate(timeout=30)
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.communicate()
    assert bot.returncode == -signal.SIGKILL and b"returned" not in out
    threaded_azure_proxy.blackhole = False
    assert threaded_azure_proxy.stats.blackholed >= 1
    assert s3_journal(s3_server, s3_bucket) == []  # killed before any record
    assert azure_get(azurite, azure_container, key)[0] == 404

    status, out_records = repair_json(base_env)
    assert status == 0 and out_records["copied"] == []  # nothing recorded: only --full can see it

    status, out_full = repair_json(base_env, "--full", "rec/")
    assert status == 0, out_full
    assert out_full["copied"] == [{"key": key, "source": "s3", "target": "azure", "size": len(data)}]
    assert azure_get(azurite, azure_container, key) == (200, data)

    status, again = repair_json(base_env, "--full", "rec/")
    assert status == 0 and again["copied"] == [] and again["checked"] == 1


def test_same_key_different_bytes_is_reported_and_nothing_is_overwritten(
    base_env: Env,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    azure_container: str,
) -> None:
    """Two keys whose copies differ: one by size, one with the same size but other bytes
    (told apart by the MD5 both services report). `repair --full` exits 1, lists both as
    conflicts, and both services still hold their own bytes; a dry run says the same."""
    pairs = {
        "rec/conflict/size.mp4": (payload(1000, 3), payload(1200, 4)),
        "rec/conflict/bytes.mp4": (payload(4096, 5), payload(4096, 6)),
    }
    for key, (on_s3, on_azure) in pairs.items():
        assert s3_server.request("PUT", f"/{s3_bucket}/{key}", body=on_s3)[0] == 200
        status, _, body = azurite.request(
            "PUT", f"/{azure_container}/{key}", body=on_azure, headers={"x-ms-blob-type": "BlockBlob"}
        )
        assert status == 201, body
    for args in (("--full", "--dry-run"), ("--full",)):
        status, out = repair_json(base_env, *args)
        assert status == 1, out
        assert sorted(c["key"] for c in out["conflicts"]) == sorted(pairs), out
        reasons = {c["key"]: c["reason"] for c in out["conflicts"]}
        assert "sizes differ" in reasons["rec/conflict/size.mp4"]
        assert "checksums differ" in reasons["rec/conflict/bytes.mp4"]
        assert out["copied"] == [] and out["planned"] == []
    for key, (on_s3, on_azure) in pairs.items():
        assert s3_get(s3_server, s3_bucket, key) == (200, on_s3)
        assert azure_get(azurite, azure_container, key) == (200, on_azure)
    human = run_cli(base_env, "repair", "--full")
    assert human.returncode == 1 and "conflict 'rec/conflict/bytes.mp4': checksums differ" in human.stdout


RSS_PROBE = textwrap.dedent(
    """
    import atexit, sys
    def peak() -> None:
        status = open("/proc/self/status").read()
        print("VmHWM_kB", status.split("VmHWM:")[1].split()[0], file=sys.stderr)
    atexit.register(peak)
    from unistore.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def peak_rss(env: Env, *args: str, timeout: float = 600) -> tuple[int, dict[str, Any], int]:
    """Run the CLI in a fresh process; its exit status, JSON report and peak RSS in bytes."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "AZURE_"))}
    done = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, *args], env={**keep, **env}, cwd=REPO,
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("VmHWM_kB")]
    assert line, done.stderr
    return done.returncode, json.loads(done.stdout), int(line[-1].split()[1]) * 1024


MANY = int(os.environ.get("UNISTORE_TEST_REPAIR_OBJECTS", "200"))
"""The issue's 200 objects (2.3 GiB, about 50 s on a quiet machine here); fewer for a quick local run."""
BUDGET = 64 * MiB
RSS_SLACK = 16 * MiB
"""Allocator and SDK buffers beyond the budget's grants."""


def test_many_missing_objects_are_repaired_in_bounded_memory(
    base_env: Env, s3_server: servers.S3Server, s3_bucket: str, azurite: servers.AzuriteServer, azure_container: str
) -> None:
    """Objects of 1-24 MiB in S3 only (put with signed stdlib requests); `repair --full` in a
    fresh process with `STORAGE_MAX_BUFFER_BYTES=64MiB` and the default part sizes copies them
    all to Azure, and its peak RSS stays within the budget (plus 16 MiB of allocator slack) above
    the same command's peak with nothing to copy: the interpreter, both SDKs and their clients,
    95 MiB here on their own."""
    rng = random.Random(200)
    pool = rng.randbytes(24 * MiB + 4096)
    sizes: dict[str, int] = {}
    offsets: dict[str, int] = {}
    for number in range(MANY):
        key = f"rec/many/{number:03d}.bin"
        sizes[key] = rng.randint(1 * MiB, 24 * MiB)
        offsets[key] = rng.randint(0, 4096)
        body = pool[offsets[key] : offsets[key] + sizes[key]]
        assert s3_server.request("PUT", f"/{s3_bucket}/{key}", body=body, timeout=120)[0] == 200
    env = {**base_env, "STORAGE_MAX_BUFFER_BYTES": f"{BUDGET}", "STORAGE_READ_TIMEOUT": "30"}
    for default in ("STORAGE_MULTIPART_THRESHOLD", "STORAGE_CHUNK_SIZE"):
        del env[default]  # 16 MiB single puts (whole objects in memory), 8 MiB parts above
    status, empty, baseline = peak_rss(env, "repair", "--full", "--json", "nothing-here/")
    assert status == 0 and empty["checked"] == 0
    began = time.monotonic()
    status, out, peak = peak_rss(env, "repair", "--full", "--json", "rec/many/")
    elapsed = time.monotonic() - began
    assert status == 0, {k: out[k] for k in ("failed", "conflicts")}
    assert len(out["copied"]) == MANY and sum(c["size"] for c in out["copied"]) == sum(sizes.values())
    print(
        f"repair of {MANY} objects ({sum(sizes.values()) / MiB:.0f} MiB): {elapsed:.1f}s, "
        f"peak RSS {peak / MiB:.1f} MiB, baseline {baseline / MiB:.1f} MiB, budget {BUDGET / MiB:.0f} MiB"
    )
    assert peak - baseline <= BUDGET + RSS_SLACK, (peak / MiB, baseline / MiB)
    for key in rng.sample(sorted(sizes), 5):  # contents, independently
        expected = pool[offsets[key] : offsets[key] + sizes[key]]
        assert azure_get(azurite, azure_container, key) == (200, expected), key
    status, again = repair_json(base_env, "--full", "rec/many/")
    assert status == 0 and again["copied"] == [] and again["checked"] == MANY


Factory = Callable[..., Any]
