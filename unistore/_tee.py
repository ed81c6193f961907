"""One source, read once, fed to every provider through bounded per-provider channels.

The feeder awaits the slowest *healthy* consumer (backpressure); a consumer that fails is
detached and never blocks the others again. Chunks are shared `bytes` objects: feeding N
providers costs no copy, and memory stays near chunk size x channel depth, plus the parts each
provider has in flight.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator


class UploadAborted(Exception):
    """Fed into every channel when the writer's body raised or was cancelled, so that each
    provider aborts its upload instead of completing it."""


class Channel:
    """A bounded single-consumer queue of chunks that ends with EOF or an error."""

    def __init__(self, depth: int) -> None:
        self._items: deque[bytes] = deque()
        self._depth = depth
        self._cond = asyncio.Condition()
        self._eof = False
        self._error: BaseException | None = None
        self.detached = False

    async def put(self, chunk: bytes) -> bool:
        """Queue `chunk`; False when the consumer is gone (the chunk is dropped)."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.detached or len(self._items) < self._depth)
            if self.detached:
                return False
            self._items.append(chunk)
            self._cond.notify_all()
            return True

    async def close(self, error: BaseException | None = None) -> None:
        async with self._cond:
            self._eof = True
            self._error = error
            if error is not None:
                self._items.clear()
            self._cond.notify_all()

    async def detach(self) -> None:
        """The consumer stopped: drop what is queued and never block a producer again."""
        async with self._cond:
            self.detached = True
            self._items.clear()
            self._cond.notify_all()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            async with self._cond:
                await self._cond.wait_for(lambda: bool(self._items) or self._eof)
                if self._error is not None:
                    raise self._error
                if not self._items:
                    return
                chunk = self._items.popleft()
                self._cond.notify_all()
            yield chunk


class Tee:
    """Feeds chunks to several channels; each `put` waits for every attached consumer."""

    def __init__(self, names: list[str], depth: int) -> None:
        self.channels = {name: Channel(depth) for name in names}

    @property
    def alive(self) -> list[str]:
        return [n for n, c in self.channels.items() if not c.detached]

    async def feed(self, chunk: bytes) -> int:
        """Give `chunk` to every attached channel; returns how many took it."""
        taken = 0
        for channel in self.channels.values():
            if not channel.detached and await channel.put(chunk):
                taken += 1
        return taken

    async def close(self, error: BaseException | None = None) -> None:
        for channel in self.channels.values():
            await channel.close(error)
