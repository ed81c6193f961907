"""SyncStorage: the same operations, blocking, for Django views and Celery tasks.

One event loop runs on a background thread (an anyio blocking portal) per `SyncStorage` and
process; the async `Storage` and its SDK clients are created inside that loop, because
aiohttp-based clients belong to the loop that made them. Any number of threads may call it at
once: each call is a task on that loop, so 32 threads uploading at once share one loop and one
connection pool per provider.

Life cycle, as a worker process sees it:
- `close()` waits for the calls in flight, closes the providers, stops the loop and joins its
  thread: no thread, socket or selector is left behind.
- A forked child (prefork Celery, gunicorn with `--preload`) inherits the parent's objects but
  not its loop thread. The child never touches what it inherited (its sockets and epoll set are
  shared with the parent: closing a transport there would unregister the parent's descriptors);
  it builds a loop and a `Storage` of its own on its first call, from the same factory.
- At interpreter exit a `SyncStorage` nobody closed is closed (`weakref.finalize`, which runs
  from `atexit`), while its loop thread still runs; a daemon loop thread left running into
  interpreter finalization would hang the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, Unpack

import anyio
from anyio.from_thread import BlockingPortal

from ._reads import ListedObject
from ._report import UploadReport
from ._storage import Storage, StorageWriter
from ._types import ObjectInfo, UploadOptions
from ._validate import check_upload_options

if TYPE_CHECKING:
    from ._events import EventCallback
    from ._repair import RepairOptions, RepairReport
    from ._settings import StorageSettings

EXIT_GRACE_S = 30.0
"""At interpreter exit, seconds an unclosed `SyncStorage` waits for calls still in flight (on
daemon threads) before its loop is stopped under them."""


class _Runtime:
    """One event loop thread and the `Storage` built inside it, for one process."""

    def __init__(self, factory: Callable[[], Storage]) -> None:
        self.pid = os.getpid()
        started: Future[BlockingPortal] = Future()

        async def serve() -> None:
            async with BlockingPortal() as portal:
                started.set_result(portal)
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(serve)
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        self.thread = threading.Thread(target=run, name="unistore-sync-loop", daemon=True)
        self.thread.start()
        self.portal = started.result()

        async def enter() -> Storage:
            storage = factory()
            await storage.__aenter__()
            return storage

        try:
            self.storage: Storage = self.portal.call(enter)
        except BaseException:
            self._stop(cancel_remaining=True)
            raise

    def close(self) -> None:
        """Close the providers, stop the loop, join its thread. Safe to call twice."""
        if self.pid != os.getpid():
            return  # a forked child: the loop thread is the parent's
        if threading.current_thread() is self.thread:
            # collected on the loop thread itself (its last reference dropped in a callback, or
            # the cyclic collector ran there): close from a task, join nothing
            task = asyncio.get_running_loop().create_task(self._close_inside())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
            return
        if not self.thread.is_alive():
            return
        try:
            self.portal.call(self.storage.aclose)
        finally:
            self._stop(cancel_remaining=True)

    async def _close_inside(self) -> None:
        try:
            await self.storage.aclose()
        finally:
            await self.portal.stop(cancel_remaining=True)

    def _stop(self, *, cancel_remaining: bool) -> None:
        with contextlib.suppress(RuntimeError):  # the portal already stopped
            self.portal.call(self.portal.stop, cancel_remaining)
        self.thread.join()


class SyncStorage:
    """Blocking facade over `Storage`. Close it with `close()` or a `with` block.

    `factory` builds the async `Storage`; it runs inside the loop thread, once per process
    (again in a forked child, on its first call).
    """

    def __init__(self, factory: Callable[[], Storage] | None = None) -> None:
        self._factory = factory or Storage.from_env
        self._closed = False
        self._reset_locks()
        self._runtime: _Runtime | None = None
        self._finalizer: weakref.finalize[[_Runtime], SyncStorage] | None = None
        _live.add(self)
        self._current()  # configuration and provider errors surface here, at start-up

    def _reset_locks(self) -> None:
        self._state = threading.Condition()
        self._in_flight = 0

    @classmethod
    def from_env(cls, *, on_event: EventCallback | None = None) -> SyncStorage:
        """Read and validate the environment now (in the caller's thread), build on the loop.
        `on_event` (see `Storage`) is called on the storage's own loop thread."""
        from ._settings import StorageSettings

        return cls.from_settings(StorageSettings(), on_event=on_event)

    @classmethod
    def from_settings(cls, settings: StorageSettings, *, on_event: EventCallback | None = None) -> SyncStorage:
        return cls(lambda: Storage.from_settings(settings, on_event=on_event))

    # -- the loop of this process ---------------------------------------------------------

    def _current(self) -> _Runtime:
        with self._state:
            if self._closed:
                raise RuntimeError("SyncStorage is closed")
            runtime = self._runtime
            if runtime is None or runtime.pid != os.getpid():
                runtime = self._runtime = _Runtime(self._factory)
                self._finalizer = weakref.finalize(self, _close_at_exit, runtime)
            return runtime

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's loop without touching it (see the module doc)."""
        if self._runtime is not None:
            _inherited.append(self._runtime)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._runtime = self._finalizer = None
        self._reset_locks()

    @property
    def storage(self) -> Storage:
        """The async Storage of this process (use it only from inside the portal's loop)."""
        return self._current().storage

    _storage = storage

    @property
    def providers(self) -> Mapping[str, Any]:
        return self._current().storage.providers

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        runtime = self._begin()
        try:

            async def run() -> Any:
                return await fn(*args, **kwargs)

            return runtime.portal.call(run)
        finally:
            self._end()

    def _begin(self) -> _Runtime:
        runtime = self._current()
        with self._state:
            if self._closed:
                raise RuntimeError("SyncStorage is closed")
            self._in_flight += 1
        return runtime

    def _end(self) -> None:
        with self._state:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._state.notify_all()

    # -- uploads ---------------------------------------------------------------------------

    def upload_file(
        self, path: str | os.PathLike[str], key: str, *, delete_local: bool = False, **options: Unpack[UploadOptions]
    ) -> UploadReport:
        report: UploadReport = self._call(self._storage.upload_file, path, key, delete_local=delete_local, **options)
        return report

    def upload_bytes(self, data: bytes, key: str, **options: Unpack[UploadOptions]) -> UploadReport:
        report: UploadReport = self._call(self._storage.upload_bytes, data, key, **options)
        return report

    def upload_stream(self, chunks: Iterable[bytes], key: str, **options: Unpack[UploadOptions]) -> UploadReport:
        """Upload chunks from a blocking iterable (a Django `File.chunks()`, a socket reader):
        each chunk is handed to the loop as it is read, so memory stays bounded by the parts in
        flight, whatever the total size. An exception from the iterable aborts every upload."""
        with self.open_writer(key, **options) as writer:
            for chunk in chunks:
                writer.write(chunk)
        assert writer.report is not None
        return writer.report

    def open_writer(self, key: str, **options: Unpack[UploadOptions]) -> SyncWriter:
        """A `with` block that streams `write(chunk)` calls to every provider; see
        `Storage.open_writer`. Its `UploadReport` is on `writer.report` after the block."""
        check_upload_options("open_writer", options)
        return SyncWriter(self, key, options)

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

    def repair(self, prefix: str = "", **options: Unpack[RepairOptions]) -> RepairReport:
        """`Storage.repair`, blocking; `progress` is called on the portal's thread."""
        report: RepairReport = self._call(self._storage.repair, prefix, **options)
        return report

    # -- life cycle ------------------------------------------------------------------------

    def close(self, *, wait_s: float | None = None) -> None:
        """Refuse new calls, wait for those in flight (at most `wait_s` seconds; None: as long
        as they take), then close the providers and stop the loop thread."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            self._state.wait_for(lambda: self._in_flight == 0, timeout=wait_s)
            runtime, self._runtime = self._runtime, None
            finalizer, self._finalizer = self._finalizer, None
        _live.discard(self)
        if finalizer is not None:
            finalizer.detach()
        if runtime is not None:
            runtime.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SyncWriter:
    """`SyncStorage.open_writer`: a `StorageWriter` driven from a blocking thread, one loop call
    per chunk (each waits while the slowest healthy provider is full)."""

    def __init__(self, owner: SyncStorage, key: str, opts: UploadOptions) -> None:
        self._owner = owner
        self._key = key
        self._opts = opts
        self._writer: StorageWriter | None = None
        self._runtime: _Runtime | None = None
        self.report: UploadReport | None = None

    def __enter__(self) -> Self:
        if self._writer is not None:
            raise RuntimeError("a SyncWriter can be entered only once")
        self._runtime = self._owner._begin()  # the writer counts as a call in flight until it exits
        try:
            writer = self._runtime.storage.open_writer(self._key, **self._opts)
            self._runtime.portal.call(writer.__aenter__)
        except BaseException:
            self._owner._end()
            raise
        self._writer = writer
        return self

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._writer is None or self._runtime is None or self.report is not None:
            raise RuntimeError("write() outside the writer's `with` block")
        self._runtime.portal.call(self._writer.write, chunk)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._writer is not None and self._runtime is not None
        try:
            self._runtime.portal.call(self._writer.__aexit__, exc_type, exc, tb)
        finally:
            self.report = self._writer.report
            self._owner._end()


def _close_at_exit(runtime: _Runtime) -> None:
    # weakref.finalize: the SyncStorage was collected, or the interpreter is exiting
    owners = [s for s in _live if s._runtime is runtime]
    for owner in owners:  # still alive: the interpreter is exiting
        owner.close(wait_s=EXIT_GRACE_S)
    if not owners:
        runtime.close()


_live: weakref.WeakSet[SyncStorage] = weakref.WeakSet()
_closing: set[asyncio.Task[None]] = set()
_inherited: list[_Runtime] = []
"""Runtimes a forked child inherited: kept referenced so that nothing ever closes them here."""


def _after_fork_in_child() -> None:
    for storage in list(_live):
        storage._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
