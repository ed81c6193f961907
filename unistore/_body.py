"""Request bodies that aiohttp sends without copying them and without holding the loop.

Both SDKs hand aiohttp a body in a form that costs a full copy on the event loop: botocore turns
`bytes` into a `BytesIO`, whose `getbuffer()` in aiohttp's `BytesIOPayload` un-shares (copies) the
whole part, and raw `bytes` go to the transport in one `write`, whose unsent rest the transport
copies into its own buffer. For an 8 MiB part either is several ms of the loop (far more while
these VMs fault in fresh pages) and a second copy of every part in flight.

`part_body(data)` is an aiohttp `Payload` that writes memoryview slices of `data` and waits for the
transport to drain between them, so the loop copies at most one slice and nothing else is held.
It also looks like a seekable read-only file (`read`, `seek`, `tell`, `__len__`), which is all the
SDKs check before passing a body on: botocore sizes it with `len()`, azure-core only asks that it
have `read`. Each request gets a fresh body: a retry never sends a half-consumed one.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

SLICE = 256 * 1024
"""Bytes per transport write (aiohttp's own chunk size for file bodies)."""
YIELD_EVERY = 1024 * 1024
"""Give other tasks a turn after this many bytes even when the socket never pushes back."""


def part_body(data: bytes) -> Any:
    """`data` as a body both SDKs pass to aiohttp unchanged (an empty body stays `b""`)."""
    if not data:
        return b""
    return _payload_class()(data)


@functools.cache
def _payload_class() -> type[Any]:
    # aiohttp comes with either provider's extra; imported here so that `import unistore` stays cheap
    from aiohttp.payload import Payload

    class PartBody(Payload):
        def __init__(self, data: bytes) -> None:
            super().__init__(data, content_type="application/octet-stream")
            self._view = memoryview(data).cast("B")
            self._length = len(self._view)
            self._size = self._length  # what aiohttp reads for Content-Length
            self._pos = 0

        # -- what aiohttp calls ----------------------------------------------------------

        def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
            return bytes(self._view).decode(encoding, errors)

        async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
            return bytes(self._view)

        async def write(self, writer: Any) -> None:
            await self.write_with_length(writer, None)

        async def write_with_length(self, writer: Any, content_length: int | None) -> None:
            end = self._length if content_length is None else min(self._length, content_length)
            since_yield = 0
            # taken now: by the time a cancellation reaches this task, aiohttp has already
            # closed the connection and dropped its reference to the transport
            transport = getattr(writer, "transport", None)
            try:
                for start in range(0, end, SLICE):
                    piece = self._view[start : min(start + SLICE, end)]
                    await writer.write(piece)  # drains when the transport's buffer is full
                    since_yield += len(piece)
                    if since_yield >= YIELD_EVERY:
                        since_yield = 0
                        await asyncio.sleep(0)
            except BaseException:
                # A body cut off half-way (cancelled, deadline) leaves the connection useless.
                # aiohttp closes it gracefully, and a graceful close waits to flush what the
                # transport still holds: against a peer that has stopped reading it never ends,
                # and the socket outlives the loop. Drop the unsent rest now instead.
                if transport is not None:
                    transport.abort()
                raise

        # -- what the SDKs look for in a file-like body ------------------------------------

        def __len__(self) -> int:
            return self._length

        def read(self, size: int = -1) -> bytes:
            stop = self._length if size is None or size < 0 else min(self._length, self._pos + size)
            piece = bytes(self._view[self._pos : stop])
            self._pos = stop
            return piece

        def seek(self, offset: int, whence: int = 0) -> int:
            base = {0: 0, 1: self._pos, 2: self._length}[whence]
            self._pos = max(0, min(self._length, base + offset))
            return self._pos

        def tell(self) -> int:
            return self._pos

        def seekable(self) -> bool:
            return True

    return PartBody
