"""The `Provider` contract every backend implements, and `ObjectInfo`.

Guarantees every provider gives (tested for each one in `tests/contract/`):
- An upload stores the whole object or nothing: a failed or cancelled upload leaves no
  partial object visible, and aborts its multipart upload / never commits its block list.
- `overwrite=False` is a conditional create on the service (never exists-then-put): an existing
  object is left untouched and `AlreadyExistsError` is raised.
- `allow_empty=False` (the default) refuses an empty source before anything is written.
- The upload options are `UploadOptions` (a name it does not list is a `TypeError`).
- `tier=` (one value, or a mapping per provider name; see `unistore._tiers`) stores the object in
  that tier; a value the provider cannot take is a `ValueError` before anything is written, and
  `ObjectInfo.tier` reports the tier from `head` and `list` where the service says.
- Uploads read their source once, in bounded memory, and never block the event loop.
- What the service stored is checked against what was sent (the upload's digest: CRC-64,
  CRC32 or MD5, see `unistore._integrity`); a mismatch is an error.
- `delete` is idempotent; `head` raises `NotFoundError`; `list` pages through everything.
- `ObjectInfo.etag` is unquoted; the same from the upload, `head` and `list`.
- A response shorter than the object is a `TransientError` with code `IncompleteDownload`.
- `aclose()` releases the provider's connections and is idempotent; a provider used after it
  opens new ones (on the event loop that uses it).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, Unpack, runtime_checkable

from .._types import ObjectInfo, ProgressCallback, ProviderInfo, UploadOptions

__all__ = ["IncompleteUploadCleaner", "ObjectInfo", "ProgressCallback", "Provider", "ProviderInfo"]

@runtime_checkable
class Provider(Protocol):
    """One storage backend. No member has a default: every wrapper forwards all of them."""

    @property
    def name(self) -> str: ...

    @property
    def info(self) -> ProviderInfo:
        """What the manager needs to know: the operator label, the digests the service checks,
        its limits and one-shot and part sizes, and whether it cleans incomplete uploads."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def upload_file(
        self, path: str | os.PathLike[str], key: str, **options: Unpack[UploadOptions]
    ) -> ObjectInfo: ...

    async def upload_bytes(self, data: bytes, key: str, **options: Unpack[UploadOptions]) -> ObjectInfo: ...

    async def upload_stream(
        self,
        chunks: AsyncIterable[bytes],
        key: str,
        *,
        size_hint: int | None = None,
        **options: Unpack[UploadOptions],
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


class IncompleteUploadCleaner(Protocol):
    """The optional capability a provider declares with `info.cleans_incomplete_uploads`
    (`unistore cleanup`): abort the multipart uploads a crashed process left behind."""

    async def cleanup_incomplete_uploads(
        self,
        *,
        older_than: float = 3600.0,
        prefix: str = "",
        on_abort: Callable[[str, datetime | None], object] | None = None,
    ) -> int: ...
