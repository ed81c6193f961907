"""`Storage.afrom_env()`: the environment read and the providers built in a worker thread.

The first `Storage.from_env()` of a process imports pydantic, pydantic-settings, the settings
models and the provider modules: 100-170 ms of CPU measured here (issue #22), one step during
which a running loop serves nothing else. The work touches no loop, so it can run anywhere;
this runs it in a thread and hands the result back, as an awaitable that is also an async
context manager (`storage = await Storage.afrom_env()` or `async with Storage.afrom_env() as
storage:`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._storage import Storage


class StorageOpening:
    """What `Storage.afrom_env()` returns: await it for the `Storage`, or enter it to get the
    `Storage` entered too (and closed on exit)."""

    __slots__ = ("_build", "_storage")

    def __init__(self, build: Callable[[], Storage]) -> None:
        self._build = build
        self._storage: Storage | None = None

    async def _built(self) -> Storage:
        return await asyncio.to_thread(self._build)

    def __await__(self) -> Generator[Any, None, Storage]:
        return self._built().__await__()

    async def __aenter__(self) -> Storage:
        storage = await self._built()
        self._storage = await storage.__aenter__()
        return self._storage

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        storage, self._storage = self._storage, None
        if storage is not None:
            await storage.__aexit__(exc_type, exc, tb)
