"""The aiohttp session the providers' own requests go through (Azure's transport, S3's PUTs)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

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

    aiohttp >= 3.10 silently resends an idempotent request (PUT, GET, ...) once when its
    connection breaks: a retry layer under `unistore._retry`, invisible to its deadline and its
    logs. The session's private flag for that is cleared."""
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=pool_size, limit_per_host=pool_size, ssl=ssl_param),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=trust_env,
    )
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


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
