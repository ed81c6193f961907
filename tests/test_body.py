"""Request bodies (`unistore._body`) and the collector switch (`unistore._gcfreeze`)."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from unistore import _gcfreeze
from unistore._body import SLICE, part_body


class RecordingWriter:
    """Stands in for aiohttp's StreamWriter: records what the payload hands it."""

    def __init__(self) -> None:
        self.pieces: list[memoryview] = []

    async def write(self, chunk: Any) -> None:
        self.pieces.append(chunk)


async def test_body_is_written_in_slices_of_the_original_buffer() -> None:
    data = os.urandom(3 * SLICE + 5)
    writer = RecordingWriter()
    await part_body(data).write(writer)
    assert b"".join(writer.pieces) == data
    assert max(len(p) for p in writer.pieces) <= SLICE
    # zero copy: every piece is a view of the caller's bytes
    assert all(isinstance(p, memoryview) and p.obj is data for p in writer.pieces)


async def test_body_honours_a_shorter_content_length() -> None:
    data = os.urandom(SLICE + 10)
    writer = RecordingWriter()
    await part_body(data).write_with_length(writer, SLICE + 1)
    assert b"".join(writer.pieces) == data[: SLICE + 1]


def test_body_looks_like_a_seekable_file_to_the_sdks() -> None:
    data = b"0123456789"
    body = part_body(data)
    assert len(body) == 10 and body  # botocore sizes it with len(); an empty body would be falsy
    assert body.read(4) == b"0123" and body.tell() == 4
    assert body.seek(0, 2) == 10 and body.read() == b""
    body.seek(2)
    assert body.read() == data[2:]
    assert part_body(b"") == b""


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, list[tuple[str | None, bytes]]]]:
    received: list[tuple[str | None, bytes]] = []

    async def put(request: web.Request) -> web.Response:
        received.append((request.headers.get("Content-Length"), await request.read()))
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_put("/x", put)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/x", received
    finally:
        await runner.cleanup()


async def test_body_goes_through_aiohttp_byte_exact(
    echo_server: tuple[str, list[tuple[str | None, bytes]]],
) -> None:
    url, received = echo_server
    data = os.urandom(8 * 1024 * 1024 + 3)
    async with aiohttp.ClientSession() as session, session.put(url, data=part_body(data)) as response:
        assert response.status == 200
    # the server saw exactly the bytes, their length declared up front (no chunked framing)
    [(length, body)] = received
    assert length == str(len(data)) and body == data


def test_settle_freezes_once_and_only_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        gc.unfreeze()
        monkeypatch.setattr(_gcfreeze, "_done", False)
        _gcfreeze.set_freeze(False)
        _gcfreeze.settle()
        assert gc.get_freeze_count() == 0
        _gcfreeze.set_freeze(True)
        _gcfreeze.settle()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        keep: list[list[int]] = [[] for _ in range(100)]  # noqa: F841 - tracked objects a second settle must not freeze
        _gcfreeze.settle()
        # no growth (a frozen object that dies leaves the count lower)
        assert gc.get_freeze_count() <= frozen, "a second client (a Storage per task) is not frozen"
    finally:
        _gcfreeze.set_freeze(True)


def test_env_proxy_is_resolved_once_as_aiohttp_would(monkeypatch: pytest.MonkeyPatch) -> None:
    from unistore.providers._http import env_proxy

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("http://127.0.0.1:9000/bucket") is None
    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@127.0.0.1:3128")
    assert env_proxy("http://127.0.0.1:9000/bucket") == "http://user:pw@127.0.0.1:3128"
    assert env_proxy("https://bucket.s3.amazonaws.com") is None, "HTTPS_PROXY is another variable"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert env_proxy("http://127.0.0.1:9000/bucket") is None


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_cancelled_body_closes_its_socket_even_when_the_peer_stops_reading() -> None:
    # A server that takes the connection and never reads: the client's buffers fill, and the
    # cancelled request's socket must still close at once instead of waiting to flush.
    accepted = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        accepted.set()

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            body = part_body(os.urandom(64 << 20))
            request = asyncio.ensure_future(session.put(f"http://127.0.0.1:{port}/x", data=body))
            await asyncio.wait_for(accepted.wait(), 10)
            await asyncio.sleep(0.2)  # long enough to fill the socket buffers
            assert not request.done()
            during = _open_fds()  # both ends of the connection, in this process
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
            for _ in range(5):
                await asyncio.sleep(0)
            # the server's end is still held open, so only the client's own socket can have gone
            assert _open_fds() == during - 1, "the cancelled request's socket is still open"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
