"""`unistore doctor` through a real subprocess against SeaweedFS (or MinIO) and Azurite: a healthy
setup passes every check and leaves no probe behind; wrong keys, a missing container and a
blackholed endpoint (tests/faultproxy.py) each fail the right check, with the fix its error class
carries, within the timeout; the exit status is what a readiness probe needs."""

from __future__ import annotations

import base64
import json
import os
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from tests import servers
from tests.clirun import run_cli
from tests.conftest import unique_name
from tests.faultproxy import ThreadedFaultProxy

pytestmark = pytest.mark.servers

PROVIDER_CHECKS = ["credentials", "bucket", "write", "read", "delete"]


@pytest.fixture
def container(azurite: servers.AzuriteServer) -> str:
    name = unique_name("doc")
    azurite.create_container(name)
    return name


@pytest.fixture
def both_env(
    s3_server: servers.S3Server, s3_bucket: str, azurite: servers.AzuriteServer, container: str
) -> dict[str, str]:
    return {"STORAGE_UPLOAD_MODE": "both", **s3_server.env(s3_bucket), **azurite.env(container)}


def statuses(document: dict[str, Any], target: str) -> dict[str, str]:
    return {c["check"]: c["status"] for c in document["checks"] if c["target"] == target}


def check(document: dict[str, Any], target: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in document["checks"] if c["target"] == target and c["check"] == name)
    return found


def s3_keys(server: servers.S3Server, bucket: str, prefix: str) -> list[str]:
    status, _, body = server.request("GET", f"/{bucket}", query={"list-type": "2", "prefix": prefix})
    assert status == 200, body
    return [el.text or "" for el in ET.fromstring(body).iter() if el.tag.endswith("Key")]


def azure_keys(server: servers.AzuriteServer, container: str, prefix: str) -> list[str]:
    status, _, body = server.request(
        "GET", f"/{container}", query={"restype": "container", "comp": "list", "prefix": prefix}
    )
    assert status == 200, body
    return [el.text or "" for el in ET.fromstring(body).iter("Name")]


def test_doctor_on_a_healthy_setup_passes_every_check_and_leaves_nothing(
    both_env: dict[str, str],
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    container: str,
) -> None:
    done = run_cli("doctor", env=both_env)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split()[:3] for line in done.stdout.splitlines()[1:-1]]
    assert rows == [["settings", "settings", "pass"], ["settings", "providers", "pass"]] + [
        [name, c, "pass"] for name in ("s3", "azure") for c in PROVIDER_CHECKS
    ], done.stdout
    assert f"bucket {s3_bucket!r} exists" in done.stdout and f"container {container!r} exists" in done.stdout
    assert done.stdout.splitlines()[-1] == "doctor: all 12 checks passed"
    assert done.stderr == ""

    document = json.loads(run_cli("doctor", "--json", env=both_env).stdout)
    assert document["ok"] is True and len(document["checks"]) == 12
    assert all(c["status"] == "pass" and c["fix"] is None for c in document["checks"])
    assert s3_keys(s3_server, s3_bucket, ".unistore/") == []
    assert azure_keys(azurite, container, ".unistore/") == []


def test_doctor_with_wrong_keys_fails_credentials_with_each_fix(
    both_env: dict[str, str], azurite: servers.AzuriteServer, container: str
) -> None:
    """Wrong S3 secret and wrong Azure account key: each provider's `credentials` fails with the
    hint of its AuthenticationError, the rest is skipped, exit 1, and no key is ever printed."""
    wrong_secret = "wrong-secret-" + "x" * 27
    wrong_key = base64.b64encode(os.urandom(64)).decode()
    env = {k: v for k, v in both_env.items() if k != "AZURE_STORAGE_CONNECTION_STRING"}
    env.update(azurite.env(container, auth="account_key"))
    env.update(AWS_SECRET_ACCESS_KEY=wrong_secret, AZURE_STORAGE_ACCOUNT_KEY=wrong_key)
    done = run_cli("doctor", env=env)
    assert done.returncode == 1
    assert wrong_secret not in done.stdout + done.stderr and wrong_key not in done.stdout + done.stderr
    fixes = [line for line in done.stdout.splitlines() if line.startswith("fix ")]
    assert [f.split(":")[0] for f in fixes] == ["fix s3 credentials", "fix azure credentials"], done.stdout
    assert "AWS_ACCESS_KEY_ID" in fixes[0] and "AZURE_STORAGE_ACCOUNT_KEY" in fixes[1], fixes
    assert done.stdout.splitlines()[-1] == "doctor: 2 of 12 checks failed (s3 credentials, azure credentials)"

    document = json.loads(run_cli("doctor", "--json", env=env).stdout)
    assert document["ok"] is False
    for name in ("s3", "azure"):
        assert statuses(document, name) == dict(zip(PROVIDER_CHECKS, ["fail"] + ["skip"] * 4, strict=True))


def test_doctor_on_a_missing_container_names_it(both_env: dict[str, str]) -> None:
    """S3 passes everything; Azure's credentials pass and its `bucket` check fails, naming the
    container and the variable to fix; exit 1."""
    missing = unique_name("gone")
    env = {**both_env, "AZURE_STORAGE_CONTAINER_NAME": missing}
    document = json.loads(run_cli("doctor", "--json", env=env).stdout)
    assert document["ok"] is False
    assert set(statuses(document, "s3").values()) == {"pass"}
    assert statuses(document, "azure") == {
        "credentials": "pass", "bucket": "fail", "write": "skip", "read": "skip", "delete": "skip"
    }
    bucket = check(document, "azure", "bucket")
    assert missing in bucket["detail"] + bucket["fix"]
    assert "AZURE_STORAGE_CONTAINER_NAME" in bucket["fix"]
    assert run_cli("doctor", env=env).returncode == 1


@pytest.mark.parametrize("dark", ["s3", "azure"])
def test_doctor_on_a_blackholed_endpoint_returns_within_its_timeout(
    dark: str, both_env: dict[str, str], s3_server: servers.S3Server, azurite: servers.AzuriteServer
) -> None:
    """One provider behind a proxy that accepts connections and never answers: with
    `--timeout 2`, its `credentials` check fails after 2 s and the rest of it is skipped, the
    other provider passes meanwhile, and the whole process (interpreter start and SDK imports
    included) is done long before that SDK's own timeouts (60 s reads, retries) would end it."""
    upstream = s3_server.endpoint if dark == "s3" else azurite.blob_url
    proxy = ThreadedFaultProxy.for_url(upstream, seed=16)
    proxy.start()
    try:
        proxy.blackhole = True
        env = dict(both_env)
        if dark == "s3":
            env["AWS_ENDPOINT_URL"] = proxy.proxied_url(upstream)
        else:
            env["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string.replace(
                upstream, proxy.proxied_url(upstream)
            )
        began = time.monotonic()
        done = run_cli("doctor", "--json", "--timeout", "2", env=env, timeout=60)
        elapsed = time.monotonic() - began
        swallowed = proxy.stats.blackholed
    finally:
        proxy.stop()
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    credentials = check(document, dark, "credentials")
    assert credentials["status"] == "fail" and credentials["detail"] == "no answer within 2s (--timeout)"
    assert 2.0 <= credentials["seconds"] < 2.5
    assert statuses(document, dark) == dict(zip(PROVIDER_CHECKS, ["fail"] + ["skip"] * 4, strict=True))
    other = "azure" if dark == "s3" else "s3"
    assert set(statuses(document, other).values()) == {"pass"}
    assert swallowed >= 1
    assert elapsed < 2.0 + 6.0, f"doctor took {elapsed:.1f}s"


def test_doctor_provider_option_and_bad_settings(both_env: dict[str, str]) -> None:
    """`--provider azure` checks Azure alone; settings that do not validate fail the first row
    (the variable named) and stop there, exit 1 — the probe is not ready."""
    only = json.loads(run_cli("doctor", "--provider", "azure", "--json", env=both_env).stdout)
    assert {c["target"] for c in only["checks"]} == {"settings", "azure"} and only["ok"] is True

    env = {k: v for k, v in both_env.items() if k != "AWS_RECORDING_STORAGE_BUCKET_NAME"}
    done = run_cli("doctor", env=env)
    assert done.returncode == 1
    assert "AWS_RECORDING_STORAGE_BUCKET_NAME" in done.stdout
    assert done.stdout.splitlines()[-1] == "doctor: 1 of 1 checks failed (settings settings)"
