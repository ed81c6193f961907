"""Chaos tests: the real servers (SeaweedFS or MinIO, and Azurite) behind the fault-injecting proxy
(`tests/faultproxy.py`), or killed outright, with `STORAGE_UPLOAD_MODE=both` semantics.

Every test states in its docstring what it proves. The providers under test talk to the servers
through a `FaultProxy` running on the test's own event loop; every check of what was stored goes
to the servers directly (a second provider without the proxy), so a fault can never hide a wrong
answer. Timeouts are short (connect 2 s, read 3 s, upload 10 s), every time bound is asserted,
and uploads without a library deadline run under a guard, so that a fault that is not handled
fails a test instead of hanging it or passing slowly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import servers
from tests.faultproxy import FaultProxy
from tests.fixtures_s3 import new_bucket_name
from unistore import Storage
from unistore._errors import NotFoundError, TransientError
from unistore._multipart import ABORT_GRACE_S, MiB, Transfer
from unistore._retry import RetryPolicy
from unistore.providers.azure import AzureBlobProvider
from unistore.providers.s3 import S3Provider

pytestmark = pytest.mark.servers

CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 3.0
UPLOAD_TIMEOUT = 10.0
TIMEOUTS: dict[str, float] = {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT}

CHAOS_RETRY = RetryPolicy(attempts=5, deadline=20.0, base_delay=0.05, max_delay=0.5)
"""Production-like retries (5 attempts, as `STORAGE_RETRY_ATTEMPTS` defaults to), short waits."""
CHAOS_TRANSFER = Transfer(threshold=5 * MiB, chunk_size=5 * MiB, max_concurrency=4, retry=CHAOS_RETRY)
HANG_GUARD_S = 30.0
"""Bound on a test's own upload where no library deadline is set: a regression fails, not hangs."""
SLACK_S = 3.0
"""What a time bound may overshoot by on two busy cores (scheduling, backoff, the last request)."""

Factory = Callable[..., Any]


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def unique_key(prefix: str = "chaos") -> str:
    return f"{prefix}/{os.urandom(6).hex()}.mp4"


def proxied_connection_string(azurite: servers.AzuriteServer, proxy: FaultProxy) -> str:
    """Azurite's connection string (shared key over plain HTTP) with the blob endpoint moved to
    the proxy."""
    return azurite.connection_string.replace(azurite.blob_url, proxy.proxied_url(azurite.blob_url))


@pytest.fixture
async def s3_proxy(s3_server: servers.S3Server) -> AsyncIterator[FaultProxy]:
    async with FaultProxy.for_url(s3_server.endpoint, seed=11) as proxy:
        yield proxy


@pytest.fixture
async def azure_proxy(azurite: servers.AzuriteServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy.for_url(azurite.blob_url, seed=12) as proxy:
        yield proxy


@pytest.fixture
def s3_via_proxy(make_s3_provider: Factory, s3_server: servers.S3Server, s3_proxy: FaultProxy) -> Factory:
    """`S3Provider`s whose endpoint is the proxy (short timeouts, chaos retries by default)."""

    def make(**overrides: Any) -> S3Provider:
        options: dict[str, Any] = {"transfer": CHAOS_TRANSFER, **TIMEOUTS, **overrides}
        provider: S3Provider = make_s3_provider(endpoint_url=s3_proxy.proxied_url(s3_server.endpoint), **options)
        return provider

    return make


@pytest.fixture
def azure_via_proxy(make_azure_provider: Factory, azurite: servers.AzuriteServer, azure_proxy: FaultProxy) -> Factory:
    """`AzureBlobProvider`s (connection string, plain HTTP) whose blob endpoint is the proxy."""

    def make(**overrides: Any) -> AzureBlobProvider:
        options: dict[str, Any] = {"transfer": CHAOS_TRANSFER, **TIMEOUTS, **overrides}
        provider: AzureBlobProvider = make_azure_provider(
            connection_string=proxied_connection_string(azurite, azure_proxy), **options
        )
        return provider

    return make


# --------------------------------------------------------------------------------------------
# 1. resets
# --------------------------------------------------------------------------------------------


class _OneRequestPerConnection(aiohttp.TCPConnector):
    """aiohttp connector without keep-alive: every request opens its own TCP connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("keepalive_timeout", None)
        kwargs["force_close"] = True
        super().__init__(*args, **kwargs)


@pytest.fixture
def no_keepalive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both SDKs build their pools with `aiohttp.TCPConnector(...)`; without keep-alive, "every
    10th connection" is "every 10th request" instead of a handful of pooled connections."""
    monkeypatch.setattr(aiohttp, "TCPConnector", _OneRequestPerConnection)


async def test_fifty_uploads_through_resetting_proxies_all_land_byte_identical(
    s3_via_proxy: Factory,
    azure_via_proxy: Factory,
    make_s3_provider: Factory,
    make_azure_provider: Factory,
    s3_proxy: FaultProxy,
    azure_proxy: FaultProxy,
    tmp_path: Path,
    no_keepalive: None,
) -> None:
    """Every 10th TCP connection to each service is reset (RST as the request starts): 50 uploads
    of mixed sizes to both providers at once (single puts, multipart files through the fan-out,
    streams through `open_writer`), 6 at a time, all succeed, and each object read back directly
    from each server (not through the proxy) is byte-identical to its source. Keep-alive is off
    in both clients, so one request in ten meets a reset (asserted on the proxy counters: the
    pass is not luck). Every reset request is retried by `unistore._retry`: the sessions
    unistore makes clear aiohttp's own resend."""
    s3_proxy.reset_every = 10
    azure_proxy.reset_every = 10
    rng = random.Random(2024)
    plan: list[tuple[str, int]] = []
    for i in range(50):
        if i % 5 == 0:
            plan.append(("file", rng.randint(6 * MiB, 11 * MiB)))  # multipart on both
        elif i % 5 == 1:
            plan.append(("stream", rng.randint(1 * MiB, 12 * MiB)))
        else:
            plan.append(("bytes", rng.randint(1, 2 * MiB)))  # single put
    uploaded: dict[str, bytes] = {}
    gate = asyncio.Semaphore(6)

    async with Storage([s3_via_proxy(), azure_via_proxy()]) as storage:

        async def one(index: int, kind: str, size: int) -> None:
            data = payload(size, seed=index)
            key = unique_key(f"resets/{kind}")
            async with gate:
                if kind == "file":
                    path = tmp_path / f"{index}.mp4"
                    await asyncio.to_thread(path.write_bytes, data)
                    report = await storage.upload_file(path, key, delete_local=True)
                    assert not path.exists(), "deleted only because both providers confirmed"
                elif kind == "stream":
                    async with storage.open_writer(key) as writer:
                        for start in range(0, size, 1_000_003):
                            await writer.write(data[start : start + 1_000_003])
                    assert writer.report is not None
                    report = writer.report
                else:
                    report = await storage.upload_bytes(data, key)
            assert report.ok, f"{kind} of {size} bytes: {report.errors}"
            uploaded[key] = data

        await asyncio.gather(*(one(i, kind, size) for i, (kind, size) in enumerate(plan)))

    direct = [make_s3_provider(), make_azure_provider()]
    for key, data in uploaded.items():
        for provider in direct:
            assert await provider.download_bytes(key) == data, f"{provider.name}: {key}"
    assert len(uploaded) == 50
    for proxy in (s3_proxy, azure_proxy):
        # one in ten, exactly: the resets are decided by connection number, not by chance
        assert proxy.stats.resets == proxy.stats.connections // 10 >= 8, proxy.stats


@pytest.fixture(params=["s3", "azure"])
def via_proxy(request: pytest.FixtureRequest) -> tuple[str, Factory, FaultProxy, Factory]:
    """(name, proxied-provider factory, its proxy, direct-provider factory) for each service."""
    name: str = request.param
    return (
        name,
        request.getfixturevalue(f"{name}_via_proxy"),
        request.getfixturevalue(f"{name}_proxy"),
        request.getfixturevalue(f"make_{name}_provider"),
    )


async def test_two_resets_in_a_row_get_past_aiohttp_and_are_retried_by_unistore(
    via_proxy: tuple[str, Factory, FaultProxy, Factory], caplog: pytest.LogCaptureFixture
) -> None:
    """The next two connections are reset as the request starts. Two resets in a row get past
    any resend below unistore (the sessions unistore makes clear aiohttp's own resend), so
    `unistore._retry` sees at least one, logs a retry warning that names the reset, and stores
    the object on the third connection. Proves the retry layer sees and retries transport
    resets, and pins the number of connections one put may cost."""
    name, make, proxy, make_direct = via_proxy
    caplog.set_level(logging.WARNING, logger="unistore.retry")
    provider = make()
    data = payload(1 * MiB + 17, seed=5)
    key = unique_key("two-resets")
    proxy.reset_every, proxy.reset_budget = 1, 2
    info = await provider.upload_bytes(data, key)
    assert info.size == len(data)
    assert (proxy.stats.connections, proxy.stats.resets) == (3, 2), proxy.stats
    retries = [r.getMessage() for r in caplog.records if r.name == "unistore.retry"]
    assert 1 <= len(retries) <= 2, retries
    for line in retries:
        assert f"[{name}]" in line and re.search(r"reset|disconnect", line, re.I), line
    assert await make_direct().download_bytes(key) == data


# --------------------------------------------------------------------------------------------
# 2. timeouts and a blackholed provider, configured through the environment
# --------------------------------------------------------------------------------------------

TIMEOUT_WORDS = re.compile(r"time ?out|timed out|DeadlineExceeded", re.I)


@pytest.fixture
def chaos_env(
    monkeypatch: pytest.MonkeyPatch,
    s3_server: servers.S3Server,
    s3_bucket: str,
    azurite: servers.AzuriteServer,
    azure_container: str,
) -> Callable[..., None]:
    """Set the environment of `STORAGE_UPLOAD_MODE=both` with S3 at `s3_url` and Azure's blob
    endpoint at `azure_url` (the servers' own addresses by default) and the given `STORAGE_*`
    variables; nothing else from the outer environment leaks in."""
    for name in list(os.environ):
        if name.startswith(("STORAGE_", "AWS_", "AZURE_")):
            monkeypatch.delenv(name)

    def setenv(s3_url: str | None = None, azure_url: str | None = None, **storage: str) -> None:
        env = {**s3_server.env(s3_bucket), **azurite.env(azure_container)}
        env["AWS_ENDPOINT_URL"] = s3_url or s3_server.endpoint
        env["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string.replace(
            azurite.blob_url, azure_url or azurite.blob_url
        )
        env.update(
            STORAGE_UPLOAD_MODE="both",
            STORAGE_MULTIPART_THRESHOLD="5MiB",
            STORAGE_CHUNK_SIZE="5MiB",
            STORAGE_CONNECT_TIMEOUT=f"{CONNECT_TIMEOUT:g}",
            STORAGE_READ_TIMEOUT=f"{READ_TIMEOUT:g}",
        )
        env.update({f"STORAGE_{name.upper()}": value for name, value in storage.items()})
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return setenv


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A loopback port whose SYNs are never answered: a listener with a backlog of 0 that never
    accepts, its one queue slot already taken, so that a connect hangs as to a dropped host."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.3)
        try:
            with pytest.raises(TimeoutError):
                probe.connect(("127.0.0.1", port))
        finally:
            probe.close()
        yield port
    finally:
        filler.close()
        listener.close()


@pytest.fixture
def unread_listener() -> Iterator[socket.socket]:
    """A loopback listener that completes TCP handshakes (in the kernel) but never accepts or
    reads a byte: a peer that stopped reading, as behind a blackholed route."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener
    finally:
        listener.close()


def provider_times(report: Any) -> dict[str, float]:
    return {name: result.duration_s for name, result in report.results.items()}


async def test_connect_timeout_reaches_both_sdks(
    chaos_env: Callable[..., None], azurite: servers.AzuriteServer, unanswered_port: int
) -> None:
    """Both services at an address whose SYNs are never answered, `STORAGE_CONNECT_TIMEOUT=2`,
    `STORAGE_RETRY_ATTEMPTS=2`: each provider fails after two attempts of 2 s (not the SDKs'
    defaults of a minute or more), with an error that names the timeout and the attempts.
    Proves the setting reaches botocore's `connect_timeout` and azure-core's
    `connection_timeout` through `Storage.from_env()`."""
    endpoint = f"http://127.0.0.1:{unanswered_port}"
    chaos_env(s3_url=endpoint, azure_url=f"{endpoint}/{azurite.account_name}", retry_attempts="2")
    async with Storage.from_env() as storage, asyncio.timeout(HANG_GUARD_S):
        assert storage.provider("s3").config.connect_timeout == CONNECT_TIMEOUT  # type: ignore[attr-defined]
        report = await storage.upload_bytes(b"connect", unique_key())
    assert report.failed == ["s3", "azure"]
    for name, elapsed in provider_times(report).items():
        error = report.results[name].error
        assert 2 * CONNECT_TIMEOUT - 0.5 <= elapsed <= 2 * CONNECT_TIMEOUT + SLACK_S, (name, elapsed, error)
        assert TIMEOUT_WORDS.search(str(error)) and "gave up after 2 attempt(s)" in str(error), error


async def test_read_timeout_reaches_both_sdks(
    chaos_env: Callable[..., None],
    s3_server: servers.S3Server,
    azurite: servers.AzuriteServer,
    s3_proxy: FaultProxy,
    azure_proxy: FaultProxy,
) -> None:
    """Both services blackholed (connections accepted, requests swallowed, nothing answered),
    `STORAGE_READ_TIMEOUT=3`, `STORAGE_RETRY_ATTEMPTS=2`, no `STORAGE_UPLOAD_TIMEOUT`: each
    provider fails after two attempts of 3 s (not the SDKs' defaults of a minute or more), with an error that
    names the timeout. Proves the setting reaches botocore's and azure-core's `read_timeout`
    through `Storage.from_env()`, and that a blackholed service cannot hang a put even without
    an upload deadline (S3 needed `Expect: 100-continue` off for that: aiohttp waits for the
    "100 Continue" with no timeout at all)."""
    chaos_env(
        s3_url=s3_proxy.proxied_url(s3_server.endpoint),
        azure_url=azure_proxy.proxied_url(azurite.blob_url),
        retry_attempts="2",
    )
    s3_proxy.blackhole = azure_proxy.blackhole = True
    async with Storage.from_env() as storage, asyncio.timeout(HANG_GUARD_S):
        report = await storage.upload_bytes(payload(100_000, 1), unique_key())
    assert report.failed == ["s3", "azure"]
    for name, elapsed in provider_times(report).items():
        error = report.results[name].error
        assert 2 * READ_TIMEOUT - 0.5 <= elapsed <= 2 * READ_TIMEOUT + SLACK_S, (name, elapsed, error)
        assert TIMEOUT_WORDS.search(str(error)) and "gave up after 2 attempt(s)" in str(error), error
    assert s3_proxy.stats.blackholed >= 2 and azure_proxy.stats.blackholed >= 2


async def test_a_peer_that_stops_reading_is_bounded_by_the_upload_timeout(
    chaos_env: Callable[..., None], azurite: servers.AzuriteServer, unread_listener: socket.socket
) -> None:
    """Both services at a peer that takes the connection and never reads, a 40 MiB single put
    (`STORAGE_MULTIPART_THRESHOLD=64MiB`), `STORAGE_UPLOAD_TIMEOUT=5`: the body fills the socket
    buffers and the write blocks. Neither SDK has a write timeout (aiohttp starts its read
    timeout only once the body is sent), so a read timeout never fires: here the upload deadline
    (5 s) ends it, well before the per-request deadline of the next test would."""
    endpoint = f"http://127.0.0.1:{unread_listener.getsockname()[1]}"
    chaos_env(
        s3_url=endpoint,
        azure_url=f"{endpoint}/{azurite.account_name}",
        multipart_threshold="64MiB",
        upload_timeout="5",
    )
    async with Storage.from_env() as storage:
        report = await storage.upload_bytes(payload(40 * MiB, 2), unique_key())
    assert report.failed == ["s3", "azure"]
    for name, elapsed in provider_times(report).items():
        error = report.results[name].error
        assert 5.0 - 0.5 <= elapsed <= 5.0 + SLACK_S, (name, elapsed, error)
        assert isinstance(error, TransientError) and error.code == "DeadlineExceeded", error
    # The cancelled requests' sockets wait, closing, to flush into a peer that never reads;
    # closing the listener resets them, and the loop must run to see it.
    unread_listener.close()
    await asyncio.sleep(0.5)


async def test_a_stalled_body_write_is_bounded_per_request_without_an_upload_timeout(
    chaos_env: Callable[..., None], azurite: servers.AzuriteServer, unread_listener: socket.socket
) -> None:
    """The same peer that never reads, now with no `STORAGE_UPLOAD_TIMEOUT` at all: each upload
    request has its own deadline (`STORAGE_READ_TIMEOUT` + size / `STORAGE_MIN_SEND_RATE`, here
    3 s + 40 MiB / 40 MiB/s = 4 s), so a stalled body write fails as a retryable
    `RequestDeadline` and, after two attempts, the upload gives up instead of hanging for ever."""
    endpoint = f"http://127.0.0.1:{unread_listener.getsockname()[1]}"
    chaos_env(
        s3_url=endpoint,
        azure_url=f"{endpoint}/{azurite.account_name}",
        multipart_threshold="64MiB",
        min_send_rate="40MiB",
        retry_attempts="2",
    )
    limit = READ_TIMEOUT + 1.0
    async with Storage.from_env() as storage:
        report = await storage.upload_bytes(payload(40 * MiB, 3), unique_key())
    assert report.failed == ["s3", "azure"]
    for name, elapsed in provider_times(report).items():
        error = report.results[name].error
        assert isinstance(error, TransientError) and error.code == "RequestDeadline", (name, error)
        assert "gave up after 2 attempt(s)" in str(error)
        assert 2 * limit - 0.5 <= elapsed <= 2 * limit + 2 * SLACK_S, (name, elapsed)
    unread_listener.close()
    await asyncio.sleep(0.5)


async def test_a_live_stream_longer_than_the_upload_timeout_is_not_cut(
    chaos_env: Callable[..., None], make_s3_provider: Factory, make_azure_provider: Factory
) -> None:
    """A meeting streamed through `open_writer` for about 4 s, a 2 MiB chunk every 0.5 s, with
    `STORAGE_UPLOAD_TIMEOUT=2`: both providers store it, byte-identical. The deadline counts
    each provider's own work, not the time spent waiting for the meeting's next chunk;
    otherwise every recording streamed for longer than the deadline would be cut off."""
    chaos_env(upload_timeout="2")
    chunks = [payload(2 * MiB + i, seed=i) for i in range(8)]
    key = unique_key("live")
    async with Storage.from_env() as storage:
        began = time.monotonic()
        async with storage.open_writer(key) as writer:
            for chunk in chunks:
                await writer.write(chunk)
                await asyncio.sleep(0.5)
        elapsed = time.monotonic() - began
    assert elapsed > 2 * 2.0
    assert writer.report is not None and writer.report.ok, writer.report and writer.report.errors
    for provider in (make_s3_provider(), make_azure_provider()):
        assert await provider.download_bytes(key) == b"".join(chunks), provider.name


@pytest.mark.parametrize("dead", ["s3", "azure"])
async def test_blackholed_provider_in_both_ends_at_the_deadline_the_other_lands_the_source_is_kept(
    dead: str,
    chaos_env: Callable[..., None],
    s3_server: servers.S3Server,
    azurite: servers.AzuriteServer,
    s3_proxy: FaultProxy,
    azure_proxy: FaultProxy,
    make_s3_provider: Factory,
    make_azure_provider: Factory,
    tmp_path: Path,
) -> None:
    """`both` from the environment, `STORAGE_UPLOAD_TIMEOUT=10` (5 attempts of a 3 s read
    timeout would take longer: the deadline is what ends it), 40 MiB file, `delete_local=True`.
    One provider's proxy turns into a blackhole once that provider has stored its first part,
    so its parts in flight hang, the fan-out stops feeding the other provider once the dead one
    holds all it may (bounded memory), and S3's abort cannot get through. The upload returns
    within the deadline plus the abort's grace; the other provider has the exact bytes (the
    time it spent waiting for the dead one did not count against its own deadline); the report
    names the failed provider, whose error names the deadline; the source file is still there,
    unchanged, and nothing is visible on the dead side. Once the blackhole lifts, S3's abort,
    left to finish in the background, removes the incomplete upload."""
    proxies = {"s3": s3_proxy, "azure": azure_proxy}
    chaos_env(
        s3_url=s3_proxy.proxied_url(s3_server.endpoint),
        azure_url=azure_proxy.proxied_url(azurite.blob_url),
        upload_timeout=f"{UPLOAD_TIMEOUT:g}",
    )
    data = payload(40 * MiB + 3, seed=7)
    src = tmp_path / "meeting.mp4"
    src.write_bytes(data)
    key = unique_key("blackhole")

    def progress(name: str, done: int, total: int | None) -> None:
        if name == dead and done > 0:
            proxies[dead].blackhole = True

    alive = "azure" if dead == "s3" else "s3"
    direct = {"s3": make_s3_provider(), "azure": make_azure_provider()}
    async with Storage.from_env() as storage:
        began = time.monotonic()
        report = await storage.upload_file(src, key, delete_local=True, progress=progress)
        elapsed = time.monotonic() - began
        assert elapsed <= UPLOAD_TIMEOUT + ABORT_GRACE_S + SLACK_S, elapsed
        assert (report.ok, report.failed, report.succeeded) == (False, [dead], [alive]), report.errors
        error = report.results[dead].error
        assert isinstance(error, TransientError) and error.provider == dead
        assert error.code == "DeadlineExceeded" and "STORAGE_UPLOAD_TIMEOUT=10s" in str(error), error
        assert src.read_bytes() == data, "the source is kept when a provider failed"
        assert proxies[dead].stats.blackholed >= 1
        assert await direct[alive].download_bytes(key) == data
        assert not await direct[dead].exists(key)
        proxies[dead].blackhole = False  # swallowed connections are reset: the abort retries
        if dead == "s3":
            s3 = direct["s3"]
            assert isinstance(s3, S3Provider)
            for _ in range(100):
                if not await incomplete_s3_uploads(s3, key):
                    break
                await asyncio.sleep(0.1)
            assert await incomplete_s3_uploads(s3, key) == [], "the background abort finished"


# --------------------------------------------------------------------------------------------
# 3. a server killed mid-upload
# --------------------------------------------------------------------------------------------


@pytest.fixture
def own_s3_server(tmp_path: Path) -> Iterator[servers.S3Server]:
    """An S3 server of this test alone (so that killing it spares the session's)."""
    server = servers.start_s3_server(tmp_path / "own-s3")
    try:
        if not server.managed:
            pytest.skip("UNISTORE_TEST_S3_ENDPOINT names an external server: it cannot be killed here")
        yield server
    finally:
        server.close()


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[servers.AzuriteServer]:
    """An Azurite of this test alone (so that killing it spares the session's)."""
    server = servers.start_azurite(tmp_path / "own-azurite")
    try:
        yield server
    finally:
        server.close()


async def incomplete_s3_uploads(s3: S3Provider, prefix: str) -> list[str]:
    client = await s3._client()
    response = await client.list_multipart_uploads(Bucket=s3.bucket, Prefix=prefix)
    return [u["Key"] for u in response.get("Uploads", [])]


def kill_after_first_part(server: servers.S3Server | servers.AzuriteServer, name: str) -> tuple[Any, list[float]]:
    """A progress callback that SIGKILLs `server` once provider `name` has stored a part."""
    killed_at: list[float] = []

    def progress(provider: str, done: int, total: int | None) -> None:
        if provider == name and done > 0 and not killed_at:
            server.kill()
            killed_at.append(time.monotonic())

    return progress, killed_at


async def test_s3_killed_mid_multipart_azure_lands_s3_fails_fast_and_cleanup_removes_the_leftover(
    own_s3_server: servers.S3Server,
    make_azure_provider: Factory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`both`, 30 MiB file (parts of 5 MiB), `delete_local=True`; the S3 server is SIGKILLed once
    S3 has stored its first part. Azure still stores the exact bytes; S3 fails promptly (within
    5 s of the kill: refused connections are retried with short backoff, not waited on) with a
    connection error, and its abort, which cannot reach a dead server, is logged with the
    command that fixes it; the source is kept. After `restart()` no object is visible under the
    key, the incomplete upload is still listed (nobody could abort it), and `python -m unistore
    cleanup --older-than 0 --provider s3`, run as an operator would (environment only, a real
    subprocess), aborts it: nothing lingers."""
    server = own_s3_server
    bucket = new_bucket_name("kill")
    server.create_bucket(bucket)
    caplog.set_level(logging.WARNING, logger="unistore")
    s3 = S3Provider(
        bucket=bucket,
        endpoint_url=server.endpoint,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        region=server.region,
        transfer=CHAOS_TRANSFER,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )
    data = payload(30 * MiB + 5, seed=9)
    src = tmp_path / "meeting.mp4"
    src.write_bytes(data)
    key = unique_key("killed")
    progress, killed_at = kill_after_first_part(server, "s3")
    azure = make_azure_provider(transfer=CHAOS_TRANSFER, **TIMEOUTS)
    async with Storage([s3, azure]) as storage:
        began = time.monotonic()
        report = await storage.upload_file(src, key, delete_local=True, progress=progress)
    assert killed_at, "the server was killed mid-upload"
    assert (report.failed, report.succeeded) == (["s3"], ["azure"]), report.errors
    failure = report.results["s3"]
    assert isinstance(failure.error, TransientError) and "connection" in str(failure.error), failure.error
    assert failure.duration_s - (killed_at[0] - began) < 5.0, "S3 failed promptly after the kill"
    assert src.read_bytes() == data, "the source is kept"
    assert await make_azure_provider().download_bytes(key) == data
    abort_warnings = [r.getMessage() for r in caplog.records if "could not abort" in r.getMessage()]
    assert abort_warnings and "unistore cleanup --older-than" in abort_warnings[0], abort_warnings

    await asyncio.to_thread(server.restart)
    async with S3Provider(
        bucket=bucket,
        endpoint_url=server.endpoint,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        region=server.region,
        transfer=CHAOS_TRANSFER,
    ) as after:
        with pytest.raises(NotFoundError):
            await after.head(key)
        assert [o.key async for o in after.list("killed/")] == []
        assert await incomplete_s3_uploads(after, key) == [key], "the upload nobody could abort"

        env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "AZURE_"))}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "unistore",
            "cleanup",
            "--older-than",
            "0",
            "--provider",
            "s3",
            "--prefix",
            "killed/",
            env={**env, **server.env(bucket), "STORAGE_UPLOAD_MODE": "s3"},
            cwd=Path(__file__).resolve().parent.parent,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, err.decode()
        assert f"s3: aborted incomplete upload of {key!r}" in out.decode(), out.decode()
        assert await incomplete_s3_uploads(after, "killed/") == []


async def test_azurite_killed_mid_upload_s3_lands_azure_fails_fast_and_nothing_is_visible(
    own_azurite: servers.AzuriteServer,
    make_s3_provider: Factory,
    tmp_path: Path,
) -> None:
    """`both`, 30 MiB file (blocks of 5 MiB), `delete_local=True`; Azurite is SIGKILLed once
    Azure has staged its first block. S3 still stores the exact bytes; Azure fails promptly (within 5 s
    of the kill) with a connection error; the source is kept. After `restart()` the blob is not
    visible (its blocks were never committed; Azure has nothing to abort). The container is
    created and Azurite restarted once before the upload, since Azurite loses metadata written
    in the seconds before a kill."""
    server = own_azurite
    container = "killed"
    server.create_container(container)
    await asyncio.to_thread(server.restart)  # the container is persisted from here on
    azure = AzureBlobProvider(
        container=container,
        connection_string=server.connection_string,
        transfer=CHAOS_TRANSFER,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )
    data = payload(30 * MiB + 7, seed=10)
    src = tmp_path / "meeting.mp4"
    src.write_bytes(data)
    key = unique_key("killed")
    progress, killed_at = kill_after_first_part(server, "azure")
    s3 = make_s3_provider(transfer=CHAOS_TRANSFER, **TIMEOUTS)
    async with Storage([s3, azure]) as storage:
        began = time.monotonic()
        report = await storage.upload_file(src, key, delete_local=True, progress=progress)
    assert killed_at, "the server was killed mid-upload"
    assert (report.failed, report.succeeded) == (["azure"], ["s3"]), report.errors
    failure = report.results["azure"]
    assert isinstance(failure.error, TransientError), failure.error
    assert re.search(r"connect|refused|reset", str(failure.error), re.I), failure.error
    assert failure.duration_s - (killed_at[0] - began) < 5.0, "Azure failed promptly after the kill"
    assert src.read_bytes() == data, "the source is kept"
    assert await make_s3_provider().download_bytes(key) == data

    await asyncio.to_thread(server.restart)
    status, _, _ = await asyncio.to_thread(server.request, "HEAD", f"/{container}/{key}")
    assert status == 404, "no partial blob is visible"
    status, _, body = await asyncio.to_thread(
        server.request, "GET", f"/{container}", query={"restype": "container", "comp": "list"}
    )
    assert status == 200 and key.encode() not in body, body[:300]


# --------------------------------------------------------------------------------------------
# 4. a byte corrupted in transit
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1 * MiB, 12 * MiB], ids=["single-put", "part"])
async def test_a_byte_corrupted_in_transit_is_detected_and_retried_never_stored(
    via_proxy: tuple[str, Factory, FaultProxy, Factory], size: int, caplog: pytest.LogCaptureFixture
) -> None:
    """One byte in the middle of the next request body is flipped on its way to the server: the
    body of a single put (S3 PutObject, Azure Put Blob) or of one part (S3 UploadPart, Azure Put
    Block; whichever body reaches the proxy first). Every body carries its digest (S3 CRC32,
    Azure CRC-64, the defaults): the server refuses the corrupted one (S3 `BadDigest`, Azure
    `Crc64Mismatch`; Azurite 3.37 does check it), the provider maps that to an
    `IntegrityError`, which is retried once with the
    bytes still in hand, and the object stored is exactly the source (read back directly). The
    corruption is never reported as a success; the providers would also refuse a success whose
    reported digest differs from ours."""
    name, make, proxy, make_direct = via_proxy
    caplog.set_level(logging.WARNING, logger="unistore.retry")
    provider = make()
    data = payload(size, seed=size)
    key = unique_key("corrupt")
    proxy.corrupt_next = 1
    info = await provider.upload_bytes(data, key)
    assert proxy.stats.corrupted == 1, proxy.stats
    assert info.size == size
    assert await make_direct().download_bytes(key) == data
    retries = [r.getMessage() for r in caplog.records if r.name == "unistore.retry"]
    code = {"s3": "BadDigest", "azure": "Crc64Mismatch"}[name]
    assert len(retries) == 1 and f"code={code}" in retries[0] and f"[{name}]" in retries[0], retries
