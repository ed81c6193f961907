"""S3 only: upload a recording, read it back, share it with a presigned URL, delete it.

    STORAGE_UPLOAD_MODE=s3
    AWS_RECORDING_STORAGE_BUCKET_NAME=recordings
    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...   # or unset: the standard AWS credential chain
    AWS_ENDPOINT_URL=http://127.0.0.1:8333             # S3-compatible servers only

    python -m tests.servers run --s3 -- python examples/s3_only.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from unistore import Storage


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body


async def main() -> int:
    key = "recordings/s3-only/meeting.webm"
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "meeting.webm"
        recording.write_bytes(os.urandom(3 * 1024 * 1024))
        original = recording.read_bytes()

        async with Storage.afrom_env() as storage:
            report = await storage.upload_file(recording, key, content_type="video/webm", delete_local=True)
            report.raise_for_failures()  # FanOutError naming the fix if S3 refused it
            print(f"uploaded {key} to {', '.join(report.succeeded)}; local file removed: {not recording.exists()}")

            info = await storage.download_file(key, Path(tmp) / "copy.webm")
            print(f"downloaded {info.size} bytes, identical: {(Path(tmp) / 'copy.webm').read_bytes() == original}")

            url = await storage.presigned_url(key, expires_in=600)  # a bearer credential: never log it
            shared = await asyncio.to_thread(http_get, url)
            print(f"fetched through a presigned URL with plain urllib: {len(shared)} bytes")

            deleted = await storage.delete(key)
            print(f"deleted everywhere: {deleted.ok}; still held: {await storage.exists(key)}")
            return 0 if shared == original and deleted.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
