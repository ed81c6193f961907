"""MemoryProvider: a dict in this process. The reference implementation of the contract,
and the provider unit tests and the fan-out tests build on."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Unpack
from urllib.parse import quote

from .. import _integrity
from .._errors import AlreadyExistsError, NotFoundError
from .._types import MiB, ObjectInfo, PartLimits, ProviderInfo, PutOptions
from .._validate import check_key
from ._base import BaseProvider, ProviderOptions


@dataclass
class _PendingUpload:
    key: str
    opts: PutOptions
    parts: dict[int, bytes] = field(default_factory=dict)


class MemoryProvider(BaseProvider):
    declared = ProviderInfo(
        label="memory",
        limits=PartLimits(max_parts=10_000, min_part=1, max_part=5 * 1024 * MiB, max_single_put=sys.maxsize),
    )

    def __init__(self, *, name: str = "memory", **options: Unpack[ProviderOptions]) -> None:
        super().__init__(name=name, **options)
        self.objects: dict[str, tuple[bytes, ObjectInfo]] = {}
        self.uploads: dict[int, _PendingUpload] = {}
        self._ids = itertools.count(1)
        self.closed = False

    def _store(self, key: str, data: bytes, opts: PutOptions, checksum: str) -> ObjectInfo:
        if not opts.overwrite and key in self.objects:
            raise AlreadyExistsError(
                "an object already exists under this key and overwrite=False",
                provider=self.name, key=key, code="AlreadyExists",
                hint="use another key, or pass overwrite=True to replace it",
            )
        info = ObjectInfo(
            key=key,
            size=len(data),
            etag=checksum.split(":", 1)[1],
            content_type=opts.content_type,
            last_modified=datetime.now(UTC),
            metadata=dict(opts.metadata),
            checksum=checksum,
            tier=opts.tier,
        )
        self.objects[key] = (data, info)
        return info

    async def _put_object(self, key: str, data: bytes, digest: bytes, opts: PutOptions) -> ObjectInfo:
        return self._store(key, data, opts, _integrity.label(opts.digest, digest))

    async def _start_parts(self, key: str, opts: PutOptions) -> Any:
        upload_id = next(self._ids)
        self.uploads[upload_id] = _PendingUpload(key, opts)
        return upload_id

    async def _put_part(self, handle: Any, number: int, data: bytes, digest: bytes) -> Any:
        self.uploads[handle].parts[number] = data
        return number

    async def _complete_parts(
        self, handle: Any, key: str, parts: Sequence[Any], digests: Sequence[bytes], size: int, opts: PutOptions
    ) -> ObjectInfo:
        upload = self.uploads[handle]
        data = b"".join(upload.parts[n] for n in parts)
        info = self._store(key, data, opts, _integrity.parts_label(opts.digest, digests))
        del self.uploads[handle]
        return info

    async def _abort_parts(self, handle: Any, key: str) -> None:
        self.uploads.pop(handle, None)

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        data, _ = self._get(key)
        step = 1024 * 1024
        for start in range(0, len(data), step):
            yield data[start : start + step]

    def _get(self, key: str) -> tuple[bytes, ObjectInfo]:
        check_key(key)
        try:
            return self.objects[key]
        except KeyError:
            raise NotFoundError(
                "no object under this key", provider=self.name, key=key, code="NoSuchKey"
            ) from None

    async def head(self, key: str) -> ObjectInfo:
        return replace(self._get(key)[1])

    async def delete(self, key: str) -> None:
        check_key(key)
        self.objects.pop(key, None)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        for key in sorted(k for k in self.objects if k.startswith(prefix)):
            if key in self.objects:
                yield self.objects[key][1]

    async def presigned_url(self, key: str, expires_in: int = 3600, method: str = "GET") -> str:
        check_key(key)
        return f"memory://{self.name}/{quote(key)}?method={method}&expires_in={expires_in}"

    async def aclose(self) -> None:
        self.closed = True
