"""The Put Blob path (`unistore.providers._azure_put`): Shared Key signatures against the SDK's
own policy. The real-server tests run it in all three auth modes against Azurite."""

from __future__ import annotations

import base64
import urllib.parse

import pytest
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy

from unistore.providers._azure_put import blob_path, block_query, shared_key_signature

ACCOUNT = "devstoreaccount1"
KEY = base64.b64encode(b"not-a-real-account-key-but-32-bytes!").decode()
KEYS = ["plain.wav", "with space/and+plus=eq&amp.mp4", "ünïcødé/日本語.bin", "tilde~/semi;colon"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("conditional", [False, True])
def test_shared_key_matches_the_sdk(key: str, conditional: bool) -> None:
    path = blob_path("/devstoreaccount1/recordings", key)
    headers = {
        "x-ms-version": "2025-01-05",
        "x-ms-date": "Tue, 01 Dec 2026 20:00:00 GMT",
        "x-ms-blob-type": "BlockBlob",
        "content-length": "65536",
        "content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
        "x-ms-blob-content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
        "x-ms-blob-content-type": "audio/wav",
        "x-ms-meta-Meeting_Id": "m-42",  # metadata keeps its case; the signature compares names in lower case
    }
    if conditional:
        headers["if-none-match"] = "*"
    request = HttpRequest("PUT", f"http://127.0.0.1:10000{path}", headers=dict(headers))
    policy = SharedKeyCredentialPolicy(ACCOUNT, KEY)  # type: ignore[no-untyped-call]
    policy.on_request(PipelineRequest(request, PipelineContext(None)))  # type: ignore[no-untyped-call]
    ours = shared_key_signature(ACCOUNT, base64.b64decode(KEY), "PUT", path, {}, headers)
    assert ours == request.headers["Authorization"]


def test_blob_paths_are_encoded_as_the_sdk_encodes_them() -> None:
    assert blob_path("/acct/c/", "a b/ü~.wav") == "/acct/c/a%20b/%C3%BC~.wav"
    assert blob_path("/c", "x+y=z") == "/c/x%2By%3Dz"


@pytest.mark.parametrize("block_id", ["0f3c9a-000001", "id/with+chars?"])
def test_put_block_shared_key_matches_the_sdk(block_id: str) -> None:
    path = blob_path("/devstoreaccount1/recordings", "meeting/rec.mp4")
    query = block_query(block_id)
    # the id travels in base64, as the SDK's stage_block sends it
    assert base64.b64decode(urllib.parse.unquote(query["blockid"])).decode() == block_id
    headers = {
        "x-ms-version": "2025-01-05",
        "x-ms-date": "Tue, 01 Dec 2026 20:00:00 GMT",
        "content-length": "8388608",
        "x-ms-content-crc64": "YeJLfssylmU=",
    }
    url = f"http://127.0.0.1:10000{path}?" + "&".join(f"{k}={v}" for k, v in query.items())
    request = HttpRequest("PUT", url, headers=dict(headers))
    policy = SharedKeyCredentialPolicy(ACCOUNT, KEY)  # type: ignore[no-untyped-call]
    policy.on_request(PipelineRequest(request, PipelineContext(None)))  # type: ignore[no-untyped-call]
    ours = shared_key_signature(ACCOUNT, base64.b64decode(KEY), "PUT", path, query, headers)
    assert ours == request.headers["Authorization"]
