"""The Django backend (`unistore.contrib.django`) under Django's own test runner: the project in
`tests/django_project/` runs in a subprocess with the servers' environment
(`STORAGE_UPLOAD_MODE=both` over SeaweedFS and Azurite). Afterwards the bucket and the
container must be empty: every file the Django tests saved was deleted from both providers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests import servers
from tests.fixtures_s3 import _texts

pytestmark = pytest.mark.servers

ROOT = Path(__file__).parent.parent
MiB = 1024 * 1024


def _run_django_tests(label: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "django", "test", label, "-v", "2", "--noinput"],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


@pytest.fixture
def project_env(
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    azure_container: str,
    tmp_path: Path,
) -> dict[str, str]:
    spool = tmp_path / "spool"
    spool.mkdir()
    return {
        **os.environ,
        **s3_server.env(s3_bucket),
        **azurite.env(azure_container),
        "DJANGO_SETTINGS_MODULE": "tests.django_project.settings",
        "PYTHONPATH": str(ROOT),
        "UNISTORE_TEST_SPOOL_DIR": str(spool),
    }


def _s3_keys(server: servers.S3Server, bucket: str) -> list[str]:
    status, _, body = server.request("GET", f"/{bucket}", query={"list-type": "2"})
    assert status == 200, body[:300]
    return _texts(body, "Key")


def _azure_names(server: servers.AzuriteServer, container: str) -> list[str]:
    status, _, body = server.request("GET", f"/{container}", query={"restype": "container", "comp": "list"})
    assert status == 200, body[:300]
    return [el.text or "" for el in ET.fromstring(body).iter("Name")]


def test_file_fields_under_djangos_test_runner(
    project_env: dict[str, str],
    tmp_path: Path,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    azure_container: str,
) -> None:
    output = _run_django_tests("tests.django_project.recordings.tests.FileFieldTests", project_env, tmp_path)
    assert re.search(r"Ran 7 tests", output), output[-3000:]
    assert _s3_keys(s3_server, s3_bucket) == []
    assert _azure_names(azurite, azure_container) == []
    assert os.listdir(project_env["UNISTORE_TEST_SPOOL_DIR"]) == [], "open() left a spooled download behind"
    for secret in (s3_server.secret_key, azurite.account_key):
        assert secret not in output


@pytest.mark.parametrize(
    ("test", "limit_mib"),
    [
        ("test_default_options_stay_within_parts_in_flight", 80),
        ("test_one_part_in_flight_stays_well_under_the_file_size", 40),
    ],
)
def test_64_mib_upload_peak_rss_in_a_fresh_process(
    test: str,
    limit_mib: float,
    project_env: dict[str, str],
    tmp_path: Path,
    s3_server: servers.S3Server,
    s3_bucket: str,
) -> None:
    output = _run_django_tests(f"tests.django_project.recordings.tests.BigUploadTests.{test}", project_env, tmp_path)
    growths = {label: float(mib) for label, mib in re.findall(r"PEAK-RSS \w+: (.+?): \+([0-9.]+) MiB", output)}
    print(growths)  # the numbers, in pytest's output with -s
    assert set(growths) == {"save from a TemporaryUploadedFile", "save streamed from chunks", "open and read both"}
    assert all(growth < limit_mib for growth in growths.values()), growths
    assert _s3_keys(s3_server, s3_bucket) == []
