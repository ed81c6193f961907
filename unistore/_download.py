"""Downloads to a file: bytes go to a temporary file beside the target, renamed into place only
when complete, removed on any failure or cancellation.

- `download_streamed`: one `iter_bytes` stream, written in worker threads (memory, local).
- `download_ranges`: ranged requests `max_concurrency` at a time, each written by offset into
  the file by the provider's `fetch(fd, start, end)` (the cloud providers).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from ._errors import TransientError
from ._io import temp_beside, unlink_quietly
from ._request import Target, call


async def download_streamed(
    chunks: AsyncIterator[bytes], path: str | os.PathLike[str], size: int, provider: str, key: str
) -> None:
    """Write `chunks` (the object's `size` bytes) to `path`."""
    target = os.fspath(path)
    fd, tmp = await asyncio.to_thread(temp_beside, target)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                await asyncio.to_thread(out.write, chunk)
                written += len(chunk)
        if written != size:
            raise short_read(provider, key, written, size)
        await asyncio.to_thread(os.replace, tmp, target)
    except BaseException:
        await asyncio.to_thread(unlink_quietly, tmp)
        raise


async def download_ranges(
    path: str | os.PathLike[str],
    size: int,
    step: int,
    concurrency: int,
    fetch: Callable[[int, int, int], Awaitable[None]],
) -> None:
    """`fetch(fd, start, end)` writes bytes [start, end) by offset into a temporary file beside
    `path`, `concurrency` ranges at a time; the file is renamed into place when every range is
    in, removed on any failure."""
    target = os.fspath(path)
    fd, tmp = await asyncio.to_thread(temp_beside, target)
    ranges = [(start, min(start + step, size)) for start in range(0, size, step)]
    pending = iter(ranges)

    async def worker() -> None:
        for start, end in pending:
            await fetch(fd, start, end)

    count = min(max(1, concurrency), len(ranges))
    tasks = [asyncio.create_task(worker()) for _ in range(count)]
    try:
        if tasks:
            await asyncio.gather(*tasks)
        os.close(fd)
        fd = -1
        await asyncio.to_thread(os.replace, tmp, target)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if fd >= 0:
            os.close(fd)
        await asyncio.to_thread(unlink_quietly, tmp)
        raise


def even_step(size: int, concurrency: int, least: int, most: int) -> int:
    """Bytes per range when `size` is read `concurrency` ranges at a time: one range per
    stream in flight (no more requests than the parallelism needs), kept between `least` and
    `most` (a failed range is retried whole)."""
    return min(max(-(-size // max(1, concurrency)), least), max(least, most))


def short_read(provider: str, key: str, got: int, wanted: int, offset: int = 0) -> TransientError:
    """A response (or a range of one) that ended before its length: one code on every provider."""
    where = f" at offset {offset}" if offset else ""
    return TransientError(
        f"download of {key!r} ended after {got} of {wanted} bytes{where}",
        provider=provider, key=key, code="IncompleteDownload",
        hint="a temporary fault of the service or the network; retried automatically",
    )


class RangeSource(Target, Protocol):
    """A provider whose objects can be read by range, for `download_ranges`."""

    async def _fetch_range(self, fd: int, key: str, start: int, end: int, etag: str | None) -> int:
        """Write bytes [start, end) of `key` (pinned to `etag`) into `fd` at `start`; return how
        many were written."""
        ...


async def fetch_ranges(
    source: RangeSource, key: str, path: str | os.PathLike[str], size: int, step: int, etag: str | None, op: str
) -> None:
    """`download_ranges` over a provider's `_fetch_range`, each range one request (`op`) of the
    request path: retried on its own, and a short range is `IncompleteDownload` everywhere."""

    async def fetch(fd: int, start: int, end: int) -> None:
        await call(source, op, key, _whole_range, source, fd, key, start, end, etag)

    await download_ranges(path, size, step, source.transfer.max_concurrency, fetch)


async def _whole_range(source: RangeSource, fd: int, key: str, start: int, end: int, etag: str | None) -> None:
    written = await source._fetch_range(fd, key, start, end, etag)
    if written != end - start:
        raise short_read(source.name, key, written, end - start, start)
