"""The `unistore` command line (`python -m unistore`). Heavy imports stay inside commands.

- `unistore upload FILE`, `ls [PREFIX]`, `get KEY [DEST]`, `rm KEY`, `presign KEY`, `doctor`:
  in `unistore/_cli_*.py`: `_cli_args` (parsers), `_cli_output` (text, JSON, tables),
  `_cli_progress` (bars), `_cli_transfer` (upload, get), `_cli_objects` (ls, rm, presign),
  `_cli_doctor`, `_cli_run` (storage from the environment, one-line errors, exit status).
- `unistore config`: the configuration table (variables, meaning, default).
- `unistore cleanup --older-than SECONDS [--provider NAME] [--prefix P]`: abort the incomplete
  multipart uploads that crashed or killed processes left behind (S3 bills their parts until
  they are aborted). It reads the same environment as the library (`Storage.from_env()`).
  Azure needs nothing: uncommitted blocks are never visible and the service discards them after
  7 days. Exit status: 0 done, 1 a provider's cleanup failed, 2 bad arguments or environment.
- `unistore repair [PREFIX] [--dry-run] [--full] [--json]`: copy missed copies back
  (`unistore._cli_repair`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import typing
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from .providers._protocol import IncompleteUploadCleaner

if TYPE_CHECKING:
    from ._storage import Storage


def __getattr__(name: str) -> str:
    if name == "AZURE_NOTE":  # what `unistore cleanup` says for Azure, declared by its provider
        from .providers.azure import NO_CLEANUP_NOTE

        return NO_CLEANUP_NOTE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (what is wrong, where the help is), not the usage
    block first: the line is what an operator or a probe's log shows."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="unistore",
        description="Upload recordings to AWS S3, Azure Blob Storage, or both, as the environment says.",
    )
    sub = parser.add_subparsers(dest="command")
    from ._cli_args import add_commands, common_options, seconds_or_zero

    common = common_options(_Parser)
    add_commands(sub, common)
    sub.add_parser("config", parents=[common], help="print the configuration table (variables, meaning, default)")
    cleanup = sub.add_parser(
        "cleanup",
        parents=[common],
        help="abort incomplete multipart uploads left behind by crashed or killed processes",
        description=(
            "Abort the incomplete multipart uploads of the configured providers (the same "
            "environment as the library: STORAGE_UPLOAD_MODE, AWS_*, AZURE_*) that were started "
            "more than --older-than seconds ago. Only S3 keeps such uploads (and bills their "
            "parts); Azure discards uncommitted blocks by itself after 7 days."
        ),
    )
    cleanup.add_argument(
        "--older-than",
        type=seconds_or_zero,
        required=True,
        metavar="SECONDS",
        help="only uploads started at least this long ago; keep it above your longest upload "
        "(0 aborts every incomplete upload, including ones still in progress elsewhere)",
    )
    cleanup.add_argument(
        "--provider",
        action="append",
        metavar="NAME",
        help="only this configured provider (s3, azure, ...); repeatable; default: all",
    )
    cleanup.add_argument("--prefix", default="", metavar="P", help="only keys that start with P")
    from . import _cli_repair

    _cli_repair.add_parser(sub, common)
    return parser


async def cleanup(
    storage: Storage,
    *,
    older_than: float,
    providers: Sequence[str] | None = None,
    prefix: str = "",
    out: TextIO | None = None,
    err: TextIO | None = None,
    json_mode: bool = False,
) -> int:
    """Abort the incomplete uploads of `storage`'s providers (or of `providers`), printing each
    one aborted (a JSON object per line with `json_mode`); returns the exit status of
    `unistore cleanup`."""
    out = out or sys.stdout
    err = err or sys.stderr

    def emit(text: str, **fields: object) -> None:
        print(json.dumps(fields, default=str) if json_mode else text, file=out, flush=True)

    names = list(providers) if providers else list(storage.providers)
    unknown = [n for n in names if n not in storage.providers]
    if unknown:
        print(
            f"unistore cleanup: no provider named {', '.join(map(repr, unknown))}; configured "
            f"(STORAGE_UPLOAD_MODE): {', '.join(storage.providers)}",
            file=err,
        )
        return 2
    status = 0
    where = f" under prefix {prefix!r}" if prefix else ""
    for name in names:
        provider = storage.providers[name]
        if not provider.info.cleans_incomplete_uploads:
            note = provider.info.no_cleanup_note
            emit(f"{name}: {note}", provider=name, note=note)
            continue
        clean = typing.cast(IncompleteUploadCleaner, provider).cleanup_incomplete_uploads

        def report(key: str, started: datetime | None, name: str = name) -> None:
            since = f" (started {started.isoformat(timespec='seconds')})" if started else ""
            emit(f"{name}: aborted incomplete upload of {key!r}{since}", provider=name, aborted=key, started=started)

        try:
            count = await clean(older_than=older_than, prefix=prefix, on_abort=report)
        except Exception as exc:
            from ._logging import redact

            print(f"{name}: cleanup failed: {redact(str(exc))}", file=err)
            if json_mode:
                emit("", provider=name, error=redact(str(exc)))
            status = 1
            continue
        emit(
            f"{name}: aborted {count} incomplete upload(s) started more than {older_than:g}s ago{where}",
            provider=name, aborted_count=count, older_than_s=older_than, prefix=prefix,
        )
    return status


async def _cleanup_from_env(args: argparse.Namespace) -> int:
    from ._errors import UnistoreError
    from ._storage import Storage

    try:
        storage = Storage.from_env()
    except UnistoreError as exc:
        print(f"unistore cleanup: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    async with storage:
        return await cleanup(
            storage, older_than=args.older_than, providers=args.provider, prefix=args.prefix, json_mode=args.json
        )


def _table_rows(markdown: str) -> list[dict[str, str | None]]:
    """The rows of `settings_table()`'s markdown (`| `NAME` | meaning | default |`) as objects."""
    rows = []
    for line in markdown.splitlines()[2:]:
        name, rest = line.strip("| ").split(" | ", 1)
        meaning, default = rest.rsplit(" | ", 1)
        rows.append({"variable": name.strip("`"), "meaning": meaning, "default": None if default == "—" else default})
    return rows


def main(argv: list[str] | None = None) -> int:
    try:
        return _dispatch(argv)
    except BrokenPipeError:
        # the reader went away (`unistore ls | head`): nothing more to say, nothing to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _dispatch(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "config":
        from ._settings import settings_table

        table = settings_table()
        print(json.dumps(_table_rows(table), indent=2) if args.json else table)  # noqa: T201
        return 0
    if args.command == "cleanup":
        return asyncio.run(_cleanup_from_env(args))
    if args.command is not None:
        from ._cli_run import run

        return run(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
