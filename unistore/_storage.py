"""`Storage`, the fan-out manager. It sees `Provider`s, their names and their results, and
knows nothing of S3 or Azure.

Every upload runs one task per provider under `asyncio.gather`; each task turns its own
exception into a `ProviderResult`, so one provider failing or stalling never cancels or
delays another's outcome. With more than one provider a large source is read once and fed to
all of them through bounded channels (`_tee.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, Unpack

from . import _integrity, _journal, _multipart, _telemetry
from . import _logging as log
from ._deadline import ABORT_TIMEOUT_S
from ._errors import ConfigError, FanOutError
from ._events import EventCallback, UploadEvent, emit, emit_soon, error_code, failure_text
from ._io import cut_part, file_chunks, read_range
from ._multipart import PartSizer
from ._opening import StorageOpening
from ._reads import DEFAULT_RESERVED_PREFIX, ListedObject, Reader, resolve_read_order
from ._report import ProviderResult, RequireRule, UploadReport
from ._tee import Channel, Tee, UploadAborted
from ._threads import run_in_part_thread
from ._tiers import check_names
from ._types import ObjectInfo, Tier, UploadOptions
from ._validate import check_upload, empty_source, guess_content_type, source_size
from .providers._protocol import Provider

if TYPE_CHECKING:
    from ._repair import RepairOptions, RepairReport
    from ._settings import StorageSettings

logger = logging.getLogger("unistore")

FANOUT_DEPTH = 1
"""Chunks queued per provider in a fan-out, on top of the parts each has in flight."""

FANOUT_LAG_S = 2.0
"""In a file fan-out, seconds a provider may keep the shared reader waiting before it is handed
a reader of its own: read once while providers keep pace, never held back by a stalled one."""


def _label(provider: Provider) -> str:
    return provider.info.label


class Storage:
    """Uploads to every configured provider at once and reports each outcome.

    `require="all"` (the default) makes a report `ok` only when every provider stored the
    object; `"any"` when at least one did; `"primary"` when the first provider did (the others
    are still attempted in the same call). Whenever some providers stored the object and others
    did not, the missed copies are recorded under `journal_prefix` in the providers that hold it
    (`unistore._journal`) before the call returns, for `repair()` to finish. `on_event` is told
    of each provider's outcome and then of the upload's (`unistore.UploadEvent`). Use as an
    async context manager, or call `aclose()`.
    """

    def __init__(
        self,
        providers: Sequence[Provider] | Mapping[str, Provider],
        *,
        require: RequireRule = "all",
        fanout_lag_s: float = FANOUT_LAG_S,
        read_order: Sequence[str] | None = None,
        reserved_prefix: str = DEFAULT_RESERVED_PREFIX,
        journal_prefix: str | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        items = list(providers.values()) if isinstance(providers, Mapping) else list(providers)
        if not items:
            raise ConfigError("Storage needs at least one provider", variables=["STORAGE_UPLOAD_MODE"])
        named: dict[str, Provider] = {}
        for provider in items:
            if provider.name in named:
                raise ConfigError(
                    f"two providers are named {provider.name!r}: give each a distinct name",
                    variables=["STORAGE_UPLOAD_MODE"],
                )
            named[provider.name] = provider
        if require not in ("all", "any", "primary"):
            raise ConfigError(
                f"require must be 'all', 'any' or 'primary', not {require!r}", variables=["STORAGE_REQUIRE"]
            )
        self._providers = named
        self.require: RequireRule = require
        # default: `pending/` under the reserved prefix (`.unistore/pending/`)
        self.journal_prefix = _journal.check_journal_prefix(
            reserved_prefix + "pending/" if journal_prefix is None else journal_prefix, reserved_prefix
        )
        self.fanout_lag_s = fanout_lag_s
        _telemetry.refresh()
        self.on_event: EventCallback | None = on_event
        """Told of each provider's outcome and of the upload's (`unistore.UploadEvent`); a
        function or a coroutine function."""
        self._reader = Reader(named, resolve_read_order(list(named), read_order), reserved_prefix)

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_env(cls, *, on_event: EventCallback | None = None) -> Storage:
        """Read and validate the environment (`StorageSettings`), then build the providers."""
        from ._settings import StorageSettings

        return cls.from_settings(StorageSettings(), on_event=on_event)

    @classmethod
    def afrom_env(cls, *, on_event: EventCallback | None = None) -> StorageOpening:
        """`from_env()` in a worker thread, for code on a running loop: the first call in a
        process imports the settings stack and the provider modules (100-170 ms of CPU), which
        `from_env()` would spend on the loop. `storage = await Storage.afrom_env()`, or
        `async with Storage.afrom_env() as storage:`; a bad environment raises the same
        `ConfigError` from the `await` or the `async with`."""
        return StorageOpening(functools.partial(cls.from_env, on_event=on_event))

    @classmethod
    def from_settings(cls, settings: StorageSettings, *, on_event: EventCallback | None = None) -> Storage:
        from ._budget import default_budget
        from ._gcfreeze import set_freeze
        from .providers import build_providers

        default_budget().set_limit(int(settings.max_buffer_bytes))
        set_freeze(settings.gc_freeze)
        log.apply_format(settings.log_format)
        return cls(
            build_providers(settings),
            require=settings.require,
            read_order=settings.read_providers,
            journal_prefix=settings.journal_prefix,
            on_event=on_event,
        )

    @property
    def providers(self) -> Mapping[str, Provider]:
        return dict(self._providers)

    def provider(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise ConfigError(
                f"no provider named {name!r}; configured: {', '.join(self._providers)} "
                "(add it to STORAGE_UPLOAD_MODE, or ask for one of these)",
                variables=["STORAGE_UPLOAD_MODE"],
            ) from None

    async def __aenter__(self) -> Self:
        entered: list[Provider] = []
        try:
            for provider in self._providers.values():
                await provider.__aenter__()
                entered.append(provider)
        except BaseException:
            await asyncio.gather(*(p.aclose() for p in entered), return_exceptions=True)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every provider, after the work a cancelled upload left running on them (an
        abort of its multipart upload, the record of a missed copy) has finished, or
        `ABORT_TIMEOUT_S` has passed: closed connections would turn those into orphaned parts
        billed on S3, or a missed copy nobody repairs."""
        await self._settle_background()
        results = await asyncio.gather(
            *(p.aclose() for p in self._providers.values()), return_exceptions=True
        )
        for provider, result in zip(self._providers.values(), results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("closing %s failed: %s", provider.name, log.redact(str(result)))

    async def _settle_background(self) -> None:
        providers = list(self._providers.values())
        pending: set[asyncio.Future[Any]] = {*_multipart.aborts_of(providers), *_journal.writes_to(providers)}
        if not pending:
            return
        logger.info("closing: waiting for %d abort(s) or record write(s) of cancelled uploads", len(pending))
        _, late = await asyncio.wait(pending, timeout=ABORT_TIMEOUT_S)
        if late:
            logger.warning(
                "closing after %ss with %d abort(s) or record write(s) still running: "
                "`unistore cleanup --older-than SECONDS` and `unistore repair --full` finish their work",
                ABORT_TIMEOUT_S, len(late),
            )

    @property
    def digest_kind(self) -> _integrity.Kind:
        """The digest a fan-out computes once per chunk for every provider that accepts it
        (`_integrity.fanout_kind`); a provider that does not hashes its parts itself with its
        own kind."""
        accepted: list[Sequence[_integrity.Kind]] = [p.info.digests for p in self._providers.values()]
        return _integrity.fanout_kind(accepted) or "md5"

    @property
    def one_shot_max(self) -> int:
        """Largest file a fan-out reads into memory once and hands to every provider whole: the
        smallest one-request upload of its providers (each still decides for itself)."""
        return min(p.info.one_shot_max for p in self._providers.values())

    @property
    def chunk_size(self) -> int:
        """Bytes a fan-out or a writer hands every provider at a time: the largest part size of
        its providers, so that no provider's part spans two chunks more than it must."""
        return max(p.info.part_size for p in self._providers.values())

    def __repr__(self) -> str:
        return f"<Storage providers={list(self._providers)} require={self.require!r}>"

    # -- fan-out -----------------------------------------------------------------------

    async def _run_one(
        self, provider: Provider, key: str, start: Callable[[], Awaitable[ObjectInfo]]
    ) -> ProviderResult:
        began = time.perf_counter()
        with _telemetry.provider_span(provider.name) as span:
            try:
                info = await start()
            except asyncio.CancelledError as exc:
                elapsed = time.perf_counter() - began
                _telemetry.provider_done(span, provider.name, elapsed, 0, exc)
                emit_soon(self.on_event, UploadEvent(
                    "provider_failed", key, False, provider.name, duration_s=elapsed,
                    error_code="cancelled", error="cancelled",
                ))
                raise
            except Exception as exc:  # each provider's failure is its own result
                elapsed = time.perf_counter() - began
                log.log_provider_failure(_label(provider), key, exc, provider.name)
                _telemetry.provider_done(span, provider.name, elapsed, 0, exc)
                await emit(self.on_event, UploadEvent(
                    "provider_failed", key, False, provider.name, duration_s=elapsed,
                    error_code=error_code(exc), error=failure_text(exc),
                ))
                return ProviderResult(provider=provider.name, ok=False, error=exc, duration_s=elapsed)
            elapsed = time.perf_counter() - began
            log.log_provider_success(_label(provider), key, info.size, elapsed, provider.name)
            _telemetry.provider_done(span, provider.name, elapsed, info.size, None)
        await emit(self.on_event, UploadEvent(
            "provider_committed", key, True, provider.name, bytes=info.size, duration_s=elapsed,
        ))
        return ProviderResult(provider=provider.name, ok=True, info=info, duration_s=elapsed, bytes=info.size)

    async def _gather(
        self, key: str, starts: Mapping[str, Callable[[], Awaitable[ObjectInfo]]]
    ) -> UploadReport:
        began = time.perf_counter()
        log.log_uploading([_label(self._providers[n]) for n in starts])
        with _telemetry.upload_span(list(starts)) as span:
            try:
                runs = [self._run_one(self._providers[name], key, start) for name, start in starts.items()]
                # one provider: awaited in this task (a task and a gather future per upload
                # are measurable on small uploads: the small-s3 bench case)
                results = [await runs[0]] if len(runs) == 1 else await asyncio.gather(*runs)
            except asyncio.CancelledError as exc:
                elapsed = time.perf_counter() - began
                _telemetry.upload_done(span, None, elapsed, exc)
                emit_soon(self.on_event, UploadEvent(
                    "upload_settled", key, False, duration_s=elapsed, error_code="cancelled", error="cancelled",
                ))
                raise
            report = UploadReport(
                key=key,
                results={r.provider: r for r in results},
                require=self.require,
                duration_s=time.perf_counter() - began,
            )
            log.log_finished(len(report.succeeded), len(report.results))
            try:
                report = await _journal.after_upload(self._providers, self.journal_prefix, report)
            except asyncio.CancelledError as exc:  # the record is still written, in the background
                _telemetry.upload_done(span, None, report.duration_s, exc)
                emit_soon(self.on_event, UploadEvent(
                    "upload_settled", key, False, duration_s=report.duration_s, error_code="cancelled",
                    error="cancelled while the missed copies were being recorded", report=report,
                ))
                raise
            _telemetry.upload_done(span, report, report.duration_s, None)
        failed = report.errors
        first_error = next(iter(failed.values()), None) if not report.ok else None
        await emit(self.on_event, UploadEvent(
            "upload_settled", key, report.ok, bytes=max((r.bytes for r in report.results.values()), default=0),
            duration_s=report.duration_s,
            error_code=error_code(first_error) if first_error is not None else None,
            error=failure_text(first_error) if first_error is not None else None,
            report=report,
        ))
        return report

    async def repair(self, prefix: str = "", **options: Unpack[RepairOptions]) -> RepairReport:
        """Copy every missed copy under `prefix` from a provider that holds it to those that
        lack it: the journal's pending records, then with `full=True` every key the providers'
        listings disagree on (but those changed less than `min_age_s` ago, which an upload may
        still be carrying to the others). See `unistore._repair`."""
        from ._repair import repair

        return await repair(self, prefix, **options)

    async def upload_file(
        self,
        path: str | os.PathLike[str],
        key: str,
        *,
        delete_local: bool = False,
        **options: Unpack[UploadOptions],
    ) -> UploadReport:
        """Upload a file to every provider, reading it once.

        `delete_local=True` removes the file only when every provider succeeded (whatever
        `require` says); otherwise the file is kept and the report says why. The options are
        `UploadOptions`.
        """
        opts = self._checked_options("upload_file", key, options)
        size = await asyncio.to_thread(source_size, path)
        if size == 0 and not opts.get("allow_empty", False):
            raise empty_source(key, path)
        if opts.get("content_type") is None:
            opts["content_type"] = guess_content_type(path)
        providers = list(self._providers.values())
        if len(providers) == 1:
            only = providers[0]
            report = await self._gather(key, {only.name: lambda: only.upload_file(path, key, **opts)})
        elif size <= self.one_shot_max:
            data, _ = await run_in_part_thread(read_range, os.fspath(path), 0, size)
            report = await self._gather(
                key, {p.name: _bound(p.upload_bytes, data, key, opts) for p in providers}
            )
        else:
            report = await self._fan_out_file(os.fspath(path), key, size, opts)
        if delete_local:
            await self._delete_local(path, report)
        return report

    async def _fan_out_file(self, path: str, key: str, size: int, opts: UploadOptions) -> UploadReport:
        chunk = max(PartSizer(p.info.part_size, p.info.limits, size).size(1) for p in self._providers.values())
        kind = self.digest_kind
        tee = Tee(list(self._providers), FANOUT_DEPTH, kind)

        async def feed() -> None:
            offset = 0
            try:
                async with contextlib.aclosing(file_chunks(path, 0, size, chunk, kind)) as chunks:
                    async for data, digest in chunks:
                        # a provider that falls behind reads on from here by itself
                        catch_up = functools.partial(file_chunks, path, offset, size, chunk, kind)
                        offset += len(data)
                        await tee.feed(data, digest, lag_s=self.fanout_lag_s, catch_up=catch_up)
                        if not tee.alive:
                            break
            except BaseException as exc:
                await tee.close(exc if isinstance(exc, Exception) else UploadAborted("cancelled"))
                raise
            await tee.close()

        feeder = asyncio.create_task(feed())
        try:
            report = await self._gather(key, self._stream_starts(tee, key, opts, size))
        except BaseException:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            raise
        await asyncio.gather(feeder, return_exceptions=True)
        return report

    def _stream_starts(
        self, tee: Tee, key: str, opts: UploadOptions, size_hint: int | None
    ) -> dict[str, Callable[[], Awaitable[ObjectInfo]]]:
        def start(provider: Provider, channel: Channel) -> Callable[[], Awaitable[ObjectInfo]]:
            async def run() -> ObjectInfo:
                try:
                    return await provider.upload_stream(channel, key, size_hint=size_hint, **opts)
                finally:
                    await channel.detach()

            return run

        return {name: start(self._providers[name], ch) for name, ch in tee.channels.items()}

    async def upload_bytes(
        self,
        data: bytes,
        key: str,
        **options: Unpack[UploadOptions],
    ) -> UploadReport:
        """Upload `data` to every provider; the options are `UploadOptions`."""
        opts = self._checked_options("upload_bytes", key, options)
        data = bytes(data) if not isinstance(data, bytes) else data
        if not data and not opts.get("allow_empty", False):
            raise empty_source(key)
        return await self._gather(
            key, {p.name: _bound(p.upload_bytes, data, key, opts) for p in self._providers.values()}
        )

    async def upload_stream(
        self,
        chunks: AsyncIterable[bytes],
        key: str,
        **options: Unpack[UploadOptions],
    ) -> UploadReport:
        """Upload an async iterable of chunks to every provider, reading each chunk once; the
        options are `UploadOptions`."""
        writer = StorageWriter(self, key, self._checked_options("upload_stream", key, options))
        async with writer:
            async for chunk in chunks:
                await writer.write(chunk)
        assert writer.report is not None
        return writer.report

    def open_writer(
        self,
        key: str,
        **options: Unpack[UploadOptions],
    ) -> StorageWriter:
        """An async context manager that streams chunks to every provider as they come; the
        options are `UploadOptions`.

        Leaving the block normally completes every upload and sets `writer.report`; an
        exception in the block, or cancellation, aborts every upload: nothing becomes visible.
        """
        return StorageWriter(self, key, self._checked_options("open_writer", key, options))

    def _checked_options(self, method: str, key: str, options: UploadOptions) -> UploadOptions:
        """Refuse an unknown option, a bad key, metadata, content type or tier before any
        provider starts. The options go on to every provider as given (`tier` only when set,
        so that a provider written before tiers existed keeps working)."""
        check_upload(method, key, options)
        opts = options.copy()
        if opts.get("tier") is not None:
            self.resolve_tiers(opts["tier"])
        else:
            opts.pop("tier", None)
        return opts

    def resolve_tiers(self, tier: Tier | None) -> dict[str, str | None]:
        """The tier each provider would store an upload given `tier=` in, in its service's
        spelling (None: the service's default); `ValueError` naming the allowed values when a
        provider cannot take it, or a mapping names an unknown provider. A provider without
        `resolve_tier` (not a built-in one) checks the value itself, when its upload starts."""
        check_names(tier, set(self._providers))
        tiers: dict[str, str | None] = {}
        for name, provider in self._providers.items():
            resolve = getattr(provider, "resolve_tier", None)
            if callable(resolve):
                tiers[name] = resolve(tier)
            else:
                tiers[name] = tier.get(name) if isinstance(tier, Mapping) else tier
        return tiers

    async def _delete_local(self, path: str | os.PathLike[str], report: UploadReport) -> None:
        if report.all_ok:
            await asyncio.to_thread(os.remove, path)
            logger.info("Deleted local recording %s after every provider confirmed it", os.fspath(path))
        else:
            logger.warning(
                "Kept local recording %s: upload failed on %s",
                os.fspath(path), ", ".join(report.failed),
            )

    # -- reads, deletes, listings, presigned URLs (across providers: `_reads.py`) ----------

    @property
    def read_order(self) -> tuple[str, ...]:
        """Provider names in the order reads try them (`STORAGE_READ_ORDER`, then the rest of
        `STORAGE_UPLOAD_MODE`)."""
        return self._reader.read_order

    @property
    def reserved_prefix(self) -> str:
        """Keys under this prefix are unistore's own (the repair journal); `list` hides them."""
        return self._reader.reserved_prefix

    async def download_file(
        self, key: str, path: str | os.PathLike[str], *, provider: str | None = None
    ) -> ObjectInfo:
        """Download into `path` (written beside it, renamed when complete) from the first
        provider in read order that holds `key`; `provider="s3"` pins one, without failover.
        `NotFoundError` if no provider holds it, `FanOutError` if one could not answer."""
        return await self._reader.download_file(key, path, provider=provider)

    async def download_bytes(self, key: str, *, provider: str | None = None) -> bytes:
        """The object's bytes, from the first provider that holds it (as `download_file`)."""
        return await self._reader.download_bytes(key, provider=provider)

    def iter_bytes(self, key: str, *, provider: str | None = None) -> AsyncGenerator[bytes, None]:
        """The object's bytes in chunks, from the first provider that holds it; failover
        happens only before the first chunk. Stopping early: `contextlib.aclosing()` releases
        the response at once instead of when the generator is collected."""
        return self._reader.iter_bytes(key, provider=provider)

    async def locate(self, key: str) -> tuple[str, ObjectInfo]:
        """The first provider in read order that holds `key`, and what it holds."""
        return await self._reader.locate(key)

    async def head(self, key: str) -> dict[str, ObjectInfo | None]:
        """Every provider's info on `key` (None: it lacks the key); `FanOutError`, with every
        provider's result in `.report`, when one cannot answer."""
        return await self._reader.head(key)

    async def exists(self, key: str) -> dict[str, bool]:
        """Which providers hold `key` (raises like `head`)."""
        return await self._reader.exists(key)

    async def delete(self, key: str) -> UploadReport:
        """Delete every copy at once; idempotent. The report is ok only when every provider
        confirmed, and names where a copy remains otherwise."""
        return await self._reader.delete(key)

    async def presigned_url(
        self, key: str, expires_in: int = 3600, method: str = "GET", *, provider: str | None = None
    ) -> str:
        """A URL for a plain HTTP GET (from the first provider that holds `key`) or PUT (from
        the first that answers). It is a bearer credential: never log it."""
        return await self._reader.presigned_url(key, expires_in, method, provider=provider)

    def list(self, prefix: str = "", *, provider: str | None = None) -> AsyncGenerator[ListedObject, None]:
        """One listing merged across providers, sorted by key: each `ListedObject` says which
        providers hold the key. Keys under `reserved_prefix` are never listed."""
        return self._reader.list(prefix, provider=provider)


class StorageWriter:
    """Streams written chunks to every provider; see `Storage.open_writer`."""

    def __init__(self, storage: Storage, key: str, opts: UploadOptions) -> None:
        self._storage = storage
        self.key = key
        self._opts = opts
        self._tee: Tee | None = None
        self._gathering: asyncio.Future[UploadReport] | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._written = 0
        self.report: UploadReport | None = None

    @property
    def bytes_written(self) -> int:
        return self._written

    async def __aenter__(self) -> Self:
        if self._tee is not None:
            raise RuntimeError("a StorageWriter can be entered only once")
        self._tee = Tee(list(self._storage._providers), FANOUT_DEPTH, self._storage.digest_kind)
        starts = self._storage._stream_starts(self._tee, self.key, self._opts, None)
        self._gathering = asyncio.ensure_future(self._storage._gather(self.key, starts))
        return self

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Queue `chunk` for every provider; waits while the slowest healthy one is full."""
        if self._tee is None or self.report is not None:
            raise RuntimeError("write() outside the writer's `async with` block")
        if not chunk:
            return
        # bytes are kept as they are; a mutable buffer is copied, since the caller may reuse it
        data = chunk if isinstance(chunk, bytes) else bytes(chunk)
        self._written += len(data)
        self._pending.append(data)
        self._pending_bytes += len(data)
        size = self._storage.chunk_size
        while self._pending_bytes >= size:
            await self._emit(size)

    async def _flush(self) -> None:
        if self._pending_bytes:
            await self._emit(self._pending_bytes)

    async def _emit(self, size: int) -> None:
        """Cut a `size`-byte part off the pending chunks and feed it to every provider. Joining
        and hashing run in a worker thread: multi-MiB copies on the loop stall it for tens of ms."""
        assert self._tee is not None
        chunks, self._pending, self._pending_bytes = self._pending, [], 0
        part, digest, rest = await run_in_part_thread(cut_part, chunks, size, self._tee.digest_kind)
        if rest:
            self._pending, self._pending_bytes = [rest], len(rest)
        if await self._tee.feed(part, digest) == 0 and not self._tee.alive:
            report = await self._finish(None)
            raise FanOutError(report.errors, report)

    async def _finish(self, error: BaseException | None) -> UploadReport:
        assert self._tee is not None and self._gathering is not None
        await self._tee.close(error)
        # shielded: a cancelled writer still waits for every provider to abort
        self.report = await asyncio.shield(self._gathering)
        return self.report

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.report is not None:
            return
        if exc is None:
            try:
                await self._flush()
            except BaseException as flush_error:
                if self.report is None:
                    await self._finish(UploadAborted(str(flush_error)))
                raise
            if self._written == 0 and not self._opts.get("allow_empty"):
                await self._finish(UploadAborted("empty stream"))
                raise empty_source(self.key)
            await self._finish(None)
            return
        if isinstance(exc, asyncio.CancelledError):
            reason = "cancelled"
        else:
            reason = f"{type(exc).__name__} in the writer's block"
        try:
            await self._finish(UploadAborted(f"upload aborted: {reason}"))
        except asyncio.CancelledError:
            pass


def _bound(
    method: Callable[..., Awaitable[ObjectInfo]], data: bytes, key: str, opts: UploadOptions
) -> Callable[[], Awaitable[ObjectInfo]]:
    return lambda: method(data, key, **opts)


__all__ = ["Storage", "StorageWriter"]
