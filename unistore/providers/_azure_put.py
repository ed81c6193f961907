"""Azure Put Blob and Put Block as signed PUTs on the provider's aiohttp session (the one its
SDK client uses).

azure-core's pipeline spends about 1.3 ms of loop CPU on every request (a dozen policies, each a
coroutine layer), and `ContainerClient.get_blob_client` another 0.6 ms (a generated client
with its serializers, built per blob). For a 64 KiB recording chunk that is most of the cost,
and with 32 uploads in flight it adds up to 60 ms of lateness in one loop turn. Single puts
and blocks have one shape each, so they are built and signed here; commits, reads, listings
and SAS stay on the SDK, whose client this path takes its settings from:

- the container URL, the API version and the credential of the provider's `ContainerClient`,
  so the three auth modes are the SDK's own: Shared Key (account key or connection string),
  a bearer token from the credential (managed identity), or a SAS query (connection string);
- errors are raised as azure-core's `HttpResponseError` with the service's error code, and
  go through the provider's one error map.

Shared Key signing follows the Blob service's "Authorize with Shared Key" rules (version
2009-09-19 and later), and is tested against the SDK's own policy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from ._http import error_fields, put_body

if TYPE_CHECKING:
    import aiohttp

STORAGE_SCOPE = "https://storage.azure.com/.default"
_TOKEN_MARGIN_S = 300.0
"""A cached bearer token is renewed this long before it expires."""
_SIGNED = (
    "content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
    "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range",
)


def block_query(block_id: str) -> dict[str, str]:
    """The query of a Put Block, URL-encoded as sent: the id in base64, as the SDK sends it (and
    as its `commit_block_list` names it again)."""
    encoded = base64.b64encode(block_id.encode("utf-8")).decode("ascii")
    return {"comp": "block", "blockid": urllib.parse.quote(encoded, safe="")}


def blob_path(container_path: str, key: str) -> str:
    """The blob's URL path, encoded as the SDK encodes it ('/' and '~' kept)."""
    return f"{container_path.rstrip('/')}/{urllib.parse.quote(key, safe='~/')}"


def shared_key_signature(
    account: str, key: bytes, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]
) -> str:
    """The `Authorization` value for `headers` of a request to `path` (already URL-encoded, as
    sent); header names are compared in lower case, as the service does."""
    values = {name.lower(): value for name, value in headers.items()}
    if values.get("content-length") == "0":
        values["content-length"] = ""
    lines = [method] + [values.get(name, "") for name in _SIGNED]
    canonical_headers = "".join(
        f"{name}:{values[name]}\n" for name in sorted(n for n in values if n.startswith("x-ms-"))
    )
    resource = f"/{account}{path}" + "".join(
        f"\n{name.lower()}:{urllib.parse.unquote(value)}" for name, value in sorted(query.items())
    )
    to_sign = "\n".join(lines) + "\n" + canonical_headers + resource
    signature = base64.b64encode(hmac.digest(key, to_sign.encode("utf-8"), hashlib.sha256)).decode()
    return f"SharedKey {account}:{signature}"


DIGEST_HEADER = {"md5": "Content-MD5", "crc64": "x-ms-content-crc64"}
"""The header that carries each digest kind on a request, and echoes it on the answer."""


class Refused(Exception):
    """The service's error answer to a signed request (mapped by `_azure_errors.map_error` as
    the SDK's `HttpResponseError` is: `status_code`, `error_code`, `message`)."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message or f"HTTP {status}")
        self.status_code, self.error_code, self.message = status, code, message or f"HTTP {status}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    code: str | None
    message: str

    def raise_for_status(self) -> None:
        if self.status >= 300:
            raise Refused(self.status, self.code, self.message)

    def echoed(self, kind: str) -> bytes | None:
        """The digest of `kind` the service echoed, if any."""
        stored = self.headers.get(DIGEST_HEADER[kind])
        return base64.b64decode(stored) if stored else None


class BlobPut:
    """Put Blob requests to one container, authorised like the SDK client they come from."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        container: Any,
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        url = urllib.parse.urlsplit(container.url)
        self._session = session
        self._origin = f"{url.scheme}://{url.netloc}"
        self._path = url.path
        self._sas = url.query  # a SAS from the connection string rides on every URL
        self._version: str = container.api_version
        self._timeout = timeout
        credential = container.credential
        self._account: str | None = getattr(credential, "account_name", None)
        secret = getattr(credential, "account_key", None)
        self._key = base64.b64decode(secret) if self._account and secret else None
        self._tokens = credential if self._key is None and hasattr(credential, "get_token") else None
        self._token: tuple[str, float] | None = None

    @property
    def usable(self) -> bool:
        """False for a credential this path does not know; the SDK path is used then."""
        return self._key is not None or self._tokens is not None or bool(self._sas)

    async def _bearer(self) -> str:
        cached = self._token
        if cached is not None and cached[1] - _TOKEN_MARGIN_S > time.time():
            return cached[0]
        assert self._tokens is not None
        token = await self._tokens.get_token(STORAGE_SCOPE)
        value: str = token.token
        self._token = (value, float(token.expires_on))
        return value

    async def put(self, key: str, data: bytes, headers: dict[str, str]) -> Answer:
        """One Put Blob of `data` as a block blob; `headers` (lower-case names) are the blob's
        properties, metadata and conditions. Errors come back as an `Answer`, not raised."""
        return await self._send(key, {}, data, {**headers, "x-ms-blob-type": "BlockBlob"})

    async def put_block(self, key: str, block_id: str, data: bytes, headers: dict[str, str]) -> Answer:
        """One Put Block of `data` under `block_id` (before base64); `headers` carry its digest."""
        return await self._send(key, block_query(block_id), data, headers)

    async def _send(self, key: str, query: dict[str, str], data: bytes, headers: dict[str, str]) -> Answer:
        path = blob_path(self._path, key)
        signed = dict(headers)
        signed["x-ms-version"] = self._version
        signed["x-ms-date"] = formatdate(usegmt=True)
        signed["content-length"] = str(len(data))
        if self._key is not None and self._account is not None:
            signed["authorization"] = shared_key_signature(self._account, self._key, "PUT", path, query, signed)
        elif self._tokens is not None:
            signed["authorization"] = "Bearer " + await self._bearer()
        params = [f"{name}={value}" for name, value in query.items()] + ([self._sas] if self._sas else [])
        url = self._origin + path + ("?" + "&".join(params) if params else "")
        status, answer, body = await put_body(self._session, url, data, signed, socket_timeouts=self._timeout)
        if status < 300:
            return Answer(status, answer, None, "")
        code, message = error_fields(body)
        return Answer(status, answer, answer.get("x-ms-error-code") or code, message or "")
