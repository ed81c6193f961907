"""The one upload driver: S3 parts, Azure blocks and the local staged file alike.

A backend supplies a one-request put and four part primitives (start, put part, complete,
abort; see `PartBackend`). `put_file`, `put_bytes` and `put_stream` decide between one request
and parts (`one_shot`: at most `Transfer.threshold` and the service's `max_single_put`); the
part driver `run_parts` decides part sizes, keeps at most `max_concurrency` parts in flight, draws
each part's bytes from the process-wide buffer budget, retries single parts while their bytes
are in hand, and aborts on any failure or cancellation (under `asyncio.shield`, so a cancelled
task still cleans up). It completes only when every part is in.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from . import _integrity
from ._budget import BufferBudget
from ._deadline import ABORT_GRACE_S, ABORT_TIMEOUT_S
from ._errors import AlreadyExistsError, UnistoreError
from ._io import DigestLookup, PartSource, file_parts, hash_small, read_range, stream_parts
from ._logging import redact
from ._request import Target, call
from ._retry import RetryPolicy
from ._threads import run_in_part_thread
from ._types import MiB, ObjectInfo, PartLimits, ProgressCallback, ProviderInfo, PutOptions
from ._validate import empty_source

logger = logging.getLogger("unistore")
T = TypeVar("T")

__all__ = [
    "ABORT_GRACE_S", "MiB", "PartLimits", "PartSizer", "PutOptions", "Transfer", "put_bytes", "put_file", "put_stream",
    "run_parts",
]


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


class PartBackend(Target, Protocol):
    """The primitives a provider gives the driver; `handle` is the provider's own state."""

    @property
    def info(self) -> ProviderInfo: ...

    budget: BufferBudget

    async def head(self, key: str) -> ObjectInfo: ...

    async def _put_object(self, key: str, data: bytes, digest: bytes, opts: PutOptions) -> ObjectInfo: ...

    async def _start_parts(self, key: str, opts: PutOptions) -> Any: ...

    async def _put_part(self, handle: Any, number: int, data: bytes, digest: bytes) -> Any: ...

    async def _complete_parts(
        self, handle: Any, key: str, parts: Sequence[Any], digests: Sequence[bytes], size: int, opts: PutOptions
    ) -> ObjectInfo: ...

    async def _abort_parts(self, handle: Any, key: str) -> None: ...


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
    """Bytes per second below which one upload request counts as stalled
    (see `unistore._deadline.with_request_deadline`)."""

    def request_timeout(self, size: int) -> float:
        """Longest one upload request of `size` bytes may take: the read timeout plus the
        body's time at the slowest acceptable rate."""
        return self.read_timeout + size / self.min_send_rate


def one_shot(backend: PartBackend, size: int) -> bool:
    """Whether `size` bytes go in one request rather than in parts."""
    return size <= backend.info.one_shot_max


async def put_file(
    backend: PartBackend, path: str, key: str, size: int, opts: PutOptions, progress: ProgressCallback | None
) -> ObjectInfo:
    if one_shot(backend, size):
        await backend.budget.acquire(size)
        try:
            data, digest = await run_in_part_thread(read_range, path, 0, size, opts.digest)
            return await put_small(backend, key, data, digest, opts, progress)
        finally:
            backend.budget.release(size)
    sizer = PartSizer(backend.transfer.chunk_size, backend.info.limits, size)
    return await run_parts(
        backend, key, opts, file_parts(path, size, sizer, opts.digest),
        transfer=backend.transfer, budget=backend.budget, total=size, progress=progress,
    )


async def put_bytes(
    backend: PartBackend, data: bytes, key: str, opts: PutOptions, progress: ProgressCallback | None
) -> ObjectInfo:
    if one_shot(backend, len(data)):
        digest = await hash_small(opts.digest, data)
        return await put_small(backend, key, data, digest, opts, progress)
    sizer = PartSizer(backend.transfer.chunk_size, backend.info.limits, len(data))
    return await run_parts(
        backend, key, opts, stream_parts([(data, None)], None, sizer, kind=opts.digest),
        transfer=backend.transfer, budget=backend.budget, total=len(data), progress=progress,
    )


async def put_stream(
    backend: PartBackend,
    chunks: AsyncIterator[bytes],
    key: str,
    opts: PutOptions,
    progress: ProgressCallback | None,
    size_hint: int | None,
    digest: DigestLookup | None = None,
) -> ObjectInfo:
    """A stream in one request when it ends within the one-shot size, else in parts.
    `digest` knows each chunk's digest of kind `opts.digest` (a fan-out hashes once for all)."""
    threshold = backend.info.one_shot_max
    prefix: list[tuple[bytes, bytes | None]] = []
    buffered = 0
    exhausted = False
    # Buffer up to the threshold, unless the size is known to be above it (then parts start
    # at once and nothing waits in a buffer).
    if size_hint is None or size_hint <= threshold:
        while buffered <= threshold:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                exhausted = True
                break
            if chunk:
                chunk = bytes(chunk) if not isinstance(chunk, bytes) else chunk
                prefix.append((chunk, digest(chunk) if digest is not None else None))
                buffered += len(chunk)
    if exhausted:
        if len(prefix) == 1 and prefix[0][1] is not None:
            data, known = prefix[0][0], prefix[0][1]
        else:
            data = b"".join(c for c, _ in prefix)
            known = await hash_small(opts.digest, data)
        del prefix
        return await put_small(backend, key, data, known, opts, progress)
    sizer = PartSizer(backend.transfer.chunk_size, backend.info.limits, size_hint)
    return await run_parts(
        backend, key, opts, stream_parts(prefix, chunks, sizer, digest, opts.digest),
        transfer=backend.transfer, budget=backend.budget, total=size_hint, progress=progress,
    )


async def put_small(
    backend: PartBackend, key: str, data: bytes, digest: bytes, opts: PutOptions, progress: ProgressCallback | None
) -> ObjectInfo:
    """One put of `data`, retried while its bytes are in hand."""
    if not data and not opts.allow_empty:
        raise empty_source(key)
    attempts = [0]
    try:
        info = await call(
            backend, "upload", key, _counted_put, backend, attempts, key, data, digest, opts,
            size=len(data), conditional=not opts.overwrite,
        )
    except AlreadyExistsError:
        # A conditional create retried after a lost answer finds its own first write: the
        # object holding exactly our bytes is our upload, not somebody else's.
        if attempts[0] < 2:
            raise
        stored = await backend.head(key)
        if stored.checksum != _integrity.label(opts.digest, digest) or stored.size != len(data):
            raise
        info = stored
    if progress is not None:
        progress(backend.name, len(data), len(data))
    return info


async def _counted_put(
    backend: PartBackend, attempts: list[int], key: str, data: bytes, digest: bytes, opts: PutOptions
) -> ObjectInfo:
    attempts[0] += 1
    return await backend._put_object(key, data, digest, opts)


async def run_parts(
    backend: PartBackend,
    key: str,
    opts: PutOptions,
    parts: PartSource,
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
    starting = asyncio.ensure_future(call(backend, "start upload", key, backend._start_parts, key, opts))
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
        tokens[number] = await call(
            backend, f"part {number}", key, backend._put_part, handle, number, data, digest, size=len(data)
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
        return await call(
            backend, "complete upload", key, backend._complete_parts, handle, key, ordered, in_order, done, opts
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
                call(backend, "abort", key, backend._abort_parts, handle, key),
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
    _background[task] = backend
    task.add_done_callback(_forget)
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        # Cancelled already (STORAGE_UPLOAD_TIMEOUT, or the caller): a cancellation is delivered
        # once, so nothing would end this wait, and an abort against a dead or blackholed
        # service takes attempts x read timeout. Wait a short grace, then return on time and
        # let the abort finish in the background.
        await asyncio.wait({task}, timeout=ABORT_GRACE_S)
        return
    await asyncio.shield(task)


_background: dict[asyncio.Future[None], PartBackend] = {}
"""Aborts still running after their caller returned or was cancelled, with their provider:
kept referenced so they are not garbage-collected mid-flight, and waited for by
`Storage.aclose` before it closes the provider's connections (`aborts_of`)."""


def _forget(task: asyncio.Future[None]) -> None:
    _background.pop(task, None)


def aborts_of(backends: Iterable[object]) -> set[asyncio.Future[None]]:
    """The background aborts still running for any of `backends`."""
    wanted = {id(b) for b in backends}
    return {task for task, backend in _background.items() if id(backend) in wanted}
