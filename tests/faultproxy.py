"""Fault-injecting TCP proxy for chaos tests (standard library only).

``FaultProxy`` listens on a free loopback port and forwards every accepted
connection to an upstream server on loopback, injecting faults controlled by
plain attributes that may be changed at any time while it runs::

    async with FaultProxy("127.0.0.1", 10000, seed=1) as proxy:
        endpoint = proxy.proxied_url("http://127.0.0.1:10000/devstoreaccount1")
        proxy.reset_every = 3          # RST every 3rd accepted connection
        proxy.corrupt_next = 1         # flip one byte in the next request body
        ...

``ThreadedFaultProxy`` runs the same proxy on a private event loop in a
background thread, for synchronous code and for fixtures whose event loop
differs from the test's.

Faults
------
reset_every / reset_probability
    Decided when a connection is accepted (connections are numbered from 1).
    A doomed connection waits for the client's first bytes (so the request has
    been sent), forwards nothing, and is reset: ``SO_LINGER`` 0, then close, so
    the client gets a TCP RST (``ConnectionResetError``).
reset_after_bytes
    A connection that has forwarded this many client->server bytes (counted
    per connection, across keep-alive requests) forwards exactly that many
    bytes and is then reset on both sides (a mid-body reset).
reset_budget
    ``None`` = unlimited.  Otherwise each injected reset of the three kinds
    above consumes one unit and none is injected once it reaches 0: handy
    for "fail once, then recover".  ``reset_all()`` ignores the budget.
latency_s
    Sleep before forwarding each chunk (reads of up to 64 KiB), in both
    directions.  It is paid per chunk, so it also throttles large transfers.
bandwidth_bps
    Bytes per second, per direction, per connection (paced in ~50 ms slices).
blackhole
    While on, newly accepted connections are read from and the data dropped;
    nothing is forwarded nor answered.  Established connections that see
    traffic in either direction while it is on are swallowed the same way.
    Their byte streams are broken, so when ``blackhole`` is turned off again
    every swallowed connection is reset; connections accepted from then on
    are forwarded normally.  Idle keep-alive connections are unaffected.
corrupt_next / corrupt_offset
    The client->server stream is followed loosely as HTTP/1.x requests
    (head up to the first CRLFCRLF, then Content-Length or chunked framing).
    For each of the next ``corrupt_next`` non-empty request bodies one byte of
    body data is XORed with 0xFF: at ``corrupt_offset`` into the body, or
    when ``None`` in its middle (Content-Length), clamped to the body; for a
    chunked body the same applies within the first non-empty chunk.  Headers
    and chunk framing are never touched, so the request still parses.
    Streams that do not look like HTTP/1.x (e.g. TLS) are forwarded untouched
    and do not consume ``corrupt_next``.

Only loopback addresses are accepted, for listening and for the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import ipaddress
import random
import socket
import struct
import threading
import urllib.parse
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, overload

__all__ = ["FaultProxy", "ProxyStats", "ThreadedFaultProxy"]

_CHUNK = 64 * 1024
_MAX_HEAD = 64 * 1024
_MAX_LINE = 4096
_PACE_SLICES_PER_S = 20
_LINGER_RST = struct.pack("ii", 1, 0)

_T = TypeVar("_T")


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"not a loopback address: {host!r}") from None
    if not addr.is_loopback:
        raise ValueError(f"not a loopback address: {host!r}")


@dataclasses.dataclass
class ProxyStats:
    """Counters; read them at any time (from any thread)."""

    connections: int = 0
    """Connections accepted."""
    resets: int = 0
    """Injected resets (reset_every / reset_probability / reset_after_bytes /
    reset_all)."""
    corrupted: int = 0
    """Bytes flipped (one per corrupted body)."""
    blackholed: int = 0
    """Connections swallowed by the blackhole."""
    upstream_errors: int = 0
    """Upstream connects that failed (the client connection is then reset)."""
    peer_resets: int = 0
    """Connections broken by a peer (either side) outside of injected faults;
    the break is passed on to the other side as a reset."""
    bytes_client_to_server: int = 0
    """Bytes forwarded to the upstream."""
    bytes_server_to_client: int = 0
    """Bytes forwarded to clients."""


class _Connection:
    """One accepted client connection and, once connected, its upstream."""

    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.index = index
        self.client_reader = reader
        self.client = writer
        self.upstream: asyncio.StreamWriter | None = None
        self.doomed = False  # reset when the first client bytes arrive
        self.blackholed = False
        self.closed = False  # aborted (injected reset, failure or stop)
        self.sent_upstream = 0
        self.pumps: tuple[asyncio.Task[None], ...] = ()

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.upstream) if w is not None]

    def abort(self, *, rst: bool) -> None:
        """Close both sides now, discarding buffers; ``rst`` sends a TCP RST."""
        self.closed = True
        for writer in self.writers():
            if rst:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            writer.transport.abort()

    async def wait_closed(self) -> None:
        for writer in self.writers():
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _State(enum.Enum):
    HEAD = enum.auto()
    BODY = enum.auto()
    CHUNK_SIZE = enum.auto()
    CHUNK_DATA = enum.auto()
    CHUNK_CRLF = enum.auto()
    TRAILER = enum.auto()
    OPAQUE = enum.auto()  # not HTTP/1.x (or lost track): pass through


class _RequestTracker:
    """Follows HTTP/1.x request framing in a client->server byte stream,
    loosely, and flips one body byte of the requests chosen for corruption."""

    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy
        self._state = _State.HEAD
        self._buf = bytearray()
        self._remaining = 0  # bytes left in the current body / chunk / CRLF
        self._pos = 0  # body data bytes seen so far in the current request
        self._flip_at = -1  # body data offset to flip, -1 for none
        self._decided = False  # corruption decided for the current body

    def feed(self, data: bytes) -> bytes:
        out: bytearray | None = None
        i, n = 0, len(data)
        while i < n and self._state is not _State.OPAQUE:
            state = self._state
            if state is _State.HEAD or state is _State.TRAILER:
                i = self._feed_head(data, i)
            elif state is _State.CHUNK_SIZE:
                i = self._feed_size_line(data, i)
            elif state is _State.BODY or state is _State.CHUNK_DATA:
                take = min(self._remaining, n - i)
                if self._pos <= self._flip_at < self._pos + take:
                    if out is None:
                        out = bytearray(data)
                    out[i + self._flip_at - self._pos] ^= 0xFF
                    self._flip_at = -1
                    self._proxy.stats.corrupted += 1
                self._pos += take
                self._remaining -= take
                i += take
                if self._remaining == 0:
                    if state is _State.BODY:
                        self._state = _State.HEAD
                    else:
                        self._state = _State.CHUNK_CRLF
                        self._remaining = 2
            else:  # CHUNK_CRLF
                take = min(self._remaining, n - i)
                self._remaining -= take
                i += take
                if self._remaining == 0:
                    self._state = _State.CHUNK_SIZE
        return data if out is None else bytes(out)

    def _opaque(self) -> None:
        self._state = _State.OPAQUE
        self._buf = bytearray()

    def _feed_head(self, data: bytes, i: int) -> int:
        prev = len(self._buf)
        piece = data[i : i + _MAX_HEAD + 4 - prev]
        self._buf += piece
        idx = self._buf.find(b"\r\n\r\n", max(0, prev - 3))
        if idx < 0:
            if len(self._buf) > _MAX_HEAD:
                self._opaque()
            return i + len(piece)
        head = bytes(self._buf[:idx])
        self._buf = bytearray()
        if self._state is _State.TRAILER:
            self._state = _State.HEAD
        else:
            self._start_request(head)
        return i + idx + 4 - prev

    def _feed_size_line(self, data: bytes, i: int) -> int:
        prev = len(self._buf)
        piece = data[i : i + _MAX_LINE + 2 - prev]
        self._buf += piece
        idx = self._buf.find(b"\r\n", max(0, prev - 1))
        if idx < 0:
            if len(self._buf) > _MAX_LINE:
                self._opaque()
            return i + len(piece)
        line = bytes(self._buf[:idx])
        self._buf = bytearray()
        consumed = i + idx + 2 - prev
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            size = -1
        if size < 0:
            self._opaque()
        elif size == 0:
            self._state = _State.TRAILER
            # Seeded with CRLF so that "\r\n\r\n" ends both an empty trailer
            # section and a non-empty one.
            self._buf = bytearray(b"\r\n")
        else:
            if not self._decided:
                self._decided = True
                if self._proxy._take_corruption():
                    self._flip_at = self._pos + self._offset(size)
            self._state = _State.CHUNK_DATA
            self._remaining = size
        return consumed

    def _start_request(self, head: bytes) -> None:
        lines = head.lstrip(b"\r\n").split(b"\r\n")
        if b" HTTP/1." not in lines[0]:
            self._opaque()
            return
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    length = None
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        self._pos = 0
        self._flip_at = -1
        self._decided = False
        if chunked:
            self._state = _State.CHUNK_SIZE
        elif length is not None and length > 0:
            self._state = _State.BODY
            self._remaining = length
            self._decided = True
            if self._proxy._take_corruption():
                self._flip_at = self._offset(length)
        # else: no body, the next request starts right away (state stays HEAD)

    def _offset(self, size: int) -> int:
        offset = self._proxy.corrupt_offset
        if offset is None:
            return size // 2
        return min(max(offset, 0), size - 1)


class _Pacer:
    """Paces one direction of one connection to ``bandwidth_bps``."""

    def __init__(self) -> None:
        self.next_time = 0.0

    async def wait(self, nbytes: int, bps: int) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.next_time = max(now, self.next_time) + nbytes / bps
        await asyncio.sleep(self.next_time - now)


class FaultProxy:
    """Asyncio TCP proxy from ``127.0.0.1:<port>`` to a loopback upstream that
    injects faults.  See the module docstring for the fault knobs.

    All methods must be called on the event loop that ran :meth:`start`;
    the knob attributes (including ``blackhole``) may be set from any thread.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        seed: int = 0,
        listen_port: int = 0,
    ) -> None:
        _check_loopback(upstream_host)
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.listen_port = listen_port
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        # Fault knobs.
        self.reset_every: int | None = None
        self.reset_probability: float = 0.0
        self.reset_after_bytes: int | None = None
        self.reset_budget: int | None = None
        self.latency_s: float = 0.0
        self.bandwidth_bps: int | None = None
        self._blackhole = False
        self._corrupt_next = 0
        self.corrupt_offset: int | None = None
        # Runtime state.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._conns: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False
        self._port: int | None = None

    @classmethod
    def for_url(cls, endpoint_url: str, *, seed: int = 0) -> FaultProxy:
        """A proxy whose upstream is the host and port of ``endpoint_url``."""
        host, port = _host_port(endpoint_url)
        return cls(host, port, seed=seed)

    # -- knobs with side effects ------------------------------------------

    @property
    def blackhole(self) -> bool:
        return self._blackhole

    @blackhole.setter
    def blackhole(self, value: bool) -> None:
        self._blackhole = bool(value)
        loop = self._loop
        if not value and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed meanwhile
                loop.call_soon_threadsafe(self._release_blackholed)

    @property
    def corrupt_next(self) -> int:
        return self._corrupt_next

    @corrupt_next.setter
    def corrupt_next(self, value: int) -> None:
        with self._lock:
            self._corrupt_next = max(0, int(value))

    def clear_faults(self) -> None:
        """Turn every fault off (statistics are kept)."""
        self.reset_every = None
        self.reset_probability = 0.0
        self.reset_after_bytes = None
        self.reset_budget = None
        self.latency_s = 0.0
        self.bandwidth_bps = None
        self.blackhole = False
        self.corrupt_next = 0
        self.corrupt_offset = None

    # -- addresses --------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FaultProxy is not started")
        return self._port

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def proxied_url(self, endpoint_url: str) -> str:
        """``endpoint_url`` (which must point at the upstream) rewritten to go
        through the proxy; scheme, path, query and credentials are kept."""
        return _rewrite_url(endpoint_url, self.upstream_host, self.upstream_port, self.port)

    @property
    def open_connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._conns)

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("FaultProxy already started")
        self._loop = asyncio.get_running_loop()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.listen_port))
            listener.listen(128)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            self._loop = None
            raise
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._accept_task = self._loop.create_task(
            self._accept_loop(listener), name=f"faultproxy-accept-{self._port}"
        )

    async def stop(self) -> None:
        """Stop listening and close every connection and task.  Idempotent."""
        if self._loop is None or self._closing:
            return
        self._closing = True
        if self._accept_task is not None:
            self._accept_task.cancel()
            await asyncio.gather(self._accept_task, return_exceptions=True)
            self._accept_task = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for conn in list(self._conns):
            conn.abort(rst=False)
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        # Connections whose handler never got to run, or was interrupted
        # while closing.
        for conn in list(self._conns):
            conn.abort(rst=False)
            await conn.wait_closed()
        self._conns.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def reset_all(self) -> None:
        """Reset (RST) every open connection now; ignores ``reset_budget``."""
        for conn in list(self._conns):
            if not conn.closed:
                self._inject_reset(conn)

    def __repr__(self) -> str:
        port = self._port if self._port is not None else "-"
        return (
            f"<FaultProxy 127.0.0.1:{port} -> {self.upstream_host}:{self.upstream_port} "
            f"open={len(self._conns)} {self.stats}>"
        )

    # -- internals --------------------------------------------------------

    def _take_reset(self) -> bool:
        with self._lock:
            if self.reset_budget is None:
                return True
            if self.reset_budget <= 0:
                return False
            self.reset_budget -= 1
            return True

    def _take_corruption(self) -> bool:
        with self._lock:
            if self._corrupt_next <= 0:
                return False
            self._corrupt_next -= 1
            return True

    def _doomed_on_accept(self, index: int) -> bool:
        every = self.reset_every
        hit = every is not None and every > 0 and index % every == 0
        probability = self.reset_probability
        if probability > 0 and self._rng.random() < probability:
            hit = True
        return hit and self._take_reset()

    def _inject_reset(self, conn: _Connection) -> None:
        self.stats.resets += 1
        conn.abort(rst=True)

    def _swallow(self, conn: _Connection) -> None:
        if not conn.blackholed:
            conn.blackholed = True
            self.stats.blackholed += 1

    def _release_blackholed(self) -> None:
        if self._blackhole:
            return
        for conn in list(self._conns):
            if conn.blackholed and not conn.closed:
                conn.abort(rst=True)

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError:  # e.g. EMFILE; don't spin
                await asyncio.sleep(0.05)
                continue
            try:
                reader, writer = await asyncio.open_connection(sock=sock, limit=_CHUNK)
            except OSError:
                sock.close()
                continue
            except BaseException:
                sock.close()
                raise
            self.stats.connections += 1
            conn = _Connection(self.stats.connections, reader, writer)
            conn.doomed = self._doomed_on_accept(conn.index)
            if not conn.doomed and self._blackhole:
                self._swallow(conn)
            self._conns.add(conn)
            task = loop.create_task(self._serve(conn), name=f"faultproxy-conn-{conn.index}")
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _serve(self, conn: _Connection) -> None:
        try:
            if conn.doomed:
                with contextlib.suppress(OSError):
                    await conn.client_reader.read(_CHUNK)
                if not conn.closed:
                    self.stats.resets += 1
                    conn.abort(rst=True)
                return
            if conn.blackholed:
                await self._discard(conn.client_reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port, limit=_CHUNK
                )
            except OSError:
                self.stats.upstream_errors += 1
                conn.abort(rst=True)
                return
            conn.upstream = up_writer
            if conn.closed:  # reset_all() while connecting
                up_writer.transport.abort()
                return
            loop = asyncio.get_running_loop()
            conn.pumps = (
                loop.create_task(
                    self._pump(conn, conn.client_reader, up_writer, upstream=True),
                    name=f"faultproxy-conn-{conn.index}-up",
                ),
                loop.create_task(
                    self._pump(conn, up_reader, conn.client, upstream=False),
                    name=f"faultproxy-conn-{conn.index}-down",
                ),
            )
            done, _ = await asyncio.wait(conn.pumps, return_when=asyncio.FIRST_EXCEPTION)
            failed = any(t.cancelled() or t.exception() is not None for t in done)
            if conn.closed:
                return
            if failed:  # a peer broke its connection: pass the reset on
                self.stats.peer_resets += 1
                conn.abort(rst=True)
            else:  # both directions reached EOF
                for writer in conn.writers():
                    writer.close()
        finally:
            for task in conn.pumps:
                task.cancel()
            for writer in conn.writers():
                if not writer.transport.is_closing():
                    writer.transport.abort()
            try:
                await asyncio.gather(*conn.pumps, return_exceptions=True)
                await conn.wait_closed()
            finally:
                self._conns.discard(conn)

    @staticmethod
    async def _discard(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(_CHUNK):
                pass

    async def _pump(
        self,
        conn: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        tracker = _RequestTracker(self) if upstream else None
        pacer = _Pacer()
        while not conn.closed:
            data = await reader.read(_CHUNK)
            if not data:
                break
            if self._blackhole:
                self._swallow(conn)
            if conn.blackholed or conn.closed:
                continue  # dropped
            reset_after = False
            if upstream:
                assert tracker is not None
                data = tracker.feed(data)
                limit = self.reset_after_bytes
                if limit is not None:
                    room = max(0, limit - conn.sent_upstream)
                    if len(data) >= room and self._take_reset():
                        data, reset_after = data[:room], True
            await self._forward(conn, writer, data, pacer, upstream=upstream)
            if reset_after:
                if not conn.closed:
                    self._inject_reset(conn)
                return
        if not conn.closed and not conn.blackholed and writer.can_write_eof():
            writer.write_eof()

    async def _forward(
        self,
        conn: _Connection,
        writer: asyncio.StreamWriter,
        data: bytes,
        pacer: _Pacer,
        *,
        upstream: bool,
    ) -> None:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        offset = 0
        while offset < len(data) and not conn.closed:
            bps = self.bandwidth_bps
            if bps is not None and bps > 0:
                size = max(1, bps // _PACE_SLICES_PER_S)
                piece = data[offset : offset + size]
                await pacer.wait(len(piece), bps)
            else:
                piece = data[offset:] if offset else data
            if conn.closed:
                return
            writer.write(piece)
            await writer.drain()
            offset += len(piece)
            if upstream:
                conn.sent_upstream += len(piece)
                self.stats.bytes_client_to_server += len(piece)
            else:
                self.stats.bytes_server_to_client += len(piece)


def _host_port(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    port = parts.port
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
        if port is None:
            raise ValueError(f"no port in {url!r}")
    return parts.hostname, port


def _rewrite_url(url: str, upstream_host: str, upstream_port: int, proxy_port: int) -> str:
    host, port = _host_port(url)
    _check_loopback(host)
    if port != upstream_port:
        raise ValueError(f"{url!r} does not point at the proxied upstream {upstream_host}:{upstream_port}")
    parts = urllib.parse.urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"127.0.0.1:{proxy_port}"
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _Delegated(Generic[_T]):
    """Attribute of ThreadedFaultProxy forwarded to its FaultProxy."""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> _Delegated[_T]: ...

    @overload
    def __get__(self, obj: ThreadedFaultProxy, objtype: type[Any] | None = None) -> _T: ...

    def __get__(
        self, obj: ThreadedFaultProxy | None, objtype: type[Any] | None = None
    ) -> _T | _Delegated[_T]:
        if obj is None:
            return self
        value: _T = getattr(obj.proxy, self._name)
        return value

    def __set__(self, obj: ThreadedFaultProxy, value: _T) -> None:
        setattr(obj.proxy, self._name, value)


class ThreadedFaultProxy:
    """A :class:`FaultProxy` on its own event loop in a daemon thread.

    ``start()``/``stop()`` block until done and may be called from any thread
    (also from a thread running another event loop) except the proxy's own.
    Knobs are set directly: ``tp.reset_every = 2``.  ``tp.proxy`` is the
    underlying FaultProxy (its coroutine methods belong to the private loop).
    """

    reset_every: _Delegated[int | None] = _Delegated()
    reset_probability: _Delegated[float] = _Delegated()
    reset_after_bytes: _Delegated[int | None] = _Delegated()
    reset_budget: _Delegated[int | None] = _Delegated()
    latency_s: _Delegated[float] = _Delegated()
    bandwidth_bps: _Delegated[int | None] = _Delegated()
    blackhole: _Delegated[bool] = _Delegated()
    corrupt_next: _Delegated[int] = _Delegated()
    corrupt_offset: _Delegated[int | None] = _Delegated()

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        seed: int = 0,
        listen_port: int = 0,
    ) -> None:
        self.proxy = FaultProxy(upstream_host, upstream_port, seed=seed, listen_port=listen_port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()

    @classmethod
    def for_url(cls, endpoint_url: str, *, seed: int = 0) -> ThreadedFaultProxy:
        host, port = _host_port(endpoint_url)
        return cls(host, port, seed=seed)

    @property
    def stats(self) -> ProxyStats:
        return self.proxy.stats

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def host(self) -> str:
        return self.proxy.host

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def open_connections(self) -> int:
        return self.proxy.open_connections

    def proxied_url(self, endpoint_url: str) -> str:
        return self.proxy.proxied_url(endpoint_url)

    def start(self) -> None:
        with self._state_lock:
            if self._thread is not None:
                raise RuntimeError("ThreadedFaultProxy already started")
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=self._run, args=(loop,), name="faultproxy", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        try:
            self._call(self.proxy.start())
        except BaseException:
            self._shutdown_loop()
            raise

    def stop(self) -> None:
        """Stop the proxy, its loop and thread.  Idempotent."""
        with self._state_lock:
            if self._thread is None:
                return
            if threading.get_ident() == self._thread.ident:
                raise RuntimeError("ThreadedFaultProxy.stop() called from its own loop")
        try:
            self._call(self.proxy.stop())
        finally:
            self._shutdown_loop()

    def reset_all(self) -> None:
        """Reset every open connection now (returns once done)."""
        self._run_sync(self.proxy.reset_all)

    def clear_faults(self) -> None:
        self._run_sync(self.proxy.clear_faults)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Threaded{self.proxy!r}>"

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("ThreadedFaultProxy is not started")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def _run_sync(self, fn: Callable[[], None]) -> None:
        thread = self._thread
        if thread is None or threading.get_ident() == thread.ident:
            fn()
            return

        async def call() -> None:
            fn()

        self._call(call())

    def _shutdown_loop(self) -> None:
        with self._state_lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join()
