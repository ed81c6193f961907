"""Streaming fan-out against the real servers (S3-compatible server and Azurite): one source,
read once, to both; a provider failing midway is dropped while the other completes; an
exception or a cancellation leaves nothing anywhere."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from unistore import Storage, TransientError
from unistore._multipart import MiB
from unistore.providers._base import BaseProvider

pytestmark = pytest.mark.servers


def uneven(total: int, seed: int = 1) -> list[bytes]:
    """Chunks of irregular sizes (1 byte to ~3 MiB) adding up to `total`."""
    rng = __import__("random").Random(seed)
    sizes, left = [], total
    while left:
        step = min(left, rng.choice([1, 4093, 65_536, 700_001, 3 * MiB + 11]))
        sizes.append(step)
        left -= step
    block = os.urandom(4 * MiB)
    out, pos = [], 0
    for step in sizes:
        out.append((block * (step // len(block) + 2))[pos % len(block) : pos % len(block) + step])
        pos += step
    return out


async def incomplete_s3_uploads(s3: Any, key: str) -> list[Any]:
    client = await s3._client()
    response = await client.list_multipart_uploads(Bucket=s3.bucket, Prefix=key)
    return list(response.get("Uploads", []))


@pytest.fixture
async def both(
    make_s3_provider: Callable[..., BaseProvider], make_azure_provider: Callable[..., BaseProvider]
) -> AsyncIterator[Storage]:
    storage = Storage([make_s3_provider(), make_azure_provider()])
    async with storage:
        yield storage


async def test_stream_40mib_uneven_chunks_lands_identical_in_both(both: Storage) -> None:
    chunks = uneven(40 * MiB)
    data = b"".join(chunks)
    key = f"stream/{os.urandom(4).hex()}.webm"
    async with both.open_writer(key, content_type="video/webm") as writer:
        for chunk in chunks:
            await writer.write(chunk)
    report = writer.report
    assert report is not None and report.ok, report and report.errors
    for provider in both.providers.values():
        assert await provider.download_bytes(key) == data
        assert (await provider.head(key)).content_type == "video/webm"


async def test_s3_failing_at_second_part_is_dropped_azure_completes(both: Storage) -> None:
    s3 = both.provider("s3")
    original = s3._put_part  # type: ignore[attr-defined]

    async def failing(handle: Any, number: int, data: bytes, md5: bytes) -> Any:
        if number == 2:
            raise TransientError("injected: connection reset on part 2", provider="s3", code="Injected")
        return await original(handle, number, data, md5)

    s3._put_part = failing  # type: ignore[attr-defined]
    chunks = uneven(30 * MiB, seed=2)
    key = f"stream/{os.urandom(4).hex()}.webm"
    async with both.open_writer(key) as writer:
        for chunk in chunks:
            await writer.write(chunk)
    report = writer.report
    assert report is not None
    assert report.succeeded == ["azure"] and report.failed == ["s3"]
    assert "injected" in str(report.results["s3"].error)
    assert await both.provider("azure").download_bytes(key) == b"".join(chunks)
    assert not await s3.exists(key)
    assert await incomplete_s3_uploads(s3, key) == [], "the failed multipart upload was aborted"


async def test_exception_in_body_leaves_nothing_in_either_service(both: Storage) -> None:
    key = f"stream/{os.urandom(4).hex()}.webm"
    with pytest.raises(RuntimeError, match="recorder crashed"):
        async with both.open_writer(key) as writer:
            for chunk in uneven(17 * MiB, seed=3):
                await writer.write(chunk)
            raise RuntimeError("recorder crashed")
    for provider in both.providers.values():
        assert not await provider.exists(key)
        assert [i async for i in provider.list(key)] == []
    assert await incomplete_s3_uploads(both.provider("s3"), key) == []


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


async def test_cancelled_writer_leaves_nothing_and_no_task(both: Storage) -> None:
    key = f"stream/{os.urandom(4).hex()}.webm"
    started = asyncio.Event()
    sockets_before = open_sockets()
    await both.provider("s3").exists("warm-up")  # open the clients before counting
    await both.provider("azure").exists("warm-up")
    tasks_before = asyncio.all_tasks()

    async def record() -> None:
        async with both.open_writer(key) as writer:
            for i, chunk in enumerate(uneven(200 * MiB, seed=4)):
                await writer.write(chunk)
                if i == 20:
                    started.set()

    task = asyncio.create_task(record())
    await asyncio.wait_for(started.wait(), 60)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(10):
        await asyncio.sleep(0.01)
    leftover = asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
    assert leftover == set(), leftover
    for provider in both.providers.values():
        assert not await provider.exists(key)
    assert await incomplete_s3_uploads(both.provider("s3"), key) == []
    await both.aclose()
    gc.collect()
    assert open_sockets() <= sockets_before, "no socket outlives the providers"
