"""Retry of single requests, with jittered exponential backoff, bounded by attempts and time.

Only errors whose `transient` is true are retried (`TransientError`: 5xx, throttling, resets,
timeouts, integrity mismatches); everything else fails at once. Requests are retried while
their bytes are still in hand (one part, one small put); a stream is never retried as a whole.
unistore is the only retry layer: the providers switch the SDKs' own retries off (botocore's,
azure-core's, and aiohttp's silent resend on every session, aiobotocore's included:
`providers/_http.py`, pinned by `tests/test_sdk_pins.py`), since stacked policies multiply
attempts past any deadline. Sleep and randomness are injectable so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._errors import ProviderError

T = TypeVar("T")
logger = logging.getLogger("unistore.retry")


def _uniform() -> float:
    import random  # imported at the first retry, not with unistore

    return random.random()


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    """Attempts per request, the first included."""
    deadline: float = 120.0
    """Seconds from the first attempt after which no new attempt starts."""
    base_delay: float = 0.1
    max_delay: float = 5.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    rand: Callable[[], float] = field(default=_uniform, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)] (AWS architecture blog)."""
        return self.rand() * min(self.max_delay, self.base_delay * 2.0**attempt)


async def retry(op: Callable[..., Awaitable[T]], policy: RetryPolicy, what: str, *args: Any) -> T:
    """Run `op(*args)` until it succeeds, raises a permanent error, or the policy is spent.
    Called by `unistore._request.call` only.

    The final `TransientError` says how many attempts were made and how long they took.
    """
    start = policy.clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await op(*args)
        except ProviderError as exc:
            if not exc.transient:
                raise
            elapsed = policy.clock() - start
            delay = policy.delay(attempt - 1)
            if attempt >= policy.attempts or elapsed + delay >= policy.deadline:
                exc.message = f"{exc.message} (gave up after {attempt} attempt(s) in {elapsed:.1f}s)"
                exc.args = (exc._format(),)
                raise
            logger.warning(
                "%s failed (attempt %d of %d), retrying in %.2fs: %s",
                what, attempt, policy.attempts, delay, exc,
            )
            await policy.sleep(delay)
