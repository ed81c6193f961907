"""`unistore cleanup --older-than SECONDS [--provider NAME] [--prefix P]` against the real S3
server (and Azurite for `both`): configured by the environment alone, in-process and through a
real `python -m unistore` subprocess. Incomplete multipart uploads are made and listed with
signed stdlib requests (no SDK), so the command under test is the only SDK user."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import unique_name
from unistore import cli

pytestmark = pytest.mark.servers

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
REPO = Path(__file__).resolve().parent.parent


def start_upload(server: servers.S3Server, bucket: str, key: str) -> str:
    """CreateMultipartUpload and one part, as a process killed mid-upload leaves it."""
    status, _, body = server.request("POST", f"/{bucket}/{key}", query={"uploads": ""})
    assert status == 200, body
    upload_id = ET.fromstring(body).findtext(f"{_NS}UploadId") or ""
    assert upload_id
    status, _, body = server.request(
        "PUT", f"/{bucket}/{key}", query={"partNumber": "1", "uploadId": upload_id}, body=b"part one" * 1000
    )
    assert status == 200, body
    return upload_id


def incomplete(server: servers.S3Server, bucket: str) -> list[str]:
    """Keys of the bucket's incomplete multipart uploads."""
    status, _, body = server.request("GET", f"/{bucket}", query={"uploads": ""})
    assert status == 200, body
    return sorted(u.findtext(f"{_NS}Key") or "" for u in ET.fromstring(body).iter(f"{_NS}Upload"))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No STORAGE_/AWS_/AZURE_ variable from the outer environment leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("STORAGE_", "AWS_", "AZURE_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def s3_env(clean_env: pytest.MonkeyPatch, s3_server: servers.S3Server, s3_bucket: str) -> Iterator[dict[str, str]]:
    env = {"STORAGE_UPLOAD_MODE": "s3", **s3_server.env(s3_bucket)}
    for name, value in env.items():
        clean_env.setenv(name, value)
    yield env


def test_cleanup_in_process_aborts_what_is_old_enough_under_the_prefix(
    s3_env: dict[str, str], s3_server: servers.S3Server, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fresh uploads survive `--older-than 3600`; `--older-than 0 --prefix rec/` aborts exactly
    the two under `rec/`, printing each key, and leaves `other/` alone; exit status 0."""
    for key in ("rec/a.mp4", "rec/b.mp4", "other/c.mp4"):
        start_upload(s3_server, s3_bucket, key)

    assert cli.main(["cleanup", "--older-than", "3600"]) == 0
    out = capsys.readouterr().out
    assert "s3: aborted 0 incomplete upload(s) started more than 3600s ago" in out, out
    assert incomplete(s3_server, s3_bucket) == ["other/c.mp4", "rec/a.mp4", "rec/b.mp4"]

    assert cli.main(["cleanup", "--older-than", "0", "--prefix", "rec/", "--provider", "s3"]) == 0
    out = capsys.readouterr().out
    assert "s3: aborted incomplete upload of 'rec/a.mp4' (started " in out, out
    assert "s3: aborted incomplete upload of 'rec/b.mp4' (started " in out, out
    assert "s3: aborted 2 incomplete upload(s) started more than 0s ago under prefix 'rec/'" in out, out
    assert "other/c.mp4" not in out
    assert incomplete(s3_server, s3_bucket) == ["other/c.mp4"]

    assert cli.main(["cleanup", "--older-than", "0"]) == 0
    assert "aborted 1 incomplete upload(s)" in capsys.readouterr().out
    assert incomplete(s3_server, s3_bucket) == []


def test_cleanup_in_both_mode_says_azure_has_nothing_to_clean(
    s3_env: dict[str, str],
    clean_env: pytest.MonkeyPatch,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`STORAGE_UPLOAD_MODE=both`: S3's leftovers are aborted and Azure says why it has none
    (uncommitted blocks are never visible and expire after 7 days); `--provider azure` alone
    leaves S3 untouched."""
    container = unique_name("cli")
    azurite.create_container(container)
    clean_env.setenv("STORAGE_UPLOAD_MODE", "both")
    for name, value in azurite.env(container).items():
        clean_env.setenv(name, value)
    start_upload(s3_server, s3_bucket, "rec/left-behind.mp4")

    assert cli.main(["cleanup", "--older-than", "0", "--provider", "azure"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"azure: {cli.AZURE_NOTE}"
    assert "7 days" in out
    assert incomplete(s3_server, s3_bucket) == ["rec/left-behind.mp4"]

    assert cli.main(["cleanup", "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert "s3: aborted incomplete upload of 'rec/left-behind.mp4'" in out
    assert f"azure: {cli.AZURE_NOTE}" in out
    assert incomplete(s3_server, s3_bucket) == []


def test_cleanup_refuses_an_unconfigured_provider(s3_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """`--provider azure` when only S3 is configured: exit 2, and the message says what is."""
    assert cli.main(["cleanup", "--older-than", "60", "--provider", "azure"]) == 2
    err = capsys.readouterr().err
    assert "no provider named 'azure'" in err and "configured (STORAGE_UPLOAD_MODE): s3" in err


def test_cleanup_with_a_bad_environment_names_the_variable(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No bucket configured: exit 2 and the missing variable named, before any request."""
    clean_env.setenv("STORAGE_UPLOAD_MODE", "s3")
    assert cli.main(["cleanup", "--older-than", "60"]) == 2
    assert "AWS_RECORDING_STORAGE_BUCKET_NAME" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_cleanup_needs_a_valid_older_than(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`--older-than` is required and must be a number of seconds >= 0 (argparse exits 2)."""
    for argv in (["cleanup"], ["cleanup", "--older-than", value]):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 2
    assert "--older-than" in capsys.readouterr().err


def test_cleanup_through_a_real_subprocess(s3_env: dict[str, str], s3_server: servers.S3Server, s3_bucket: str) -> None:
    """`python -m unistore cleanup --older-than 0 --provider s3` in a fresh process configured
    only by environment variables: exit 0, the key printed, nothing left incomplete, and
    nothing written to stderr (no warning, no unclosed-session noise)."""
    start_upload(s3_server, s3_bucket, "rec/crashed.mp4")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "AZURE_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "always::ResourceWarning",
            "-m",
            "unistore",
            "cleanup",
            "--older-than",
            "0",
            "--provider",
            "s3",
        ],
        env={**keep, **s3_env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "s3: aborted incomplete upload of 'rec/crashed.mp4'" in done.stdout, done.stdout
    assert "s3: aborted 1 incomplete upload(s)" in done.stdout
    assert done.stderr == ""
    assert incomplete(s3_server, s3_bucket) == []
