"""The aiohttp session the providers' own requests go through (Azure's transport, S3's PUTs)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp


def new_session(pool_size: int, ssl_param: bool | ssl.SSLContext = True) -> aiohttp.ClientSession:
    """One pool per provider, `pool_size` connections. `auto_decompress=False` and no cookies,
    as azure-core's own transport sets them; proxies from the environment (HTTPS_PROXY), as
    botocore and azure-core honour them.

    aiohttp >= 3.10 silently resends an idempotent request (PUT, GET, ...) once when its
    connection breaks: a retry layer under `unistore._retry`, invisible to its deadline and its
    logs. The session's private flag for that is cleared."""
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=pool_size, limit_per_host=pool_size, ssl=ssl_param),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=True,
    )
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session
