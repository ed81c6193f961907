"""The one part-upload driver: S3 parts, Azure blocks and the local staged file alike.

A backend supplies four primitives (start, put part, complete, abort; see `PartBackend`);
this module decides part sizes, keeps at most `max_concurrency` parts in flight, draws
each part's bytes from the process-wide buffer budget, retries single parts while their bytes
are in hand, and aborts on any failure or cancellation (under `asyncio.shield`, so a cancelled
task still cleans up). It completes only when every part is in.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from . import _integrity
from ._budget import BufferBudget
from ._errors import SourceError, TransientError, UnistoreError
from ._logging import redact
from ._retry import RetryPolicy, retry
from ._threads import run_in_part_thread
from .providers._protocol import ObjectInfo, ProgressCallback

logger = logging.getLogger("unistore")
T = TypeVar("T")

MiB = 1024 * 1024
ABORT_TIMEOUT_S = 30.0
ABORT_GRACE_S = 2.0
"""How long a cancelled upload waits for its abort before leaving it to the background."""


@dataclass(frozen=True)
class PartLimits:
    """A service's multipart limits (S3: 10,000 parts of 5 MiB-5 GiB; Azure: 50,000 blocks
    of up to 4000 MiB)."""

    max_parts: int = 10_000
    min_part: int = 5 * MiB
    max_part: int = 5 * 1024 * MiB


class PartSizer:
    """Part sizes that never hit the part cap.

    With a known size the part is `max(chunk, ceil(size / max_parts))`, rounded up to a MiB.
    With an unknown length (a live meeting) the size doubles every `max_parts / 16` parts:
    10,000 S3 parts starting at 8 MiB reach far past S3's 5 TiB object limit.
    """

    def __init__(self, chunk: int, limits: PartLimits, size_hint: int | None = None) -> None:
        base = max(chunk, limits.min_part)
        if size_hint:
            needed = math.ceil(size_hint / limits.max_parts)
            base = max(base, math.ceil(needed / MiB) * MiB)
        self._base = min(base, limits.max_part)
        self._limits = limits
        self._tier = max(1, limits.max_parts // 16)

    def size(self, number: int) -> int:
        """Size of part `number` (1-based)."""
        grown = self._base << ((number - 1) // self._tier)
        return min(grown, self._limits.max_part)


class PartBackend(Protocol):
    """The primitives a provider gives the driver; `handle` is the provider's own state."""

    @property
    def name(self) -> str: ...

    async def _start_parts(self, key: str, opts: PutOptions) -> Any: ...

    async def _put_part(self, handle: Any, number: int, data: bytes, digest: bytes) -> Any: ...

    async def _complete_parts(
        self, handle: Any, key: str, parts: Sequence[Any], digests: Sequence[bytes], size: int, opts: PutOptions
    ) -> ObjectInfo: ...

    async def _abort_parts(self, handle: Any, key: str) -> None: ...


@dataclass(frozen=True)
class PutOptions:
    content_type: str | None
    metadata: dict[str, str]
    overwrite: bool
    allow_empty: bool
    digest: _integrity.Kind = "md5"
    """The digest every put and part of this upload carries (see `unistore._integrity`)."""


@dataclass(frozen=True)
class Transfer:
    """How one provider moves bytes; built from `StorageSettings`."""

    threshold: int = 16 * MiB
    chunk_size: int = 8 * MiB
    max_concurrency: int = 4
    retry: RetryPolicy = RetryPolicy()
    upload_timeout: float | None = None
    read_timeout: float = 60.0
    min_send_rate: int = 256 * 1024
    """Bytes per second below which one upload request counts as stalled (see `bounded`)."""

    def request_timeout(self, size: int) -> float:
        """Longest one upload request of `size` bytes may take: the read timeout plus the
        body's time at the slowest acceptable rate."""
        return self.read_timeout + size / self.min_send_rate


async def bounded(
    request: Awaitable[T], transfer: Transfer, size: int, provider: str, key: str
) -> T:
    """One upload request under its own deadline. Neither SDK bounds the time spent *writing*
    a body (aiohttp starts its read timeout once the body is sent), so a peer that stops
    reading would hang a part for ever; this turns that into a retryable TransientError."""
    limit = transfer.request_timeout(size)
    try:
        async with asyncio.timeout(limit):
            return await request
    except TimeoutError:
        raise TransientError(
            f"an upload request of {size} bytes made no progress within {limit:.0f}s",
            provider=provider,
            key=key,
            code="RequestDeadline",
            hint="check the network path to the service; on a slow uplink lower STORAGE_MIN_SEND_RATE",
        ) from None


async def run_parts(
    backend: PartBackend,
    key: str,
    opts: PutOptions,
    parts: AsyncIterator[tuple[int, Callable[[], Awaitable[tuple[bytes, bytes]]]]],
    *,
    transfer: Transfer,
    budget: BufferBudget,
    total: int | None,
    progress: ProgressCallback | None,
) -> ObjectInfo:
    """Drive one multipart upload.

    `parts` yields `(size, load)` pairs in order; `load()` returns the part's bytes and digest
    (of kind `opts.digest`; a file part is read by offset in a worker thread, a stream part is
    already in memory).
    Budget for a part is taken before `load()` runs and given back once the part is stored.
    """
    # The start runs in its own task: cancelled while its request is in flight, the service may
    # create the upload anyway, so the abort below waits for the answer and aborts what it made.
    starting = asyncio.ensure_future(
        retry(lambda: backend._start_parts(key, opts), transfer.retry, f"start upload of {key!r}")
    )
    try:
        handle = await asyncio.shield(starting)
    except BaseException:
        await _abort(backend, None, key, transfer, started=starting)
        raise
    tokens: dict[int, Any] = {}
    digests: dict[int, bytes] = {}
    in_flight: set[asyncio.Task[None]] = set()
    done = 0

    async def put(number: int, load: Callable[[], Awaitable[tuple[bytes, bytes]]]) -> None:
        nonlocal done
        data, digest = await load()
        tokens[number] = await retry(
            lambda: bounded(backend._put_part(handle, number, data, digest), transfer, len(data), backend.name, key),
            transfer.retry,
            f"part {number} of {key!r}",
        )
        digests[number] = digest
        done += len(data)
        if progress is not None:
            progress(backend.name, done, total)

    def raise_failed() -> None:
        for task in [t for t in in_flight if t.done()]:
            in_flight.discard(task)
            exc = task.exception()
            if exc is not None:
                raise exc

    count = 0
    try:
        while True:
            # A slot first, then the next part: a stream part is bytes in memory as soon as it is
            # taken, and waiting with it in hand would hold one part more than is in flight.
            while len(in_flight) >= transfer.max_concurrency:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                raise_failed()
            try:
                size, load = await anext(parts)
            except StopAsyncIteration:
                break
            await budget.acquire(size)
            count += 1
            try:
                task = asyncio.create_task(put(count, load))
            except BaseException:
                budget.release(size)
                raise
            # Given back when the task ends, however: a task cancelled before its first step
            # never runs its body, so a `finally` in `put` would leak the budget for good.
            task.add_done_callback(functools.partial(_release, budget, size))
            in_flight.add(task)
            raise_failed()
        while in_flight:
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            raise_failed()
        if len(tokens) != count:  # pragma: no cover - defensive: never complete a partial list
            raise UnistoreError(f"internal error: {len(tokens)} of {count} parts stored")
        ordered = [tokens[i] for i in range(1, count + 1)]
        in_order = [digests[i] for i in range(1, count + 1)]
        return await retry(
            lambda: backend._complete_parts(handle, key, ordered, in_order, done, opts),
            transfer.retry,
            f"complete upload of {key!r}",
        )
    except BaseException:
        for task in in_flight:
            task.cancel()
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        await _abort(backend, handle, key, transfer)
        raise


def _release(budget: BufferBudget, size: int, _task: asyncio.Task[None]) -> None:
    budget.release(size)


async def _abort(
    backend: PartBackend, handle: Any, key: str, transfer: Transfer, *, started: asyncio.Future[Any] | None = None
) -> None:
    """Abort under shield: a cancelled upload must still clean up after itself. With `started`
    (the start request, still in flight when we were cancelled), wait for its handle first; a
    start that failed created nothing."""

    async def attempt() -> None:
        nonlocal handle
        if started is not None:
            try:
                handle = await asyncio.wait_for(started, ABORT_TIMEOUT_S)
            except TimeoutError:
                logger.warning(
                    "the start of the upload of %r on %s did not answer within %ss; if the service "
                    "created it, `unistore cleanup --older-than SECONDS` removes it later",
                    key, backend.name, ABORT_TIMEOUT_S,
                )
                return
            except (Exception, asyncio.CancelledError):
                return  # the start failed: it created nothing
        try:
            await asyncio.wait_for(
                retry(lambda: backend._abort_parts(handle, key), transfer.retry, f"abort of {key!r}"),
                ABORT_TIMEOUT_S,
            )
        except Exception as exc:
            logger.warning(
                "could not abort the incomplete upload of %r on %s: %s; "
                "`unistore cleanup --older-than SECONDS` removes it later",
                key, backend.name, redact(str(exc)),
            )

    # If we are cancelled again while aborting, the abort still finishes in the background;
    # the set keeps a reference so the task is not garbage-collected mid-flight.
    task = asyncio.ensure_future(attempt())
    _background.add(task)
    task.add_done_callback(_background.discard)
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        # Cancelled already (STORAGE_UPLOAD_TIMEOUT, or the caller): a cancellation is delivered
        # once, so nothing would end this wait, and an abort against a dead or blackholed
        # service takes attempts x read timeout. Wait a short grace, then return on time and
        # let the abort finish in the background.
        await asyncio.wait({task}, timeout=ABORT_GRACE_S)
        return
    await asyncio.shield(task)


_background: set[asyncio.Future[None]] = set()


def file_parts(
    path: str | os.PathLike[str], size: int, sizer: PartSizer, kind: _integrity.Kind = "md5"
) -> AsyncIterator[tuple[int, Callable[[], Awaitable[tuple[bytes, bytes]]]]]:
    """Parts of a file read by offset (pread) in worker threads, each read once and hashed there."""
    return _file_parts(os.fspath(path), size, sizer, kind)


async def _file_parts(
    path: str, size: int, sizer: PartSizer, kind: _integrity.Kind
) -> AsyncIterator[tuple[int, Callable[[], Awaitable[tuple[bytes, bytes]]]]]:
    offset = 0
    number = 1
    while offset < size:
        length = min(sizer.size(number), size - offset)
        yield length, _file_loader(path, offset, length, kind)
        offset += length
        number += 1


def _file_loader(
    path: str, offset: int, length: int, kind: _integrity.Kind
) -> Callable[[], Awaitable[tuple[bytes, bytes]]]:
    async def load() -> tuple[bytes, bytes]:
        return await run_in_part_thread(read_range, path, offset, length, kind)

    return load


def read_range(path: str, offset: int, length: int, kind: _integrity.Kind = "md5") -> tuple[bytes, bytes]:
    """Read `length` bytes at `offset` and hash them (`kind`), in the calling (worker) thread."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SourceError(
            f"{path!r} could not be opened while it was being uploaded ({exc.strerror or exc}): "
            "keep the file in place, readable, until the upload returns"
        ) from None
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length:
        raise SourceError(
            f"{path!r} shrank while it was being uploaded ({len(data)} of {length} bytes at "
            f"offset {offset}): upload files only once the recorder has closed them"
        )
    return data, _integrity.digest(kind, data)


DigestLookup = Callable[[bytes], "bytes | None"]


def stream_parts(
    prefix: list[tuple[bytes, bytes | None]],
    chunks: AsyncIterator[bytes] | None,
    sizer: PartSizer,
    digest: DigestLookup | None = None,
    kind: _integrity.Kind = "md5",
) -> AsyncIterator[tuple[int, Callable[[], Awaitable[tuple[bytes, bytes]]]]]:
    """Parts cut from a stream of chunks of any size; a chunk that is exactly one part is
    passed on without a copy, with its digest (of `kind`) when the source already knows it
    (`digest`, asked right after each chunk arrives: a fan-out hashes each chunk once for
    everyone)."""
    return _stream_parts(prefix, chunks, sizer, digest, kind)


async def _stream_parts(
    prefix: list[tuple[bytes, bytes | None]],
    chunks: AsyncIterator[bytes] | None,
    sizer: PartSizer,
    digest: DigestLookup | None,
    kind: _integrity.Kind,
) -> AsyncIterator[tuple[int, Callable[[], Awaitable[tuple[bytes, bytes]]]]]:
    number = 1
    want = sizer.size(number)
    pending: list[bytes | memoryview] = []
    have = 0

    async def source() -> AsyncIterator[tuple[bytes, bytes | None]]:
        for item in prefix:
            yield item
        prefix.clear()
        if chunks is not None:
            async for chunk in chunks:
                yield chunk, (digest(chunk) if digest is not None else None)

    async for chunk, known in source():
        if not chunk:
            continue
        if not pending and len(chunk) == want:
            yield want, _memory_loader(chunk, kind, known)
            number += 1
            want = sizer.size(number)
            continue
        view = memoryview(chunk)
        while view:
            take = view[: want - have]
            pending.append(take)
            have += len(take)
            view = view[len(take) :]
            if have == want:
                yield want, _memory_loader(b"".join(pending), kind)
                pending = []
                have = 0
                number += 1
                want = sizer.size(number)
    if pending:
        yield have, _memory_loader(b"".join(pending), kind)


def _memory_loader(
    data: bytes, kind: _integrity.Kind, known: bytes | None = None
) -> Callable[[], Awaitable[tuple[bytes, bytes]]]:
    async def load() -> tuple[bytes, bytes]:
        if known is not None:
            return data, known
        return data, await run_in_part_thread(_integrity.digest, kind, data)

    return load
