"""The journal of missed copies: a small JSON object per fan-out upload that stored a recording
in some providers but not in all of them, kept in the storage itself.

Why in the storage: a bot's pod is short-lived, and whatever it remembers dies with it. The
providers that just accepted the recording are, by construction, reachable and writable, so the
record goes there, under `STORAGE_JOURNAL_PREFIX` (default `.unistore/pending/`), and any other
process or pod can finish the work (`unistore repair`) with no new server. The cost is one small
PUT per provider that holds the recording, and only when a copy was missed: a fully successful
upload writes nothing.

A record's key is unique per upload attempt (`<prefix><UTC time>-<random hex>.json`, only
`[0-9A-Za-z.-]` after the prefix), so concurrent or repeated uploads of the same recording never
overwrite each other's records, and the object key itself (any length, any characters) never has
to fit inside another key. A failure to write the record is logged and reported on
`UploadReport.journal`; it never turns a success into a failure nor hides the upload's own errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from . import _telemetry
from ._errors import AlreadyExistsError, ConfigError, ProviderError
from ._logging import redact
from ._reads import DEFAULT_RESERVED_PREFIX
from ._validate import check_key

if TYPE_CHECKING:
    from ._report import UploadReport
    from .providers._protocol import ObjectInfo, Provider

logger = logging.getLogger("unistore")
T = TypeVar("T")

RESERVED_PREFIX = DEFAULT_RESERVED_PREFIX
"""Keys under this prefix are unistore's own (the journal): never listed as recordings."""
DEFAULT_JOURNAL_PREFIX = RESERVED_PREFIX + "pending/"
RECORD_VERSION = 1
MAX_ERROR_CHARS = 300


def check_journal_prefix(
    prefix: str, reserved: str = RESERVED_PREFIX, variable: str = "STORAGE_JOURNAL_PREFIX"
) -> str:
    """The journal lives under the reserved prefix (so listings hide it), ends with '/', and
    makes valid object keys."""
    if not prefix.startswith(reserved) or not prefix.endswith("/") or prefix == reserved:
        raise ConfigError(
            f"{variable}={prefix!r} must be a folder under {reserved!r} ending with '/', such as "
            f"{reserved}pending/ (keys under {reserved!r} are never listed as recordings)",
            variables=[variable],
        )
    try:
        check_key(prefix + "x.json")
    except ValueError as exc:
        raise ConfigError(
            f"{variable}={prefix!r} does not make valid object keys: {exc}", variables=[variable]
        ) from None
    return prefix


@dataclass(frozen=True, slots=True)
class HeldCopy:
    """What a provider that stored the recording said it holds."""

    size: int
    checksum: str | None = None
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class MissedCopy:
    """Why a provider did not store it: the error's class, code and (redacted) message."""

    error: str
    code: str | None = None
    kind: str = "Exception"


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """One journal object: `key` is stored in `held`, missing from `missing`."""

    journal_key: str
    key: str
    held: Mapping[str, HeldCopy]
    missing: Mapping[str, MissedCopy]
    written_at: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        import json  # loaded with the first missed copy, not with unistore

        body = {
            "version": RECORD_VERSION,
            "key": self.key,
            "written_at": self.written_at,
            "held": {name: dataclasses.asdict(copy) for name, copy in self.held.items()},
            "missing": {name: dataclasses.asdict(miss) for name, miss in self.missing.items()},
        }
        return json.dumps(body, sort_keys=True, ensure_ascii=True).encode("ascii")

    @classmethod
    def from_json(cls, journal_key: str, data: bytes) -> PendingRecord:
        """Parse a record; `ValueError` names what is wrong with one that is not ours."""
        import json

        try:
            body = json.loads(data)
            if not isinstance(body, dict) or body.get("version") != RECORD_VERSION:
                raise ValueError(f"not a version {RECORD_VERSION} journal record")
            held = {str(n): HeldCopy(**c) for n, c in dict(body["held"]).items()}
            missing = {str(n): MissedCopy(**m) for n, m in dict(body["missing"]).items()}
            return cls(journal_key, str(body["key"]), held, missing, float(body["written_at"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"journal record {journal_key!r} is unreadable: {exc}") from None


@dataclass(frozen=True, slots=True)
class JournalWrite:
    """The outcome of recording a missed copy: the record's key, the providers it was written
    to, and each provider's error where writing it failed."""

    journal_key: str
    written: tuple[str, ...]
    errors: Mapping[str, BaseException]

    @property
    def ok(self) -> bool:
        """Written to at least one provider: some process can find it."""
        return bool(self.written)


def new_journal_key(prefix: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{prefix}{stamp}-{os.urandom(8).hex()}.json"


def _held(info: ObjectInfo | None, size: int) -> HeldCopy:
    if info is None:
        return HeldCopy(size=size)
    return HeldCopy(size=info.size, checksum=info.checksum, etag=info.etag)


def _missed(error: BaseException | None) -> MissedCopy:
    if error is None:
        return MissedCopy(error="no result")
    code = error.code if isinstance(error, ProviderError) else None
    return MissedCopy(error=redact(str(error))[:MAX_ERROR_CHARS], code=code, kind=type(error).__name__)


def record_for(report: UploadReport, prefix: str) -> PendingRecord | None:
    """The record of `report`'s missed copies, or None when there is nothing to record: every
    provider stored the object (nothing missed) or none did (no copy to repair from). A provider
    that refused a conditional create (`AlreadyExistsError`) holds an object under the key
    already: not a missing copy, and nothing a copy with overwrite off could fix (the Django
    backend, for one, undoes the other copies and takes another name); `repair --full` still
    reports it if its bytes differ."""
    held = {n: _held(r.info, r.bytes) for n, r in report.results.items() if r.ok}
    missing = {
        n: _missed(r.error)
        for n, r in report.results.items()
        if not r.ok and not isinstance(r.error, AlreadyExistsError)
    }
    if not held or not missing:
        return None
    return PendingRecord(new_journal_key(prefix), report.key, held, missing)


async def write_record(providers: Sequence[Provider], record: PendingRecord) -> JournalWrite:
    """Put `record` into every one of `providers` at once; each failure is logged, kept, and
    never raised."""
    data = record.to_json()

    async def put(provider: Provider) -> BaseException | None:
        try:
            await provider.upload_bytes(data, record.journal_key, content_type="application/json", overwrite=False)
        except Exception as exc:
            return exc
        return None

    outcomes = await asyncio.gather(*(put(p) for p in providers))
    errors = {p.name: e for p, e in zip(providers, outcomes, strict=True) if e is not None}
    written = tuple(p.name for p, e in zip(providers, outcomes, strict=True) if e is None)
    for name, error in errors.items():
        logger.error(
            "Could not record the missed copy of %s in %s (%s): %s; `unistore repair --full` still "
            "finds it by comparing the listings",
            record.key, name, record.journal_key, redact(str(error)),
        )
    if written:
        logger.warning(
            "Recorded the missed copy of %s on %s in %s (%s): run `unistore repair` to copy it",
            record.key, ", ".join(record.missing), ", ".join(written), record.journal_key,
        )
    return JournalWrite(record.journal_key, written, errors)


_writing: dict[asyncio.Future[JournalWrite], tuple[Provider, ...]] = {}
"""Record writes in flight, with the providers they write to: kept referenced until they
finish (a cancelled caller leaves them running), and waited for by `Storage.aclose`."""


def writes_to(providers: Iterable[Provider]) -> set[asyncio.Future[JournalWrite]]:
    """The record writes still running to any of `providers`."""
    wanted = {id(p) for p in providers}
    return {task for task, targets in _writing.items() if any(id(t) in wanted for t in targets)}


async def after_upload(providers: Mapping[str, Provider], prefix: str, report: UploadReport) -> UploadReport:
    """The fan-out's hook: record a partial success before the upload call returns. Shielded:
    a caller cancelled now still gets its record written (in the background)."""
    record = record_for(report, prefix) if report.operation == "upload" else None
    if record is None:
        return report
    targets = tuple(providers[name] for name in record.held)
    task = asyncio.ensure_future(write_record(list(targets), record))
    _writing[task] = targets
    task.add_done_callback(lambda done: _writing.pop(done, None))
    written = await asyncio.shield(task)
    _telemetry.journal_written(written.ok)
    return dataclasses.replace(report, journal=written)


async def read_record(providers: Sequence[Provider], journal_key: str) -> PendingRecord:
    """The record from the first of `providers` that can serve it."""
    errors: list[str] = []
    for provider in providers:
        try:
            data = await provider.download_bytes(journal_key)
        except Exception as exc:
            errors.append(f"{provider.name}: {redact(str(exc))[:MAX_ERROR_CHARS]}")
            continue
        return PendingRecord.from_json(journal_key, data)
    raise OSError(f"journal record {journal_key!r} could not be read: {'; '.join(errors)}")


async def list_records(
    providers: Sequence[Provider], prefix: str
) -> tuple[dict[str, list[str]], dict[str, BaseException]]:
    """Every journal key under `prefix`, with the providers holding it (in the given order),
    and each provider whose listing failed."""
    async def keys(provider: Provider) -> list[str]:
        return [info.key async for info in provider.list(prefix) if info.key.endswith(".json")]

    listed, errors = await _on_each(providers, keys)
    holders: dict[str, list[str]] = {}
    for name, found in listed.items():
        for key in found:
            holders.setdefault(key, []).append(name)
    return dict(sorted(holders.items())), errors


async def remove_record(providers: Sequence[Provider], journal_key: str) -> dict[str, BaseException]:
    """Delete the record everywhere it is; returns the providers where that failed."""
    _, errors = await _on_each(providers, lambda provider: provider.delete(journal_key))
    return errors


async def _on_each(
    providers: Sequence[Provider], step: Callable[[Provider], Awaitable[T]]
) -> tuple[dict[str, T], dict[str, BaseException]]:
    """`step` on every provider at once: each one's result (in the given order) and each one's
    error. A cancellation or an exit is raised, not collected."""
    outcomes = await asyncio.gather(*(step(p) for p in providers), return_exceptions=True)
    results: dict[str, T] = {}
    errors: dict[str, BaseException] = {}
    for provider, outcome in zip(providers, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            errors[provider.name] = outcome
        else:
            results[provider.name] = outcome
    return results, errors


def summary(record: PendingRecord) -> dict[str, Any]:
    """A record as JSON-ready data (for `unistore repair --json`)."""
    return {
        "journal_key": record.journal_key,
        "key": record.key,
        "held": {n: dataclasses.asdict(c) for n, c in record.held.items()},
        "missing": {n: dataclasses.asdict(m) for n, m in record.missing.items()},
    }
