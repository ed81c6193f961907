"""S3 object bodies (PutObject, UploadPart) as signed PUTs on the provider's own aiohttp session.

botocore spends about 1.1 ms of loop CPU on every request before a byte is sent: endpoint rules
evaluated afresh for every new key, parameter validation, serialisation, event hooks, a
user-agent rebuilt, signing through generic canonicalisation. For a 64 KiB object that is twice
the cost of sending it. The body requests are one shape only (a PUT of bytes to a known URL with
a handful of headers), so they are built and signed here, in about a tenth of that time; every
other call (multipart start/complete/abort, reads, listings, presigning) stays on botocore.

What is taken from botocore, so that both paths agree:
- the credentials: the session's own chain (static keys, profile, web identity, instance role),
  frozen per request, so refreshes happen where botocore does them;
- the bucket's base URL and addressing style: read once from a presigned URL botocore builds
  locally, so the endpoint rules (path or virtual host, region, FIPS, custom endpoint) are
  botocore's;
- the error mapping: an error answer is parsed into botocore's `ClientError` shape and goes
  through `S3Provider.map_error` (`unistore._request.mapped`), like every SDK error.

What it does not do, refused when the provider is built (`check_bucket_name`) or an upload starts
(`refuse_encryption_metadata`), naming the fix: access-point, Multi-Region Access Point and
Outposts ARNs as the bucket (their URL shapes and SigV4a), S3 Express directory buckets (their
session authentication), and per-request server-side encryption headers (SSE-C, SSE-KMS): the
objects are encrypted by the bucket's default encryption, which S3 applies to every put.

Signing is AWS Signature Version 4 with `UNSIGNED-PAYLOAD` (as botocore with
`payload_signing_enabled=False`): the body is bound to the signature through its checksum
header (`Content-MD5` or `x-amz-checksum-crc32`), which is signed and which the service
verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ._http import error_fields, put_body

if TYPE_CHECKING:
    import aiohttp

_ALGORITHM = "AWS4-HMAC-SHA256"
_UNSIGNED = "UNSIGNED-PAYLOAD"
_USER_AGENT = "unistore (signed PUT)"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never show the secret or the token
        return f"Credentials(access_key={self.access_key!r}, secret_key=***, token={'***' if self.token else None})"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    error: dict[str, Any] | None
    """botocore's error-response shape (`{"Error": {...}, "ResponseMetadata": {...}}`) for an
    error status, else None."""


_REQUEST_HEADER_NAMES = ("x_amz_", "server_side_encryption", "sse_customer_", "ssekms")


def refuse_encryption_metadata(metadata: Mapping[str, str]) -> None:
    """Metadata names become `x-amz-meta-<name>` headers, never request headers: a name such as
    `x_amz_server_side_encryption` or `sse_customer_key` asks for something S3 would silently
    store as user metadata instead. Refused, naming what does encrypt the objects."""
    for name in metadata:
        if name.lower().startswith(_REQUEST_HEADER_NAMES):
            raise ConfigError(
                f"metadata name {name!r} looks like an S3 request header, but metadata is stored as "
                f"x-amz-meta-{name.lower()} and sets nothing; unistore sends no SSE-C or SSE-KMS "
                "headers: encrypt the recordings with the bucket's default encryption (SSE-S3 or "
                "SSE-KMS, set on the bucket), which S3 applies to every upload"
            )


def quote_key(key: str) -> str:
    """A key as it goes into the URL path (botocore: percent-encoded UTF-8, '/' and '~' kept)."""
    return urllib.parse.quote(key, safe="/~")


def _quote_query(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


class Signer:
    """SigV4 for one service region; the derived signing key is cached per day and secret."""

    def __init__(self, region: str, service: str = "s3") -> None:
        self.region = region
        self.service = service
        self._key_cache: tuple[str, str, bytes] | None = None

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key_cache
        if cached is not None and cached[0] == day and cached[1] == secret:
            return cached[2]
        key = hmac.digest(("AWS4" + secret).encode(), day.encode(), "sha256")
        for part in (self.region, self.service, "aws4_request"):
            key = hmac.digest(key, part.encode(), "sha256")
        self._key_cache = (day, secret, key)
        return key

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        query: Mapping[str, str],
        headers: dict[str, str],
        creds: Credentials,
        now: float | None = None,
    ) -> dict[str, str]:
        """`headers` plus the date, payload, token and Authorization headers. `path` is already
        URL-encoded (S3 signs the path as sent); `headers` names must be lower case."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
        day = stamp[:8]
        signed = dict(headers)
        signed["host"] = host
        signed["x-amz-date"] = stamp
        signed["x-amz-content-sha256"] = _UNSIGNED
        if creds.token:
            signed["x-amz-security-token"] = creds.token
        names = sorted(signed)
        canonical_headers = "".join(f"{n}:{' '.join(str(signed[n]).split())}\n" for n in names)
        signed_names = ";".join(names)
        canonical_query = "&".join(
            f"{_quote_query(k)}={_quote_query(v)}" for k, v in sorted(query.items())
        )
        canonical = "\n".join(
            (method, path, canonical_query, canonical_headers, signed_names, _UNSIGNED)
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            (_ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        signature = hmac.new(self._signing_key(creds.secret_key, day), to_sign.encode(), "sha256").hexdigest()
        signed["authorization"] = (
            f"{_ALGORITHM} Credential={creds.access_key}/{scope}, SignedHeaders={signed_names}, "
            f"Signature={signature}"
        )
        del signed["host"]  # aiohttp sends Host from the URL; it was signed as the same value
        return signed


def parse_error(status: int, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """An S3 error answer in botocore's `ClientError` response shape."""
    code, message = error_fields(body)
    return {
        "Error": {"Code": code or str(status), "Message": message or ""},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": dict(headers)},
    }


class SignedPut:
    """PUTs of bodies to one bucket. `base` is the bucket's URL (scheme, host and path prefix,
    without a trailing '/'), as botocore addresses it."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        signer: Signer,
        timeout: aiohttp.ClientTimeout,
        proxy: str | None = None,
    ):
        parsed = urllib.parse.urlsplit(base)
        self._session = session
        self._scheme_host = f"{parsed.scheme}://{parsed.netloc}"
        self._host = parsed.netloc
        self._prefix = parsed.path.rstrip("/")
        self._signer = signer
        self._timeout = timeout
        self._proxy = proxy

    async def put(
        self,
        key: str,
        data: bytes,
        headers: dict[str, str],
        creds: Credentials,
        query: Mapping[str, str] | None = None,
    ) -> Answer:
        """One PUT of `data` to `key`; an error status is returned (with its parsed body), not
        raised. Transport failures raise aiohttp's exceptions."""
        path = f"{self._prefix}/{quote_key(key)}"
        query = query or {}
        signed = self._signer.sign("PUT", self._host, path, query, headers, creds)
        signed["user-agent"] = _USER_AGENT
        url = self._scheme_host + path
        if query:
            url += "?" + "&".join(f"{_quote_query(k)}={_quote_query(v)}" for k, v in sorted(query.items()))
        status, answer, body = await put_body(
            self._session, url, data, signed, socket_timeouts=self._timeout, proxy=self._proxy
        )
        return Answer(status, answer, None if status < 300 else parse_error(status, body, answer))
