"""Private base of the built-in providers: the `Provider` methods over a subclass's primitives.

A provider subclass supplies the service primitives (`_put_object`, the four part primitives
of `unistore._multipart.PartBackend`, `iter_bytes`, `head`, `delete`, `list`, `presigned_url`,
`aclose`) and declares its `info`; what must behave the same on every backend lives in core
modules named for it: checks in `_validate`, the one-shot-or-parts decision and the part driver
in `_multipart`, deadlines in `_deadline`, downloads in `_download`.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import replace
from typing import Any, Self, TypedDict, Unpack

from .. import _multipart
from .._budget import BufferBudget, default_budget
from .._deadline import source_time_excluded, under_upload_deadline
from .._download import download_streamed
from .._errors import Context, NotFoundError, ProviderError
from .._io import DigestLookup
from .._multipart import Transfer
from .._tiers import Service, Tier, canonical, for_provider
from .._types import Kind, ObjectInfo, PartLimits, ProviderInfo, PutOptions, UploadOptions
from .._validate import check_key, check_upload, empty_source, guess_content_type, source_size


class ProviderOptions(TypedDict, total=False):
    """The constructor keywords every built-in provider passes on to `BaseProvider` (their
    defaults and meaning are `BaseProvider`'s)."""

    transfer: Transfer | None
    overwrite: bool
    budget: BufferBudget | None
    tier: str | None


class BaseProvider(ABC):
    """Shared behaviour of the built-in providers. Not public: the contract is `Provider`."""

    declared: ProviderInfo = ProviderInfo()
    """What the provider class declares (label, digests, limits); `info` adds the sizes of
    `transfer`."""
    network_hint: str = "check the network path to the service"
    """The fix an error names when a connection to the service fails (`unistore._request`)."""
    tier_service: Service = "generic"
    """Whose tier names this provider takes (`unistore._tiers`): `s3`, `azure`, or `generic`."""

    def __init__(
        self,
        *,
        name: str,
        transfer: Transfer | None = None,
        overwrite: bool = True,
        budget: BufferBudget | None = None,
        tier: str | None = None,
    ) -> None:
        self._name = name
        self.transfer = transfer or Transfer()
        self.overwrite = overwrite
        self.tier = canonical(self.tier_service, tier) if tier else None
        """The tier of every upload that names none (`AWS_S3_STORAGE_CLASS`,
        `AZURE_STORAGE_ACCESS_TIER`); None: the service's default."""
        self.budget = budget or default_budget()
        self._info_cache: tuple[Transfer, ProviderInfo, ProviderInfo] | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def info(self) -> ProviderInfo:
        """What this provider declares to the manager and the part driver."""
        cached = self._info_cache
        if cached is None or cached[0] is not self.transfer or cached[1] is not self.declared:
            transfer, declared = self.transfer, self.declared
            limits = declared.limits
            info = replace(
                declared,
                one_shot_max=min(transfer.threshold, limits.max_single_put),
                part_size=min(max(transfer.chunk_size, limits.min_part), limits.max_part),
            )
            cached = self._info_cache = (transfer, declared, info)
        return cached[2]

    @property
    def label(self) -> str:
        return self.info.label

    @property
    def digests(self) -> tuple[Kind, ...]:
        return self.info.digests

    @property
    def limits(self) -> PartLimits:
        return self.info.limits

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
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

    def map_error(self, exc: Exception, ctx: Context) -> ProviderError | None:
        """The service's own errors as unistore errors, through the provider's code table
        (`unistore._request` applies it, then the shared fallbacks); None: not one it knows."""
        return None

    # -- uploads -------------------------------------------------------------------------

    def _options(self, method: str, key: str, options: UploadOptions, also: frozenset[str] = frozenset()) -> PutOptions:
        content_type, metadata = check_upload(method, key, options, also)
        overwrite = options.get("overwrite")
        return PutOptions(
            content_type=content_type,
            metadata=metadata,
            overwrite=self.overwrite if overwrite is None else overwrite,
            allow_empty=options.get("allow_empty", False),
            digest=self.info.digests[0],
            tier=self.resolve_tier(options.get("tier")),
        )

    def resolve_tier(self, tier: Tier | None) -> str | None:
        """The tier an upload given `tier=` is stored in, in this service's spelling (see
        `unistore._tiers`); `ValueError` naming the allowed values for one it cannot take."""
        return for_provider(tier, self.name, self.tier_service, self.tier)

    async def upload_file(
        self, path: str | os.PathLike[str], key: str, **options: Unpack[UploadOptions]
    ) -> ObjectInfo:
        if options.get("content_type") is None:
            options["content_type"] = guess_content_type(path)
        opts = self._options("upload_file", key, options)
        size = await asyncio.to_thread(source_size, path)
        if size == 0 and not opts.allow_empty:
            raise empty_source(key, path)
        upload = _multipart.put_file(self, os.fspath(path), key, size, opts, options.get("progress"))
        return await under_upload_deadline(upload, self.transfer.upload_timeout, self.name, key)

    async def upload_bytes(self, data: bytes, key: str, **options: Unpack[UploadOptions]) -> ObjectInfo:
        opts = self._options("upload_bytes", key, options)
        data = bytes(data) if not isinstance(data, bytes) else data
        if not data and not opts.allow_empty:
            raise empty_source(key)
        upload = _multipart.put_bytes(self, data, key, opts, options.get("progress"))
        return await under_upload_deadline(upload, self.transfer.upload_timeout, self.name, key)

    async def upload_stream(
        self,
        chunks: AsyncIterable[bytes],
        key: str,
        *,
        size_hint: int | None = None,
        **options: Unpack[UploadOptions],
    ) -> ObjectInfo:
        opts = self._options("upload_stream", key, options)
        # a fan-out channel knows each chunk's digest (hashed once for every provider), of a kind
        # every provider of the fan-out accepts
        lookup = getattr(chunks, "digest", None)
        kind = getattr(chunks, "digest_kind", None)
        digest: DigestLookup | None = None
        if callable(lookup) and kind in self.info.digests:
            digest = lookup
            opts = replace(opts, digest=kind)
        paced = source_time_excluded(aiter(chunks))
        upload = _multipart.put_stream(self, paced, key, opts, options.get("progress"), size_hint, digest)
        return await under_upload_deadline(upload, self.transfer.upload_timeout, self.name, key)

    # -- downloads and checks ------------------------------------------------------------

    async def download_bytes(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.iter_bytes(key)])

    async def download_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Stream into a temporary file beside `path`, renamed into place only when complete."""
        check_key(key)
        info = await self.head(key)
        await download_streamed(self.iter_bytes(key), path, info.size, self.name, key)
        return info

    async def exists(self, key: str) -> bool:
        try:
            await self.head(key)
        except NotFoundError:
            return False
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


__all__ = ["BaseProvider"]
