"""The own signed-PUT path on AWS's shapes: what it does, and what it refuses by name.

Virtual-hosted-style addressing (`AWS_S3_ADDRESSING_STYLE=virtual`, AWS's default shape) on
both S3 paths: the own signed PUTs (`providers/_s3_put.py`: single puts and parts) and botocore's
calls (multipart start/complete, reads, listings), against a SeaweedFS that serves
`{bucket}.localhost` (`-s3.domainName=localhost`).

Names under `.localhost` do not resolve on this machine (glibc, `hosts: files dns`, has no
wildcard for them, and aiohttp resolves through getaddrinfo), so the test maps them to loopback
in `socket.getaddrinfo`: every byte still goes over a real socket, with the virtual host in the
Host header and the signature, and the server picks the bucket out of that host name."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.fixtures_s3 import S3_TEST_TRANSFER, new_bucket_name, remove_bucket
from unistore import ConfigError, StorageSettings
from unistore._multipart import MiB
from unistore.providers.s3 import S3Provider

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def virtual_host_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.S3Server]:
    with servers.start_seaweedfs(tmp_path_factory.mktemp("s3-virtual"), domain_name="localhost") as server:
        yield server


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`*.localhost` resolved to loopback; the names asked for, in order."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            asked.append(host)
            host = servers.LOOPBACK
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
async def virtual_provider(virtual_host_server: servers.S3Server) -> AsyncIterator[S3Provider]:
    bucket = new_bucket_name("vh")
    virtual_host_server.create_bucket(bucket)
    provider = S3Provider(
        bucket=bucket, endpoint_url=virtual_host_server.endpoint, region=virtual_host_server.region,
        access_key_id=virtual_host_server.access_key, secret_access_key=virtual_host_server.secret_key,
        addressing_style="virtual", transfer=S3_TEST_TRANSFER,
    )
    try:
        yield provider
    finally:
        await provider.aclose()
        remove_bucket(virtual_host_server, bucket)


def _payload(size: int) -> bytes:
    return (hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1))[:size]


@pytest.mark.parametrize("size", [64 * 1024, 12 * MiB], ids=["single-put", "multipart"])
async def test_upload_and_download_by_virtual_host(
    virtual_host_server: servers.S3Server, virtual_provider: S3Provider, resolved: list[str], tmp_path: Path,
    size: int,
) -> None:
    provider, data = virtual_provider, _payload(size)
    host = f"{provider.bucket}.localhost"
    assert provider.config.s3["addressing_style"] == "virtual"
    info = await provider.upload_bytes(data, "meetings/a b+c.mp4", metadata={"meeting_id": "42"})
    assert info.size == size
    assert resolved and set(resolved) == {host}  # every connection went to the virtual host
    # the object is the bucket's, as the server stores it (read path-style, by the bucket name)
    status, _, body = virtual_host_server.request("GET", f"/{provider.bucket}/meetings/a b+c.mp4")
    assert status == 200 and body == data
    assert await provider.download_bytes("meetings/a b+c.mp4") == data
    head = await provider.head("meetings/a b+c.mp4")
    assert head.size == size and head.metadata == {"meeting_id": "42"}
    await provider.download_file("meetings/a b+c.mp4", tmp_path / "out.mp4")
    assert (tmp_path / "out.mp4").read_bytes() == data
    assert [o.key async for o in provider.list("meetings/")] == ["meetings/a b+c.mp4"]
    await provider.delete("meetings/a b+c.mp4")
    assert not await provider.exists("meetings/a b+c.mp4")



# -- what the signer does not do: refused when configured, naming the variable and the fix --------


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        ("arn:aws:s3:eu-west-1:123456789012:accesspoint/recordings-ap", "access points"),
        ("arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap", "Multi-Region"),
        ("arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-01/bucket/rec", "Outposts"),
        ("recordings--usw2-az1--x-s3", "S3 Express One Zone"),
    ],
)
def test_bucket_shapes_the_signer_does_not_do_are_refused(
    monkeypatch: pytest.MonkeyPatch, bucket: str, expected: str
) -> None:
    variable = "AWS_RECORDING_STORAGE_BUCKET_NAME"
    with pytest.raises(ConfigError, match=expected) as from_provider:
        S3Provider(bucket=bucket)
    monkeypatch.setenv(variable, bucket)
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "s3")
    with pytest.raises(ConfigError, match=expected) as from_env:
        StorageSettings()
    for caught in (from_provider, from_env):
        assert tuple(caught.value.variables) == (variable,) and variable in str(caught.value)
    assert "bucket's own name" in str(from_env.value) or "general purpose bucket" in str(from_env.value)


@pytest.mark.parametrize(
    "name", ["x_amz_server_side_encryption", "X_AMZ_SERVER_SIDE_ENCRYPTION_AWS_KMS_KEY_ID",
             "server_side_encryption", "sse_customer_key", "SSEKMSKeyId", "x_amz_acl"],
)
@pytest.mark.parametrize("size", [1024, 6 * MiB], ids=["single-put", "multipart"])
async def test_encryption_request_in_metadata_is_refused_before_anything_is_written(
    make_s3_provider: Callable[..., S3Provider], name: str, size: int
) -> None:
    """There is no SSE-C or SSE-KMS setting: objects are encrypted by the bucket's default. A
    metadata name shaped like the request header would only be stored as x-amz-meta-*."""
    provider = make_s3_provider()
    with pytest.raises(ConfigError, match="bucket's default encryption"):
        await provider.upload_bytes(_payload(size), "enc/k", metadata={name: "aws:kms"})
    assert not await provider.exists("enc/k")
    client = await provider._client()
    uploads = await client.list_multipart_uploads(Bucket=provider.bucket)
    assert not uploads.get("Uploads")
    # ordinary metadata is unaffected
    await provider.upload_bytes(b"x", "enc/ok", metadata={"session_id": "1", "ssedata": "2"})
