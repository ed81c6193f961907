"""Azure only: stream a recording into Blob Storage, read it back chunk by chunk, share it
with a SAS URL, delete it.

    STORAGE_UPLOAD_MODE=azure
    AZURE_STORAGE_CONTAINER_NAME=recordings
    # one of: managed identity (production)
    AZURE_STORAGE_ACCOUNT_NAME=mystorageaccount
    # or a connection string (Azurite: UseDevelopmentStorage=true)
    AZURE_STORAGE_CONNECTION_STRING=...

    python -m tests.servers run --azure -- python examples/azure_only.py
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import urllib.request
from collections.abc import AsyncIterator

from unistore import Storage


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body


async def main() -> int:
    key = "recordings/azure-only/meeting.webm"
    sent = hashlib.sha256()

    async def recorder() -> AsyncIterator[bytes]:  # a live recording: 12 chunks of 1 MiB
        for _ in range(12):
            chunk = os.urandom(1024 * 1024)
            sent.update(chunk)
            yield chunk

    async with Storage.afrom_env() as storage:
        report = await storage.upload_stream(recorder(), key, content_type="video/webm")
        report.raise_for_failures()
        print(f"streamed {key} to {', '.join(report.succeeded)}")

        received = hashlib.sha256()
        async for chunk in storage.iter_bytes(key):  # bounded memory, however large the object
            received.update(chunk)
        print(f"read back chunk by chunk, identical: {received.digest() == sent.digest()}")

        url = await storage.presigned_url(key, expires_in=600)  # a SAS URL: never log it
        shared = await asyncio.to_thread(http_get, url)
        print(f"fetched through a SAS URL with plain urllib: {len(shared)} bytes")

        deleted = await storage.delete(key)
        print(f"deleted everywhere: {deleted.ok}; still held: {await storage.exists(key)}")
        return 0 if received.digest() == sent.digest() == hashlib.sha256(shared).digest() and deleted.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
