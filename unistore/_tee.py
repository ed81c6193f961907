"""One source, read once, fed to every provider through bounded per-provider channels.

The feeder awaits the slowest *healthy* consumer (backpressure); a consumer that fails is
detached and never blocks the others again. Chunks are shared `bytes` objects: feeding N
providers costs no copy, and memory stays near chunk size x channel depth, plus the parts each
provider has in flight.

A re-readable source (a file) goes one step further: a consumer that stays full for longer than
the lag limit is handed a reader of its own from where it stands, and the feeder moves on, so
one slow or stalled provider never holds back the others. A live stream cannot be re-read: there
backpressure is the only bound on memory, and the slowest healthy provider sets the pace.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from ._integrity import Kind

CatchUp = Callable[[], AsyncIterator[tuple[bytes, bytes]]]
"""Reads the rest of a re-readable source, from a fixed offset, as (chunk, digest) pairs."""


class UploadAborted(Exception):
    """Fed into every channel when the writer's body raised or was cancelled, so that each
    provider aborts its upload instead of completing it."""


class Channel:
    """A bounded single-consumer queue of chunks that ends with EOF or an error.

    `digest(chunk)` returns the digest (of `digest_kind`) the feeder computed for a chunk this channel has just
    yielded (valid until the consumer asks for the next chunk), so that N providers hash
    each chunk once between them instead of N times.
    """

    def __init__(self, depth: int, digests: _Digests | None = None, digest_kind: Kind = "md5") -> None:
        self._digests = digests if digests is not None else _Digests()
        self.digest_kind = digest_kind
        """The kind of every digest `digest()` returns (`unistore._integrity`)."""
        self._last: bytes | None = None
        self._items: deque[bytes] = deque()
        self._depth = depth
        self._cond = asyncio.Condition()
        self._eof = False
        self._error: BaseException | None = None
        self._catch_up: CatchUp | None = None
        self._own: tuple[bytes, bytes] | None = None
        self.detached = False

    @property
    def independent(self) -> bool:
        """True once this consumer reads the rest of the source itself."""
        return self._catch_up is not None

    async def put(self, chunk: bytes, lag_s: float | None = None, catch_up: CatchUp | None = None) -> bool:
        """Queue `chunk`; False when the consumer is gone (the chunk is dropped), or when it
        stayed full for `lag_s` and now reads on through `catch_up`, from this chunk on.
        The choice is made under the channel's lock: a chunk is never both queued and re-read."""
        async with self._cond:
            ready = self._cond.wait_for(lambda: self.detached or len(self._items) < self._depth)
            if catch_up is None or lag_s is None:
                await ready
            else:
                try:
                    await asyncio.wait_for(ready, lag_s)
                except TimeoutError:
                    # the cancelled wait has re-acquired the lock: nothing can slip in
                    self._catch_up = catch_up
                    self._cond.notify_all()
                    return False
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
                for chunk in self._items:
                    self._digests.release(chunk)
                self._items.clear()
            self._cond.notify_all()

    async def detach(self) -> None:
        """The consumer stopped: drop what is queued and never block a producer again."""
        async with self._cond:
            self.detached = True
            for chunk in self._items:
                self._digests.release(chunk)
            self._items.clear()
            self._forget_last()
            self._cond.notify_all()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    def digest(self, chunk: bytes) -> bytes | None:
        if self._own is not None and self._own[0] is chunk:
            return self._own[1]
        return self._digests.get(chunk)

    def _forget_last(self) -> None:
        if self._last is not None:
            self._digests.release(self._last)
            self._last = None

    async def _iterate(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._pop():
                yield chunk
        finally:
            self._forget_last()

    async def _pop(self) -> AsyncIterator[bytes]:
        while True:
            self._forget_last()
            async with self._cond:
                await self._cond.wait_for(lambda: bool(self._items) or self._eof or self.independent)
                if self._error is not None:
                    raise self._error
                if self._items:
                    chunk = self._items.popleft()
                    self._last = chunk
                    self._cond.notify_all()
                elif self._catch_up is not None:
                    break
                else:
                    return
            yield chunk
        assert self._catch_up is not None
        async for chunk, digest in self._catch_up():
            if self._error is not None:
                raise self._error
            self._own = (chunk, digest)
            yield chunk
        self._own = None
        if self._error is not None:
            raise self._error


class _Digests:
    """Digests of chunks in flight, keyed by object identity; each entry holds its chunk (so the
    id cannot be reused) until every channel that took it has moved past it."""

    def __init__(self) -> None:
        self._entries: dict[int, list[object]] = {}

    def add(self, chunk: bytes, digest: bytes, holders: int) -> None:
        if holders > 0:
            self._entries[id(chunk)] = [chunk, digest, holders]

    def get(self, chunk: bytes) -> bytes | None:
        entry = self._entries.get(id(chunk))
        if entry is None or entry[0] is not chunk:
            return None
        digest = entry[1]
        return digest if isinstance(digest, bytes) else None

    def release(self, chunk: bytes) -> None:
        entry = self._entries.get(id(chunk))
        if entry is None or entry[0] is not chunk:
            return
        left = int(entry[2]) - 1  # type: ignore[call-overload]
        if left <= 0:
            del self._entries[id(chunk)]
        else:
            entry[2] = left

    def __len__(self) -> int:
        return len(self._entries)


class Tee:
    """Feeds chunks to several channels; each `put` waits for every attached consumer."""

    def __init__(self, names: list[str], depth: int, digest_kind: Kind = "md5") -> None:
        self.digests = _Digests()
        self.digest_kind = digest_kind
        self.channels = {name: Channel(depth, self.digests, digest_kind) for name in names}

    @property
    def alive(self) -> list[str]:
        """Consumers still fed by this tee (neither failed nor reading on their own)."""
        return [n for n, c in self.channels.items() if not c.detached and not c.independent]

    async def feed(
        self,
        chunk: bytes,
        digest: bytes | None = None,
        *,
        lag_s: float | None = None,
        catch_up: CatchUp | None = None,
    ) -> int:
        """Give `chunk` (and its digest, if known) to every attached channel; returns how many
        took it. With `catch_up` (the source from this chunk on), a channel that stays full
        for `lag_s` reads on by itself instead of holding the others back."""
        if digest is not None:
            self.digests.add(chunk, digest, len(self.alive))
        taken = 0
        for channel in self.channels.values():
            if channel.detached or channel.independent:
                continue
            if await channel.put(chunk, lag_s, catch_up):
                taken += 1
            elif digest is not None:
                self.digests.release(chunk)
        return taken

    async def close(self, error: BaseException | None = None) -> None:
        for channel in self.channels.values():
            await channel.close(error)
