"""Every SDK internal unistore relies on, pinned against the installed SDKs: a test here fails
when an SDK renames, moves or changes one, before any upload resends, hangs or mis-parses.

- aiohttp's `ClientSession._retry_connection` (its silent resend of idempotent requests): it
  exists, it is on by default (so clearing it matters), it is off on every session unistore
  makes (the signed PUTs', Azure's transport, and aiobotocore's own), and with it off a
  connection reset reaches unistore's retry instead of being resent below it.
- botocore's `Expect: 100-continue`: no request botocore still sends for us carries it (the
  bodies go through the own signed PUTs), so nothing needs unregistering.
- aiobotocore's `_create_connector` (rebuilt with a CA bundle loaded off the loop) and botocore's
  per-instance `Loader` cache (what `_warmup.warm_botocore` fills).
- `aiohttp.helpers.get_env_proxy_for_url` and `gc.freeze()`: pinned in `tests/test_body.py`
  (`test_env_proxy_is_resolved_once_as_aiohttp_would`, `test_settle_freezes_once_and_only_when_enabled`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests import servers
from tests.faultproxy import FaultProxy
from tests.fixtures_s3 import S3_TEST_TRANSFER
from unistore._errors import TransientError, UnistoreError
from unistore._multipart import MiB
from unistore._retry import RetryPolicy
from unistore.providers._http import new_session, no_silent_resend
from unistore.providers.azure import AzureBlobProvider
from unistore.providers.s3 import S3Provider

pytestmark = pytest.mark.servers

ONE_ATTEMPT = dataclasses.replace(S3_TEST_TRANSFER, retry=RetryPolicy(attempts=1, deadline=10, base_delay=0.01))
"""No retry by unistore: whatever succeeds after a reset was resent below it."""


# -- aiohttp's resend switch -------------------------------------------------------------------


async def test_aiohttp_resends_by_default_and_unistore_turns_it_off() -> None:
    async with aiohttp.ClientSession() as plain:
        assert plain._retry_connection is True, "aiohttp's default changed: revisit _http.no_silent_resend"
    session = new_session(4)
    try:
        assert session._retry_connection is False
    finally:
        await session.close()


async def test_an_aiohttp_without_the_switch_fails_loudly() -> None:
    session = aiohttp.ClientSession()
    try:
        del session._retry_connection  # what a rename in aiohttp would look like
        with pytest.raises(UnistoreError, match="_retry_connection"):
            no_silent_resend(session)
    finally:
        await session.close()


def _aiobotocore_sessions(client: Any) -> list[aiohttp.ClientSession]:
    sessions: dict[Any, aiohttp.ClientSession] = client._endpoint.http_session._sessions
    return list(sessions.values())


async def test_every_session_unistore_makes_has_the_switch_off(
    make_s3_provider: Callable[..., S3Provider], make_azure_provider: Callable[..., AzureBlobProvider]
) -> None:
    s3 = make_s3_provider()
    await s3.upload_bytes(b"pin", "pins/s3")  # the signed PUT session
    assert await s3.exists("pins/s3")  # botocore's session, opened by its first request
    client = await s3._client()
    assert s3._put is not None
    sessions = [s3._put._session, *_aiobotocore_sessions(client)]
    azure = make_azure_provider()
    await azure.upload_bytes(b"pin", "pins/azure")
    assert azure._session is not None
    sessions.append(azure._session)
    assert len(sessions) == 3
    assert [session._retry_connection for session in sessions] == [False, False, False]


@pytest.fixture
async def proxy_to() -> AsyncIterator[Callable[[str], Awaitable[FaultProxy]]]:
    """A fault proxy in front of an endpoint URL, stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(endpoint: str) -> FaultProxy:
            return await stack.enter_async_context(FaultProxy.for_url(endpoint, seed=21))

        yield start


async def _reset_once(proxy: FaultProxy, operation: Callable[[], Any]) -> int:
    """Run `operation` (on a fresh provider: its first connection is the request's) with that
    connection reset as the request starts: it must fail, as nothing below unistore resends,
    after exactly one connection. Returns that count."""
    before = proxy.stats.connections
    proxy.reset_every, proxy.reset_budget = 1, 1
    with pytest.raises(TransientError):
        await operation()
    proxy.clear_faults()
    return proxy.stats.connections - before


async def test_a_reset_under_aiohttp_is_resent_by_default(
    s3_server: servers.S3Server, proxy_to: Callable[[str], Awaitable[FaultProxy]]
) -> None:
    """The other side of the tests below: the proxy does provoke aiohttp's resend (a plain
    session answers after a second connection), so a session that resent would be caught."""
    proxy = await proxy_to(s3_server.endpoint)
    proxy.reset_every, proxy.reset_budget = 1, 1
    async with aiohttp.ClientSession() as plain, plain.head(proxy.proxied_url(s3_server.endpoint) + "/") as response:
        assert response.status >= 200  # an answer (any) from the server, on the resent request
    assert (proxy.stats.connections, proxy.stats.resets) == (2, 1)


async def test_s3_botocore_and_signed_requests_are_not_resent(
    make_s3_provider: Callable[..., S3Provider], s3_server: servers.S3Server,
    proxy_to: Callable[[str], Awaitable[FaultProxy]],
) -> None:
    await make_s3_provider().upload_bytes(b"x" * 1024, "pins/reset")
    s3_reset_proxy = await proxy_to(s3_server.endpoint)

    def proxied() -> S3Provider:
        return make_s3_provider(endpoint_url=s3_reset_proxy.proxied_url(s3_server.endpoint), transfer=ONE_ATTEMPT)

    assert await _reset_once(s3_reset_proxy, lambda: proxied().head("pins/reset")) == 1  # HeadObject, botocore
    assert await _reset_once(s3_reset_proxy, lambda: proxied().download_bytes("pins/reset")) == 1  # GetObject
    assert await _reset_once(s3_reset_proxy, lambda: proxied().upload_bytes(b"y" * 1024, "pins/reset")) == 1  # own PUT
    assert await proxied().download_bytes("pins/reset") == b"x" * 1024  # unchanged, and reachable


async def test_azure_requests_are_not_resent(
    make_azure_provider: Callable[..., AzureBlobProvider], azurite: servers.AzuriteServer,
    proxy_to: Callable[[str], Awaitable[FaultProxy]],
) -> None:
    await make_azure_provider().upload_bytes(b"x" * 1024, "pins/reset")
    azure_reset_proxy = await proxy_to(azurite.blob_url)
    connection_string = azurite.connection_string.replace(
        azurite.blob_url, azure_reset_proxy.proxied_url(azurite.blob_url)
    )

    def proxied() -> AzureBlobProvider:
        return make_azure_provider(connection_string=connection_string, transfer=ONE_ATTEMPT)

    assert await _reset_once(azure_reset_proxy, lambda: proxied().head("pins/reset")) == 1  # SDK request
    assert await _reset_once(azure_reset_proxy, lambda: proxied().upload_bytes(b"y" * 1024, "pins/reset")) == 1
    assert await proxied().download_bytes("pins/reset") == b"x" * 1024


# -- botocore's Expect: 100-continue -----------------------------------------------------------


async def test_no_request_botocore_sends_carries_expect_continue(make_s3_provider: Callable[..., S3Provider]) -> None:
    """botocore adds `Expect: 100-continue` to a PUT/POST with a file-object body, and aiohttp then
    waits for "100 Continue" with no timeout. Every call left on botocore, recorded as sent."""
    provider = make_s3_provider()
    client = await provider._client()
    sent: list[tuple[str, dict[str, str]]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append((request.method, {k.lower(): v for k, v in request.headers.items()}))

    client.meta.events.register("before-send.s3", record)
    data = b"m" * (12 * MiB)
    await provider.upload_bytes(data, "pins/multipart")  # CreateMultipartUpload, CompleteMultipartUpload

    async def failing() -> AsyncIterator[bytes]:
        yield data[: 6 * MiB]
        raise OSError("source broke")

    with pytest.raises(OSError):
        await provider.upload_stream(failing(), "pins/aborted")  # AbortMultipartUpload
    assert await provider.download_bytes("pins/multipart") == data
    assert [o.key async for o in provider.list("pins/")] == ["pins/multipart"]
    await provider.delete("pins/multipart")
    methods = {method for method, _ in sent}
    assert {"POST", "GET", "HEAD", "DELETE"} <= methods or {"POST", "GET", "DELETE"} <= methods, methods
    assert [headers for _, headers in sent if "expect" in headers] == []


# -- aiobotocore's connector, built with a CA bundle loaded off the loop (issue #22) --------


async def test_the_off_loop_connector_is_the_one_aiobotocore_builds() -> None:
    """`_http.botocore_session_class` loads the CA bundle in a thread and then builds the
    connector aiobotocore's `_create_connector` would; it reads `_verify`, `_cert_file`,
    `_sessions`, `_max_pool_connections`, `_connector_args` and `_get_ssl_context`. Both
    connectors must agree on what matters, so an aiobotocore that changes its own fails here."""
    from aiobotocore.httpsession import AIOHTTPSession

    from unistore.providers._http import botocore_session_class

    ours_class = botocore_session_class()
    theirs, ours = AIOHTTPSession(max_pool_connections=7), ours_class(max_pool_connections=7)
    for attr in ("_verify", "_cert_file", "_sessions", "_max_pool_connections", "_connector_args"):
        assert hasattr(ours, attr), f"aiobotocore's AIOHTTPSession lost {attr}: revisit _http.NoResendSession"
    ours._ssl_ready = ours._verified_context()
    reference, built = theirs._create_connector(None), ours._create_connector(None)
    try:
        assert built.limit == reference.limit == 7
        assert isinstance(built._ssl, type(reference._ssl))
        assert built._ssl.verify_mode == reference._ssl.verify_mode
        assert built._ssl.cert_store_stats() == reference._ssl.cert_store_stats()
        assert built._ssl.cert_store_stats()["x509_ca"] > 0, "no CA certificates loaded"
        assert ours._ssl_ready is None, "the prepared context is used once"
        for name in ("_keepalive_timeout", "_force_close", "_limit_per_host", "_family"):
            assert getattr(built, name) == getattr(reference, name), name
    finally:
        await reference.close()
        await built.close()


def test_warm_botocore_fills_the_loader_cache() -> None:
    """`_warmup.warm_botocore` relies on botocore's `Loader` caching per instance: the client
    creation that follows finds the service model loaded. If that cache goes, the warm-up is
    only wasted work, and this test says so."""
    import aioboto3

    from unistore.providers._warmup import warm_botocore

    session = aioboto3.Session()
    warm_botocore(session, "s3")
    loader = session._session.get_component("data_loader")
    calls: list[str] = []
    files = loader.file_loader
    original = files.load_file

    def counted(*args: Any, **kw: Any) -> Any:
        calls.append(str(args[0]))
        return original(*args, **kw)

    files.load_file = counted
    loader.load_service_model("s3", "service-2")
    loader.load_data("partitions")
    assert not calls, f"botocore re-read {calls} after the warm-up: its loader no longer caches"
    loader.load_service_model("sqs", "service-2")  # not warmed: read from disk, so the probe sees reads
    assert calls, "the probe saw no file read: botocore's loader moved, revisit this test"
