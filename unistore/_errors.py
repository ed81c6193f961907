"""The error hierarchy: every failure unistore raises is a `UnistoreError`.

Provider errors keep what the service said (`code`, `status`) and carry a one-line `hint`
that names the fix, because an operator reading a log at 3 a.m. needs the next step, not a
stack trace. Messages never contain secrets: providers build them from codes and names only,
and anything echoed from a URL goes through `unistore._redact.redact` first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

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


class MissingDependencyError(UnistoreError, ImportError):
    """An optional SDK is not installed; the message gives the pip command."""

    def __init__(self, extra: str, module: str, instead: str | None = None) -> None:
        super().__init__(
            f"the {extra!r} provider needs {module!r}, which is not installed: "
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
