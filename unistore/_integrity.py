"""Integrity: compare what the service says it stored with what we sent.

Digests are computed during the single read of the source, in worker threads (hashlib and
zlib release the GIL for large buffers, so hashing overlaps the network). A provider never
relies on the server refusing bad bytes alone (Azurite #1383: some versions do not check): it
checks the digest the server reports back.

Two kinds, chosen per upload (`PutOptions.digest`), from what the provider accepts:
- `crc32`: 4 bytes, big-endian, as S3's `x-amz-checksum-crc32`. zlib computes it at ~3.7 GiB/s
  here against ~0.7 GiB/s for MD5: the cheapest digest a service verifies and echoes.
- `md5`: what Azure verifies (`Content-MD5`) and what every S3-compatible server does.
A fan-out uses one kind that every provider accepts, so each chunk is hashed once for all.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from typing import Literal

from ._errors import IntegrityError

Kind = Literal["md5", "crc32"]
KINDS: tuple[Kind, ...] = ("md5", "crc32")


def md5(data: bytes | memoryview) -> bytes:
    import hashlib  # loads OpenSSL: imported at the first digest, not with unistore

    return hashlib.md5(data, usedforsecurity=False).digest()


def crc32(data: bytes | memoryview) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def digest(kind: Kind, data: bytes | memoryview) -> bytes:
    return crc32(data) if kind == "crc32" else md5(data)


def label(kind: Kind, value: bytes) -> str:
    """`ObjectInfo.checksum` of a single put: `md5:<hex>` or `crc32:<hex>`."""
    return f"{kind}:{value.hex()}"


def composite_crc32(part_crcs: Sequence[bytes]) -> str:
    """S3's COMPOSITE multipart checksum: base64 CRC32 of the concatenated part CRC32s, '-N'."""
    return f"{b64(crc32(b''.join(part_crcs)))}-{len(part_crcs)}"


def parts_label(kind: Kind, part_digests: Sequence[bytes]) -> str:
    """`ObjectInfo.checksum` of a multipart upload: `md5-parts:<S3 multipart ETag>` or
    `crc32-parts:<S3 composite CRC32>`, both computed from the parts' digests."""
    if kind == "crc32":
        return "crc32-parts:" + composite_crc32(part_digests)
    return "md5-parts:" + multipart_etag(list(part_digests))


def common_kind(accepted: Sequence[Sequence[Kind]]) -> Kind | None:
    """The kind a fan-out hashes once for every provider: the first provider's most preferred
    kind that all the others accept too; None when they share none."""
    if not accepted:
        return None
    for kind in accepted[0]:
        if all(kind in kinds for kinds in accepted[1:]):
            return kind
    return None


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def multipart_etag(part_md5s: list[bytes]) -> str:
    """S3's multipart ETag: MD5 of the concatenated part MD5s, then '-' and the part count."""
    import hashlib

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
