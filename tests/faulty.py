"""FaultyProvider: wraps any provider and injects failures, stalls and hooks. It forwards
every `Provider` member explicitly (a test checks that none is missing)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from typing import Any, Self

from unistore import ObjectInfo, TransientError
from unistore.providers import Provider


class FaultyProvider:
    def __init__(self, inner: Provider, *, name: str | None = None) -> None:
        self.inner = inner
        self._name = name or inner.name
        self.fail_with: BaseException | None = None
        self.fail_after_bytes: int | None = None
        """Raise `fail_with` (default a TransientError) once this many stream bytes were read."""
        self.stall: asyncio.Event | None = None
        """Uploads wait for this event before they start."""
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self.calls: list[str] = []
        self.fail_reads_with: BaseException | None = None
        """Every read, head, exists, delete, list and presign raises this (a provider that is down)."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def label(self) -> str:
        return f"faulty {self._name}"

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.inner.__aexit__(exc_type, exc, tb)

    def _error(self) -> BaseException:
        return self.fail_with or TransientError("injected fault", provider=self._name, code="Injected")

    async def _before(self, op: str) -> None:
        self.calls.append(op)
        self.started.set()
        if self.stall is not None:
            await self.stall.wait()
        if self.fail_with is not None and self.fail_after_bytes is None:
            raise self.fail_with

    async def _done(self, info: ObjectInfo) -> ObjectInfo:
        self.finished.set()
        return info

    async def upload_file(self, path: str | os.PathLike[str], key: str, **opts: Any) -> ObjectInfo:
        await self._before("upload_file")
        return await self._done(await self.inner.upload_file(path, key, **opts))

    async def upload_bytes(self, data: bytes, key: str, **opts: Any) -> ObjectInfo:
        await self._before("upload_bytes")
        if self.fail_after_bytes is not None and len(data) > self.fail_after_bytes:
            raise self._error()
        return await self._done(await self.inner.upload_bytes(data, key, **opts))

    async def upload_stream(self, chunks: AsyncIterable[bytes], key: str, **opts: Any) -> ObjectInfo:
        await self._before("upload_stream")
        return await self._done(await self.inner.upload_stream(self._watch(chunks), key, **opts))

    async def _watch(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in chunks:
            seen += len(chunk)
            if self.fail_after_bytes is not None and seen > self.fail_after_bytes:
                raise self._error()
            yield chunk

    def _read(self, op: str) -> None:
        self.calls.append(op)
        if self.fail_reads_with is not None:
            raise self.fail_reads_with

    async def download_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        self._read("download_file")
        return await self.inner.download_file(key, path)

    async def download_bytes(self, key: str) -> bytes:
        self._read("download_bytes")
        return await self.inner.download_bytes(key)

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        self._read("iter_bytes")
        async for chunk in self.inner.iter_bytes(key):
            yield chunk

    async def head(self, key: str) -> ObjectInfo:
        self._read("head")
        return await self.inner.head(key)

    async def exists(self, key: str) -> bool:
        self._read("exists")
        return await self.inner.exists(key)

    async def delete(self, key: str) -> None:
        self._read("delete")
        await self.inner.delete(key)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        self._read("list")
        async for info in self.inner.list(prefix):
            yield info

    async def presigned_url(self, key: str, expires_in: int = 3600, method: str = "GET") -> str:
        self._read("presigned_url")
        return await self.inner.presigned_url(key, expires_in, method)

    async def aclose(self) -> None:
        await self.inner.aclose()


def forwarded_members() -> set[str]:
    return {n for n in vars(FaultyProvider) if not n.startswith("_") or n in ("__aenter__", "__aexit__")}


