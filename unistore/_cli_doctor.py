"""`unistore doctor`: is this deployment able to store recordings? Usable as a readiness probe.

Checks, in order, each bounded by `--timeout` so that a blackholed endpoint answers in time:
1. `settings`: the environment validates (`StorageSettings`), and `providers`: every provider
   of `STORAGE_UPLOAD_MODE` can be built (its SDK installed, its settings complete).
2. For each provider, concurrently:
   - `credentials` and `bucket`: one listing of the probe prefix. Accepted credentials and an
     existing bucket/container both pass; an authentication error fails the first, a missing
     bucket/container the second. A listing refused for lack of permission (a least-privilege
     bot may hold write rights only) leaves `bucket` unverified, and the round trip decides.
   - `write`, `read`, `delete`: a small probe object under `<reserved prefix>doctor/<random>`,
     read back byte for byte, deleted, and checked gone.
   A provider whose check times out skips the rest: its endpoint is not answering, and each
   further check would only add another timeout.

A failed check shows what the service said and the fix its error class carries (the hint of a
provider error, the variables of a `ConfigError`, the pip command of a missing extra). Exit
status 0 only when no check failed (skipped ones do not fail the probe).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from ._cli_output import Output, error_parts
from ._errors import AuthenticationError, ContainerNotFoundError, PermissionDeniedError, UnistoreError

if TYPE_CHECKING:
    from ._storage import Storage
    from .providers._protocol import Provider

Status = Literal["pass", "fail", "skip"]
T = TypeVar("T")

PROBE_PREFIX = "doctor/"
PROVIDER_CHECKS = ("credentials", "bucket", "write", "read", "delete")
TIMEOUT_FIX = "check the endpoint and the network path to it, or raise --timeout"
"""The one fix written here: a check that timed out has no error, hence no error class's hint."""


@dataclass
class Check:
    """One row of the doctor's table."""

    target: str
    """`settings`, or the provider's name."""
    check: str
    status: Status
    detail: str
    fix: str | None = None
    seconds: float | None = None


class _TimedOut(Exception):
    """A check got no answer within the timeout."""


class _Failed(UnistoreError):
    """A check that went wrong without an error class of its own (a probe read back wrong)."""


async def _bounded(limit_s: float, action: Callable[[], Awaitable[T]]) -> T:
    deadline = asyncio.timeout(limit_s)
    try:
        async with deadline:
            return await action()
    except TimeoutError:
        if deadline.expired():
            raise _TimedOut(f"no answer within {limit_s:g}s (--timeout)") from None
        raise


def _where(provider: Provider) -> str:
    for kind in ("bucket", "container"):
        name = getattr(provider, kind, None)
        if isinstance(name, str):
            return f"{kind} {name!r}"
    return "its store"


class ProviderDoctor:
    """The checks of one provider, each bounded by `timeout`."""

    def __init__(self, provider: Provider, timeout: float, probe_prefix: str) -> None:
        self.provider = provider
        self.timeout = timeout
        self.key = f"{probe_prefix}{uuid.uuid4().hex}"
        self.probe = f"unistore doctor probe {uuid.uuid4().hex}\n".encode()
        self.checks: list[Check] = []
        self.timed_out = False

    def add(
        self, check: str, status: Status, detail: str, fix: str | None = None, seconds: float | None = None
    ) -> None:
        self.checks.append(Check(self.provider.name, check, status, detail, fix, seconds))

    def skip_rest(self, why: str) -> None:
        done = {c.check for c in self.checks}
        for check in PROVIDER_CHECKS:
            if check not in done:
                self.add(check, "skip", why)

    async def step(self, check: str, action: Callable[[], Awaitable[T]], passed: Callable[[T], str]) -> bool:
        """Run one check; record it; True when it passed."""
        began = time.perf_counter()
        try:
            value = await _bounded(self.timeout, action)
        except _TimedOut as exc:
            self.timed_out = True
            self.add(check, "fail", str(exc), TIMEOUT_FIX, time.perf_counter() - began)
            return False
        except Exception as exc:  # a doctor reports every failure, whatever raised it
            self.add(check, "fail", *error_parts(exc), seconds=time.perf_counter() - began)
            return False
        self.add(check, "pass", passed(value), seconds=time.perf_counter() - began)
        return True

    async def run(self) -> list[Check]:
        try:
            if await self.access():
                await self.round_trip()
        finally:
            with contextlib.suppress(Exception):  # closing is not a check; _TimedOut included
                await _bounded(self.timeout, self.provider.aclose)
        return self.checks

    async def _list_one(self) -> None:
        await self.provider.__aenter__()
        listing = self.provider.list(self.key)
        try:
            async for _ in listing:
                break
        finally:
            close = getattr(listing, "aclose", None)
            if close is not None:
                await close()

    async def access(self) -> bool:
        """credentials + bucket from one listing; True when the round trip should follow."""
        began = time.perf_counter()
        where = _where(self.provider)
        try:
            await _bounded(self.timeout, self._list_one)
        except _TimedOut as exc:
            self.timed_out = True
            self.add("credentials", "fail", str(exc), TIMEOUT_FIX, time.perf_counter() - began)
            self.skip_rest("not checked: no answer from the service")
            return False
        except AuthenticationError as exc:
            self.add("credentials", "fail", *error_parts(exc), seconds=time.perf_counter() - began)
            self.skip_rest("not checked: the credentials were refused")
            return False
        except ContainerNotFoundError as exc:
            self.add("credentials", "pass", "accepted", seconds=time.perf_counter() - began)
            self.add("bucket", "fail", *error_parts(exc))
            self.skip_rest(f"not checked: {where} does not exist")
            return False
        except PermissionDeniedError as exc:
            detail, _ = error_parts(exc)
            self.add("credentials", "pass", "accepted", seconds=time.perf_counter() - began)
            self.add("bucket", "skip", f"not verified: listing refused ({detail}); the round trip decides")
            return True
        except Exception as exc:  # a doctor reports every failure, whatever raised it
            self.add("credentials", "fail", *error_parts(exc), seconds=time.perf_counter() - began)
            self.skip_rest("not checked: the service could not be reached")
            return False
        self.add("credentials", "pass", "accepted", seconds=time.perf_counter() - began)
        self.add("bucket", "pass", f"{where} exists")
        return True

    async def _read_back(self) -> int:
        data = await self.provider.download_bytes(self.key)
        if data != self.probe:
            raise _Failed(f"read back {len(data)} bytes that differ from the {len(self.probe)} written")
        return len(data)

    async def _delete(self) -> None:
        await self.provider.delete(self.key)
        if await self.provider.exists(self.key):
            raise _Failed(f"{self.key!r} is still there after the delete")

    async def round_trip(self) -> None:
        wrote = await self.step(
            "write",
            lambda: self.provider.upload_bytes(self.probe, self.key, content_type="text/plain", overwrite=True),
            lambda info: f"wrote {info.size} bytes to {self.key!r}",
        )
        if not wrote:
            self.skip_rest("not checked: the write failed" if not self.timed_out else "not checked: no answer")
            return
        await self.step("read", self._read_back, lambda n: f"read the {n} bytes back intact")
        if self.timed_out:
            self.skip_rest("not checked: no answer")
            return
        await self.step("delete", self._delete, lambda _: "deleted, and gone")


def _settings_checks(checks: list[Check]) -> Storage | None:
    """The `settings` and `providers` rows; the storage when both passed."""
    from ._settings import StorageSettings
    from ._storage import Storage

    try:
        settings = StorageSettings()
    except UnistoreError as exc:
        checks.append(Check("settings", "settings", "fail", *error_parts(exc)))
        return None
    checks.append(Check("settings", "settings", "pass", f"valid; providers: {', '.join(settings.providers)}"))
    try:
        storage = Storage.from_settings(settings)
    except UnistoreError as exc:
        checks.append(Check("settings", "providers", "fail", *error_parts(exc)))
        return None
    checks.append(Check("settings", "providers", "pass", "built: " + ", ".join(storage.providers)))
    return storage


async def run_checks(limit_s: float, only: str | None = None) -> list[Check]:
    """Every check of the doctor, in table order."""
    checks: list[Check] = []
    storage = _settings_checks(checks)
    if storage is None:
        return checks
    providers = [storage.provider(only)] if only else list(storage.providers.values())
    prefix = storage.reserved_prefix + PROBE_PREFIX
    doctors = [ProviderDoctor(p, limit_s, prefix) for p in providers]
    for rows in await asyncio.gather(*(d.run() for d in doctors)):
        checks.extend(rows)
    return checks


_STYLES = {"pass": "green", "fail": "bold red", "skip": "dim"}


def render(checks: list[Check], output: Output, timeout: float) -> None:
    failed = [c for c in checks if c.status == "fail"]
    if output.json_mode:
        shapes = [{**asdict(c), "seconds": None if c.seconds is None else round(c.seconds, 3)} for c in checks]
        output.document({"ok": not failed, "timeout_s": timeout, "checks": shapes})
        return
    rows = [
        (c.target, c.check, c.status.upper() if c.status == "fail" else c.status,
         "" if c.seconds is None else f"{c.seconds:.2f}s", c.detail)
        for c in checks
    ]
    output.table(("PROVIDER", "CHECK", "RESULT", "TIME", "DETAIL"), rows, styles=[_STYLES[c.status] for c in checks])
    for c in failed:
        if c.fix:
            output.line(f"fix {c.target} {c.check}: {c.fix}")
    if failed:
        names = ", ".join(f"{c.target} {c.check}" for c in failed)
        output.line(f"doctor: {len(failed)} of {len(checks)} checks failed ({names})")
    else:
        passed = sum(c.status == "pass" for c in checks)
        output.line(f"doctor: all {passed} checks passed" + (f", {len(checks) - passed} skipped" if
                                                              passed < len(checks) else ""))


async def doctor(args: argparse.Namespace, output: Output) -> int:
    checks = await run_checks(args.timeout, args.provider)
    render(checks, output, args.timeout)
    return 1 if any(c.status == "fail" for c in checks) else 0
