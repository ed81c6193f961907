"""The aiohttp session the providers' own requests go through (Azure's transport, S3's PUTs)."""

from __future__ import annotations

import asyncio
import functools
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._body import part_body
from .._errors import UnistoreError
from .._io import pwrite_all

if TYPE_CHECKING:
    import aiohttp


def new_session(
    pool_size: int, ssl_param: bool | ssl.SSLContext = True, *, trust_env: bool = False
) -> aiohttp.ClientSession:
    """One pool per provider, `pool_size` connections. `auto_decompress=False` and no cookies,
    as azure-core's own transport sets them.

    `trust_env` is off unless asked for: with it, aiohttp looks up proxies and netrc in a
    worker thread on every request (two thread hops per request, a third of a small upload's
    client CPU). A caller that knows its one service host asks `env_proxy` once instead (S3's
    signed PUTs); the Azure transport keeps `trust_env`, as azure-core's own does, because
    its client resolves the account URL (and so the proxy's NO_PROXY match) itself.

    The session never resends a request by itself (`no_silent_resend`)."""
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=pool_size, limit_per_host=pool_size, ssl=ssl_param),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=trust_env,
    )
    no_silent_resend(session)
    return session


def no_silent_resend(session: aiohttp.ClientSession) -> None:
    """aiohttp (>= 3.10) resends an idempotent request (PUT, GET, HEAD, DELETE) once when its
    connection breaks: a retry layer under `unistore._retry`, invisible to its deadline and its
    logs. Its switch (3.11+) is a private attribute, cleared here; an aiohttp without it fails loudly
    (and `tests/test_sdk_pins.py` fails first), never silently resending again."""
    import aiohttp

    if not isinstance(getattr(session, "_retry_connection", None), bool):
        raise UnistoreError(
            f"aiohttp {aiohttp.__version__} has no ClientSession._retry_connection, so unistore cannot turn "
            "off its silent resend of idempotent requests: install an aiohttp in the range unistore "
            "supports (pip install 'unistore[all]' resolves one)"
        )
    session._retry_connection = False


@functools.cache
def botocore_session_class() -> type[Any]:
    """aiobotocore's HTTP session (`AioConfig(http_session_cls=...)`) with the same switch
    cleared on every aiohttp session it opens (one per proxy URL), so that botocore's calls
    (HeadObject, GetObject, DeleteObject, listings, aborts) are not resent either."""
    from aiobotocore.httpsession import AIOHTTPSession

    if not callable(getattr(AIOHTTPSession, "_get_session", None)):
        raise UnistoreError(
            "aiobotocore's AIOHTTPSession no longer opens its sessions in _get_session, so unistore "
            "cannot turn off their silent resend: install an aioboto3 in the range unistore supports"
        )

    class NoResendSession(AIOHTTPSession):  # type: ignore[misc]  # aiobotocore is untyped
        _ssl_ready: ssl.SSLContext | None = None

        async def _get_session(self, proxy_url: str | None) -> aiohttp.ClientSession:
            if proxy_url is None and None not in self._sessions and self._verify and self._cert_file is None:
                # aiobotocore loads the CA bundle into a new SSL context inline, even for an
                # http:// endpoint: ~20 ms of loop CPU on the first request (issue #22)
                self._ssl_ready = await asyncio.to_thread(self._verified_context)
            session: aiohttp.ClientSession = await super()._get_session(proxy_url)
            no_silent_resend(session)
            return session

        def _verified_context(self) -> ssl.SSLContext:
            from botocore.httpsession import get_cert_path

            context: ssl.SSLContext = self._get_ssl_context()
            ca_certs = get_cert_path(self._verify)
            if ca_certs:
                context.load_verify_locations(ca_certs, None, None)
            return context

        def _create_connector(self, proxy_url: str | None) -> aiohttp.TCPConnector:
            context, self._ssl_ready = self._ssl_ready, None
            if proxy_url is not None or context is None:
                return super()._create_connector(proxy_url)  # type: ignore[no-any-return]
            import aiohttp

            # aiobotocore's own connector (`AIOHTTPSession._create_connector`), given that context
            return aiohttp.TCPConnector(limit=self._max_pool_connections, ssl=context, **self._connector_args)

    return NoResendSession


async def close_session(session: aiohttp.ClientSession, tls: bool) -> None:
    """Close `session`. A request cancelled mid-body leaves its TLS connection in a graceful
    shutdown that needs the loop a moment longer; without the pause, an event loop closed right
    after `aclose()` (tests, short scripts) leaks the socket (aiohttp's "graceful shutdown"
    advice)."""
    await session.close()
    if tls:
        await asyncio.sleep(0.1)


def env_proxy(url: str) -> str | None:
    """The proxy the environment sets for `url` (HTTPS_PROXY / HTTP_PROXY, honouring NO_PROXY,
    credentials from the proxy URL or netrc), as aiohttp's `trust_env` would pick it; None for
    none. Reads files: call it in a worker thread."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:
        return None
    if auth is not None and not proxy.user:
        proxy = proxy.with_user(auth.login).with_password(auth.password)
    return str(proxy)


async def put_body(
    session: aiohttp.ClientSession,
    url: str,
    data: bytes,
    headers: Mapping[str, str],
    *,
    socket_timeouts: aiohttp.ClientTimeout,
    proxy: str | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    """One PUT of `data` (a sliced body, `unistore._body`) to `url`, already URL-encoded and sent
    as is: the signature covers the path exactly. Returns the status, headers and body, read whole
    so the connection goes back to the pool. `socket_timeouts` are aiohttp's connect/read
    timeouts; the request's overall deadline is the caller's (`_deadline.with_request_deadline`).
    aiohttp adds no Content-Type of its own (it would become the object's). Transport failures
    raise aiohttp's exceptions."""
    from yarl import URL

    async with session.put(
        URL(url, encoded=True),
        data=part_body(data),
        headers=dict(headers),
        timeout=socket_timeouts,
        proxy=proxy,
        skip_auto_headers=() if "content-type" in headers else ("Content-Type",),
    ) as response:
        return response.status, response.headers, await response.read()


def error_fields(body: bytes) -> tuple[str | None, str | None]:
    """`Code` and `Message` of an XML error answer (S3's and Azure's share the shape); None for a
    body that has none (HEAD answers, proxies' HTML pages)."""
    if not body:
        return None, None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None, None
    fields: dict[str, str] = {}
    for child in root:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag in ("Code", "Message") and child.text:
            fields[tag] = child.text.strip()
    return fields.get("Code"), fields.get("Message")


WRITE_BATCH = 4 * 1024 * 1024
"""A ranged download gathers this much of a response before one `pwritev` in a worker thread."""
_IOV_MAX = 512
"""Buffers per `pwritev` at most (Linux allows 1024)."""


async def drain_to_file(response: Any, fd: int, offset: int) -> int:
    """Write a response body (an aiohttp response, or botocore's body wrapping one) into `fd`
    from `offset`, in the chunks aiohttp received (`readany`), batched into one `pwritev` per
    `WRITE_BATCH` in a worker thread; returns the bytes written. `read(n)` would join the chunks
    into one buffer on the loop thread first: a copy into fresh memory, the longest loop step
    of a download. The connection goes back to the pool at the end, and is dropped on failure."""
    written, held = 0, 0
    batch: list[bytes] = []
    try:
        while True:
            chunk: bytes = await response.content.readany()
            if chunk:
                batch.append(chunk)
                held += len(chunk)
            if held and (not chunk or held >= WRITE_BATCH or len(batch) >= _IOV_MAX):
                await asyncio.to_thread(pwrite_all, fd, batch, offset + written)
                written += held
                batch, held = [], 0
            if not chunk:
                break
    except BaseException:
        response.close()  # unread bytes: drop the connection
        raise
    response.release()
    return written
