"""The `Provider` contract every backend implements, and `ObjectInfo`.

Guarantees every provider gives (tested for each one in `tests/contract/`):
- An upload stores the whole object or nothing: a failed or cancelled upload leaves no
  partial object visible, and aborts its multipart upload / never commits its block list.
- `overwrite=False` is a conditional create on the service (never exists-then-put): an existing
  object is left untouched and `AlreadyExistsError` is raised.
- `allow_empty=False` (the default) refuses an empty source before anything is written.
- Uploads read their source once, in bounded memory, and never block the event loop.
- What the service stored is checked against what was sent (MD5 / ETag); a mismatch is an error.
- `delete` is idempotent; `head` raises `NotFoundError`; `list` pages through everything.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from .._types import ObjectInfo, ProgressCallback

__all__ = ["ObjectInfo", "ProgressCallback", "Provider"]

@runtime_checkable
class Provider(Protocol):
    """One storage backend. No member has a default: every wrapper forwards all of them."""

    @property
    def name(self) -> str: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

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
    ) -> ObjectInfo: ...

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
    ) -> ObjectInfo: ...

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
    ) -> ObjectInfo: ...

    async def download_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo: ...

    async def download_bytes(self, key: str) -> bytes: ...

    def iter_bytes(self, key: str) -> AsyncIterator[bytes]: ...

    async def head(self, key: str) -> ObjectInfo: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]: ...

    async def presigned_url(self, key: str, expires_in: int = 3600, method: str = "GET") -> str: ...

    async def aclose(self) -> None: ...
