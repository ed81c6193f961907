"""Reads, deletes, listings and presigned URLs across every provider of a `Storage`.

Uploads fan out; reads fail over. A read asks the providers one at a time, in the storage's
read order (`STORAGE_READ_ORDER`, default the order of `STORAGE_UPLOAD_MODE`), and the first
that serves wins: one that lacks the key or fails hands over to the next. When none can serve,
the error lists what each provider answered: `NotFoundError` when every one lacks the key (the
object is gone), `FanOutError` when at least one could not answer (it may still exist there).

Questions about every copy (`head`, `exists`, `delete`, `list`) ask all providers at once and
answer per provider, so a caller sees a missing or undeletable copy instead of a merged guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from . import _logging as log
from ._errors import ConfigError, FanOutError, NotFoundError
from ._report import ProviderResult, UploadReport
from ._validate import PRESIGN_METHODS, check_key
from .providers._protocol import ObjectInfo, Provider

logger = logging.getLogger("unistore")

T = TypeVar("T")

DEFAULT_RESERVED_PREFIX = ".unistore/"
"""Keys under this prefix belong to unistore itself (the repair journal): never listed."""



@dataclass(frozen=True, slots=True)
class ListedObject:
    """One key of a merged listing: `copies` maps each provider that holds it to its info,
    in read order. A key missing from a provider is simply absent from `copies`."""

    key: str
    copies: Mapping[str, ObjectInfo]

    @property
    def providers(self) -> tuple[str, ...]:
        """Names of the providers that hold the key, in read order."""
        return tuple(self.copies)

    @property
    def size(self) -> int:
        """Size of the first copy in read order (copies of one upload have the same size)."""
        return next(iter(self.copies.values())).size


def resolve_read_order(names: Sequence[str], read_order: Sequence[str] | None) -> tuple[str, ...]:
    """The providers in the order reads try them: those `read_order` names first, then the
    others in upload order, so that every copy stays reachable for failover. A name that is
    not a configured provider is a `ConfigError`."""
    if read_order is None:
        return tuple(names)
    chosen: list[str] = []
    for raw in read_order:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in names:
            raise ConfigError(
                f"STORAGE_READ_ORDER names {name!r}, which is not a configured provider; "
                f"use only names from STORAGE_UPLOAD_MODE ({', '.join(names)})",
                variables=["STORAGE_READ_ORDER", "STORAGE_UPLOAD_MODE"],
            )
        if name not in chosen:
            chosen.append(name)
    return (*chosen, *(n for n in names if n not in chosen))


def _short(error: BaseException) -> str:
    return log.redact(str(error)) or type(error).__name__


def _answers(errors: Mapping[str, BaseException]) -> str:
    return "; ".join(f"{name}: {_short(err)}" for name, err in errors.items())


def _handed_over(op: str, key: str, name: str, error: Exception) -> Exception:
    """Log a provider that failed a read (a missing key is no news), and return the error."""
    if not isinstance(error, NotFoundError):
        logger.warning("%s of %s failed on %s, trying the next provider: %s", op, key, name, _short(error))
    return error


def _served(op: str, key: str, name: str, errors: Mapping[str, BaseException]) -> None:
    if errors:
        logger.info("%s of %s served by %s after %s could not", op, key, name, ", ".join(errors))


def _none_served(op: str, key: str, errors: Mapping[str, BaseException]) -> Exception:
    """`NotFoundError` when every provider lacks `key`, else `FanOutError`; both name what
    each provider answered."""
    if all(isinstance(err, NotFoundError) for err in errors.values()):
        return NotFoundError(
            f"{op}: no provider holds this object ({_answers(errors)})",
            provider=",".join(errors), key=key, code="NoSuchKey",
        )
    return FanOutError(errors, operation=f"{op} of {key!r}")


class Reader:
    """What `Storage`'s read, delete, list and presign methods run on: its providers in read
    order. Kept apart from the upload fan-out, which it shares nothing with but the providers."""

    def __init__(self, providers: Mapping[str, Provider], read_order: Sequence[str], reserved_prefix: str) -> None:
        self._providers = providers
        self.read_order = tuple(read_order)
        self.reserved_prefix = reserved_prefix

    def _chosen(self, provider: str | None) -> list[Provider]:
        if provider is None:
            return [self._providers[name] for name in self.read_order]
        if provider not in self._providers:
            raise ConfigError(
                f"no provider named {provider!r}; configured: {', '.join(self._providers)} "
                "(add it to STORAGE_UPLOAD_MODE, or ask for one of these)",
                variables=["STORAGE_UPLOAD_MODE"],
            )
        return [self._providers[provider]]

    async def _first(
        self, op: str, key: str, provider: str | None, call: Callable[[Provider], Awaitable[T]]
    ) -> tuple[str, T]:
        """`call` on each provider in read order until one succeeds (one only when pinned)."""
        check_key(key)
        chosen = self._chosen(provider)
        if provider is not None:
            return chosen[0].name, await call(chosen[0])
        errors: dict[str, BaseException] = {}
        for candidate in chosen:
            try:
                result = await call(candidate)
            except Exception as exc:  # the next provider may hold it
                errors[candidate.name] = _handed_over(op, key, candidate.name, exc)
                continue
            _served(op, key, candidate.name, errors)
            return candidate.name, result
        raise _none_served(op, key, errors)

    # -- reads from the first provider that holds the key ------------------------------

    async def locate(self, key: str, *, provider: str | None = None) -> tuple[str, ObjectInfo]:
        return await self._first("locate", key, provider, lambda p: p.head(key))

    async def download_bytes(self, key: str, *, provider: str | None = None) -> bytes:
        _, data = await self._first("download", key, provider, lambda p: p.download_bytes(key))
        return data

    async def download_file(
        self, key: str, path: str | os.PathLike[str], *, provider: str | None = None
    ) -> ObjectInfo:
        # each provider writes beside `path` and renames when complete: a failed one leaves nothing
        _, info = await self._first("download", key, provider, lambda p: p.download_file(key, path))
        return info

    async def iter_bytes(self, key: str, *, provider: str | None = None) -> AsyncGenerator[bytes, None]:
        """Hands over to the next provider only before the first chunk: once bytes reached the
        caller, a failure is raised (another copy cannot resume a stream mid-way)."""
        check_key(key)
        chosen = self._chosen(provider)
        errors: dict[str, BaseException] = {}
        for candidate in chosen:
            async with _closing(candidate.iter_bytes(key)) as chunks:
                try:
                    first = await anext(chunks)
                except StopAsyncIteration:
                    return  # an empty object, served
                except Exception as exc:
                    if provider is not None:
                        raise
                    errors[candidate.name] = _handed_over("download", key, candidate.name, exc)
                    continue
                _served("download", key, candidate.name, errors)
                yield first
                async for chunk in chunks:
                    yield chunk
                return
        raise _none_served("download", key, errors)

    # -- questions for every copy -------------------------------------------------------

    async def _every(
        self, op: str, key: str, call: Callable[[Provider], Awaitable[ObjectInfo | None]]
    ) -> UploadReport:
        """`call` on every provider at once; each outcome (or exception) is its own result."""
        began = time.perf_counter()

        async def one(candidate: Provider) -> ProviderResult:
            start = time.perf_counter()
            try:
                info = await call(candidate)
            except Exception as exc:  # each provider's failure is its own result
                return ProviderResult(candidate.name, ok=False, error=exc, duration_s=time.perf_counter() - start)
            return ProviderResult(candidate.name, ok=True, info=info, duration_s=time.perf_counter() - start)

        results = await asyncio.gather(*(one(self._providers[name]) for name in self.read_order))
        return UploadReport(
            key=key, results={r.provider: r for r in results}, require="all",
            duration_s=time.perf_counter() - began, operation=op,
        )

    async def head(self, key: str) -> dict[str, ObjectInfo | None]:
        check_key(key)

        async def head_or_none(candidate: Provider) -> ObjectInfo | None:
            try:
                return await candidate.head(key)
            except NotFoundError:
                return None

        report = await self._every("head", key, head_or_none)
        if not report.all_ok:
            raise FanOutError(report.errors, report, operation=f"head of {key!r}")
        return {name: result.info for name, result in report.results.items()}

    async def exists(self, key: str) -> dict[str, bool]:
        return {name: info is not None for name, info in (await self.head(key)).items()}

    async def delete(self, key: str) -> UploadReport:
        check_key(key)

        async def delete_one(candidate: Provider) -> None:
            await candidate.delete(key)

        report = await self._every("delete", key, delete_one)
        for name, error in report.errors.items():
            logger.error("Failed to delete %s from %s, any copy there remains: %s", key, name, _short(error))
        if report.all_ok:
            logger.info("Deleted %s from every provider: %s", key, ", ".join(report.results))
        return report

    # -- presigned URLs ----------------------------------------------------------------

    async def presigned_url(
        self, key: str, expires_in: int = 3600, method: str = "GET", *, provider: str | None = None
    ) -> str:
        """GET: signed by the first provider in read order that holds the key. PUT: by the
        first that answers at all (an `exists` probe: a URL signed offline, as S3 signs, says
        nothing of whether the service behind it is up)."""
        verb = method.upper()
        if verb not in PRESIGN_METHODS:
            raise ConfigError(f"presigned URLs support GET and PUT, not {method!r}")
        if provider is not None:
            check_key(key)
            return await self._chosen(provider)[0].presigned_url(key, expires_in, verb)

        async def signed(candidate: Provider) -> str:
            if not await candidate.exists(key) and verb == "GET":
                raise NotFoundError("no object under this key", provider=candidate.name, key=key, code="NoSuchKey")
            return await candidate.presigned_url(key, expires_in, verb)

        _, url = await self._first(f"presign {verb}", key, None, signed)
        return url

    # -- one merged listing --------------------------------------------------------------

    async def list(self, prefix: str = "", *, provider: str | None = None) -> AsyncGenerator[ListedObject, None]:
        """Every provider's listing, read concurrently and merged by key. The listings are read
        whole before the first item, because the services disagree on order: S3 lists in byte
        order, but SeaweedFS by path segment ('a/b' before 'a-b'), so no streaming merge could
        tell that a key is missing from a provider. Memory: one `ObjectInfo` per key and copy.
        A provider whose listing fails ends it with `FanOutError`: a listing without it would
        report its copies as missing."""
        chosen = self._chosen(provider)

        async def collect(candidate: Provider) -> list[ObjectInfo]:
            return [info async for info in candidate.list(prefix) if not info.key.startswith(self.reserved_prefix)]

        listings = await asyncio.gather(*(collect(p) for p in chosen), return_exceptions=True)
        failed = {p.name: r for p, r in zip(chosen, listings, strict=True) if isinstance(r, BaseException)}
        if failed:
            raise FanOutError(failed, operation=f"list of {prefix!r}")
        copies: dict[str, dict[str, ObjectInfo]] = {}
        for candidate, listing in zip(chosen, listings, strict=True):
            assert not isinstance(listing, BaseException)
            for info in listing:
                copies.setdefault(info.key, {})[candidate.name] = info
        for key in sorted(copies):
            yield ListedObject(key, copies[key])


async def _aclose(stream: AsyncIterator[object]) -> None:
    """Close a provider's stream now (its response or file handle), not when it is collected:
    the `Provider` contract types it as an `AsyncIterator`, which is usually a generator."""
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        await closer()


@contextlib.asynccontextmanager
async def _closing(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    try:
        yield stream
    finally:
        await _aclose(stream)


__all__ = ["DEFAULT_RESERVED_PREFIX", "ListedObject", "Reader", "resolve_read_order"]
