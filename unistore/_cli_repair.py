"""`unistore repair [PREFIX] [--dry-run] [--full] [--json]`: copy every missed copy back into the
providers that lack it (`Storage.repair`, `unistore._repair`), with the library's environment.

On a terminal a progress bar is drawn on stderr (rich when installed: `pip install
'unistore[cli]'`; a plain line otherwise), so stdout keeps only the outcome; `--json` prints
the report as one JSON document on stdout for scripts. Exit status: 0 nothing left (everything
copied, verified, records removed), 1 something is left (a conflict, a failure, a pending
record, or with `--dry-run` work to do), 2 bad arguments or environment (`_cli_run`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from ._cli_args import seconds_or_zero

if TYPE_CHECKING:
    from ._cli_output import Output
    from ._repair import RepairProgress, RepairReport
    from ._storage import Storage

MiB = 1024 * 1024


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the `repair` command to the CLI's subparsers (`common`: --json, -v)."""
    repair = sub.add_parser(
        "repair",
        parents=[common],
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
    repair.add_argument(
        "--min-age",
        type=seconds_or_zero,
        default=0.0,
        metavar="SECONDS",
        help="with --full, leave alone keys changed less than SECONDS ago (an upload may still be "
        "carrying them to the other providers; default 0)",
    )


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def report_lines(report: RepairReport) -> Iterator[str]:
    verb = "would copy" if report.dry_run else "copied"
    for copy in report.planned if report.dry_run else report.copied:
        yield f"{verb} {copy.key!r} from {copy.source} to {copy.target} ({_size(copy.size)})"
    for key in report.in_place:
        yield f"already in place: {key!r}"
    for key in report.recent:
        yield f"changed too recently, left for a later run: {key!r}"
    for conflict in report.conflicts:
        yield f"conflict {conflict.key!r}: {conflict.reason}; nothing overwritten"
    for failure in report.failed:
        yield f"failed {failure.key!r} on {failure.provider}: {failure.error}"
    copies = len(report.planned if report.dry_run else report.copied)
    yield (
        f"repair: {copies} {verb}, {len(report.conflicts)} conflict(s), {len(report.failed)} failed, "
        f"{len(report.resolved) + len(report.dropped)} record(s) removed, {len(report.pending)} pending; "
        + ("nothing left" if report.ok else "something is left (exit status 1)")
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


async def repair(storage: Storage, args: argparse.Namespace, output: Output) -> int:
    """The `repair` command on `storage` (`_cli_run` builds it from the environment)."""
    _return_freed_buffers_to_the_system()
    with progress_bar(output.err) if not output.json_mode else _no_bar() as progress:
        report = await storage.repair(
            args.prefix, dry_run=args.dry_run, full=args.full, progress=progress, min_age_s=args.min_age
        )
    if output.json_mode:
        output.document(report.to_dict())
    else:
        for line in report_lines(report):
            output.line(line)
    return 0 if report.ok else 1


@contextmanager
def _no_bar() -> Iterator[RepairProgress | None]:
    yield None


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

