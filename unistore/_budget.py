"""The process-wide budget of part bytes in flight (`STORAGE_MAX_BUFFER_BYTES`).

Every upload, on every provider and every event loop of the process (a `SyncStorage` runs its
own), draws from one budget before it reads or holds a part, and gives it back when the part
is stored. The budget bounds parts *in flight*: those always finish (or fail), so waiting for
budget can never deadlock. A part larger than the whole budget is granted when nothing else
is held, so one huge part still proceeds, alone.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque


class BufferBudget:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()
        self.peak = 0

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def held(self) -> int:
        return self._held

    def set_limit(self, limit: int) -> None:
        with self._lock:
            self._limit = limit
            self._wake_locked()

    def _fits(self, n: int) -> bool:
        return self._held + n <= self._limit or self._held == 0

    async def acquire(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._waiters and self._fits(n):
                self._grant_locked(n)
                return
            entry = _Waiter(n, loop, loop.create_future())
            self._waiters.append(entry)
        try:
            await entry.future
        except BaseException:
            with self._lock:
                if entry.granted:
                    # granted just as we were cancelled: give it back
                    self._held -= n
                elif entry in self._waiters:
                    self._waiters.remove(entry)
                self._wake_locked()
            raise

    def release(self, n: int) -> None:
        with self._lock:
            self._held -= n
            self._wake_locked()

    def _grant_locked(self, n: int) -> None:
        self._held += n
        self.peak = max(self.peak, self._held)

    def _wake_locked(self) -> None:
        # FIFO: a large request at the head is not starved by a stream of small ones
        while self._waiters and self._fits(self._waiters[0].n):
            waiter = self._waiters.popleft()
            if waiter.future.done():
                continue
            waiter.granted = True
            self._grant_locked(waiter.n)
            waiter.loop.call_soon_threadsafe(_resolve, waiter.future)


class _Waiter:
    __slots__ = ("future", "granted", "loop", "n")

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]):
        self.n = n
        self.loop = loop
        self.future = future
        self.granted = False


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


_default = BufferBudget(256 * 1024 * 1024)


def _reset_after_fork() -> None:
    # A forked child inherits the parent's count of held bytes (parts in flight on the parent's
    # threads, which never reach the child to release them) and perhaps a lock held by one of
    # those threads: a child forked mid-upload would wait for budget for ever.
    _default._lock = threading.Lock()
    _default._held = 0
    _default._waiters.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def default_budget() -> BufferBudget:
    return _default
