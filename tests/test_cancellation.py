"""Cancellation at random points of 100 uploads, on every provider and through a fan-out.

A seeded RNG (`UNISTORE_CANCEL_SEED` overrides it, to explore) picks for each upload a target
(memory, local, S3, Azure in connection-string mode, or a `Storage` fanning out to S3 + Azure),
a way in (bytes, file, stream), a size (single put or multipart: the test transfer's threshold
and parts are 5 MiB) and a cancel point: after 0-300 ms, or after 1-60 turns of the event loop
(the await points an upload passes through before and between its requests), or, for one upload
per target, at once, before the upload's first step. Ten run at once, each with its own
canceller. Once everything has settled:

- an upload that returned stored the full bytes; a cancelled one left either nothing or, if it
  had completed before the cancel landed, the full bytes: never a prefix;
- no multipart upload is left open on S3, no upload state in the memory provider, no staged
  file under the local root's `.unistore/staging`, and the buffer budget is back to zero;
- after the providers are closed, the event loop's tasks and this process's open file
  descriptors are back to their baseline (the suite turns ResourceWarning into errors, and a
  final `gc.collect()` makes any unclosed socket or session warn inside this test).

"What settled" is made deterministic, not timed: cancelled `to_thread` work goes on in its worker
thread, so the test's default executor is swapped for a fresh one and shut down (which waits for
every job it was given) before checking; tasks and descriptors are polled until they return,
with a generous deadline.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from unistore import Storage, UploadReport
from unistore._budget import default_budget
from unistore._errors import NotFoundError
from unistore._multipart import MiB, _background
from unistore.providers import LocalProvider, MemoryProvider, Provider
from unistore.providers.azure import AzureBlobProvider
from unistore.providers.s3 import S3Provider

pytestmark = [pytest.mark.servers, pytest.mark.slow]

SEED = int(os.environ.get("UNISTORE_CANCEL_SEED", "20240607"))
UPLOADS = 100
AT_ONCE = 10
MAX_DELAY_S = 0.3
MAX_LOOP_TURNS = 60
THRESHOLD = 5 * MiB  # the test transfer's (tests/conftest.py, fixtures_s3.py, fixtures_azure.py)
SETTLE_S = 30.0
TARGETS = ("memory", "local", "s3", "azure", "fanout")
WAYS = ("bytes", "file", "stream")


# -- leak probes, shared with tests/test_load.py -----------------------------------------------


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what they point at."""
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own descriptor, already closed
            continue
    return fds


async def wait_for_fds(baseline: dict[int, str], timeout: float = 10.0) -> dict[int, str]:
    """Poll until no descriptor beyond `baseline` is open (closing transports need a few loop
    turns); returns the ones still open at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        gc.collect()
        extra = {fd: target for fd, target in open_fds().items() if baseline.get(fd) != target}
        if not extra or asyncio.get_running_loop().time() > deadline:
            return extra
        await asyncio.sleep(0.05)


async def wait_for_tasks(baseline: set[asyncio.Task[Any]], timeout: float = SETTLE_S) -> set[asyncio.Task[Any]]:
    """Poll until every task not in `baseline` is done; returns those still pending."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        extra = {t for t in asyncio.all_tasks() if t not in baseline and not t.done()}
        if not extra or asyncio.get_running_loop().time() > deadline:
            return extra
        await asyncio.sleep(0.02)


def fresh_default_executor() -> ThreadPoolExecutor:
    """Give the running loop a new default executor (what `asyncio.to_thread` uses); returns it."""
    executor = ThreadPoolExecutor(thread_name_prefix="unistore-test")
    asyncio.get_running_loop().set_default_executor(executor)
    return executor


async def drain_default_executor(current: ThreadPoolExecutor) -> ThreadPoolExecutor:
    """Wait until every job given to `current`, the loop's default executor, has finished: a
    cancelled `asyncio.to_thread` call goes on running in its thread. The loop gets a fresh
    default executor and `current` is shut down, which waits for its queued and running jobs.
    Returns the new executor (the loop shuts it down when it closes)."""
    fresh = fresh_default_executor()
    await asyncio.to_thread(current.shutdown, wait=True)
    return fresh


# -- the uploads ---------------------------------------------------------------------------------


@dataclass
class Upload:
    number: int
    target: str
    way: str
    size: int
    offset: int
    cancel_after_s: float | None
    cancel_after_turns: int | None
    outcome: str = "pending"  # "returned", "cancelled" or an error's repr
    report: UploadReport | None = None
    stored_on: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"cancel/{self.number:03d}-{self.target}-{self.way}-{self.size}.bin"

    def data(self, pool: bytes) -> bytes:
        return pool[self.offset : self.offset + self.size]


def plan(rng: random.Random, pool_size: int) -> list[Upload]:
    uploads = []
    for number in range(UPLOADS):
        multipart = rng.random() < 0.4
        size = rng.randint(THRESHOLD + 1, 14 * MiB) if multipart else rng.choice(
            [1, rng.randint(2, 64 * 1024), rng.randint(64 * 1024, 2 * MiB), THRESHOLD]
        )
        by_time = rng.random() < 0.5
        uploads.append(
            Upload(
                number=number,
                target=TARGETS[number % len(TARGETS)],
                way=rng.choice(WAYS),
                size=size,
                offset=rng.randint(0, pool_size - size),
                cancel_after_s=rng.uniform(0, MAX_DELAY_S) if by_time else None,
                cancel_after_turns=None if by_time else rng.randint(1, MAX_LOOP_TURNS),
            )
        )
    # Whether a cancel lands before an upload completes depends on the machine's speed; one
    # upload per target cancelled before its first step (turns = 0) makes the coverage certain.
    for target in TARGETS:
        first = next(u for u in uploads if u.target == target)
        first.cancel_after_s, first.cancel_after_turns = None, 0
    return uploads


async def chunks_of(data: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    """A live source: uneven chunks, a loop turn between them."""
    view = memoryview(data)
    while view:
        step = rng.randint(64 * 1024, 2 * MiB)
        yield bytes(view[:step])
        view = view[step:]
        await asyncio.sleep(0)


async def cancel_later(task: asyncio.Task[Any], upload: Upload) -> None:
    if upload.cancel_after_s is not None:
        await asyncio.sleep(upload.cancel_after_s)
    else:
        for _ in range(upload.cancel_after_turns or 0):
            await asyncio.sleep(0)
    task.cancel()


def start(coro: Any, upload: Upload) -> tuple[asyncio.Task[Any], asyncio.Task[None]]:
    """The upload's task and its canceller; `cancel_after_turns == 0` cancels the task at once,
    before its first step."""
    task: asyncio.Task[Any] = asyncio.create_task(coro)
    if upload.cancel_after_s is None and upload.cancel_after_turns == 0:
        task.cancel()
    return task, asyncio.create_task(cancel_later(task, upload))


async def fetch(provider: Provider, key: str) -> bytes | None:
    try:
        return await provider.download_bytes(key)
    except NotFoundError:
        return None


async def test_cancel_100_uploads_at_random_points(
    tmp_path: Path,
    make_s3_provider: Callable[..., S3Provider],
    make_azure_provider: Callable[..., AzureBlobProvider],
    make_memory_provider: Callable[..., MemoryProvider],
    make_local_provider: Callable[..., LocalProvider],
) -> None:
    fds_before = open_fds()
    tasks_before = set(asyncio.all_tasks())
    executor = fresh_default_executor()
    rng = random.Random(SEED)
    pool = rng.randbytes(16 * MiB)
    uploads = plan(rng, len(pool))

    memory, local = make_memory_provider(), make_local_provider()
    s3, azure = make_s3_provider(), make_azure_provider("connection_string")
    fanout = Storage([s3, azure])
    sources = tmp_path / "sources"
    sources.mkdir()

    targets: dict[str, Provider | Storage] = {
        "memory": memory, "local": local, "s3": s3, "azure": azure, "fanout": fanout,
    }

    async def run(upload: Upload) -> Any:
        data = upload.data(pool)
        target = targets[upload.target]
        if upload.way == "bytes":
            return await target.upload_bytes(data, upload.key)
        if upload.way == "stream":
            return await target.upload_stream(chunks_of(data, random.Random(upload.number)), upload.key)
        return await target.upload_file(sources / f"{upload.number:03d}.bin", upload.key)

    for upload in uploads:
        if upload.way == "file":
            (sources / f"{upload.number:03d}.bin").write_bytes(upload.data(pool))

    for first in range(0, UPLOADS, AT_ONCE):
        wave = uploads[first : first + AT_ONCE]
        started = [start(run(u), u) for u in wave]
        tasks = [task for task, _ in started]
        cancellers = [canceller for _, canceller in started]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*cancellers)
        for upload, result in zip(wave, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                upload.outcome = "cancelled"
            elif isinstance(result, BaseException):
                upload.outcome = repr(result)
            else:
                upload.outcome = "returned"
                if isinstance(result, UploadReport):
                    upload.report = result

    # Let everything the cancellations started finish: aborts under shield, fan-out gathers,
    # and to_thread work still running in worker threads.
    assert not await wait_for_tasks(tasks_before), "tasks still running after the cancellations"
    await drain_default_executor(executor)
    assert not _background, "multipart aborts still pending"

    unexpected = [(u.key, u.outcome) for u in uploads if u.outcome not in ("returned", "cancelled")]
    assert not unexpected, f"uploads failed instead of being cancelled: {unexpected}"
    cancelled = [u for u in uploads if u.outcome == "cancelled"]
    # a run that cancels (almost) nothing would prove nothing
    assert len(cancelled) >= UPLOADS // 5, [u.outcome for u in uploads]

    problems: list[str] = []
    for upload in uploads:
        expected = upload.data(pool)
        holders: list[Provider] = [s3, azure] if upload.target == "fanout" else [
            {"memory": memory, "local": local, "s3": s3, "azure": azure}[upload.target]
        ]
        for provider in holders:
            stored = await fetch(provider, upload.key)
            if stored is not None:
                upload.stored_on.append(provider.name)
            if stored is not None and stored != expected:
                problems.append(
                    f"{upload.key} on {provider.name}: {len(stored)} bytes stored of {len(expected)}"
                    f" ({upload.outcome})"
                )
            returned_ok = upload.outcome == "returned" and (
                upload.report is None or upload.report.results[provider.name].ok
            )
            if returned_ok and stored is None:
                problems.append(f"{upload.key} returned but is missing on {provider.name}")
    assert not problems, "\n".join(problems)

    client: Any = await s3._client()
    open_uploads = (await client.list_multipart_uploads(Bucket=s3.bucket)).get("Uploads", [])
    assert open_uploads == [], f"incomplete multipart uploads left on S3: {open_uploads}"
    assert memory.uploads == {}, "memory provider kept the state of aborted uploads"
    staging = local.root / ".unistore" / "staging"
    assert not staging.exists() or list(staging.iterdir()) == [], sorted(os.listdir(staging))
    assert default_budget().held == 0

    await fanout.aclose()  # closes s3 and azure
    await memory.aclose()
    await local.aclose()
    assert not await wait_for_tasks(tasks_before, timeout=5), "tasks left after aclose()"
    leaked = await wait_for_fds(fds_before)
    assert not leaked, f"file descriptors left open after aclose(): {leaked}"

    assert {u.target for u in cancelled} == set(TARGETS)
    assert any(u.size > THRESHOLD and u.cancel_after_turns != 0 for u in cancelled), "no multipart cancelled"
