"""The signed-PUT path (`unistore.providers._s3_put`) against botocore's own SigV4 signer, and
its error parsing. The real server tests (SeaweedFS checks every signature) cover the rest."""

from __future__ import annotations

import calendar
import time

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials

from unistore.providers._s3_put import Credentials, Signer, parse_error, quote_key

KEYS = ["plain.wav", "with space/and+plus=eq&amp.mp4", "ünïcødé/日本語.bin", "tilde~/percent%20/semi;colon"]


@pytest.mark.parametrize("token", [None, "SESSION/token+value=="])
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("query", [{}, {"partNumber": "7", "uploadId": "a/b+c=="}])
def test_signature_matches_botocore(key: str, query: dict[str, str], token: str | None) -> None:
    host = "127.0.0.1:9000"
    path = "/recordings/" + quote_key(key)
    headers = {
        "content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
        "content-type": "audio/wav",
        "if-none-match": "*",
        "x-amz-meta-meeting_id": "  m-42  ",
    }
    url = f"http://{host}{path}"
    if query:
        url += "?" + "&".join(f"{k}={quote_key(v).replace('/', '%2F').replace('+', '%2B').replace('=', '%3D')}"
                              for k, v in sorted(query.items()))
    reference = AWSRequest(method="PUT", url=url, headers=dict(headers), data=b"body")
    reference.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(BotoCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token), "s3",
                "eu-central-1").add_auth(reference)
    stamp = reference.headers["X-Amz-Date"]
    now = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))

    ours = Signer("eu-central-1").sign(
        "PUT", host, path, query, headers,
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token), now=now,
    )
    assert ours["authorization"] == reference.headers["Authorization"]
    assert ours["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert ("x-amz-security-token" in ours) == (token is not None)
    assert "host" not in ours, "aiohttp sends Host from the URL"


def test_signing_key_is_cached_per_day_and_secret() -> None:
    signer = Signer("us-east-1")
    creds = Credentials("AK", "SECRET")
    a = signer.sign("PUT", "h", "/b/k", {}, {}, creds, now=0)["authorization"]
    b = signer.sign("PUT", "h", "/b/k", {}, {}, Credentials("AK", "OTHER"), now=0)["authorization"]
    assert a != b and signer.sign("PUT", "h", "/b/k", {}, {}, creds, now=0)["authorization"] == a


def test_error_answers_take_botocores_shape() -> None:
    body = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
    shaped = parse_error(503, body, {"x-amz-request-id": "r1"})
    assert shaped["Error"] == {"Code": "SlowDown", "Message": "Reduce your rate"}
    assert shaped["ResponseMetadata"]["HTTPStatusCode"] == 503
    # no body (or not XML): the status is the code, as botocore does for HEAD
    assert parse_error(502, b"<html>bad gateway", {})["Error"]["Code"] == "502"
    assert parse_error(412, b"", {})["Error"]["Code"] == "412"


def test_credentials_repr_hides_secrets() -> None:
    text = repr(Credentials("AKID", "very-secret", "tok-secret"))
    assert "very-secret" not in text and "tok-secret" not in text and "AKID" in text
