"""The examples run, as the README says, against the real servers (what `nox -s demo` does)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import unique_name

pytestmark = pytest.mark.servers
EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize("script", ["dual_upload.py", "streaming_recording.py"])
def test_example_runs_against_both_providers(
    script: str, s3_server: servers.S3Server, azurite: servers.AzuriteServer, tmp_path: Path
) -> None:
    bucket, container = unique_name("ex"), unique_name("ex")
    s3_server.create_bucket(bucket)
    azurite.create_container(container)
    env = {
        **os.environ,
        **s3_server.env(bucket),
        **azurite.env(container),
        "STORAGE_UPLOAD_MODE": "both",
        "DEMO_MEETING_SECONDS": "8",
        "PYTHONPATH": str(EXAMPLES.parent),
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Successfully uploaded recording to AWS S3" in output
    assert "Successfully uploaded recording to Azure Blob Storage" in output
    assert s3_server.secret_key not in output and azurite.account_key not in output
