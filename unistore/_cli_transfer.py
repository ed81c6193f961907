"""`unistore upload` and `unistore get`: the commands that move a recording's bytes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._cli_output import Output, human_size, info_json, one_line, report_json
from ._cli_progress import upload_progress
from ._errors import ConfigError, UnistoreError

if TYPE_CHECKING:
    from ._storage import Storage


async def upload(storage: Storage, args: argparse.Namespace, output: Output) -> int:
    """Upload a file to every provider; 0 only when the report is ok (STORAGE_REQUIRE)."""
    path = Path(args.file)
    key: str = args.key or path.name
    size = await asyncio.to_thread(_size_or_zero, path)
    with upload_progress(output, list(storage.providers), size) as progress:
        report = await storage.upload_file(
            path,
            key,
            content_type=args.content_type,
            delete_local=args.delete_local,
            overwrite=False if args.no_overwrite else None,
            progress=progress,
        )
        for name, result in report.results.items():
            progress.finish(name, result.ok)
    local_deleted = args.delete_local and not await asyncio.to_thread(path.exists)
    if output.json_mode:
        output.document(report_json(report, file=os.fspath(path), local_deleted=local_deleted))
        return 0 if report.ok else 1
    for name, result in report.results.items():
        if result.ok:
            output.line(f"{name}: stored {key!r} ({human_size(result.bytes)} in {result.duration_s:.2f}s)")
        else:
            assert result.error is not None
            output.line(f"{name}: FAILED: {one_line(result.error)}")
    stored = f"{len(report.succeeded)} of {len(report.results)} providers"
    if report.ok:
        output.line(f"uploaded {key!r} to {stored}")
    else:
        output.line(f"upload of {key!r} failed: stored on {stored} (STORAGE_REQUIRE={report.require})")
    if args.delete_local:
        if local_deleted:
            output.line(f"deleted the local file {os.fspath(path)!r}")
        else:
            output.line(f"kept the local file {os.fspath(path)!r}: not every provider stored it")
    return 0 if report.ok else 1


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the upload itself refuses the source, with the reason


def _destination(key: str, dest: str | None) -> Path:
    """DEST, or the key's last part in the current folder; a folder keeps that name."""
    name = key.rsplit("/", 1)[-1]
    if dest is None:
        return Path(name)
    path = Path(dest)
    return path / name if path.is_dir() else path


async def _to_stdout(storage: Storage, key: str, provider: str | None) -> int:
    out = sys.stdout.buffer
    size = 0
    async for chunk in storage.iter_bytes(key, provider=provider):
        await asyncio.to_thread(out.write, chunk)
        size += len(chunk)
    await asyncio.to_thread(out.flush)
    return size


async def get(storage: Storage, args: argparse.Namespace, output: Output) -> int:
    """Download from the first provider (read order) that holds the key, or from `--provider`."""
    key: str = args.key
    if args.dest == "-":
        if output.json_mode:
            raise ConfigError("get KEY - writes the object's bytes to stdout: it cannot also print JSON there")
        await _to_stdout(storage, key, args.provider)
        return 0
    path = await asyncio.to_thread(_destination, key, args.dest)
    served_by: str | None = args.provider
    if served_by is None:
        served_by, _ = await storage.locate(key)
    try:
        info = await storage.download_file(key, path, provider=served_by)
    except UnistoreError:
        if args.provider is not None:
            raise
        # the copy located first failed mid-way: the others, in read order
        info = await storage.download_file(key, path)
        served_by = None
    if output.json_mode:
        output.document({"key": key, "path": os.fspath(path), "provider": served_by, "info": info_json(info)})
    else:
        source = f" from {served_by}" if served_by else ""
        output.line(f"downloaded {key!r}{source} ({human_size(info.size)}) to {os.fspath(path)!r}")
    return 0
