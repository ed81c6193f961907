"""`unistore repair [PREFIX] [--dry-run] [--full] [--json]`: copy every missed copy back into the
providers that lack it (`Storage.repair`, `unistore._repair`), with the library's environment.

On a terminal a progress bar is drawn on stderr (rich when installed: `pip install
'unistore[cli]'`; a plain line otherwise); `--json` prints the report as one JSON object on
stdout for scripts. Exit status: 0 nothing left (everything copied, verified, records removed),
1 something is left (a conflict, a failure, a pending record, or with `--dry-run` work to do),
2 bad arguments or environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ._repair import RepairProgress, RepairReport
    from ._storage import Storage

MiB = 1024 * 1024


def add_parser(sub: Any) -> None:
    """Add the `repair` subcommand to the CLI's subparsers."""
    repair = sub.add_parser(
        "repair",
        help="copy recordings that a fan-out missed into the providers that lack them",
        description=(
            "First the pending records of missed copies (STORAGE_JOURNAL_PREFIX), then with --full a "
            "comparison of the providers' listings (key, size, checksum where both have one). Each "
            "missing copy is streamed from a provider that holds it, as a conditional create, verified, "
            "and only then is its record removed. Copies that differ are reported, never overwritten."
        ),
    )
    repair.add_argument("prefix", nargs="?", default="", metavar="PREFIX", help="only keys that start with PREFIX")
    repair.add_argument("--dry-run", action="store_true", help="say what would be copied; change nothing")
    repair.add_argument("--full", action="store_true", help="also compare the providers' listings under PREFIX")
    repair.add_argument("--json", action="store_true", help="print the report as JSON on stdout")


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def print_report(report: RepairReport, out: TextIO) -> None:
    verb = "would copy" if report.dry_run else "copied"
    for copy in report.planned if report.dry_run else report.copied:
        print(f"{verb} {copy.key!r} from {copy.source} to {copy.target} ({_size(copy.size)})", file=out)
    for key in report.in_place:
        print(f"already in place: {key!r}", file=out)
    for conflict in report.conflicts:
        print(f"conflict {conflict.key!r}: {conflict.reason}; nothing overwritten", file=out)
    for failure in report.failed:
        print(f"failed {failure.key!r} on {failure.provider}: {failure.error}", file=out)
    copies = len(report.planned if report.dry_run else report.copied)
    print(
        f"repair: {copies} {verb}, {len(report.conflicts)} conflict(s), {len(report.failed)} failed, "
        f"{len(report.resolved) + len(report.dropped)} record(s) removed, {len(report.pending)} pending; "
        + ("nothing left" if report.ok else "something is left (exit status 1)"),
        file=out,
    )


@contextmanager
def progress_bar(stream: TextIO) -> Iterator[RepairProgress | None]:
    """A progress callback drawing on `stream` when it is a terminal (rich if installed), else None."""
    if not stream.isatty():
        yield None
        return
    try:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
    except ImportError:
        yield from _plain_bar(stream)
        return
    from rich.console import Console

    with Progress(
        TextColumn("repair"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TextColumn("{task.description}"),
        console=Console(file=stream), transient=False,
    ) as bar:
        task = bar.add_task("", total=None)

        def update(key: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=key[-40:])

        yield update


def _plain_bar(stream: TextIO) -> Iterator[RepairProgress | None]:
    drawn = [False]

    def update(key: str, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        stream.write(f"\rrepair: {percent:3d}% {_size(done)} of {_size(total)} {key[-40:]:<40}")
        stream.flush()
        drawn[0] = True

    yield update
    if drawn[0]:
        stream.write("\n")


async def run(storage: Storage, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with progress_bar(err) if not args.json else _no_bar() as progress:
        report = await storage.repair(args.prefix, dry_run=args.dry_run, full=args.full, progress=progress)
    if args.json:
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
    else:
        print_report(report, out)
    return 0 if report.ok else 1


@contextmanager
def _no_bar() -> Iterator[RepairProgress | None]:
    yield None


async def _from_env(args: argparse.Namespace) -> int:
    from ._errors import UnistoreError
    from ._storage import Storage

    try:
        storage = Storage.from_env()
    except UnistoreError as exc:
        print(f"unistore repair: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    async with storage:
        return await run(storage, args, sys.stdout, sys.stderr)


M_MMAP_THRESHOLD = -3
"""glibc's `mallopt` parameter (malloc.h)."""


def _return_freed_buffers_to_the_system() -> None:
    """Serve every allocation of 1 MiB or more (the copies' buffers) with its own mmap, so that
    freeing it gives the memory back at once. By default glibc raises this threshold to the
    size of the largest block freed so far (up to 32 MiB), and later buffers below it come from
    the heap, whose freed holes stay resident: measured here, 200 copies of 1-24 MiB under a
    64 MiB budget then peaked 10-40 MiB higher. This command owns its process, so it may set it
    (the library never does); a C library other than glibc is left alone."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        libc.mallopt(M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):
        pass


def main(args: argparse.Namespace) -> int:
    _return_freed_buffers_to_the_system()
    return asyncio.run(_from_env(args))
