"""SyncStorage: the same operations, blocking, for Django views and Celery tasks.

One event loop runs on a background thread (an anyio blocking portal) per `SyncStorage`; the
async `Storage` and its SDK clients are created inside that loop, because aiohttp-based clients
belong to the loop that made them. Any number of threads may call it at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._report import UploadReport
from ._storage import Storage
from ._types import ObjectInfo

if TYPE_CHECKING:
    from ._settings import StorageSettings


class SyncStorage:
    """Blocking facade over `Storage`. Close it with `close()` or a `with` block."""

    def __init__(self, factory: Callable[[], Storage] | None = None) -> None:
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._closed = False
        make = factory or Storage.from_env

        async def enter() -> Storage:
            storage = make()
            await storage.__aenter__()
            return storage

        try:
            self._storage = self._portal.call(enter)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise

    @classmethod
    def from_env(cls) -> SyncStorage:
        return cls(Storage.from_env)

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> SyncStorage:
        return cls(lambda: Storage.from_settings(settings))

    @property
    def storage(self) -> Storage:
        """The async Storage (use it only from inside the portal's loop)."""
        return self._storage

    @property
    def providers(self) -> Mapping[str, Any]:
        return self._storage.providers

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise RuntimeError("SyncStorage is closed")

        async def run() -> Any:
            return await fn(*args, **kwargs)

        return self._portal.call(run)

    def upload_file(self, path: str | os.PathLike[str], key: str, **opts: Any) -> UploadReport:
        report: UploadReport = self._call(self._storage.upload_file, path, key, **opts)
        return report

    def upload_bytes(self, data: bytes, key: str, **opts: Any) -> UploadReport:
        report: UploadReport = self._call(self._storage.upload_bytes, data, key, **opts)
        return report

    def _provider(self, provider: str | None) -> Any:
        if provider is None:
            return next(iter(self._storage.providers.values()))
        return self._storage.provider(provider)

    def download_bytes(self, key: str, *, provider: str | None = None) -> bytes:
        data: bytes = self._call(self._provider(provider).download_bytes, key)
        return data

    def download_file(self, key: str, path: str | os.PathLike[str], *, provider: str | None = None) -> ObjectInfo:
        info: ObjectInfo = self._call(self._provider(provider).download_file, key, path)
        return info

    def head(self, key: str, *, provider: str | None = None) -> ObjectInfo:
        info: ObjectInfo = self._call(self._provider(provider).head, key)
        return info

    def exists(self, key: str, *, provider: str | None = None) -> bool:
        return bool(self._call(self._provider(provider).exists, key))

    def delete(self, key: str, *, provider: str | None = None) -> None:
        self._call(self._provider(provider).delete, key)

    def list(self, prefix: str = "", *, provider: str | None = None) -> list[ObjectInfo]:
        source = self._provider(provider)

        async def collect() -> list[ObjectInfo]:
            return [info async for info in source.list(prefix)]

        result: list[ObjectInfo] = self._call(collect)
        return result

    def presigned_url(
        self, key: str, expires_in: int = 3600, method: str = "GET", *, provider: str | None = None
    ) -> str:
        url: str = self._call(self._provider(provider).presigned_url, key, expires_in, method)
        return url

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call(self._storage.aclose)
        finally:
            self._closed = True
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
