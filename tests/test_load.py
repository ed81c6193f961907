"""Load: 500 concurrent uploads in one process through one `Storage` fanning out to S3 (the real
S3-compatible server) and Azure (Azurite, connection string): 495 small objects of 4-64 KiB and
5 multipart files. All must succeed on both providers, land byte-identical, and leave nothing
behind: after `aclose()` the event loop's tasks and this process's open file descriptors are
back to their baseline, and the buffer budget is back to zero. While the load runs, open
descriptors stay bounded by the two connection pools (64 connections each), not by the number
of uploads.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_cancellation import open_fds, wait_for_fds, wait_for_tasks
from unistore import Storage, UploadReport
from unistore._budget import default_budget
from unistore._multipart import MiB
from unistore.providers import Provider
from unistore.providers.azure import POOL_MIN, AzureBlobProvider
from unistore.providers.s3 import S3Provider

pytestmark = [pytest.mark.servers, pytest.mark.slow]

SEED = 500
SMALL = 495
MULTIPART = 5
FD_SLACK = 48
"""Descriptors beyond the two pools that the load may hold at once: source files being read in
worker threads, sockets being closed, the event loop's own."""


async def _sample_fds(peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], len(open_fds()))
        try:
            await asyncio.wait_for(stop.wait(), 0.02)
        except TimeoutError:
            pass


async def _listing(provider: Provider) -> dict[str, int]:
    return {info.key: info.size async for info in provider.list("load/")}


async def test_500_concurrent_uploads_to_s3_and_azure(
    tmp_path: Path,
    make_s3_provider: Callable[..., S3Provider],
    make_azure_provider: Callable[..., AzureBlobProvider],
) -> None:
    fds_before = open_fds()
    tasks_before = set(asyncio.all_tasks())
    rng = random.Random(SEED)
    pool = rng.randbytes(16 * MiB)

    s3, azure = make_s3_provider(), make_azure_provider("connection_string")
    expected: dict[str, bytes] = {}
    jobs: list[tuple[str, bytes | Path]] = []
    for number in range(SMALL):
        size = rng.randint(4 * 1024, 64 * 1024)
        offset = rng.randint(0, len(pool) - size)
        key = f"load/small/{number:03d}.bin"
        expected[key] = pool[offset : offset + size]
        jobs.append((key, expected[key]))
    for number in range(MULTIPART):
        size = rng.randint(6 * MiB, 12 * MiB)  # above the 5 MiB threshold: 2-3 parts each
        offset = rng.randint(0, len(pool) - size)
        key = f"load/multipart/{number}.bin"
        expected[key] = pool[offset : offset + size]
        path = tmp_path / f"{number}.bin"
        path.write_bytes(expected[key])
        jobs.append((key, path))
    rng.shuffle(jobs)

    peak = [len(fds_before)]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_fds(peak, stop))
    async with Storage([s3, azure]) as storage:

        async def upload(key: str, source: bytes | Path) -> UploadReport:
            if isinstance(source, Path):
                return await storage.upload_file(source, key)
            return await storage.upload_bytes(source, key)

        loop = asyncio.get_running_loop()
        began = loop.time()
        reports = await asyncio.gather(*(upload(key, source) for key, source in jobs))
        elapsed = loop.time() - began
        stop.set()
        await sampler

        failed = {r.key: {n: str(e) for n, e in r.errors.items()} for r in reports if not r.ok}
        assert not failed, f"{len(failed)} of {len(jobs)} uploads failed: {list(failed.items())[:5]}"
        for report in reports:
            assert set(report.succeeded) == {"s3", "azure"}
            assert all(r.bytes == len(expected[report.key]) for r in report.results.values())

        for provider in (s3, azure):
            assert await _listing(provider) == {k: len(v) for k, v in expected.items()}, provider.name
        # contents: every multipart object and a sample of the small ones, on both sides
        sample = [k for k in expected if "multipart" in k] + rng.sample(sorted(expected), 40)
        for key in sample:
            for provider in (s3, azure):
                data = await provider.download_bytes(key)
                assert hashlib.md5(data).digest() == hashlib.md5(expected[key]).digest(), (provider.name, key)

    assert default_budget().held == 0
    pools = s3.max_pool_connections + max(POOL_MIN, 4 * azure.transfer.max_concurrency)
    assert peak[0] <= len(fds_before) + pools + FD_SLACK, (
        f"{peak[0]} descriptors open at the peak, {len(fds_before)} before: the pools do not bound them"
    )
    assert not await wait_for_tasks(tasks_before, timeout=10), "tasks left after aclose()"
    leaked = await wait_for_fds(fds_before)
    assert not leaked, f"file descriptors left open after aclose(): {leaked}"
    # a generous bound: on 2 loaded cores this takes a few seconds; minutes would mean a stall
    assert elapsed < 120, f"500 uploads took {elapsed:.1f}s"
