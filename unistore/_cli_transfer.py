"""`unistore upload` and `unistore get`: the commands that move a recording's bytes."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cli_output import Output, human_size, info_json, one_line, report_json
from ._cli_progress import upload_progress
from ._errors import ConfigError, SourceError, UnistoreError

if TYPE_CHECKING:
    from ._storage import Storage


STDIN = "-"


def parse_tier(text: str) -> str | dict[str, str]:
    """`--tier cool` (every provider) or `--tier s3=STANDARD_IA,azure=Cool` (one per provider);
    the values are checked by the upload, before anything is written."""
    if "=" not in text:
        return text
    tiers: dict[str, str] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(
                f"--tier {text!r}: use one tier (cool) or provider=tier pairs (s3=STANDARD_IA,azure=Cool)"
            )
        tiers[name.strip()] = value.strip()
    return tiers


async def upload(storage: Storage, args: argparse.Namespace, output: Output) -> int:
    """Upload a file (or stdin, `-`) to every provider; 0 only when the report is ok
    (STORAGE_REQUIRE)."""
    from_stdin = args.file == STDIN
    if from_stdin and not args.key:
        raise ConfigError("upload - reads the recording from stdin: name its key with --key")
    if from_stdin and args.delete_local:
        raise ConfigError("--delete-local deletes a FILE once stored: there is none with stdin (-)")
    path = Path(args.file)
    key: str = args.key or path.name
    size = None if from_stdin else await asyncio.to_thread(_size_or_zero, path)
    options: dict[str, Any] = {"content_type": args.content_type, "overwrite": False if args.no_overwrite else None}
    if args.tier:
        options["tier"] = parse_tier(args.tier)
        try:
            storage.resolve_tiers(options["tier"])
        except ValueError as exc:
            raise ConfigError(f"--tier: {exc}") from None
    events = output.json_mode and args.events
    if args.events and not output.json_mode:
        raise ConfigError("upload --events streams JSON lines: add --json")
    if events:
        storage.on_event = lambda event: output.json_line(event.as_dict())
    with upload_progress(output, list(storage.providers), size) as progress:
        if from_stdin:
            chunks = stdin_chunks(storage.chunk_size)
            report = await storage.upload_stream(chunks, key, progress=progress, **options)
        else:
            report = await storage.upload_file(path, key, delete_local=args.delete_local, progress=progress, **options)
        for name, result in report.results.items():
            progress.finish(name, result.ok)
    local_deleted = args.delete_local and not await asyncio.to_thread(path.exists)
    if events:  # a stream of JSON lines: the report is its last line
        output.json_line({"event": "report", **report_json(report, file=os.fspath(path), local_deleted=local_deleted)})
        return 0 if report.ok else 1
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


async def stdin_chunks(size: int) -> AsyncIterator[bytes]:
    """stdin in chunks of `size` bytes, read by a daemon thread: a read blocked on a pipe cannot
    be cancelled, and a daemon thread does not hold the process at exit (a worker thread of
    asyncio's default executor would, until the writer closes the pipe)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=2)  # bounded: backpressure

    def read() -> None:
        stream = sys.stdin.buffer
        while True:
            try:
                data: bytes | BaseException = stream.read(size)
            except OSError as exc:
                data = exc
            try:
                asyncio.run_coroutine_threadsafe(queue.put(data), loop).result()
            except (RuntimeError, concurrent.futures.CancelledError):
                return  # the loop is gone or shutting down
            if not data or isinstance(data, BaseException):
                return

    threading.Thread(target=read, name="unistore-stdin", daemon=True).start()
    while True:
        item = await queue.get()
        if isinstance(item, BaseException):
            raise SourceError(f"reading stdin failed: {item}")
        if not item:
            return
        yield item
