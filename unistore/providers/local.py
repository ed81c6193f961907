"""LocalProvider: a folder on disk. Writes are staged in a temporary file and renamed into
place, so a reader never sees a partial object; every file operation runs in a worker thread."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Unpack

from .. import _integrity
from .._errors import AlreadyExistsError, ConfigError, InvalidKeyError, NotFoundError
from .._types import MiB, ObjectInfo, PartLimits, ProviderInfo, PutOptions
from .._validate import check_key
from ._base import BaseProvider, ProviderOptions

_RESERVED = ".unistore"
_INTERNAL = ("staging", "meta")
"""This provider's own folders under `_RESERVED`; the rest of it holds objects like any other
key (the repair journal, `.unistore/pending/`)."""
_READ_CHUNK = 1024 * 1024


class LocalProvider(BaseProvider):
    declared = ProviderInfo(
        label="local filesystem",
        limits=PartLimits(max_parts=100_000, min_part=1, max_part=5 * 1024 * MiB, max_single_put=sys.maxsize),
    )

    def __init__(
        self, root: str | os.PathLike[str] = "./storage", *, name: str = "local", **options: Unpack[ProviderOptions]
    ) -> None:
        super().__init__(name=name, **options)
        self.root = Path(root).absolute()
        _check_root(self.root)
        self._staging = self.root / _RESERVED / "staging"
        self._meta = self.root / _RESERVED / "meta"

    # -- paths ---------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The file that holds `key`; keys that would leave the root are refused."""
        check_key(key)  # also refuses empty, '.' and '..' segments (and so a leading '/')
        parts = key.split("/")
        if "\\" in key:
            raise InvalidKeyError(
                f"object key {key!r} is not usable by the local provider: a '\\' separates folders "
                "on some systems; use '/' between names"
            )
        if parts[0] == _RESERVED and (len(parts) == 1 or parts[1] in _INTERNAL):
            raise InvalidKeyError(
                f"object key {key!r} uses the local provider's own folders "
                f"({', '.join(f'{_RESERVED}/{name}/' for name in _INTERNAL)})"
            )
        return self.root.joinpath(*parts)

    def _meta_path(self, key: str) -> Path:
        return self._meta.joinpath(*key.split("/")).with_name(key.split("/")[-1] + ".json")

    # -- writes --------------------------------------------------------------------------

    def _new_staged(self) -> Path:
        self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging / uuid.uuid4().hex

    def _publish(self, staged: Path, key: str, opts: PutOptions, checksum: str) -> ObjectInfo:
        """Rename the staged file into place (link + unlink for a conditional create)."""
        target = self.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if opts.overwrite:
                os.replace(staged, target)
            else:
                try:
                    os.link(staged, target)
                except FileExistsError:
                    raise AlreadyExistsError(
                        "an object already exists under this key and overwrite=False",
                        provider=self.name, key=key, code="AlreadyExists",
                        hint="use another key, or pass overwrite=True to replace it",
                    ) from None
                staged.unlink()
        finally:
            staged.unlink(missing_ok=True)
        meta = {"content_type": opts.content_type, "metadata": opts.metadata, "checksum": checksum, "tier": opts.tier}
        meta_path = self._meta_path(key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = meta_path.with_name(meta_path.name + "." + uuid.uuid4().hex)
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, meta_path)
        return self._info(key)

    def _write_object(self, key: str, data: bytes, opts: PutOptions, checksum: str) -> ObjectInfo:
        self.path_for(key)
        staged = self._new_staged()
        try:
            with open(staged, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            return self._publish(staged, key, opts, checksum)
        finally:
            staged.unlink(missing_ok=True)

    async def _put_object(self, key: str, data: bytes, digest: bytes, opts: PutOptions) -> ObjectInfo:
        return await asyncio.to_thread(self._write_object, key, data, opts, _integrity.label(opts.digest, digest))

    async def _start_parts(self, key: str, opts: PutOptions) -> Any:
        self.path_for(key)
        staged = await asyncio.to_thread(self._new_staged)
        await asyncio.to_thread(staged.mkdir)
        return staged

    async def _put_part(self, handle: Any, number: int, data: bytes, digest: bytes) -> Any:
        def write() -> Path:
            part = Path(handle) / f"{number:06d}"
            with open(part, "wb") as out:
                out.write(data)
            return part

        return await asyncio.to_thread(write)

    async def _complete_parts(
        self, handle: Any, key: str, parts: Sequence[Any], digests: Sequence[bytes], size: int, opts: PutOptions
    ) -> ObjectInfo:
        def assemble() -> ObjectInfo:
            staged = self._new_staged()
            try:
                with open(staged, "wb") as out:
                    for part in parts:
                        with open(part, "rb") as src:
                            shutil.copyfileobj(src, out, _READ_CHUNK * 8)
                    out.flush()
                    os.fsync(out.fileno())
                shutil.rmtree(handle, ignore_errors=True)
                checksum = _integrity.parts_label(opts.digest, digests)
                return self._publish(staged, key, opts, checksum)
            finally:
                # a cancelled upload's abort may remove the parts while this thread still
                # runs: the staged file must not outlive a failed assembly
                staged.unlink(missing_ok=True)

        return await asyncio.to_thread(assemble)

    async def _abort_parts(self, handle: Any, key: str) -> None:
        await asyncio.to_thread(shutil.rmtree, handle, True)

    # -- reads ---------------------------------------------------------------------------

    def _info(self, key: str) -> ObjectInfo:
        path = self.path_for(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError("no object under this key", provider=self.name, key=key, code="NoSuchKey") from None
        if not path.is_file():
            raise NotFoundError("no object under this key", provider=self.name, key=key, code="NoSuchKey")
        try:
            meta = json.loads(self._meta_path(key).read_text())
        except (FileNotFoundError, ValueError):
            meta = {}
        checksum = meta.get("checksum")
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=checksum.split(":", 1)[1] if checksum else None,
            content_type=meta.get("content_type"),
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
            metadata=meta.get("metadata") or {},
            checksum=checksum,
            tier=meta.get("tier"),
        )

    async def head(self, key: str) -> ObjectInfo:
        return await asyncio.to_thread(self._info, key)

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        path = self.path_for(key)
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFoundError("no object under this key", provider=self.name, key=key, code="NoSuchKey") from None
        try:
            while chunk := await asyncio.to_thread(handle.read, _READ_CHUNK):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        def remove() -> None:
            path = self.path_for(key)
            path.unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)
            _prune(path.parent, self.root)

        await asyncio.to_thread(remove)

    def _walk(self, prefix: str) -> list[str]:
        keys: list[str] = []
        base = self.root
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if head:
            base = self.root.joinpath(*head.split("/"))
        if not base.is_dir():
            return keys
        for path in _files(base, self.root):
            rel = path.relative_to(self.root).as_posix()
            if rel.startswith(tuple(f"{_RESERVED}/{name}/" for name in _INTERNAL)) or not rel.startswith(prefix):
                continue
            keys.append(rel)
        return sorted(keys)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        keys = await asyncio.to_thread(self._walk, prefix)
        for key in keys:
            try:
                yield await self.head(key)
            except NotFoundError:
                continue  # deleted while listing

    async def presigned_url(self, key: str, expires_in: int = 3600, method: str = "GET") -> str:
        return self.path_for(key).as_uri()

    async def aclose(self) -> None:
        return None


def _check_root(root: Path) -> None:
    """The root, or its nearest existing ancestor, must be a folder (it is created on first
    write); a file there would fail every upload with a bare OSError."""
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                raise ConfigError(
                    f"STORAGE_LOCAL_ROOT={str(root)!r} cannot be a folder: {str(path)!r} is a file; "
                    "point STORAGE_LOCAL_ROOT at a folder (it is created if missing)",
                    variables=["STORAGE_LOCAL_ROOT"],
                )
            return


def _files(base: Path, root: Path) -> Iterator[Path]:
    internal = {root / _RESERVED / name for name in _INTERNAL}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if Path(dirpath) / d not in internal]
        for name in filenames:
            yield Path(dirpath) / name


def _prune(directory: Path, root: Path) -> None:
    """Remove empty folders left by a delete, up to (not including) the root."""
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
