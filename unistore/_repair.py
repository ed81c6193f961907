"""`Storage.repair()`: put every recording back into every provider that should hold it.

Two sources of work, in this order:
1. The journal (`unistore._journal`): each pending record names a key, the providers that hold
   it and those that missed it.
2. With `full=True`, the providers' listings under the prefix, compared key by key (size, and a
   checksum where both sides report one of the same kind): what a process killed mid-fan-out
   left behind without a record.

Each missing copy is streamed from a provider that holds it to the one that lacks it
(`iter_bytes` -> `upload_stream`) as a conditional create (`overwrite=False`): a copy that
appeared meanwhile is left alone and compared instead. The bytes read are hashed with the
whole-object digest the source reports, if any, and a mismatch aborts the upload before it
commits. A copy counts only once `head` on the
target shows the size, and the checksum where one is comparable; a record is removed only once
every copy it asked for is in place. Two copies of one key with different bytes are a conflict:
reported, never overwritten, and they keep the record (and the exit status) pending until a
person decides. Running it twice copies nothing the second time.

Memory: a copy holds a grant of the process buffer budget (`STORAGE_MAX_BUFFER_BYTES`,
`unistore._budget`) for the bytes it buffers outside the provider's own accounting: a whole
object at or below the target's single-put threshold (read into one buffer, stored by one put),
or, for a larger one, the part being cut plus one read chunk, the parts in flight being granted
by the provider's part driver as for any upload. Large copies are admitted only while their
grants leave a part's worth of budget (`_LargeGate`), so they can never starve their own parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from . import _integrity, _journal
from ._budget import default_budget
from ._errors import AlreadyExistsError, IntegrityError, NotFoundError, ProviderError
from ._logging import redact
from ._threads import run_in_part_thread
from .providers._protocol import ObjectInfo, Provider

if TYPE_CHECKING:
    from ._storage import Storage

logger = logging.getLogger("unistore")

RepairProgress = Callable[[str, int, int], None]
"""Called as `(key being copied, bytes copied so far, bytes to copy in all)`."""

COPY_CONCURRENCY = 4
"""Copies in flight at once (each also bounded by the budget it holds)."""
READ_CHUNK_ALLOWANCE = 8 * 1024 * 1024
"""Bytes a provider's `iter_bytes` may hand over in one chunk (Azure reads 8 MiB ranges)."""
WHOLE_OBJECT_KINDS = ("md5", "crc32", "crc64")
"""Checksum kinds of the whole object, comparable between providers; `*-parts` digests depend
on how the object was cut into parts, so only the same upload's own can be compared."""


@dataclass(frozen=True, slots=True)
class Copied:
    key: str
    source: str
    target: str
    size: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """Copies of one key that differ: nothing was overwritten."""

    key: str
    reason: str
    copies: Mapping[str, tuple[int, str | None]]
    """provider -> (size, checksum) of each copy seen."""


@dataclass(frozen=True, slots=True)
class Failed:
    key: str
    provider: str
    error: str
    code: str | None = None


@dataclass
class RepairReport:
    """What a repair did and what is left. `ok` when nothing is left to do or decide."""

    dry_run: bool = False
    copied: list[Copied] = field(default_factory=list)
    planned: list[Copied] = field(default_factory=list)
    """With `dry_run=True`: the copies a real run would make."""
    in_place: list[str] = field(default_factory=list)
    """Keys whose missing copy turned out to be there already, identical (nothing copied)."""
    conflicts: list[Conflict] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    """Journal records left (their work is not done)."""
    resolved: list[str] = field(default_factory=list)
    """Journal records removed: every copy they asked for is in place and verified."""
    dropped: list[str] = field(default_factory=list)
    """Journal records removed because no provider holds their key any more (deleted); in a dry
    run, those that would be (they are still pending then)."""
    checked: int = 0
    """Keys compared across providers."""
    recent: list[str] = field(default_factory=list)
    """With `full` and `min_age_s`: keys left alone because a copy changed too recently (an
    upload may still be carrying it to the other providers); the next run looks again."""

    @property
    def ok(self) -> bool:
        return not (self.planned or self.conflicts or self.failed or self.pending)

    def to_dict(self) -> dict[str, Any]:
        def copy(c: Copied) -> dict[str, Any]:
            return {"key": c.key, "source": c.source, "target": c.target, "size": c.size}

        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "checked": self.checked,
            "recent": list(self.recent),
            "copied": [copy(c) for c in self.copied],
            "planned": [copy(c) for c in self.planned],
            "in_place": list(self.in_place),
            "conflicts": [
                {
                    "key": c.key,
                    "reason": c.reason,
                    "copies": {n: {"size": s, "checksum": h} for n, (s, h) in c.copies.items()},
                }
                for c in self.conflicts
            ],
            "failed": [{"key": f.key, "provider": f.provider, "error": f.error, "code": f.code} for f in self.failed],
            "pending": list(self.pending),
            "resolved": list(self.resolved),
            "dropped": list(self.dropped),
        }

    def _fail(self, key: str, provider: str, error: BaseException | str) -> None:
        code = error.code if isinstance(error, ProviderError) else None
        text = redact(str(error))[: _journal.MAX_ERROR_CHARS]
        self.failed.append(Failed(key, provider, text, code))


# -- comparing copies ------------------------------------------------------------------------


def _kind(checksum: str | None) -> str | None:
    return checksum.split(":", 1)[0] if checksum and ":" in checksum else None


def _whole_checksums_differ(a: str | None, b: str | None) -> bool:
    kind = _kind(a)
    return kind in WHOLE_OBJECT_KINDS and kind == _kind(b) and a != b


def difference(copies: Mapping[str, ObjectInfo]) -> str | None:
    """Why these copies of one key cannot hold the same bytes, or None when nothing says so
    (same size, and equal checksums wherever two copies report one of the same whole-object kind)."""
    items = list(copies.items())
    sizes = {info.size for _, info in items}
    if len(sizes) > 1:
        return "sizes differ (" + ", ".join(f"{n} {i.size} bytes" for n, i in items) + ")"
    for i, (name, info) in enumerate(items):
        for other, other_info in items[i + 1 :]:
            if _whole_checksums_differ(info.checksum, other_info.checksum):
                return f"checksums differ ({name} {info.checksum}, {other} {other_info.checksum})"
    return None


def _conflict(key: str, reason: str, copies: Mapping[str, ObjectInfo]) -> Conflict:
    return Conflict(key, reason, {n: (i.size, i.checksum) for n, i in copies.items()})


# -- the plan ----------------------------------------------------------------------------------


@dataclass
class _Copy:
    key: str
    target: str
    sources: list[str]
    """Providers that hold the key, in read order: the first that can serve it is used."""
    size: int
    records: list[str] = field(default_factory=list)
    outcome: str = "pending"
    """`copied`, `in_place`, or `failed` / `conflict` (then the records stay)."""


@dataclass
class _Plan:
    copies: dict[tuple[str, str], _Copy] = field(default_factory=dict)
    records: dict[str, tuple[list[str], bool]] = field(default_factory=dict)
    """journal key -> (providers holding the record, whether it can be resolved at all)."""
    keys: set[str] = field(default_factory=set)

    def add(self, key: str, target: str, sources: list[str], size: int, record: str | None) -> None:
        item = self.copies.setdefault((key, target), _Copy(key, target, sources, size))
        if record is not None:
            item.records.append(record)


def _read_order(storage: Storage) -> list[str]:
    return list(storage.read_order)


async def _head_all(providers: Mapping[str, Provider], key: str) -> dict[str, ObjectInfo | None | Exception]:
    async def one(provider: Provider) -> ObjectInfo | None | Exception:
        try:
            return await provider.head(key)
        except NotFoundError:
            return None
        except Exception as exc:
            return exc

    answers = await asyncio.gather(*(one(p) for p in providers.values()))
    return dict(zip(providers, answers, strict=True))


async def _plan_records(storage: Storage, prefix: str, plan: _Plan, report: RepairReport) -> None:
    providers = storage.providers
    order = _read_order(storage)
    holders_of, list_errors = await _journal.list_records(list(providers.values()), storage.journal_prefix)
    for name, error in list_errors.items():
        report._fail(storage.journal_prefix, name, error)
    for journal_key, holders in holders_of.items():
        try:
            record = await _journal.read_record([providers[h] for h in holders], journal_key)
        except (OSError, ValueError) as exc:
            report._fail(journal_key, ",".join(holders), exc)
            report.pending.append(journal_key)
            continue
        if not record.key.startswith(prefix):
            continue
        plan.keys.add(record.key)
        answers = await _head_all(providers, record.key)
        present = {n: a for n, a in answers.items() if isinstance(a, ObjectInfo)}
        resolvable = True
        for name, answer in answers.items():
            if isinstance(answer, Exception):
                report._fail(record.key, name, answer)
                resolvable = False
        for name in record.missing:
            if name not in providers:
                report._fail(record.key, name, "not configured (STORAGE_UPLOAD_MODE): the record is kept for it")
                resolvable = False
        plan.records[journal_key] = (holders, resolvable)
        if not present:
            if resolvable:
                report.dropped.append(journal_key)
            continue
        reason = difference(present)
        if reason is not None:
            if record.key not in {c.key for c in report.conflicts}:  # two attempts, one conflict
                report.conflicts.append(_conflict(record.key, reason, present))
            plan.records[journal_key] = (holders, False)
            continue
        size = next(iter(present.values())).size
        sources = [n for n in order if n in present]
        for name, answer in answers.items():
            if answer is None:
                plan.add(record.key, name, sources, size, journal_key)


async def _listing(provider: Provider, prefix: str, reserved: str) -> dict[str, ObjectInfo]:
    """One provider's listing, whole (SeaweedFS does not list in byte order, so listings are
    compared by key, not merged as sorted streams)."""
    return {info.key: info async for info in provider.list(prefix) if not info.key.startswith(reserved)}


def _changed_since(copies: Mapping[str, ObjectInfo], cutoff: datetime) -> bool:
    return any(info.last_modified is not None and _aware(info.last_modified) > cutoff for info in copies.values())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _plan_full(
    storage: Storage, prefix: str, plan: _Plan, report: RepairReport, min_age_s: float = 0.0
) -> None:
    providers = storage.providers
    order = _read_order(storage)
    answers = await asyncio.gather(
        *(_listing(p, prefix, storage.reserved_prefix) for p in providers.values()), return_exceptions=True
    )
    listings: dict[str, dict[str, ObjectInfo]] = {}
    for name, answer in zip(providers, answers, strict=True):
        if isinstance(answer, BaseException):
            if not isinstance(answer, Exception):
                raise answer
            report._fail(prefix or "(all keys)", name, answer)
        else:
            listings[name] = answer
    keys = sorted({key for listing in listings.values() for key in listing})
    cutoff = datetime.now(UTC) - timedelta(seconds=min_age_s)
    for key in keys:
        if key in plan.keys:
            continue  # a pending record covers it
        present = {n: listings[n][key] for n in order if n in listings and key in listings[n]}
        if min_age_s > 0 and _changed_since(present, cutoff):
            report.recent.append(key)
            continue
        report.checked += 1
        reason = difference(present)
        if reason is not None:
            report.conflicts.append(_conflict(key, reason, present))
            continue
        size = next(iter(present.values())).size
        for name in listings:
            if name not in present:
                plan.add(key, name, list(present), size, None)


# -- copying -----------------------------------------------------------------------------------


def _sizes(provider: Provider, storage: Storage) -> tuple[int, int]:
    """The target's single-put threshold and part size, as it declares them (`Provider.info`)."""
    info = provider.info
    return info.one_shot_max, info.part_size


class _Counter:
    def __init__(self, total: int, progress: RepairProgress | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress

    def add(self, key: str, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(key, self.done, self.total)


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Release a source's response however its reader stops (an iterator may lack `aclose`)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


class _SourceDigest:
    """The whole-object digest of the bytes read, of the kind the source vouches for (`md5:`,
    `crc32:`, `crc64:`), so that bytes read wrong fail the copy before the target commits."""

    def __init__(self, checksum: str | None) -> None:
        kind = _kind(checksum)
        self.expected = checksum if kind in WHOLE_OBJECT_KINDS else None
        self.kind = kind
        self._md5: Any = None
        self._crc = 0
        if kind == "md5":
            import hashlib

            self._md5 = hashlib.md5(usedforsecurity=False)
        elif kind == "crc64" and not _integrity.crc64_available():
            self.expected = None

    def update(self, chunk: bytes) -> None:
        """Runs in a part thread: hashlib and zlib release the GIL on large buffers."""
        if self.expected is None:
            return
        if self._md5 is not None:
            self._md5.update(chunk)
        elif self.kind == "crc32":
            self._crc = zlib.crc32(chunk, self._crc)
        else:
            from awscrt.checksums import crc64nvme

            self._crc = int(crc64nvme(chunk, self._crc))

    def label(self) -> str | None:
        if self.expected is None:
            return None
        if self._md5 is not None:
            return f"md5:{self._md5.hexdigest()}"
        if self.kind == "crc32":
            return _integrity.label("crc32", self._crc.to_bytes(4, "big"))
        return _integrity.label("crc64", self._crc.to_bytes(8, "little"))


async def _counted(
    chunks: AsyncIterator[bytes], key: str, counter: _Counter, seen: list[int], digest: _SourceDigest, source: str
) -> AsyncIterator[bytes]:
    """The source's chunks, counted and hashed as they pass; a digest that disagrees with the
    source's own ends the stream with an error, so the upload aborts instead of committing."""
    hashing: asyncio.Future[None] | None = None
    try:
        async for chunk in chunks:
            seen[0] += len(chunk)
            counter.add(key, len(chunk))
            if digest.expected is not None:
                # one chunk is hashed while the target takes it; the next waits for it (in order)
                if hashing is not None:
                    await hashing
                hashing = asyncio.ensure_future(run_in_part_thread(digest.update, chunk))
            yield chunk
        if hashing is not None:
            await hashing
    finally:
        await _close(chunks)
    if digest.expected is not None and digest.label() != digest.expected:
        raise IntegrityError(
            f"the bytes read from {source} do not match the checksum it reports ({digest.label()} read, "
            f"{digest.expected} stored); nothing was copied",
            provider=source, key=key, code="SourceDigestMismatch",
            hint="run the repair again; if it persists, the source copy itself may be damaged",
        )


async def _whole(chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """The object as one chunk, so a single put takes it without joining: one buffer of exactly
    `size` bytes, filled in place (a growing buffer is moved as it grows, and each move leaves
    a hole in the heap), handed over without a copy (`BytesIO.getvalue` of a full buffer)."""
    buffer = io.BytesIO(bytes(size))  # calloc'd: pages become resident only as they are written
    try:
        async for chunk in chunks:
            buffer.write(chunk)
    finally:
        await _close(chunks)
    written = buffer.tell()
    buffer.truncate(written)
    data = buffer.getvalue()
    del buffer
    if data:
        yield data


class _LargeGate:
    """Admits large copies while their grants leave at least one part of budget for the parts
    they put in flight: a large copy waits for budget for its parts while holding its grant, so
    grants that filled the budget would wait on each other for ever. One is always admitted."""

    def __init__(self) -> None:
        self._held = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def admit(self, grant: int, part: int, limit: int) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self._held == 0 or self._held + grant + part <= limit)
            self._held += grant
        try:
            yield
        finally:
            async with self._changed:
                self._held -= grant
                self._changed.notify_all()


async def _copy_one(storage: Storage, item: _Copy, counter: _Counter, report: RepairReport, gate: _LargeGate) -> None:
    providers = storage.providers
    target = providers[item.target]
    threshold, part = _sizes(target, storage)
    budget = default_budget()
    admitted: contextlib.AbstractAsyncContextManager[None]
    if item.size <= threshold:
        grant, admitted = item.size, contextlib.nullcontext()
    else:
        grant = max(0, min(part + READ_CHUNK_ALLOWANCE, budget.limit - part))
        admitted = gate.admit(grant, part, budget.limit)
    async with admitted:
        await budget.acquire(grant)
        try:
            await _copy_from_sources(providers, item, target, threshold, counter, report)
        finally:
            budget.release(grant)


async def _copy_from_sources(
    providers: Mapping[str, Provider],
    item: _Copy,
    target: Provider,
    threshold: int,
    counter: _Counter,
    report: RepairReport,
) -> None:
    for name in item.sources:
        source = providers[name]
        try:
            info = await source.head(item.key)
        except NotFoundError:
            continue
        except Exception as exc:
            report._fail(item.key, name, exc)
            continue
        seen = [0]
        chunks = _counted(source.iter_bytes(item.key), item.key, counter, seen, _SourceDigest(info.checksum), name)
        try:
            stored = await target.upload_stream(
                _whole(chunks, info.size) if info.size <= threshold else chunks,
                item.key,
                content_type=info.content_type,
                metadata=info.metadata or None,
                overwrite=False,
                allow_empty=info.size == 0,
                size_hint=info.size,
            )
        except AlreadyExistsError:
            await _compare_existing(target, item, name, info, report)
            return
        except Exception as exc:
            item.outcome = "failed"
            report._fail(item.key, item.target, exc)
            return
        await _verify(target, item, info, stored, seen[0], report, name)
        return
    item.outcome = "failed"
    report._fail(item.key, item.target, f"no provider could serve the key to copy it ({', '.join(item.sources)})")


async def _compare_existing(
    target: Provider, item: _Copy, source: str, expected: ObjectInfo, report: RepairReport
) -> None:
    """The target gained a copy since the plan was made: keep it, and say whether it matches."""
    try:
        found = await target.head(item.key)
    except Exception as exc:
        item.outcome = "failed"
        report._fail(item.key, item.target, exc)
        return
    copies = {source: expected, item.target: found}
    reason = difference(copies)
    if reason is None:
        item.outcome = "in_place"
        report.in_place.append(item.key)
    else:
        item.outcome = "conflict"
        report.conflicts.append(_conflict(item.key, reason, copies))


async def _verify(
    target: Provider,
    item: _Copy,
    expected: ObjectInfo,
    stored: ObjectInfo,
    sent: int,
    report: RepairReport,
    source: str,
) -> None:
    """The copy counts once the target's own `head` agrees with the source and with the upload."""
    try:
        after = await target.head(item.key)
        problem = None
        if after.size != expected.size or sent != expected.size:
            problem = f"size {after.size} on {item.target}, {sent} bytes sent, {expected.size} at the source"
        elif _whole_checksums_differ(after.checksum, expected.checksum):
            problem = f"checksum {after.checksum} on {item.target}, {expected.checksum} at the source"
        elif _kind(after.checksum) == _kind(stored.checksum) and after.checksum != stored.checksum:
            problem = f"checksum {after.checksum} on {item.target}, {stored.checksum} uploaded"
        if problem is not None:
            raise IntegrityError(
                f"the copy does not match: {problem}; it is left for a person to check",
                provider=item.target, key=item.key, code="RepairMismatch",
                hint="another writer may have replaced the object meanwhile; run the repair again to compare",
            )
    except Exception as exc:
        item.outcome = "failed"
        report._fail(item.key, item.target, exc)
        return
    item.outcome = "copied"
    report.copied.append(Copied(item.key, source, item.target, expected.size))
    logger.info("Repaired %s: copied %d bytes from %s to %s", item.key, expected.size, source, item.target)


async def _execute(storage: Storage, plan: _Plan, report: RepairReport, progress: RepairProgress | None) -> None:
    items = list(plan.copies.values())
    counter = _Counter(sum(i.size for i in items), progress)
    slots = asyncio.Semaphore(COPY_CONCURRENCY)
    gate = _LargeGate()

    async def run(item: _Copy) -> None:
        async with slots:
            await _copy_one(storage, item, counter, report, gate)

    await asyncio.gather(*(run(i) for i in items))


async def _settle_records(storage: Storage, plan: _Plan, report: RepairReport) -> None:
    providers = storage.providers
    blocked = {r for item in plan.copies.values() if item.outcome not in ("copied", "in_place") for r in item.records}
    for journal_key, (holders, resolvable) in plan.records.items():
        if not resolvable or journal_key in blocked:
            report.pending.append(journal_key)
            continue
        errors = await _journal.remove_record([providers[h] for h in holders], journal_key)
        for name, error in errors.items():
            report._fail(journal_key, name, error)
        if errors:
            report.pending.append(journal_key)
        elif journal_key not in report.dropped:
            report.resolved.append(journal_key)



class RepairOptions(TypedDict, total=False):
    """The keywords of `repair`, as `Storage.repair` and `SyncStorage.repair` pass them on (their
    defaults and meaning are `repair`'s)."""

    dry_run: bool
    full: bool
    progress: RepairProgress | None
    min_age_s: float

async def repair(
    storage: Storage,
    prefix: str = "",
    *,
    dry_run: bool = False,
    full: bool = False,
    progress: RepairProgress | None = None,
    min_age_s: float = 0.0,
) -> RepairReport:
    report = RepairReport(dry_run=dry_run)
    plan = _Plan()
    await _plan_records(storage, prefix, plan, report)
    if full:
        await _plan_full(storage, prefix, plan, report, min_age_s)
    if dry_run:
        report.planned = [Copied(i.key, i.sources[0], i.target, i.size) for i in plan.copies.values()]
        report.pending = list(plan.records)
        return report
    await _execute(storage, plan, report, progress)
    await _settle_records(storage, plan, report)
    return report


__all__ = ["Conflict", "Copied", "Failed", "RepairOptions", "RepairProgress", "RepairReport", "difference", "repair"]
