"""SyncStorage: the same operations, blocking, for Django views and Celery tasks.

One event loop runs on a background thread (an anyio blocking portal) per `SyncStorage`; the
async `Storage` and its SDK clients are created inside that loop, because aiohttp-based clients
belong to the loop that made them. Any number of threads may call it at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._reads import ListedObject
from ._report import UploadReport
from ._storage import Storage
from .providers._protocol import ObjectInfo, ProgressCallback

if TYPE_CHECKING:
    from ._repair import RepairProgress, RepairReport
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

    def upload_file(
        self,
        path: str | os.PathLike[str],
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        delete_local: bool = False,
        overwrite: bool | None = None,
        allow_empty: bool = False,
        progress: ProgressCallback | None = None,
    ) -> UploadReport:
        report: UploadReport = self._call(
            self._storage.upload_file, path, key, content_type=content_type, metadata=metadata,
            delete_local=delete_local, overwrite=overwrite, allow_empty=allow_empty, progress=progress,
        )
        return report

    def upload_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool | None = None,
        allow_empty: bool = False,
        progress: ProgressCallback | None = None,
    ) -> UploadReport:
        report: UploadReport = self._call(
            self._storage.upload_bytes, data, key, content_type=content_type, metadata=metadata,
            overwrite=overwrite, allow_empty=allow_empty, progress=progress,
        )
        return report

    # -- reads, deletes, listings, presigned URLs: see `Storage` for the failover rules ----

    @property
    def read_order(self) -> tuple[str, ...]:
        return self._storage.read_order

    @property
    def reserved_prefix(self) -> str:
        return self._storage.reserved_prefix

    def download_bytes(self, key: str, *, provider: str | None = None) -> bytes:
        data: bytes = self._call(self._storage.download_bytes, key, provider=provider)
        return data

    def download_file(self, key: str, path: str | os.PathLike[str], *, provider: str | None = None) -> ObjectInfo:
        info: ObjectInfo = self._call(self._storage.download_file, key, path, provider=provider)
        return info

    def iter_bytes(self, key: str, *, provider: str | None = None) -> Generator[bytes, None, None]:
        """The object's chunks, each fetched on the portal's loop as the caller asks for it;
        leaving the loop early (break, an exception) closes the download there."""
        if self._closed:
            raise RuntimeError("SyncStorage is closed")
        chunks = self._storage.iter_bytes(key, provider=provider)

        async def step() -> bytes | None:
            try:
                return await anext(chunks)
            except StopAsyncIteration:
                return None

        async def close() -> None:
            await chunks.aclose()

        def generate() -> Generator[bytes, None, None]:
            try:
                while (chunk := self._call(step)) is not None:
                    yield chunk
            finally:
                if not self._closed:
                    self._call(close)

        return generate()

    def locate(self, key: str) -> tuple[str, ObjectInfo]:
        found: tuple[str, ObjectInfo] = self._call(self._storage.locate, key)
        return found

    def head(self, key: str) -> dict[str, ObjectInfo | None]:
        infos: dict[str, ObjectInfo | None] = self._call(self._storage.head, key)
        return infos

    def exists(self, key: str) -> dict[str, bool]:
        held: dict[str, bool] = self._call(self._storage.exists, key)
        return held

    def delete(self, key: str) -> UploadReport:
        report: UploadReport = self._call(self._storage.delete, key)
        return report

    def list(self, prefix: str = "", *, provider: str | None = None) -> list[ListedObject]:
        """The whole merged listing (`Storage.list`), collected on the portal's loop."""
        storage = self._storage

        async def collect() -> list[ListedObject]:
            return [item async for item in storage.list(prefix, provider=provider)]

        result: list[ListedObject] = self._call(collect)
        return result

    def presigned_url(
        self, key: str, expires_in: int = 3600, method: str = "GET", *, provider: str | None = None
    ) -> str:
        url: str = self._call(self._storage.presigned_url, key, expires_in, method, provider=provider)
        return url

    def repair(
        self,
        prefix: str = "",
        *,
        dry_run: bool = False,
        full: bool = False,
        progress: RepairProgress | None = None,
        min_age_s: float = 0.0,
    ) -> RepairReport:
        """`Storage.repair`, blocking; `progress` is called on the portal's thread."""
        report: RepairReport = self._call(
            self._storage.repair, prefix, dry_run=dry_run, full=full, progress=progress, min_age_s=min_age_s
        )
        return report

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
