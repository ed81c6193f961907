"""The error hierarchy: every failure unistore raises is a `UnistoreError`.

    UnistoreError
    ├── ConfigError                 settings or arguments are invalid (`variables` names them)
    ├── InvalidKeyError             the object key is not acceptable to every provider (a ValueError)
    ├── MissingDependencyError      an optional SDK is missing (an ImportError)
    ├── SourceError                 the upload source is missing, unreadable or changed
    │   └── EmptySourceError        0 bytes and allow_empty=False
    ├── ProviderError               a service said no (`provider`, `key`, `code`, `status`, `hint`)
    │   ├── AuthenticationError     credentials missing, wrong or expired
    │   ├── PermissionDeniedError   valid credentials lacking a permission or role
    │   ├── NotFoundError           no object under the key
    │   ├── ContainerNotFoundError  no bucket or container
    │   ├── AlreadyExistsError      overwrite=False and the key is taken
    │   └── TransientError          worth retrying (`transient`); raised once retries are spent
    │       └── IntegrityError      stored bytes differ from those sent
    └── FanOutError                 a fan-out failed somewhere (`errors`, `report`)

Provider errors keep what the service said (`code`, `status`) and carry a one-line `hint`
that names the fix, because an operator reading a log at 3 a.m. needs the next step, not a
stack trace. Messages never contain secrets: providers build them from codes and names only,
and anything echoed from a service goes through `short()` (`unistore._logging.redact`) first.

The builders at the end (`already_exists`, `from_status`, `from_transport`) are the fallbacks
every provider shares: `unistore._request` applies them to what a provider's code table does
not name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ._report import UploadReport

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "ConfigError",
    "ContainerNotFoundError",
    "EmptySourceError",
    "FanOutError",
    "IntegrityError",
    "InvalidKeyError",
    "MissingDependencyError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderError",
    "SourceError",
    "TransientError",
    "UnistoreError",
]


class UnistoreError(Exception):
    """Base class of every error unistore raises."""


class ConfigError(UnistoreError):
    """The environment or the settings are invalid; `variables` names what to fix."""

    def __init__(self, message: str, *, variables: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.variables: tuple[str, ...] = tuple(variables)


class InvalidKeyError(UnistoreError, ValueError):
    """The object key is not acceptable to every provider."""


class MissingDependencyError(UnistoreError, ImportError):
    """An optional SDK is not installed; the message gives the pip command."""

    def __init__(self, extra: str, module: str, instead: str | None = None, *, needed_by: str | None = None) -> None:
        super().__init__(
            f"{needed_by or f'the {extra!r} provider'} needs {module!r}, which is not installed: "
            f"pip install 'unistore[{extra}]'" + (f" (or {instead})" if instead else "")
        )
        self.extra = extra
        self.module = module


class SourceError(UnistoreError):
    """The upload source is unusable: missing, a directory, unreadable, or empty."""


class EmptySourceError(SourceError):
    """The source is empty and `allow_empty` is False: nothing was written anywhere."""


class ProviderError(UnistoreError):
    """A provider operation failed. `provider` is its name (`s3`, `azure`, ...)."""

    transient: bool = False
    """Whether `unistore._retry` tries the request again (True for `TransientError`)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        key: str | None = None,
        code: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.provider = provider
        self.key = key
        self.code = code
        self.status = status
        self.hint = hint
        self.message = message
        super().__init__(self._format())

    def _format(self) -> str:
        text = f"[{self.provider}] {self.message}"
        details = [f"{k}={v}" for k, v in (("code", self.code), ("status", self.status)) if v]
        if self.key is not None:
            details.insert(0, f"key={self.key!r}")
        if details:
            text += f" ({', '.join(details)})"
        if self.hint:
            text += f"; fix: {self.hint}"
        return text


class AuthenticationError(ProviderError):
    """The credentials were missing, wrong or expired."""


class PermissionDeniedError(ProviderError):
    """The credentials are valid but lack a permission or role."""


class NotFoundError(ProviderError):
    """The object does not exist."""


class ContainerNotFoundError(ProviderError):
    """The bucket or container does not exist. Never retried."""


class AlreadyExistsError(ProviderError):
    """`overwrite=False` and the object already exists; nothing was replaced."""


class TransientError(ProviderError):
    """A fault worth retrying (5xx, throttling, reset, timeout) that persisted past the retries."""

    transient = True


class IntegrityError(TransientError):
    """What the service stored does not match what was sent. Retried like a transient fault:
    the bytes are still in hand, and corruption in transit is rarely repeated."""


class FanOutError(UnistoreError):
    """Raised by `UploadReport.raise_for_failures()`, and by the reads of `Storage` when no
    provider could serve; `errors` maps provider name -> error. `operation` says what failed
    (default "upload")."""

    def __init__(
        self,
        errors: Mapping[str, BaseException],
        report: UploadReport | None = None,
        *,
        operation: str = "upload",
    ):
        self.errors = dict(errors)
        self.report = report
        self.operation = operation
        lines = "; ".join(f"{name}: {err}" for name, err in self.errors.items())
        super().__init__(f"{operation} failed on {len(self.errors)} provider(s): {lines}")


# -- what every provider shares: applied by `unistore._request` -----------------------------

RETRY_HINT = "a temporary fault of the service or the network; retried automatically"
BUSY_HINT = "the service is overloaded or throttling: retry later or lower STORAGE_MAX_CONCURRENCY"
REWRITE_HINT = "retry; if it persists, check proxies that rewrite request bodies"
EXISTS_HINT = "use another key, or pass overwrite=True to replace it"
EXISTS_MESSAGE = "an object already exists under this key and overwrite=False; it was left untouched"


class Context(NamedTuple):
    """Where a request failed: attached to every error `unistore._request` raises."""

    provider: str
    op: str
    key: str | None
    conditional: bool = False
    """The request is a conditional create (`If-None-Match: *`, overwrite=False)."""


class Rule(NamedTuple):
    """One row of a provider's code table: the class, why (one line), and the fix."""

    error: type[ProviderError]
    reason: str
    hint: str | None = None

    @property
    def transient(self) -> bool:
        return self.error.transient


def short(text: object) -> str:
    """One line of what a service or library said, redacted and at most 300 characters."""
    from ._logging import redact

    lines = str(text).strip().splitlines()
    return redact(lines[0] if lines else "")[:300]


def already_exists(ctx: Context, code: str | None, status: int | None) -> AlreadyExistsError:
    return AlreadyExistsError(
        EXISTS_MESSAGE, provider=ctx.provider, key=ctx.key, code=code, status=status, hint=EXISTS_HINT
    )


def precondition_failed(ctx: Context, code: str | None, status: int | None, where: str = "") -> ProviderError:
    """412 outside a conditional create: an `If-Match` read found the object replaced since it was
    first seen. Permanent on every provider: retrying the same pinned request fails the same way."""
    return ProviderError(
        f"{where or ctx.op}: the object changed while it was being read", provider=ctx.provider, key=ctx.key,
        code=code, status=status, hint="read it again",
    )


def from_status(
    ctx: Context, status: int, message: str, code: str | None = None, hint: str | None = None
) -> ProviderError:
    """An answer no code table names, by its status alone (the same on every provider)."""
    where: dict[str, Any] = {"provider": ctx.provider, "key": ctx.key, "code": code, "status": status}
    if status == 412:
        return already_exists(ctx, code, status) if ctx.conditional else precondition_failed(ctx, code, status)
    if status in (408, 429) or status >= 500:
        return TransientError(message, hint=hint or (BUSY_HINT if status in (429, 503) else RETRY_HINT), **where)
    if 200 <= status < 300:  # a body that broke off or could not be decoded
        return TransientError(message, hint=hint or RETRY_HINT, **where)
    if status == 401:
        return AuthenticationError(message, hint=hint, **where)
    if status == 403:
        return PermissionDeniedError(message, hint=hint, **where)
    if status == 404:
        return NotFoundError(message, hint=hint, **where)
    return ProviderError(message, hint=hint, **where)


def connection_failed(exc: BaseException, ctx: Context, hint: str, where: str = "") -> TransientError:
    return TransientError(
        f"{where or ctx.op} failed: the connection broke or could not be made "
        f"({type(exc).__name__}: {short(exc) or 'no detail'})", provider=ctx.provider,
        key=ctx.key, code=type(exc).__name__, hint=hint,
    )


def from_transport(exc: BaseException, ctx: Context, hint: str) -> TransientError | None:
    """A connection that failed, broke off or timed out (aiohttp's errors, resets, timeouts):
    transient on every provider. None when `exc` is not a transport failure."""
    import aiohttp  # loaded by every provider that sends requests

    if not isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return None
    return connection_failed(exc, ctx, hint)
