"""Tests for the chaos-test fault proxy (tests/faultproxy.py).

Upstreams are small asyncio servers on loopback defined here; no storage SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import hashlib
import http.client
import http.server
import os
import random
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import ParamSpec, Self, TypeVar

import pytest

from tests.faultproxy import FaultProxy, ThreadedFaultProxy

_P = ParamSpec("_P")
_R = TypeVar("_R")

TEST_TIMEOUT_S = 10.0

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def bounded(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
    """Fail an async test instead of hanging it."""

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            return await fn(*args, **kwargs)

    return wrapper


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# -- upstream servers ----------------------------------------------------------


class _Upstream:
    """Base for the in-test asyncio servers: tracks connections, closes all."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self.serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class SinkSource(_Upstream):
    """Reads everything the client sends while sending ``to_send``, then closes."""

    def __init__(self, to_send: bytes) -> None:
        super().__init__()
        self.to_send = to_send
        self.received: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send() -> None:
            writer.write(self.to_send)
            await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        try:
            self.received.append(await reader.read())
        finally:
            await sender
        await writer.drain()


@dataclasses.dataclass
class Request:
    head: bytes  # request line and headers, without the final CRLFCRLF
    body: bytes

    @property
    def method(self) -> str:
        return self.head.split(b" ", 1)[0].decode()


class HttpUpstream(_Upstream):
    """Keep-alive HTTP/1.1 server that records requests.  ``GET /bytes/N``
    answers N pseudo-random bytes; anything else answers the body's SHA-256."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = (await reader.readuntil(b"\r\n\r\n"))[:-4]
            except asyncio.IncompleteReadError:
                return  # client closed between requests
            headers = {}
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if headers.get(b"transfer-encoding") == b"chunked":
                body = await self._read_chunked(reader)
            else:
                body = await reader.readexactly(int(headers.get(b"content-length", 0)))
            self.requests.append(Request(head, body))
            target = head.split(b" ")[1]
            if target.startswith(b"/bytes/"):
                answer = payload(int(target[len(b"/bytes/") :]), seed=7)
            else:
                answer = hashlib.sha256(body).hexdigest().encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer))
            writer.write(answer)
            await writer.drain()

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return bytes(body)
            body += await reader.readexactly(size)
            assert await reader.readexactly(2) == b"\r\n"


# -- clients -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[Stream]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.transport.abort()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def build_request(
    method: str, target: str, body: bytes = b"", *, chunks: list[bytes] | None = None
) -> tuple[bytes, bytes]:
    """(head without the final CRLFCRLF, bytes on the wire)."""
    head = f"{method} {target} HTTP/1.1\r\nHost: upstream\r\nX-Test: intact"
    if chunks is not None:
        head += "\r\nTransfer-Encoding: chunked"
        framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    else:
        if body or method in ("POST", "PUT"):
            head += f"\r\nContent-Length: {len(body)}"
        framed = body
    raw_head = head.encode()
    return raw_head, raw_head + b"\r\n\r\n" + framed


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def request(
    stream: Stream,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    chunks: list[bytes] | None = None,
) -> tuple[int, bytes]:
    reader, writer = stream
    writer.write(build_request(method, target, body, chunks=chunks)[1])
    await writer.drain()
    return await read_response(reader)


def byte_differences(a: bytes, b: bytes) -> list[int]:
    assert len(a) == len(b)
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- tests ---------------------------------------------------------------------


@pytest.mark.asyncio
@bounded
async def test_forwards_5mb_each_way_byte_exact() -> None:
    to_upstream = payload(5 * 1024 * 1024, seed=1)
    to_client = payload(5 * 1024 * 1024, seed=2)
    async with SinkSource(to_client) as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        async with connect(proxy.port) as (reader, writer):

            async def send() -> None:
                writer.write(to_upstream)
                await writer.drain()
                writer.write_eof()

            _, received = await asyncio.gather(send(), reader.read())
        assert received == to_client
        await eventually(lambda: len(upstream.received) == 1)
        assert upstream.received[0] == to_upstream
        assert proxy.stats.bytes_client_to_server == len(to_upstream)
        assert proxy.stats.bytes_server_to_client == len(to_client)
        assert proxy.stats.connections == 1
        assert proxy.stats.resets == proxy.stats.corrupted == 0
        await eventually(lambda: proxy.open_connections == 0)


@pytest.mark.asyncio
@bounded
async def test_keep_alive_requests_pass_through() -> None:
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        async with connect(proxy.port) as stream:
            for i in range(5):
                body = payload(10_000 + i, seed=i)
                status, answer = await request(stream, "POST", f"/r{i}", body)
                assert (status, answer) == (200, hashlib.sha256(body).hexdigest().encode())
            status, answer = await request(stream, "GET", "/bytes/300000")
            assert answer == payload(300_000, seed=7)
        assert proxy.stats.connections == 1
        assert len(upstream.requests) == 6


@pytest.mark.asyncio
@bounded
async def test_reset_every_second_connection() -> None:
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        proxy.reset_every = 2
        outcomes: list[int | str] = []
        for _ in range(4):
            async with connect(proxy.port) as stream:
                try:
                    status, _ = await request(stream, "GET", "/")
                    outcomes.append(status)
                except ConnectionResetError:
                    outcomes.append("reset")
        assert outcomes == [200, "reset", 200, "reset"]
        assert proxy.stats.resets == 2
        assert proxy.stats.connections == 4
        assert len(upstream.requests) == 2  # reset connections forward nothing


@pytest.mark.asyncio
@bounded
async def test_reset_probability_is_seeded() -> None:
    async def pattern(seed: int) -> list[bool]:
        async with FaultProxy("127.0.0.1", upstream.port, seed=seed) as proxy:
            proxy.reset_probability = 0.5
            result = []
            for _ in range(12):
                async with connect(proxy.port) as stream:
                    try:
                        await request(stream, "GET", "/")
                        result.append(True)
                    except ConnectionResetError:
                        result.append(False)
            assert proxy.stats.resets == result.count(False)
            return result

    async with HttpUpstream() as upstream:
        first = await pattern(seed=42)
        assert await pattern(seed=42) == first
        assert True in first and False in first


@pytest.mark.asyncio
@bounded
async def test_reset_after_bytes_cuts_the_body() -> None:
    body = payload(1024 * 1024, seed=3)
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        proxy.reset_after_bytes = 100_000
        proxy.reset_budget = 1  # only once
        async with connect(proxy.port) as stream:
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                await request(stream, "PUT", "/obj", body)
        assert proxy.stats.resets == 1
        assert proxy.stats.bytes_client_to_server == 100_000
        assert proxy.reset_budget == 0
        # The budget is spent: the retry goes through untouched.
        async with connect(proxy.port) as stream:
            status, answer = await request(stream, "PUT", "/obj", body)
        assert (status, answer) == (200, hashlib.sha256(body).hexdigest().encode())
        assert [r.body for r in upstream.requests] == [body]
        assert proxy.stats.resets == 1


@pytest.mark.asyncio
@bounded
async def test_latency_is_added_each_way() -> None:
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        async with connect(proxy.port) as stream:
            started = time.monotonic()
            await request(stream, "GET", "/")
            baseline = time.monotonic() - started
            proxy.latency_s = 0.1
            started = time.monotonic()
            await request(stream, "GET", "/")
            delayed = time.monotonic() - started
    assert baseline < 0.1
    assert delayed >= 2 * 0.1 - 0.005  # request chunk + response chunk


@pytest.mark.asyncio
@bounded
async def test_bandwidth_cap_slows_both_directions() -> None:
    size = 1024 * 1024
    bps = 4 * 1024 * 1024
    body = payload(size, seed=4)
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        proxy.bandwidth_bps = bps
        async with connect(proxy.port) as stream:
            started = time.monotonic()
            _, answer = await request(stream, "POST", "/up", body)
            upload = time.monotonic() - started
            assert answer == hashlib.sha256(body).hexdigest().encode()
            started = time.monotonic()
            _, answer = await request(stream, "GET", f"/bytes/{size}")
            download = time.monotonic() - started
            assert answer == payload(size, seed=7)
    assert upstream.requests[0].body == body
    assert upload >= 0.9 * size / bps
    assert download >= 0.9 * size / bps


@pytest.mark.asyncio
@bounded
async def test_blackhole_swallows_then_recovers() -> None:
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        async with connect(proxy.port) as established:
            assert (await request(established, "GET", "/"))[0] == 200

            proxy.blackhole = True
            async with connect(proxy.port) as fresh:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(request(fresh, "POST", "/", b"x" * 1000), 0.3)
                with pytest.raises(TimeoutError):  # traffic on an old connection too
                    await asyncio.wait_for(request(established, "GET", "/"), 0.3)
                assert len(upstream.requests) == 1
                assert proxy.stats.blackholed == 2
                assert proxy.open_connections == 2

                proxy.blackhole = False
                # Swallowed connections lost data: they are reset.
                for reader, _ in (fresh, established):
                    with pytest.raises(ConnectionResetError):
                        await reader.read(1)

        async with connect(proxy.port) as stream:
            assert (await request(stream, "GET", "/"))[0] == 200
        assert len(upstream.requests) == 2
        assert proxy.stats.resets == 0  # blackhole resets are not counted as such


@pytest.mark.asyncio
@bounded
async def test_blackhole_spares_idle_keep_alive_connections() -> None:
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        async with connect(proxy.port) as stream:
            assert (await request(stream, "GET", "/"))[0] == 200
            proxy.blackhole = True
            await asyncio.sleep(0.05)
            proxy.blackhole = False
            assert (await request(stream, "GET", "/"))[0] == 200
        assert proxy.stats.blackholed == 0


@pytest.mark.asyncio
@bounded
async def test_corrupt_next_flips_one_byte_of_one_body() -> None:
    bodies = [payload(200_000, seed=10 + i) for i in range(3)]
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        proxy.corrupt_next = 1
        async with connect(proxy.port) as stream:
            # A request without a body does not consume the corruption.
            assert (await request(stream, "GET", "/"))[0] == 200
            answers = [(await request(stream, "POST", f"/b{i}", b))[1] for i, b in enumerate(bodies)]
        assert proxy.corrupt_next == 0
        assert proxy.stats.corrupted == 1

    sent_heads = [build_request("POST", f"/b{i}", b)[0] for i, b in enumerate(bodies)]
    seen = upstream.requests[1:]
    assert [r.head for r in seen] == sent_heads  # headers intact
    assert byte_differences(seen[0].body, bodies[0]) == [len(bodies[0]) // 2]
    assert [r.body for r in seen[1:]] == bodies[1:]
    # The upstream answered the hash of what it received.
    assert answers[0] != hashlib.sha256(bodies[0]).hexdigest().encode()
    assert answers[1] == hashlib.sha256(bodies[1]).hexdigest().encode()


@pytest.mark.asyncio
@bounded
async def test_corrupt_offset_and_several_bodies() -> None:
    bodies = [payload(5000, seed=20 + i) for i in range(3)]
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        proxy.corrupt_next = 2
        proxy.corrupt_offset = 10
        async with connect(proxy.port) as stream:
            for body in bodies:
                await request(stream, "PUT", "/x", body)
            proxy.corrupt_next = 1
            proxy.corrupt_offset = 10**9  # clamped to the last byte
            await request(stream, "PUT", "/x", b"abc")
    seen = [r.body for r in upstream.requests]
    assert byte_differences(seen[0], bodies[0]) == [10]
    assert byte_differences(seen[1], bodies[1]) == [10]
    assert seen[2] == bodies[2]
    assert byte_differences(seen[3], b"abc") == [2]
    assert proxy.stats.corrupted == 3


@pytest.mark.asyncio
@bounded
async def test_corrupt_chunked_body_keeps_framing() -> None:
    chunks = [payload(1000, seed=30 + i) for i in range(5)]
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        async with connect(proxy.port) as stream:
            await request(stream, "POST", "/plain", chunks=chunks)
            proxy.corrupt_next = 1
            await request(stream, "POST", "/corrupt", chunks=chunks)
            await request(stream, "POST", "/after", chunks=chunks)
    whole = b"".join(chunks)
    seen = [r.body for r in upstream.requests]
    assert seen[0] == whole
    assert byte_differences(seen[1], whole) == [500]  # middle of the first chunk
    assert seen[2] == whole
    assert [r.head for r in upstream.requests] == [
        build_request("POST", t, chunks=chunks)[0] for t in ("/plain", "/corrupt", "/after")
    ]


@pytest.mark.asyncio
@bounded
async def test_corruption_with_aiohttp_client() -> None:
    aiohttp = pytest.importorskip("aiohttp")
    bodies = [payload(100_000, seed=40 + i) for i in range(3)]
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        proxy.corrupt_next = 2
        async with aiohttp.ClientSession() as session:
            for i, body in enumerate(bodies):
                async with session.put(f"{proxy.url}/blob{i}", data=body) as response:
                    assert response.status == 200
                    await response.read()
        assert proxy.stats.connections == 1  # one keep-alive connection
    seen = [r.body for r in upstream.requests]
    assert len(byte_differences(seen[0], bodies[0])) == 1
    assert len(byte_differences(seen[1], bodies[1])) == 1
    assert seen[2] == bodies[2]


@pytest.mark.asyncio
@bounded
async def test_reset_all() -> None:
    async with HttpUpstream() as upstream, FaultProxy("127.0.0.1", upstream.port) as proxy:
        async with connect(proxy.port) as one, connect(proxy.port) as two:
            for stream in (one, two):
                assert (await request(stream, "GET", "/"))[0] == 200
            assert proxy.open_connections == 2
            proxy.reset_all()
            for reader, _ in (one, two):
                with pytest.raises(ConnectionResetError):
                    await reader.read(1)
            assert proxy.stats.resets == 2
            await eventually(lambda: proxy.open_connections == 0)
        async with connect(proxy.port) as stream:
            assert (await request(stream, "GET", "/"))[0] == 200


@pytest.mark.asyncio
@bounded
async def test_upstream_down_resets_client() -> None:
    async with HttpUpstream() as upstream:
        port = upstream.port
    async with FaultProxy("127.0.0.1", port) as proxy, connect(proxy.port) as stream:
        with pytest.raises(ConnectionResetError):
            await request(stream, "GET", "/")
        assert proxy.stats.upstream_errors == 1


async def _stop_with_everything_in_flight() -> None:
    async with HttpUpstream() as upstream, contextlib.AsyncExitStack() as clients:
        proxy = FaultProxy("127.0.0.1", upstream.port)
        await proxy.start()
        proxy.latency_s = 0.01
        busy = await clients.enter_async_context(connect(proxy.port))
        assert (await request(busy, "GET", "/"))[0] == 200
        proxy.bandwidth_bps = 1000  # a slow transfer in flight
        busy[1].write(build_request("GET", "/bytes/100000")[1])
        idle = await clients.enter_async_context(connect(proxy.port))
        assert (await request(idle, "GET", "/"))[0] == 200
        proxy.reset_every = 3  # the next connection waits to be reset
        doomed = await clients.enter_async_context(connect(proxy.port))
        proxy.reset_every = None
        proxy.blackhole = True
        swallowed = await clients.enter_async_context(connect(proxy.port))
        swallowed[1].write(b"GET / HTTP/1.1\r\n\r\n")
        await eventually(lambda: proxy.stats.connections == 4)
        await asyncio.sleep(0.05)
        assert proxy.open_connections == 4

        await proxy.stop()
        assert proxy.open_connections == 0
        leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith("faultproxy")]
        assert leftovers == []
        for reader, _ in (busy, idle, doomed, swallowed):
            with contextlib.suppress(ConnectionResetError):
                while await reader.read(65536):
                    pass
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)
        await proxy.stop()  # idempotent


@pytest.mark.asyncio
@bounded
async def test_stop_closes_every_socket_and_task() -> None:
    fds_before = open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await _stop_with_everything_in_flight()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert open_fds() == fds_before


def test_addresses_and_urls() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("10.0.0.1", 80)
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("example.com", 80)
    FaultProxy("localhost", 80)
    FaultProxy("::1", 80)
    proxy = FaultProxy.for_url("http://127.0.0.1:10000/devstoreaccount1")
    assert (proxy.upstream_host, proxy.upstream_port) == ("127.0.0.1", 10000)
    with pytest.raises(RuntimeError):
        _ = proxy.port
    proxy._port = 5555  # as if started
    assert proxy.url == "http://127.0.0.1:5555"
    assert (
        proxy.proxied_url("http://127.0.0.1:10000/devstoreaccount1?comp=list")
        == "http://127.0.0.1:5555/devstoreaccount1?comp=list"
    )
    assert proxy.proxied_url("http://localhost:10000") == "http://127.0.0.1:5555"
    with pytest.raises(ValueError):
        proxy.proxied_url("http://127.0.0.1:9000/bucket")
    with pytest.raises(ValueError):
        proxy.proxied_url("http://192.168.1.1:10000/")


# -- threaded proxy ------------------------------------------------------------


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def threaded_http_upstream() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    server.block_on_close = True
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _post(port: int, body: bytes) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/", body=body)
        return conn.getresponse().read()
    finally:
        conn.close()


def test_threaded_proxy_from_sync_code() -> None:
    with threaded_http_upstream() as upstream:
        port = upstream.server_address[1]
        assert isinstance(port, int)
        with ThreadedFaultProxy("127.0.0.1", port) as proxy:
            assert _post(proxy.port, b"hello") == b"hello"
            proxy.reset_every = 2
            assert proxy.proxy.reset_every == 2
            with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
                _post(proxy.port, b"doomed")
            assert _post(proxy.port, b"third") == b"third"
            proxy.reset_every = None
            proxy.corrupt_next = 1
            body = payload(10_000, seed=50)
            echoed = _post(proxy.port, body)
            assert len(byte_differences(echoed, body)) == 1
            assert proxy.stats.resets == 1 and proxy.stats.corrupted == 1

            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
            try:
                conn.request("POST", "/", body=b"keep-alive")
                assert conn.getresponse().read() == b"keep-alive"
                deadline = time.monotonic() + 2  # earlier connections finish closing
                while proxy.open_connections > 1 and time.monotonic() < deadline:
                    time.sleep(0.005)
                proxy.reset_all()
                assert proxy.stats.resets == 2
                with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
                    conn.request("POST", "/", body=b"after reset")
                    conn.getresponse().read()
            finally:
                conn.close()
        assert proxy.open_connections == 0
        proxy.stop()  # idempotent
        assert upstream.bodies == [  # type: ignore[attr-defined]
            b"hello",
            b"third",
            echoed,
            b"keep-alive",
        ]


@pytest.mark.asyncio
@bounded
async def test_threaded_proxy_from_another_event_loop() -> None:
    async with HttpUpstream() as upstream:
        proxy = ThreadedFaultProxy.for_url(f"http://127.0.0.1:{upstream.port}")
        await asyncio.to_thread(proxy.start)
        try:
            async with connect(proxy.port) as stream:
                assert (await request(stream, "GET", "/"))[0] == 200
                proxy.blackhole = True
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(request(stream, "GET", "/"), 0.2)
                proxy.blackhole = False
                with pytest.raises(ConnectionResetError):
                    await stream[0].read(1)
            async with connect(proxy.port) as stream:
                assert (await request(stream, "GET", "/"))[0] == 200
        finally:
            proxy.stop()  # blocking is fine: the proxy has its own loop
        assert len(upstream.requests) == 2
