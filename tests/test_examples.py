"""Every example runs, as the README says, against the real servers (what `nox -s examples`
does), with the upload mode it is written for (`tests/run_examples.py`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import unique_name
from tests.run_examples import EXAMPLES, EXAMPLES_DIR, example_env

pytestmark = pytest.mark.servers

EXPECTED: dict[str, list[str]] = {
    "s3_only.py": [
        "uploaded recordings/s3-only/meeting.webm to s3; local file removed: True",
        "downloaded 3145728 bytes, identical: True",
        "presigned URL with plain urllib: 3145728 bytes",
        "deleted everywhere: True; still held: {'s3': False}",
    ],
    "azure_only.py": [
        "streamed recordings/azure-only/meeting.webm to azure",
        "read back chunk by chunk, identical: True",
        "SAS URL with plain urllib: 12582912 bytes",
        "deleted everywhere: True; still held: {'azure': False}",
    ],
    "dual_upload.py": [
        "Successfully uploaded recording to AWS S3",
        "Successfully uploaded recording to Azure Blob Storage",
        "copies: s3=", "s3     download byte-identical", "azure  download byte-identical",
    ],
    "streaming_recording.py": [
        "Successfully uploaded recording to AWS S3",
        "Successfully uploaded recording to Azure Blob Storage",
        "to s3, azure: ok=True",
    ],
    "sync_worker.py": [
        "24 recordings uploaded by 8 threads to s3, azure",
        "262144 bytes on s3, azure",
        "... 24 listed",
        "deleted 24 of 24; left: 0",
    ],
}


def test_every_example_is_covered() -> None:
    assert set(EXPECTED) == set(EXAMPLES) == {p.name for p in EXAMPLES_DIR.glob("*.py")}


@pytest.mark.parametrize("script", list(EXAMPLES))
def test_example_runs_against_the_local_servers(
    script: str, s3_server: servers.S3Server, azurite: servers.AzuriteServer, tmp_path: Path
) -> None:
    bucket, container = unique_name("ex"), unique_name("ex")
    s3_server.create_bucket(bucket)
    azurite.create_container(container)
    base = {**os.environ, **s3_server.env(bucket), **azurite.env(container), "DEMO_MEETING_SECONDS": "8"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / script)], env=example_env(script, base), cwd=tmp_path,
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for line in EXPECTED[script]:
        assert line in output, f"{line!r} not in:\n{output}"
    assert s3_server.secret_key not in output and azurite.account_key not in output
    assert "sig=" not in output and "X-Amz-Signature" not in output, "a presigned URL was printed"
