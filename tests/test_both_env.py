"""`STORAGE_UPLOAD_MODE=both` end to end, configured only through the environment as an
operator would: one upload_file lands the same bytes in the S3 server and in Azurite."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import unique_name
from unistore import Storage

pytestmark = pytest.mark.servers


async def test_both_from_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    s3_server: servers.S3Server,
    azurite: servers.AzuriteServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bucket, container = unique_name("both"), unique_name("both")
    s3_server.create_bucket(bucket)
    azurite.create_container(container)
    for name, value in {**s3_server.env(bucket), **azurite.env(container)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "both")
    monkeypatch.setenv("STORAGE_MULTIPART_THRESHOLD", "8MiB")
    monkeypatch.setenv("STORAGE_CHUNK_SIZE", "5MiB")
    data = os.urandom(3 * 1024 * 1024) * 6  # 18 MiB: multipart on both
    src = tmp_path / "meeting.mp4"
    src.write_bytes(data)
    caplog.set_level(logging.INFO, logger="unistore")

    async with Storage.from_env() as storage:
        assert list(storage.providers) == ["s3", "azure"]
        report = await storage.upload_file(src, "recordings/meeting.mp4", delete_local=True)
        assert report.ok, report.errors
        assert not src.exists()
        for name in ("s3", "azure"):
            copy = tmp_path / f"{name}.mp4"
            await storage.provider(name).download_file("recordings/meeting.mp4", copy)
            assert copy.read_bytes() == data, name
            assert (await storage.provider(name).head("recordings/meeting.mp4")).content_type == "video/mp4"

    assert "Using connection string authentication for Azure Storage" in caplog.text
    assert "Uploading to configured providers: AWS S3, Azure Blob Storage" in caplog.text
    assert "Successfully uploaded recording to AWS S3" in caplog.text
    assert "Successfully uploaded recording to Azure Blob Storage" in caplog.text
    assert "Unified storage manager finished uploading to all providers" in caplog.text
    for secret in (s3_server.secret_key, azurite.account_key):
        assert secret not in caplog.text
