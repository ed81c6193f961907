"""Private base of the built-in providers: uploads, downloads and checks written once.

A provider subclass supplies the service primitives (`_put_object`, the four part
primitives of `unistore._multipart.PartBackend`, `_get_stream`, `head`, `delete`, `list`,
`presigned_url`, `aclose`); everything that must behave the same on every backend (key
and source checks, the single-put / multipart decision, retries, deadlines, progress,
download to a temporary file) lives here.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import re
import stat
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, ClassVar, Self

from .. import _integrity
from .._budget import BufferBudget, default_budget
from .._errors import AlreadyExistsError, ConfigError, EmptySourceError, NotFoundError, SourceError, TransientError
from .._keys import check_key
from .._multipart import (
    DigestLookup,
    PartLimits,
    PartSizer,
    PutOptions,
    Transfer,
    bounded,
    file_parts,
    read_range,
    run_parts,
    stream_parts,
)
from .._retry import retry
from .._threads import run_in_part_thread
from ._protocol import ObjectInfo, ProgressCallback

_META_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_UPLOAD_DEADLINE: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "unistore_upload_deadline", default=None
)
"""The running upload's `STORAGE_UPLOAD_TIMEOUT`, paused while the upload waits for its source."""


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata travels as HTTP headers: names must be identifiers (Azure requires C#
    identifiers), values printable ASCII. S3 returns names lower-cased."""
    result: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _META_KEY.match(name):
            raise ConfigError(
                f"metadata name {name!r} is invalid: use letters, digits and '_', not starting "
                "with a digit (e.g. 'meeting_id')"
            )
        if not isinstance(value, str) or not all(32 <= ord(c) < 127 for c in value):
            raise ConfigError(
                f"metadata value of {name!r} must be printable ASCII text: encode other text "
                "(e.g. urllib.parse.quote) before storing it"
            )
        result[name] = value
    return result


_CONTENT_TYPE = re.compile(r"^[\x21-\x7e]+/[\x20-\x7e]+$")


def check_content_type(content_type: str | None) -> str | None:
    """A content type travels as an HTTP header: 'type/subtype' in printable ASCII (a CR or
    LF would inject headers; services refuse other bytes)."""
    if content_type is None:
        return None
    if not isinstance(content_type, str) or not _CONTENT_TYPE.match(content_type):
        raise ConfigError(
            f"content_type {content_type!r} is invalid: use a MIME type in printable ASCII such as "
            "'video/mp4' (or None to guess it from the file name)"
        )
    return content_type


def source_size(path: str | os.PathLike[str]) -> int:
    """Size of an upload source, or a `SourceError` that says what is wrong with it. The file
    is opened once here, so that an unreadable one fails before anything is written."""
    where = os.fspath(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise SourceError(f"source file {where!r} does not exist: check the path") from None
    except PermissionError:
        raise SourceError(
            f"source file {where!r} is not readable by this process: check its permissions "
            "and those of its folders"
        ) from None
    except OSError as exc:
        raise SourceError(f"source file {where!r} cannot be used: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"source {where!r} is a directory: upload the files in it one by one")
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(
            f"source {where!r} is not a regular file (a FIFO, socket or device): upload a regular "
            "file, or pass a live source's chunks to upload_stream()"
        )
    try:
        os.close(os.open(path, os.O_RDONLY))
    except PermissionError:
        raise SourceError(
            f"source file {where!r} is not readable by this process: check its permissions (chmod)"
        ) from None
    except OSError as exc:
        raise SourceError(f"source file {where!r} cannot be read: {exc.strerror or exc}") from None
    return st.st_size


class BaseProvider(ABC):
    """Shared behaviour of the built-in providers. Not public: the contract is `Provider`."""

    label: ClassVar[str] = "storage"
    """Operator-facing name used in the INFO log lines ("AWS S3", "Azure Blob Storage")."""
    limits: ClassVar[PartLimits] = PartLimits()
    digests: tuple[_integrity.Kind, ...] = ("md5",)
    """Digest kinds this provider can have the service verify, most preferred first; an upload
    uses the first, or, in a fan-out, the one the fan-out computes for all when this provider
    accepts it (`_integrity.fanout_kind`)."""

    def __init__(
        self,
        *,
        name: str,
        transfer: Transfer | None = None,
        overwrite: bool = True,
        budget: BufferBudget | None = None,
    ) -> None:
        self._name = name
        self.transfer = transfer or Transfer()
        self.overwrite = overwrite
        self.budget = budget or default_budget()

    @property
    def name(self) -> str:
        return self._name

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- primitives a provider supplies --------------------------------------------------

    @abstractmethod
    async def _put_object(self, key: str, data: bytes, digest: bytes, opts: PutOptions) -> ObjectInfo:
        """One request that stores `data` whole, conditional on absence unless `opts.overwrite`;
        `digest` is of kind `opts.digest`."""

    @abstractmethod
    async def _start_parts(self, key: str, opts: PutOptions) -> Any: ...

    @abstractmethod
    async def _put_part(self, handle: Any, number: int, data: bytes, digest: bytes) -> Any: ...

    @abstractmethod
    async def _complete_parts(
        self, handle: Any, key: str, parts: Sequence[Any], digests: Sequence[bytes], size: int, opts: PutOptions
    ) -> ObjectInfo: ...

    @abstractmethod
    async def _abort_parts(self, handle: Any, key: str) -> None: ...

    @abstractmethod
    def iter_bytes(self, key: str) -> AsyncIterator[bytes]: ...

    @abstractmethod
    async def head(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]: ...

    @abstractmethod
    async def presigned_url(self, key: str, expires_in: int = 3600, method: str = "GET") -> str: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    # -- uploads -------------------------------------------------------------------------

    def _options(
        self,
        key: str,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        overwrite: bool | None,
        allow_empty: bool,
    ) -> PutOptions:
        check_key(key)
        return PutOptions(
            content_type=check_content_type(content_type),
            metadata=check_metadata(metadata),
            overwrite=self.overwrite if overwrite is None else overwrite,
            allow_empty=allow_empty,
            digest=self.digests[0],
        )

    async def _deadline(self, key: str, coro: Any) -> ObjectInfo:
        timeout = self.transfer.upload_timeout
        if timeout is None:
            result: ObjectInfo = await coro
            return result
        try:
            async with asyncio.timeout(timeout) as deadline:
                token = _UPLOAD_DEADLINE.set(deadline)
                try:
                    result = await coro
                finally:
                    _UPLOAD_DEADLINE.reset(token)
                return result
        except TimeoutError:
            raise TransientError(
                f"upload did not finish within STORAGE_UPLOAD_TIMEOUT={timeout:g}s; nothing was "
                "stored and the source was kept",
                provider=self.name,
                key=key,
                code="DeadlineExceeded",
                hint="raise STORAGE_UPLOAD_TIMEOUT or check the network path to the service",
            ) from None

    async def _put_small(
        self, key: str, data: bytes, digest: bytes, opts: PutOptions, progress: ProgressCallback | None
    ) -> ObjectInfo:
        if not data and not opts.allow_empty:
            raise _empty(key)
        attempts = 0

        async def attempt() -> ObjectInfo:
            nonlocal attempts
            attempts += 1
            return await bounded(self._put_object(key, data, digest, opts), self.transfer, len(data), self.name, key)

        try:
            info = await retry(attempt, self.transfer.retry, f"upload of {key!r}")
        except AlreadyExistsError:
            # A conditional create retried after a lost answer finds its own first write: the
            # object holding exactly our bytes is our upload, not somebody else's.
            if attempts < 2:
                raise
            stored = await self.head(key)
            if stored.checksum != _integrity.label(opts.digest, digest) or stored.size != len(data):
                raise
            info = stored
        if progress is not None:
            progress(self.name, len(data), len(data))
        return info

    async def upload_file(
        self,
        path: str | os.PathLike[str],
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool | None = None,
        allow_empty: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        if content_type is None:
            content_type = guess_content_type(path)
        opts = self._options(key, content_type, metadata, overwrite, allow_empty)
        size = await asyncio.to_thread(source_size, path)
        if size == 0 and not allow_empty:
            raise _empty(key, path)
        return await self._deadline(key, self._upload_file(os.fspath(path), key, size, opts, progress))

    async def _upload_file(
        self, path: str, key: str, size: int, opts: PutOptions, progress: ProgressCallback | None
    ) -> ObjectInfo:
        if size <= self.transfer.threshold:
            await self.budget.acquire(size)
            try:
                data, digest = await run_in_part_thread(read_range, path, 0, size, opts.digest)
                return await self._put_small(key, data, digest, opts, progress)
            finally:
                self.budget.release(size)
        sizer = PartSizer(self.transfer.chunk_size, self.limits, size)
        return await run_parts(
            self, key, opts, file_parts(path, size, sizer, opts.digest),
            transfer=self.transfer, budget=self.budget, total=size, progress=progress,
        )

    async def upload_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool | None = None,
        allow_empty: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        opts = self._options(key, content_type, metadata, overwrite, allow_empty)
        data = bytes(data) if not isinstance(data, bytes) else data
        if not data and not allow_empty:
            raise _empty(key)
        if len(data) <= self.transfer.threshold:
            digest = await _hash(opts.digest, data)
            return await self._deadline(key, self._put_small(key, data, digest, opts, progress))
        sizer = PartSizer(self.transfer.chunk_size, self.limits, len(data))
        return await self._deadline(
            key,
            run_parts(
                self, key, opts, stream_parts([(data, None)], None, sizer, kind=opts.digest),
                transfer=self.transfer, budget=self.budget, total=len(data), progress=progress,
            ),
        )

    async def upload_stream(
        self,
        chunks: AsyncIterable[bytes],
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool | None = None,
        allow_empty: bool = False,
        progress: ProgressCallback | None = None,
        size_hint: int | None = None,
    ) -> ObjectInfo:
        opts = self._options(key, content_type, metadata, overwrite, allow_empty)
        return await self._deadline(key, self._upload_stream(chunks, key, opts, progress, size_hint))

    async def _upload_stream(
        self,
        chunks: AsyncIterable[bytes],
        key: str,
        opts: PutOptions,
        progress: ProgressCallback | None,
        size_hint: int | None,
    ) -> ObjectInfo:
        threshold = self.transfer.threshold
        iterator = _source_time_excluded(aiter(chunks))
        # a fan-out channel knows each chunk's digest (hashed once for every provider), of a kind
        # every provider of the fan-out accepts
        lookup = getattr(chunks, "digest", None)
        kind = getattr(chunks, "digest_kind", None)
        digest: DigestLookup | None = None
        if callable(lookup) and kind in self.digests:
            digest = lookup
            opts = replace(opts, digest=kind)
        prefix: list[tuple[bytes, bytes | None]] = []
        buffered = 0
        exhausted = False
        # Decide single put vs parts: buffer up to the threshold, unless the size is known to
        # be above it (then parts start at once and nothing waits in a buffer).
        if size_hint is None or size_hint <= threshold:
            while buffered <= threshold:
                try:
                    chunk = await anext(iterator)
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
                known = await _hash(opts.digest, data)
            del prefix
            return await self._put_small(key, data, known, opts, progress)
        sizer = PartSizer(self.transfer.chunk_size, self.limits, size_hint)
        return await run_parts(
            self, key, opts, stream_parts(prefix, iterator, sizer, digest, opts.digest),
            transfer=self.transfer, budget=self.budget, total=size_hint, progress=progress,
        )

    # -- downloads and checks ------------------------------------------------------------

    async def download_bytes(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.iter_bytes(key)])

    async def download_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Stream into a temporary file beside `path`, renamed into place only when complete."""
        check_key(key)
        info = await self.head(key)
        target = os.fspath(path)
        fd, tmp = await asyncio.to_thread(_temp_beside, target)
        written = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in self.iter_bytes(key):
                    await asyncio.to_thread(out.write, chunk)
                    written += len(chunk)
            if written != info.size:
                raise TransientError(
                    f"download of {key!r} ended after {written} of {info.size} bytes",
                    provider=self.name, key=key, code="IncompleteDownload",
                )
            await asyncio.to_thread(os.replace, tmp, target)
        except BaseException:
            await asyncio.to_thread(_unlink_quietly, tmp)
            raise
        return info

    async def _download_ranges(
        self,
        path: str | os.PathLike[str],
        size: int,
        step: int,
        fetch: Callable[[int, int, int], Awaitable[None]],
    ) -> None:
        """The ranged download both cloud providers use: `fetch(fd, start, end)` writes bytes
        [start, end) by offset into a temporary file beside `path`, `max_concurrency` ranges at
        a time; the file is renamed into place when every range is in, removed on any failure."""
        target = os.fspath(path)
        fd, tmp = await asyncio.to_thread(_temp_beside, target)
        ranges = [(start, min(start + step, size)) for start in range(0, size, step)]
        pending = iter(ranges)

        async def worker() -> None:
            for start, end in pending:
                await fetch(fd, start, end)

        count = min(max(1, self.transfer.max_concurrency), len(ranges))
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
            await asyncio.to_thread(_unlink_quietly, tmp)
            raise

    async def exists(self, key: str) -> bool:
        try:
            await self.head(key)
        except NotFoundError:
            return False
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


async def _source_time_excluded(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks`, with the upload's deadline paused while each chunk is awaited: the pace of the
    source (a live meeting's next chunk, or a slower provider that holds back a fan-out) is not
    this provider's, and must not time it out; a dead provider still times out on its own."""
    deadline = _UPLOAD_DEADLINE.get()
    loop = asyncio.get_running_loop()
    while True:
        when = deadline.when() if deadline is not None and not deadline.expired() else None
        if deadline is not None and when is not None:
            deadline.reschedule(None)
        began = loop.time()
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        finally:
            if deadline is not None and when is not None and not deadline.expired():
                try:
                    deadline.reschedule(when + (loop.time() - began))
                except RuntimeError:  # the upload's `async with` has already exited
                    pass
        yield chunk


def guess_content_type(path: str | os.PathLike[str]) -> str | None:
    import mimetypes  # imported when first needed: `import unistore` stays cheap

    kind, _ = mimetypes.guess_type(os.fspath(path))
    return kind


def _temp_beside(target: str) -> tuple[int, str]:
    """A new hidden `.part` file in `target`'s folder (the same file system, so that the final
    rename is atomic)."""
    import tempfile  # with shutil, bz2, lzma and random behind it: imported when first needed

    folder, name = os.path.split(target)
    return tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder or ".")


def _empty(key: str, path: str | os.PathLike[str] | None = None) -> EmptySourceError:
    where = f"source file {os.fspath(path)!r}" if path is not None else "source"
    return EmptySourceError(
        f"{where} for {key!r} is empty (0 bytes): nothing was uploaded; pass allow_empty=True "
        "to store an empty object on purpose"
    )


async def _hash(kind: _integrity.Kind, data: bytes) -> bytes:
    # small buffers hash faster inline than a thread hop costs
    if len(data) < 1024 * 1024:
        return _integrity.digest(kind, data)
    return await run_in_part_thread(_integrity.digest, kind, data)


WRITE_BATCH = 4 * 1024 * 1024
"""A ranged download gathers this much of a response before one `pwritev` in a worker thread."""
_IOV_MAX = 512
"""Buffers per `pwritev` at most (Linux allows 1024)."""


async def drain_to_file(response: Any, fd: int, offset: int) -> int:
    """Write a response body (an aiohttp response, or botocore's body wrapping one) into `fd`
    from `offset`, in the chunks aiohttp received (`readany`), batched into one `pwritev` per
    `WRITE_BATCH` in a worker thread; returns the bytes written. `read(n)` would join the chunks
    into one buffer on the loop thread first: a copy into fresh memory, the longest loop step
    of a download. The connection goes back to the pool at the end, and is dropped on failure."""
    written, held = 0, 0
    batch: list[bytes] = []
    try:
        while True:
            chunk: bytes = await response.content.readany()
            if chunk:
                batch.append(chunk)
                held += len(chunk)
            if held and (not chunk or held >= WRITE_BATCH or len(batch) >= _IOV_MAX):
                await asyncio.to_thread(pwrite_all, fd, batch, offset + written)
                written += held
                batch, held = [], 0
            if not chunk:
                break
    except BaseException:
        response.close()  # unread bytes: drop the connection
        raise
    response.release()
    return written


def pwrite_all(fd: int, buffers: list[bytes], offset: int) -> None:
    """Write `buffers` at `offset`, however short the kernel's writes are."""
    total = sum(len(b) for b in buffers)
    written = os.pwritev(fd, buffers, offset)
    if written < total:
        rest = memoryview(b"".join(buffers))[written:]
        while rest:
            n = os.pwrite(fd, rest, offset + written)
            written += n
            rest = rest[n:]


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
