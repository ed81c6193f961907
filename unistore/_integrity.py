"""Integrity: compare what the service says it stored with what we sent.

Digests are computed during the single read of the source, in worker threads (hashlib
releases the GIL for large buffers, so hashing overlaps the network). Azurite does not
validate Content-MD5 on upload (Azurite #1383), so a provider never relies on the server
refusing bad bytes: it checks the digest the server reports back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from ._errors import IntegrityError


def md5(data: bytes | memoryview) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def multipart_etag(part_md5s: list[bytes]) -> str:
    """S3's multipart ETag: MD5 of the concatenated part MD5s, then '-' and the part count."""
    joined = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return f"{joined}-{len(part_md5s)}"


def etag_to_md5(etag: str | None) -> bytes | None:
    """An S3 single-put ETag is the hex MD5 (quoted); anything else (multipart, KMS) is None."""
    if not etag:
        return None
    value = etag.strip('"')
    if len(value) != 32:
        return None
    try:
        return binascii.unhexlify(value)
    except binascii.Error:
        return None


def verify(provider: str, key: str, what: str, sent: str | bytes, stored: str | bytes | None) -> None:
    """Raise `IntegrityError` when the service reported a digest and it differs from ours.

    A service that reports nothing cannot be checked here; callers decide whether that is
    acceptable (S3 always reports an ETag; Azure reports Content-MD5 for blocks and puts).
    """
    if stored is None:
        return
    if stored != sent:
        raise IntegrityError(
            f"{what}: the service stored other bytes than were sent (digest mismatch); "
            "the upload was not accepted",
            provider=provider,
            key=key,
            code="DigestMismatch",
            hint="retry; if it persists, check proxies or middleboxes that rewrite request bodies",
        )
