"""Pytest plugin: S3 fixtures over the session's real S3-compatible server (`s3_server`,
defined in `tests/conftest.py`; SeaweedFS or MinIO, see `tests/servers.py`).

- `s3_bucket`: a fresh bucket per test, created on the server and deleted afterwards (SeaweedFS
  keeps one collection of volumes per bucket: left behind, they exhaust its volume slots).
- `make_s3_provider(**overrides)`: an `S3Provider` for the server and `s3_bucket`, with the
  small-transfer defaults of the test suite; every provider it made is closed at teardown.
"""

from __future__ import annotations

import contextlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests import servers
from unistore._multipart import MiB, Transfer
from unistore._retry import RetryPolicy
from unistore.providers.s3 import S3Provider

S3_TEST_TRANSFER = Transfer(
    threshold=5 * MiB,
    chunk_size=5 * MiB,
    max_concurrency=4,
    retry=RetryPolicy(attempts=3, deadline=10, base_delay=0.01),
)

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def new_bucket_name(prefix: str = "ut") -> str:
    """A unique, valid S3 bucket name (lowercase letters and digits, 3-63 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def _texts(body: bytes, path: str) -> list[str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    return [el.text or "" for el in root.iter(f"{_NS}{path}")] or [el.text or "" for el in root.iter(path)]


def remove_bucket(server: servers.S3Server, bucket: str) -> None:
    """Best effort: abort uploads, delete objects, delete the bucket (stdlib requests, no SDK).
    SeaweedFS deletes a non-empty bucket at once; MinIO wants it empty first."""
    with contextlib.suppress(OSError):
        status, _, _ = server.request("DELETE", f"/{bucket}")
        if status in (200, 204, 404):
            return
        for _ in range(20):  # pages of up to 1000 keys
            status, _, body = server.request("GET", f"/{bucket}", query={"list-type": "2"})
            keys = _texts(body, "Key") if status == 200 else []
            if not keys:
                break
            for key in keys:
                server.request("DELETE", f"/{bucket}/{key}")
        status, _, body = server.request("GET", f"/{bucket}", query={"uploads": ""})
        if status == 200:
            root = ET.fromstring(body)
            for upload in root.iter(f"{_NS}Upload"):
                key = upload.findtext(f"{_NS}Key") or ""
                upload_id = upload.findtext(f"{_NS}UploadId") or ""
                server.request("DELETE", f"/{bucket}/{key}", query={"uploadId": upload_id})
        server.request("DELETE", f"/{bucket}")


@pytest.fixture
def s3_bucket(s3_server: servers.S3Server) -> Iterator[str]:
    name = new_bucket_name()
    s3_server.create_bucket(name)
    try:
        yield name
    finally:
        remove_bucket(s3_server, name)


def s3_provider_kwargs(server: servers.S3Server, bucket: str) -> dict[str, Any]:
    """Constructor arguments that point an `S3Provider` at `server` and `bucket`."""
    return {
        "bucket": bucket,
        "endpoint_url": server.endpoint,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
        "region": server.region,
        "transfer": S3_TEST_TRANSFER,
    }


@pytest.fixture
async def make_s3_provider(
    s3_server: servers.S3Server, s3_bucket: str
) -> AsyncIterator[Callable[..., S3Provider]]:
    made: list[S3Provider] = []

    def make(**overrides: Any) -> S3Provider:
        provider = S3Provider(**{**s3_provider_kwargs(s3_server, s3_bucket), **overrides})
        made.append(provider)
        return provider

    try:
        yield make
    finally:
        for provider in made:
            await provider.aclose()
