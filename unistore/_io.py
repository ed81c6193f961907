"""Reading upload sources and writing downloads: by offset, in the part threads, each byte once.

- `read_range`: one part of a file (pread), hashed in the same worker thread.
- `file_parts` / `stream_parts`: the parts the part driver (`unistore._multipart`) uploads.
- `file_chunks` / `cut_part`: a fan-out's one read of a file, and a writer's parts.
- `temp_beside`, `pwrite_all`, `unlink_quietly`: a download's temporary file.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import _integrity
from ._errors import SourceError
from ._threads import run_in_part_thread
from ._types import Kind

if TYPE_CHECKING:
    from ._multipart import PartSizer

PartSource = AsyncIterator[tuple[int, Callable[[], Awaitable[tuple[bytes, bytes]]]]]
"""`(size, load)` pairs in order; `load()` returns the part's bytes and digest."""


def file_parts(
    path: str | os.PathLike[str], size: int, sizer: PartSizer, kind: Kind = "md5"
) -> PartSource:
    """Parts of a file read by offset (pread) in worker threads, each read once and hashed there."""
    return _file_parts(os.fspath(path), size, sizer, kind)


async def _file_parts(
    path: str, size: int, sizer: PartSizer, kind: Kind
) -> PartSource:
    offset = 0
    number = 1
    while offset < size:
        length = min(sizer.size(number), size - offset)
        yield length, _file_loader(path, offset, length, kind)
        offset += length
        number += 1


def _file_loader(
    path: str, offset: int, length: int, kind: Kind
) -> Callable[[], Awaitable[tuple[bytes, bytes]]]:
    async def load() -> tuple[bytes, bytes]:
        return await run_in_part_thread(read_range, path, offset, length, kind)

    return load


def read_range(path: str, offset: int, length: int, kind: Kind = "md5") -> tuple[bytes, bytes]:
    """Read `length` bytes at `offset` and hash them (`kind`), in the calling (worker) thread."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SourceError(
            f"{path!r} could not be opened while it was being uploaded ({exc.strerror or exc}): "
            "keep the file in place, readable, until the upload returns"
        ) from None
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length:
        raise SourceError(
            f"{path!r} shrank while it was being uploaded ({len(data)} of {length} bytes at "
            f"offset {offset}): upload files only once the recorder has closed them"
        )
    return data, _integrity.digest(kind, data)


DigestLookup = Callable[[bytes], "bytes | None"]


def stream_parts(
    prefix: list[tuple[bytes, bytes | None]],
    chunks: AsyncIterator[bytes] | None,
    sizer: PartSizer,
    digest: DigestLookup | None = None,
    kind: Kind = "md5",
) -> PartSource:
    """Parts cut from a stream of chunks of any size; a chunk that is exactly one part is
    passed on without a copy, with its digest (of `kind`) when the source already knows it
    (`digest`, asked right after each chunk arrives: a fan-out hashes each chunk once for
    everyone)."""
    return _stream_parts(prefix, chunks, sizer, digest, kind)


async def _stream_parts(
    prefix: list[tuple[bytes, bytes | None]],
    chunks: AsyncIterator[bytes] | None,
    sizer: PartSizer,
    digest: DigestLookup | None,
    kind: Kind,
) -> PartSource:
    number = 1
    want = sizer.size(number)
    pending: list[bytes | memoryview] = []
    have = 0

    async def source() -> AsyncIterator[tuple[bytes, bytes | None]]:
        for item in prefix:
            yield item
        prefix.clear()
        if chunks is not None:
            async for chunk in chunks:
                yield chunk, (digest(chunk) if digest is not None else None)

    async for chunk, known in source():
        if not chunk:
            continue
        if not pending and len(chunk) == want:
            yield want, _memory_loader(chunk, kind, known)
            number += 1
            want = sizer.size(number)
            continue
        view = memoryview(chunk)
        while view:
            take = view[: want - have]
            pending.append(take)
            have += len(take)
            view = view[len(take) :]
            if have == want:
                yield want, _memory_loader(b"".join(pending), kind)
                pending = []
                have = 0
                number += 1
                want = sizer.size(number)
    if pending:
        yield have, _memory_loader(b"".join(pending), kind)


def _memory_loader(
    data: bytes, kind: Kind, known: bytes | None = None
) -> Callable[[], Awaitable[tuple[bytes, bytes]]]:
    async def load() -> tuple[bytes, bytes]:
        if known is not None:
            return data, known
        return data, await run_in_part_thread(_integrity.digest, kind, data)

    return load


async def hash_small(kind: Kind, data: bytes) -> bytes:
    # small buffers hash faster inline than a thread hop costs
    if len(data) < 1024 * 1024:
        return _integrity.digest(kind, data)
    return await run_in_part_thread(_integrity.digest, kind, data)


async def file_chunks(
    path: str, offset: int, size: int, chunk: int, kind: Kind
) -> AsyncGenerator[tuple[bytes, bytes], None]:
    """A file from `offset` in chunks with their digests: the fan-out's one read, and the rest
    of it for a provider that fell behind."""
    while offset < size:
        length = min(chunk, size - offset)
        data, digest = await run_in_part_thread(read_range, path, offset, length, kind)
        offset += length
        yield data, digest


def cut_part(chunks: list[bytes], size: int, kind: Kind) -> tuple[bytes, bytes, bytes]:
    """The first `size` bytes of `chunks` as one part, its digest, and what is left over."""
    joined = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(joined) == size:
        part, rest = joined, b""
    else:
        part, rest = joined[:size], joined[size:]
    return part, _integrity.digest(kind, part), rest


def temp_beside(target: str) -> tuple[int, str]:
    """A new hidden `.part` file in `target`'s folder (the same file system, so that the final
    rename is atomic)."""
    import tempfile  # with shutil, bz2, lzma and random behind it: imported when first needed

    folder, name = os.path.split(target)
    return tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder or ".")


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


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def read_up_to(body: Any, size: int) -> bytes:
    """Read from a streaming body until `size` bytes or the end (aiohttp hands out whatever
    has arrived, often 64 KiB at a time)."""
    chunks: list[bytes] = []
    have = 0
    while have < size:
        chunk: bytes = await body.read(size - have)
        if not chunk:
            break
        chunks.append(chunk)
        have += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
