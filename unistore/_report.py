"""What a fan-out upload returns: one `ProviderResult` per provider, gathered in an `UploadReport`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ._errors import FanOutError
from ._types import ObjectInfo

if TYPE_CHECKING:
    from ._journal import JournalWrite

RequireRule = Literal["all", "any", "primary"]


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """One provider's outcome: `info` on success, `error` on failure, never both."""

    provider: str
    ok: bool
    error: BaseException | None = None
    info: ObjectInfo | None = None
    duration_s: float = 0.0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class UploadReport:
    """Every provider's outcome for one upload (or delete). `ok` follows the `require` rule:
    `all` providers succeeded, `any` one did, or the `primary` one did (the first of `results`,
    which the fan-out fills in the order of `STORAGE_UPLOAD_MODE`).

    `journal` is set when some providers stored the object and others did not: where the
    record of the missed copies was written (`unistore repair` reads it), or why it could not be.
    """

    key: str
    results: Mapping[str, ProviderResult]
    require: RequireRule = "all"
    duration_s: float = field(default=0.0)
    operation: str = "upload"
    """What the report is of: "upload", or "delete" / "head" for `Storage.delete` / `head`."""
    journal: JournalWrite | None = None

    @property
    def succeeded(self) -> list[str]:
        """Names of the providers that stored the object."""
        return [name for name, r in self.results.items() if r.ok]

    @property
    def failed(self) -> list[str]:
        """Names of the providers that did not."""
        return [name for name, r in self.results.items() if not r.ok]

    @property
    def all_ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results.values())

    @property
    def ok(self) -> bool:
        if self.require == "any":
            return any(r.ok for r in self.results.values())
        if self.require == "primary":
            first = next(iter(self.results.values()), None)
            return first is not None and first.ok
        return self.all_ok

    @property
    def errors(self) -> dict[str, BaseException]:
        return {n: r.error for n, r in self.results.items() if r.error is not None}

    def raise_for_failures(self) -> UploadReport:
        """Raise `FanOutError` (holding each failed provider's error) unless `ok`."""
        if not self.ok:
            raise FanOutError(self.errors, self, operation=self.operation)
        return self
