"""Where a command's output goes and in what shape: text for people, JSON for machines.

Text goes to stdout, one line per fact; rich draws tables only when stdout is a terminal and
rich is installed (`unistore[cli]`), so a pipe or a log always gets plain, stable lines. With
`--json` a command prints one JSON document (or, for a stream such as `ls`, one JSON object per
line) and nothing else on stdout. Every message that may echo a service's answer goes through
`redact()` first: no key, signature or connection string reaches the screen.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import ConfigError, FanOutError, MissingDependencyError, ProviderError, UnistoreError
from ._logging import redact

if TYPE_CHECKING:
    from rich.console import Console

    from ._report import ProviderResult, UploadReport
    from .providers._protocol import ObjectInfo

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def human_size(size: int | None) -> str:
    """`512 B`, `1.5 KiB`, `12.0 MiB`, `1.21 GiB`; `?` when unknown."""
    if size is None:
        return "?"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.2f} {unit}" if unit in ("GiB", "TiB") else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def rich_console(stream: TextIO) -> Console | None:
    """A rich console on `stream` when it is a terminal and rich is installed, else None."""
    if not stream.isatty():
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(file=stream, highlight=False)


class Output:
    """One command's stdout and stderr, in text or JSON mode."""

    def __init__(self, *, json_mode: bool = False, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._console: Console | None = None
        self._looked_up = False

    @property
    def console(self) -> Console | None:
        """rich's console when drawing on a terminal in text mode, else None."""
        if not self._looked_up:
            self._console = None if self.json_mode else rich_console(self.out)
            self._looked_up = True
        return self._console

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def error(self, text: str) -> None:
        """One line on stderr (never a traceback); secrets redacted."""
        print(redact(text), file=self.err, flush=True)

    def document(self, value: Any) -> None:
        """The one JSON document of a `--json` command."""
        print(json.dumps(value, indent=2, default=str), file=self.out, flush=True)

    def json_line(self, value: Any) -> None:
        """One JSON object on one line, for streams (`ls --json`)."""
        print(json.dumps(value, separators=(",", ":"), default=str), file=self.out, flush=True)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], *, styles: Sequence[str] = ()) -> None:
        """A table: rich's on a terminal, else columns aligned with spaces (the last one unpadded).
        `styles` gives one rich style per row (ignored in plain text)."""
        console = self.console
        if console is not None:
            from rich.table import Table

            table = Table(*headers, show_lines=False, header_style="bold")
            for i, row in enumerate(rows):
                table.add_row(*row, style=styles[i] if i < len(styles) else None)
            console.print(table)
            return
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
        for row in (headers, *rows):
            cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + [row[-1]]
            self.line("  ".join(cells).rstrip())


# -- what an error says, and its fix ----------------------------------------------------------


def error_parts(exc: BaseException) -> tuple[str, str | None]:
    """(what went wrong, the fix) of an error, both redacted. The fix is the one the error class
    already carries (a provider error's hint, the variables of a ConfigError, the pip command of
    a MissingDependencyError), never one written here."""
    if isinstance(exc, ProviderError):
        said = (("code", exc.code), ("status", exc.status))
        details = [f"{k}={v}" for k, v in said if v and str(v) not in exc.message]
        text = exc.message + (f" ({', '.join(details)})" if details else "")
        return redact(text), redact(exc.hint) if exc.hint else None
    if isinstance(exc, MissingDependencyError):
        return redact(str(exc)), f"pip install 'unistore[{exc.extra}]'"
    if isinstance(exc, ConfigError):
        text = redact(str(exc))
        unnamed = [v for v in exc.variables if v not in text]
        return text, f"check {', '.join(unnamed)}" if unnamed else None
    if isinstance(exc, FanOutError):
        return redact(str(exc)), None
    text = str(exc) or type(exc).__name__
    return redact(text if isinstance(exc, UnistoreError) else f"{type(exc).__name__}: {text}"), None


def error_json(exc: BaseException) -> dict[str, Any]:
    detail, fix = error_parts(exc)
    shape: dict[str, Any] = {"type": type(exc).__name__, "message": detail, "fix": fix}
    if isinstance(exc, ProviderError):
        shape.update(provider=exc.provider, code=exc.code, status=exc.status)
    if isinstance(exc, ConfigError):
        shape["variables"] = list(exc.variables)
    return shape


def one_line(exc: BaseException) -> str:
    """An error as one line: what went wrong, then `fix: ...`."""
    detail, fix = error_parts(exc)
    return " ".join(f"{detail}; fix: {fix}".split()) if fix and fix not in detail else " ".join(detail.split())


# -- JSON shapes --------------------------------------------------------------------------------


def info_json(info: ObjectInfo) -> dict[str, Any]:
    return {
        "key": info.key,
        "size": info.size,
        "etag": info.etag,
        "content_type": info.content_type,
        "last_modified": info.last_modified.isoformat() if info.last_modified else None,
        "metadata": dict(info.metadata),
        "checksum": info.checksum,
        "tier": info.tier,
    }


def result_json(result: ProviderResult) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "provider": result.provider,
        "ok": result.ok,
        "bytes": result.bytes,
        "duration_s": round(result.duration_s, 3),
    }
    if result.info is not None:
        shape["info"] = info_json(result.info)
    if result.error is not None:
        shape["error"] = error_json(result.error)
    return shape


def report_json(report: UploadReport, **extra: Any) -> dict[str, Any]:
    return {
        "key": report.key,
        "ok": report.ok,
        "require": report.require,
        "duration_s": round(report.duration_s, 3),
        "succeeded": report.succeeded,
        "failed": report.failed,
        "results": {name: result_json(r) for name, r in report.results.items()},
        **extra,
    }


def copies_json(copies: Mapping[str, ObjectInfo]) -> dict[str, Any]:
    return {name: info_json(info) for name, info in copies.items()}
