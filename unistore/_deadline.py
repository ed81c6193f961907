"""The deadlines around uploads, beside the retry (`unistore._retry`) they bound.

- Per request (`with_request_deadline`): neither SDK bounds the time spent *writing* a body
  (aiohttp starts its read timeout once the body is sent), so a peer that stops reading would
  hang a part for ever; the read timeout plus the body's time at `STORAGE_MIN_SEND_RATE` turns
  that into a retryable `TransientError`.
- Per upload (`under_upload_deadline`): `STORAGE_UPLOAD_TIMEOUT`, paused while the upload waits
  for its source (`source_time_excluded`), so a live source's pace never times a provider out.
- The abort of a failed multipart upload: `ABORT_TIMEOUT_S`, and `ABORT_GRACE_S` once cancelled.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from ._errors import TransientError

T = TypeVar("T")

ABORT_TIMEOUT_S = 30.0
ABORT_GRACE_S = 2.0
"""How long a cancelled upload waits for its abort before leaving it to the background."""

_UPLOAD_DEADLINE: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "unistore_upload_deadline", default=None
)
"""The running upload's `STORAGE_UPLOAD_TIMEOUT`, paused while the upload waits for its source."""


async def with_request_deadline(request: Awaitable[T], limit: float, size: int, provider: str, key: str | None) -> T:
    """One upload request of `size` bytes under its own deadline of `limit` seconds."""
    try:
        async with asyncio.timeout(limit):
            return await request
    except TimeoutError:
        raise TransientError(
            f"an upload request of {size} bytes made no progress within {limit:.0f}s",
            provider=provider,
            key=key,
            code="RequestDeadline",
            hint="check the network path to the service; on a slow uplink lower STORAGE_MIN_SEND_RATE",
        ) from None


async def under_upload_deadline(upload: Awaitable[T], seconds: float | None, provider: str, key: str) -> T:
    """`upload` within `STORAGE_UPLOAD_TIMEOUT` (`seconds`; None: no limit)."""
    timeout = seconds
    if timeout is None:
        return await upload
    try:
        async with asyncio.timeout(timeout) as deadline:
            token = _UPLOAD_DEADLINE.set(deadline)
            try:
                return await upload
            finally:
                _UPLOAD_DEADLINE.reset(token)
    except TimeoutError:
        raise TransientError(
            f"upload did not finish within STORAGE_UPLOAD_TIMEOUT={timeout:g}s; nothing was "
            "stored and the source was kept",
            provider=provider,
            key=key,
            code="DeadlineExceeded",
            hint="raise STORAGE_UPLOAD_TIMEOUT or check the network path to the service",
        ) from None


async def source_time_excluded(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks`, with the upload's deadline paused while each chunk is awaited: the pace of the
    source (a live meeting's next chunk, or a slower provider that holds back a fan-out) is not
    this provider's, and must not time it out; a dead provider still times out on its own."""
    deadline = _UPLOAD_DEADLINE.get()
    loop = asyncio.get_running_loop()
    while True:
        when = deadline.when() if deadline is not None and not deadline.expired() else None
        if deadline is not None and when is not None:
            deadline.reschedule(None)
        began = loop.time()
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        finally:
            if deadline is not None and when is not None and not deadline.expired():
                try:
                    deadline.reschedule(when + (loop.time() - began))
                except RuntimeError:  # the upload's `async with` has already exited
                    pass
        yield chunk
