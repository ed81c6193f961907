"""Upload events: what `Storage(on_event=...)` is told as an upload goes.

One `provider_committed` or `provider_failed` event per provider, as each settles, then one
`upload_settled` for the whole upload (with its report), so an application marks a recording
saved only when the rule it asked for (`require`) holds. A callback that raises is logged and
otherwise ignored: it never changes an upload's outcome.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from ._logging import redact

if TYPE_CHECKING:
    from ._report import UploadReport

logger = logging.getLogger("unistore.events")

EventKind = Literal["provider_committed", "provider_failed", "upload_settled"]


@dataclass(frozen=True, slots=True)
class UploadEvent:
    """One step of an upload. `provider` is None for `upload_settled`, whose `ok` follows the
    storage's `require` rule and whose `report` is the upload's report. A cancelled upload
    settles with `ok=False` and `error_code="cancelled"`: its `report` is None when cancelled
    before every provider settled, the providers' outcomes when cancelled while the journal
    record of a missed copy was being written."""

    kind: EventKind
    key: str
    ok: bool
    provider: str | None = None
    bytes: int = 0
    duration_s: float = 0.0
    error_code: str | None = None
    error: str | None = None
    """The error's message, secrets redacted."""
    report: UploadReport | None = None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready shape (no report: the caller prints that in its own form)."""
        return {
            "event": self.kind, "key": self.key, "provider": self.provider, "ok": self.ok,
            "bytes": self.bytes, "duration_s": round(self.duration_s, 6),
            "error_code": self.error_code, "error": self.error,
        }


EventCallback: TypeAlias = Callable[[UploadEvent], "Awaitable[None] | None"]

_background: set[asyncio.Task[None]] = set()


def error_code(exc: BaseException) -> str:
    """The code an error is known by: the provider's code, else the exception's type."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def failure_text(exc: BaseException) -> str:
    return redact(str(exc) or type(exc).__name__)


async def emit(callback: EventCallback | None, event: UploadEvent) -> None:
    """Tell `callback` of `event`, awaiting it if it is a coroutine function's result."""
    if callback is None:
        return
    try:
        result = callback(event)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        _log_raised(event, exc)


def emit_soon(callback: EventCallback | None, event: UploadEvent) -> None:
    """`emit` from a task being cancelled: a synchronous callback runs now, an awaitable one in
    a task of its own (awaiting it here would be cut short by the cancellation)."""
    if callback is None:
        return
    try:
        result = callback(event)
    except Exception as exc:
        _log_raised(event, exc)
        return
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(_await_logged(result, event))
        _background.add(task)
        task.add_done_callback(_background.discard)


async def _await_logged(result: Awaitable[None], event: UploadEvent) -> None:
    try:
        await result
    except Exception as exc:
        _log_raised(event, exc)


def _log_raised(event: UploadEvent, exc: Exception) -> None:
    logger.error(
        "on_event callback raised on %s of %s: %s", event.kind, event.key, redact(repr(exc)),
        exc_info=exc,
    )
