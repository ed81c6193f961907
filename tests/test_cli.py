"""`unistore upload / ls / get / rm / presign` through a real `python -m unistore` subprocess
against SeaweedFS (or MinIO) and Azurite, configured by environment variables alone. What was
stored is checked on the servers with signed stdlib requests, never through the command under
test; presigned URLs are fetched with plain urllib."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests import servers
from tests.clirun import QUICK_FAILURE, SMALL_PARTS, child_env, dead_endpoint, run_cli, run_cli_bytes, unistore_argv
from tests.conftest import unique_name

pytestmark = pytest.mark.servers


@pytest.fixture
def container(azurite: servers.AzuriteServer) -> str:
    name = unique_name("cli")
    azurite.create_container(name)
    return name


@pytest.fixture
def both_env(
    s3_server: servers.S3Server, s3_bucket: str, azurite: servers.AzuriteServer, container: str
) -> dict[str, str]:
    return {"STORAGE_UPLOAD_MODE": "both", **s3_server.env(s3_bucket), **azurite.env(container)}


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "meeting.mp4"
    path.write_bytes(os.urandom(300_000))
    return path


def on_s3(server: servers.S3Server, bucket: str, key: str) -> bytes | None:
    status, _, body = server.request("GET", f"/{bucket}/{key}")
    return body if status == 200 else None


def on_azure(server: servers.AzuriteServer, container: str, key: str) -> bytes | None:
    status, _, body = server.request("GET", f"/{container}/{key}")
    return body if status == 200 else None


def fetch(url: str, *, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        body: bytes = response.read()
        return body


def test_upload_in_both_prints_two_outcomes_and_exits_0(
    both_env: dict[str, str],
    recording: Path,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    container: str,
) -> None:
    """Each provider's outcome on its own line, a summary, exit 0, nothing on stderr (no warning,
    no unclosed session); both servers hold the exact bytes."""
    done = run_cli("upload", str(recording), "--key", "rec/meeting.mp4", env=both_env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("s3: stored 'rec/meeting.mp4' (293.0 KiB in ") for line in lines), done.stdout
    assert any(line.startswith("azure: stored 'rec/meeting.mp4' (293.0 KiB in ") for line in lines), done.stdout
    assert lines[-1] == "uploaded 'rec/meeting.mp4' to 2 of 2 providers"
    assert done.stderr == ""
    assert on_s3(s3_server, s3_bucket, "rec/meeting.mp4") == recording.read_bytes()
    assert on_azure(azurite, container, "rec/meeting.mp4") == recording.read_bytes()


def test_upload_json_is_one_document_with_every_result(both_env: dict[str, str], recording: Path) -> None:
    """`--json`: stdout parses as one document: the report, each provider's info and timing."""
    done = run_cli("upload", str(recording), "--json", env=both_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["key"] == "meeting.mp4"
    assert set(report["results"]) == {"s3", "azure"} and report["failed"] == []
    for result in report["results"].values():
        assert result["ok"] is True and result["info"]["size"] == recording.stat().st_size
        assert result["info"]["content_type"] == "video/mp4"


def test_upload_json_events_stream_then_the_report(both_env: dict[str, str], recording: Path) -> None:
    """`--json --events`: JSON lines: each provider's event as it settles, the upload's, and the
    report (the `--json` document) as the last line."""
    done = run_cli("upload", str(recording), "--json", "--events", "--key", "rec/ev.mp4", env=both_env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted((e["event"], e["provider"]) for e in lines[:2]) == [
        ("provider_committed", "azure"), ("provider_committed", "s3"),
    ]
    assert all(e["bytes"] == recording.stat().st_size and e["key"] == "rec/ev.mp4" for e in lines[:3])
    assert lines[2]["event"] == "upload_settled" and lines[2]["ok"] is True
    assert lines[3]["event"] == "report" and set(lines[3]["results"]) == {"s3", "azure"} and len(lines) == 4


def test_upload_events_needs_json(recording: Path) -> None:
    done = run_cli("upload", str(recording), "--events", env={"STORAGE_UPLOAD_MODE": "memory"})
    assert done.returncode == 2 and "add --json" in done.stderr


def test_upload_delete_local_and_no_overwrite(both_env: dict[str, str], recording: Path, tmp_path: Path) -> None:
    """`--delete-local` removes the file once both stored it; `--no-overwrite` refuses to replace
    the existing object on both (exit 1) and keeps the local file it was asked to delete."""
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(recording.read_bytes())
    done = run_cli("upload", str(recording), "--key", "rec/once.mp4", "--delete-local", env=both_env)
    assert done.returncode == 0, done.stderr
    assert not recording.exists()
    assert f"deleted the local file {str(recording)!r}" in done.stdout

    again = run_cli("upload", str(copy), "--key", "rec/once.mp4", "--no-overwrite", "--delete-local", env=both_env)
    assert again.returncode == 1, again.stdout
    assert "s3: FAILED: " in again.stdout and "azure: FAILED: " in again.stdout
    assert "upload of 'rec/once.mp4' failed: stored on 0 of 2 providers" in again.stdout
    assert "kept the local file" in again.stdout and copy.exists()
    assert "Traceback" not in again.stderr


def test_broken_azure_config_exits_non_zero_with_a_one_line_fix(
    both_env: dict[str, str], recording: Path, azurite: servers.AzuriteServer
) -> None:
    """An account name without a key or connection string, plus an account key without a name:
    exit 2, exactly one line on stderr naming the variables, no traceback, nothing uploaded."""
    env = {k: v for k, v in both_env.items() if k != "AZURE_STORAGE_CONNECTION_STRING"}
    env["AZURE_STORAGE_ACCOUNT_KEY"] = azurite.account_key
    done = run_cli("upload", str(recording), env=env)
    assert done.returncode == 2, done.stdout
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("unistore upload: ") and "AZURE_STORAGE_ACCOUNT_NAME" in lines[0], lines
    assert "Traceback" not in done.stderr
    assert azurite.account_key not in done.stderr


def test_wrong_azure_key_fails_azure_alone_with_its_fix(
    both_env: dict[str, str],
    recording: Path,
    azurite: servers.AzuriteServer,
    container: str,
    s3_server: servers.S3Server,
    s3_bucket: str,
) -> None:
    """A well-formed but wrong account key: S3 stores the file, Azure's line names the fix, exit 1
    (STORAGE_REQUIRE=all), and the key is never printed."""
    env = {k: v for k, v in both_env.items() if k != "AZURE_STORAGE_CONNECTION_STRING"}
    wrong = "d3Jvbmcga2V5IGZvciB0aGUgdGVzdCBvbmx5IG5vdCBhIHJlYWwgb25l" * 2
    env.update(azurite.env(container, auth="account_key"), AZURE_STORAGE_ACCOUNT_KEY=wrong)
    done = run_cli("upload", str(recording), "--key", "rec/half.mp4", env=env)
    assert done.returncode == 1
    azure_line = next(line for line in done.stdout.splitlines() if line.startswith("azure: "))
    assert azure_line.startswith("azure: FAILED: ") and "; fix: " in azure_line, azure_line
    assert "AZURE_STORAGE_ACCOUNT_KEY" in azure_line
    assert "s3: stored 'rec/half.mp4'" in done.stdout
    assert wrong not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert on_s3(s3_server, s3_bucket, "rec/half.mp4") == recording.read_bytes()
    assert on_azure(azurite, container, "rec/half.mp4") is None


def test_ls_get_rm_presign_round_trip(
    both_env: dict[str, str],
    recording: Path,
    tmp_path: Path,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    container: str,
) -> None:
    data = recording.read_bytes()
    assert run_cli("upload", str(recording), "--key", "rec/a.mp4", env=both_env).returncode == 0
    # a copy on S3 alone, as a half-failed fan-out leaves it
    status, _, _ = s3_server.request("PUT", f"/{s3_bucket}/rec/only-s3.bin", body=b"x" * 10)
    assert status == 200

    listed = run_cli("ls", "rec/", env=both_env)
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[0].split() == ["SIZE", "TIER", "PROVIDERS", "KEY"]
    # the services' default tiers, as each reports it: S3 by omission, Azurite its account's Hot
    assert rows[1].split() == ["293.0", "KiB", "STANDARD,Hot", "s3,azure", "rec/a.mp4"]
    assert rows[2].split() == ["10", "B", "STANDARD", "s3", "rec/only-s3.bin"]
    assert rows[3] == "2 key(s) under 'rec/', 293.0 KiB, listed from s3, azure; 1 not on every provider"

    as_json = run_cli("ls", "--json", env=both_env)
    items = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(i["key"], i["providers"], i["size"]) for i in items] == [
        ("rec/a.mp4", ["s3", "azure"], len(data)), ("rec/only-s3.bin", ["s3"], 10)
    ]
    assert items[0]["copies"]["azure"]["size"] == len(data)
    assert items[0]["tiers"] == {"s3": "STANDARD", "azure": "Hot"}
    assert items[0]["copies"]["azure"]["tier"] == "Hot"
    only_azure = run_cli("ls", "--provider", "azure", "--json", env=both_env)
    assert [json.loads(line)["key"] for line in only_azure.stdout.splitlines()] == ["rec/a.mp4"]

    got = run_cli("get", "rec/a.mp4", str(tmp_path / "out.mp4"), env=both_env)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == f"downloaded 'rec/a.mp4' from s3 (293.0 KiB) to {str(tmp_path / 'out.mp4')!r}"
    assert (tmp_path / "out.mp4").read_bytes() == data
    into_folder = run_cli("get", "rec/a.mp4", "--provider", "azure", "--json", env=both_env, cwd=tmp_path)
    document = json.loads(into_folder.stdout)
    assert document["provider"] == "azure" and document["path"] == "a.mp4"
    assert (tmp_path / "a.mp4").read_bytes() == data
    piped = run_cli_bytes("get", "rec/a.mp4", "-", env=both_env)
    assert piped.returncode == 0 and piped.stdout == data

    url = run_cli("presign", "rec/a.mp4", "--expires", "120", env=both_env).stdout.strip()
    assert fetch(url) == data
    signed = json.loads(run_cli("presign", "rec/a.mp4", "--provider", "azure", "--json", env=both_env).stdout)
    assert signed["method"] == "GET" and signed["expires_in"] == 3600
    assert fetch(signed["url"]) == data
    put_url = run_cli("presign", "rec/put.bin", "--method", "put", "--provider", "s3", env=both_env).stdout.strip()
    fetch(put_url, method="PUT", data=b"sent by urllib")
    assert on_s3(s3_server, s3_bucket, "rec/put.bin") == b"sent by urllib"

    removed = run_cli("rm", "rec/a.mp4", env=both_env)
    assert removed.returncode == 0, removed.stdout
    assert "s3: deleted 'rec/a.mp4'" in removed.stdout and "azure: deleted 'rec/a.mp4'" in removed.stdout
    assert on_s3(s3_server, s3_bucket, "rec/a.mp4") is None and on_azure(azurite, container, "rec/a.mp4") is None
    assert json.loads(run_cli("rm", "rec/a.mp4", "--json", env=both_env).stdout)["ok"] is True  # idempotent

    gone = run_cli("get", "rec/a.mp4", env=both_env, cwd=tmp_path)
    assert gone.returncode == 1
    assert len(gone.stderr.strip().splitlines()) == 1 and "no provider holds this object" in gone.stderr


def test_rm_with_s3_down_says_where_the_copy_remains(
    both_env: dict[str, str], recording: Path, azurite: servers.AzuriteServer, container: str
) -> None:
    """S3 refuses connections: Azure's copy is deleted, the S3 line says a copy may remain, exit 1."""
    assert run_cli("upload", str(recording), "--key", "rec/b.mp4", env=both_env).returncode == 0
    env = {**both_env, **QUICK_FAILURE, "AWS_ENDPOINT_URL": dead_endpoint()}
    done = run_cli("rm", "rec/b.mp4", env=env)
    assert done.returncode == 1, done.stdout
    assert "azure: deleted 'rec/b.mp4'" in done.stdout
    assert "s3: FAILED, a copy may remain: " in done.stdout
    assert "'rec/b.mp4' may remain on: s3" in done.stdout
    assert on_azure(azurite, container, "rec/b.mp4") is None
    document = json.loads(run_cli("rm", "rec/b.mp4", "--json", env=env).stdout)
    assert document["ok"] is False and document["may_remain_on"] == ["s3"]
    assert document["results"]["s3"]["error"]["type"] == "TransientError"


def test_bad_arguments_and_unknown_provider_are_one_line(both_env: dict[str, str]) -> None:
    """argparse refuses a bad value (exit 2); an unconfigured provider is a ConfigError line
    (exit 2), also as a JSON document with --json."""
    bad = run_cli("presign", "k", "--expires", "-5", env=both_env)
    assert bad.returncode == 2 and "--expires" in bad.stderr and "Traceback" not in bad.stderr
    unknown = run_cli("ls", "--provider", "gcs", env=both_env)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "unistore ls: no provider named 'gcs'; configured: s3, azure (add it to STORAGE_UPLOAD_MODE, or ask for "
        "one of these)"
    ]
    as_json = json.loads(run_cli("rm", "k", "--provider", "gcs", "--json", env=both_env).stdout)
    assert as_json["ok"] is False and as_json["error"]["type"] == "ConfigError"
    assert as_json["error"]["variables"] == ["STORAGE_UPLOAD_MODE"]


def test_upload_from_stdin_streams_to_both(
    both_env: dict[str, str],
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    container: str,
) -> None:
    """`upload - --key K` streams stdin (as `ffmpeg ... - | unistore upload -` would) in parts
    to both providers; an empty stdin is refused (nothing written), and `-` needs --key."""
    data = os.urandom(12 * 1024 * 1024 + 123)
    done = subprocess.run(
        unistore_argv("upload", "-", "--key", "rec/live.webm", "--content-type", "video/webm"),
        input=data, env=child_env({**both_env, **SMALL_PARTS}), capture_output=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert b"uploaded 'rec/live.webm' to 2 of 2 providers" in done.stdout
    assert on_s3(s3_server, s3_bucket, "rec/live.webm") == data
    assert on_azure(azurite, container, "rec/live.webm") == data

    empty = subprocess.run(
        unistore_argv("upload", "-", "--key", "rec/empty.webm"),
        input=b"", env=child_env(both_env), capture_output=True, timeout=120, check=False,
    )
    assert empty.returncode == 1 and empty.stdout == b"", empty.stdout
    assert empty.stderr.startswith(b"unistore upload: source for 'rec/empty.webm' is empty (0 bytes)")
    assert on_s3(s3_server, s3_bucket, "rec/empty.webm") is None
    unnamed = run_cli("upload", "-", env=both_env)
    assert unnamed.returncode == 2 and "--key" in unnamed.stderr
