"""Running one command: its output mode, the library's log lines, the `Storage` from the
environment, and the one-line error (never a traceback) for a bad environment or a failure.

Exit status: 0 done; 1 the operation failed (a provider's error, a copy left behind, a check
that did not pass); 2 bad arguments or environment (argparse's own code, a `ConfigError`, a
`MissingDependencyError`); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ._cli_output import Output, error_json, one_line
from ._errors import ConfigError, MissingDependencyError, UnistoreError

if TYPE_CHECKING:
    from ._storage import Storage

Command = Callable[["Storage", argparse.Namespace, Output], Awaitable[int]]

_COMMANDS = {
    "upload": ("_cli_transfer", "upload"),
    "get": ("_cli_transfer", "get"),
    "ls": ("_cli_objects", "ls"),
    "rm": ("_cli_objects", "rm"),
    "presign": ("_cli_objects", "presign"),
    "repair": ("_cli_repair", "repair"),
}
"""Command name -> (module of this package, coroutine function) for the commands on a `Storage`."""

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def library_logs(verbose: bool) -> None:
    """The library's log lines on stderr with `-v`; otherwise none: the command prints each
    outcome itself, and Python's last-resort handler would repeat its errors on stderr."""
    logger = logging.getLogger("unistore")
    if verbose:
        for old in [h for h in logger.handlers if h.get_name() == "unistore-cli"]:
            logger.removeHandler(old)
        handler = logging.StreamHandler(_CurrentStderr())
        handler.set_name("unistore-cli")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    elif not logger.handlers:
        logger.addHandler(logging.NullHandler())


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written: while rich draws its bars it swaps in a
    proxy that prints above them, and a handler holding the original stream would tear them."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def failure_status(exc: BaseException) -> int:
    return EXIT_USAGE if isinstance(exc, ConfigError | MissingDependencyError) else EXIT_FAILED


async def _on_storage(command: Command, args: argparse.Namespace, output: Output) -> int:
    from ._storage import Storage

    async with Storage.from_env() as storage:
        try:
            return await command(storage, args, output)
        except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this task first
            await _let_aborts_finish(args.command, output)
            raise


async def _let_aborts_finish(command: str, output: Output) -> None:
    """A cancelled multipart upload aborts itself in a background task (`_multipart._abort`)
    once its short grace is over; asyncio.run would cancel that task at shutdown and leave the
    parts on S3, billed. Wait for those aborts (bounded) while the storage's clients are open."""
    from . import _multipart
    from ._deadline import ABORT_TIMEOUT_S

    pending = set(_multipart._background)
    if pending:
        output.error(
            f"unistore {command}: interrupted; aborting {len(pending)} incomplete upload(s) "
            "(Ctrl-C again leaves them to `unistore cleanup`)"
        )
        await asyncio.wait(pending, timeout=ABORT_TIMEOUT_S)


def run(args: argparse.Namespace) -> int:
    """Run the command `args.command` and return its exit status."""
    output = Output(json_mode=args.json)
    library_logs(args.verbose)
    try:
        if args.command == "doctor":
            from ._cli_doctor import doctor

            return asyncio.run(doctor(args, output))
        module, name = _COMMANDS[args.command]
        command: Command = getattr(importlib.import_module(f"unistore.{module}"), name)
        return asyncio.run(_on_storage(command, args, output))
    except BrokenPipeError:
        raise  # `cli.main` ends quietly: printing the error would hit the closed pipe again
    except KeyboardInterrupt:
        output.error(f"unistore {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except (UnistoreError, OSError) as exc:
        if output.json_mode:
            output.document({"ok": False, "error": error_json(exc)})
        output.error(f"unistore {args.command}: {one_line(exc)}")
        return failure_status(exc)
