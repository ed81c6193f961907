"""The test-server harness itself (tests/servers.py), with the standard library only: no SDK.

Each server is started once for this module; the slowest step is SeaweedFS (3-7 s to start).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers

pytestmark = pytest.mark.servers

REPO = Path(__file__).resolve().parent.parent


def _pid_gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.S3Server]:
    server = servers.start_s3_server(tmp_path_factory.mktemp("harness-s3"))
    pid = server.pid
    try:
        yield server
    finally:
        server.close()
        if server.managed:
            assert _pid_gone(pid) and _pid_gone(server.pid), "stop() left the S3 server running"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.AzuriteServer]:
    with servers.start_azurite(tmp_path_factory.mktemp("harness-azurite")) as server:
        yield server


@pytest.fixture
def identity() -> Iterator[servers.IdentityEndpoint]:
    with servers.start_managed_identity_endpoint() as endpoint:
        yield endpoint


# -- S3 --------------------------------------------------------------------------------------


def test_s3_bucket_create_put_get(s3: servers.S3Server) -> None:
    assert s3.endpoint.startswith("http://127.0.0.1:")
    s3.create_bucket("harness-bucket")
    s3.create_bucket("harness-bucket")  # idempotent
    status, _, _ = s3.request("PUT", "/harness-bucket/dir/a key+ü.bin", body=b"payload")
    assert status == 200
    status, _, body = s3.request("GET", "/harness-bucket/dir/a key+ü.bin")
    assert (status, body) == (200, b"payload")
    status, _, body = s3.request("GET", "/harness-bucket", query={"list-type": "2", "prefix": "dir/"})
    assert status == 200 and "a key+ü.bin".encode() in body


def test_s3_rejects_unsigned_and_wrong_credentials(s3: servers.S3Server) -> None:
    assert s3.request("GET", "/")[0] == 200
    assert s3.request("GET", "/", signed=False)[0] == 403
    status, _, body = s3.request("GET", "/", secret_key="not-the-secret")
    assert status == 403 and b"SignatureDoesNotMatch" in body
    status, _, body = s3.request("GET", "/", access_key="AKNOTAKEY")
    assert status == 403 and b"InvalidAccessKeyId" in body


def test_s3_env(s3: servers.S3Server) -> None:
    env = s3.env("some-bucket")
    assert env == {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_RECORDING_STORAGE_BUCKET_NAME": "some-bucket",
    }
    assert s3.secret_key not in repr(s3)


def test_s3_kill_and_restart_keep_data(s3: servers.S3Server) -> None:
    if not s3.managed:
        pytest.skip("external S3 server")
    s3.create_bucket("harness-restart")
    assert s3.request("PUT", "/harness-restart/k", body=b"survives")[0] == 200
    old_pid = s3.pid
    s3.kill()
    assert _pid_gone(old_pid) and not s3.running
    s3.restart()
    assert s3.running and s3.pid != old_pid
    assert s3.request("GET", "/harness-restart/k")[::2] == (200, b"survives")
    s3.vacuum()


# -- Azurite ---------------------------------------------------------------------------------


def test_azurite_container_create_put_get(azurite: servers.AzuriteServer) -> None:
    assert azurite.blob_url == f"http://127.0.0.1:{azurite.port}/devstoreaccount1"
    assert f"BlobEndpoint={azurite.blob_url};" in azurite.connection_string
    azurite.create_container("harness")
    azurite.create_container("harness")  # idempotent
    headers = {"x-ms-blob-type": "BlockBlob"}
    assert azurite.request("PUT", "/harness/a b+ü.txt", body=b"hello", headers=headers)[0] == 201
    assert azurite.request("GET", "/harness/a b+ü.txt")[::2] == (200, b"hello")
    assert azurite.request("GET", "/harness/a b+ü.txt", signed=False)[0] == 403
    env = azurite.env("harness")
    assert env == {
        "AZURE_STORAGE_CONTAINER_NAME": "harness",
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }


def test_azurite_stop_leaves_no_process(tmp_path: Path) -> None:
    with servers.start_azurite(tmp_path / "az") as server:
        pid = server.pid
        assert server.running and not _pid_gone(pid)
    assert _pid_gone(pid) and not server.running
    assert (tmp_path / "az").exists()  # a given workdir is kept; a temporary one is removed


def test_azurite_oauth_https(tmp_path: Path) -> None:
    with servers.start_azurite(tmp_path / "az", oauth=True) as server:
        assert server.blob_url.startswith("https://127.0.0.1:")
        assert server.ca_cert is not None and server.ca_cert.exists()
        server.create_container("oauth")  # SharedKey still works in OAuth mode, over HTTPS
        status, _, body = server.request(
            "GET", "/oauth", query={"restype": "container", "comp": "list"}, signed=False, headers={}
        )
        assert status in (403, 404)
        env = server.env("oauth", auth="managed_identity")
        assert env["AZURE_STORAGE_ACCOUNT_URL"] == server.blob_url
        assert env["SSL_CERT_FILE"] == str(server.ca_cert)


# -- managed-identity endpoint ---------------------------------------------------------------


def _get(endpoint: servers.IdentityEndpoint, headers: dict[str, str], **query: str) -> tuple[int, dict[str, str]]:
    params = {"api-version": "2019-08-01", "resource": "https://storage.azure.com", **query}
    url = f"{endpoint.url}?{urllib.parse.urlencode(params)}"
    status, _, body = servers._http("GET", url, headers=headers)
    return status, json.loads(body)


def _claims(jwt: str) -> dict[str, object]:
    payload = jwt.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def test_identity_endpoint_rejects_missing_or_wrong_header(identity: servers.IdentityEndpoint) -> None:
    assert _get(identity, {})[0] == 401
    assert _get(identity, {"X-IDENTITY-HEADER": "wrong"})[0] == 401
    assert [r.status for r in identity.requests] == [401, 401]
    assert identity.token_requests == []


def test_identity_endpoint_issues_tokens_azurite_accepts(identity: servers.IdentityEndpoint) -> None:
    assert identity.env() == {"IDENTITY_ENDPOINT": identity.url, "IDENTITY_HEADER": identity.header_secret}
    status, payload = _get(identity, {"X-IDENTITY-HEADER": identity.header_secret}, client_id="my-client")
    assert status == 200
    assert payload["resource"] == "https://storage.azure.com" and payload["token_type"] == "Bearer"
    expires_on = int(payload["expires_on"])
    claims = _claims(payload["access_token"])
    assert claims["aud"] == "https://storage.azure.com"
    assert str(claims["iss"]).startswith("https://sts.windows.net/")
    nbf, iat = claims["nbf"], claims["iat"]
    assert isinstance(nbf, int) and isinstance(iat, int) and nbf <= iat
    assert claims["exp"] == expires_on and claims["appid"] == "my-client"
    assert [(r.status, r.client_id, r.resource) for r in identity.requests] == [
        (200, "my-client", "https://storage.azure.com")
    ]


def test_identity_endpoint_fail_with(identity: servers.IdentityEndpoint) -> None:
    good = {"X-IDENTITY-HEADER": identity.header_secret}
    identity.fail_with, identity.fail_times = 500, 1
    assert _get(identity, good)[0] == 500
    assert _get(identity, good)[0] == 200  # fail_times used up
    identity.fail_with, identity.fail_times = 400, None
    assert _get(identity, good)[0] == 400
    assert _get(identity, good)[0] == 400
    assert [r.status for r in identity.requests] == [500, 200, 400, 400]


def test_identity_endpoint_stop(identity: servers.IdentityEndpoint) -> None:
    identity.stop()
    with pytest.raises(OSError):
        servers._http("GET", identity.url, timeout=2)


# -- signing and the command line ------------------------------------------------------------


def test_sigv4_matches_aws_documented_example() -> None:
    # "GET Object" example of the AWS S3 SigV4 documentation (header-based auth).
    import datetime as dt

    headers = servers.sigv4_headers(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        headers={"Range": "bytes=0-9"},
        now=dt.datetime(2013, 5, 24, tzinfo=dt.UTC),
    )
    assert headers["Authorization"].endswith(
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_cli_run_azure_only() -> None:
    check = (
        "import os, sys; "
        "assert os.environ['STORAGE_UPLOAD_MODE'] == 'azure'; "
        "assert os.environ['AZURE_STORAGE_CONTAINER_NAME'] == 'cli-container'; "
        "assert 'AWS_ENDPOINT_URL' not in os.environ; "
        "sys.exit(7)"
    )
    res = subprocess.run(
        [sys.executable, "-m", "tests.servers", "run", "--azure", "--container", "cli-container", "--"]
        + [sys.executable, "-c", check],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_"))},
    )
    assert res.returncode == 7, res.stderr
