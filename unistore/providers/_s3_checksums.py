"""S3's digests on the wire: the header each PutObject and UploadPart carries, and what S3 must
echo for the upload to count as verified (`unistore._integrity.verify` does the comparing)."""

from __future__ import annotations

from collections.abc import Mapping

from .. import _integrity
from .._errors import IntegrityError
from .._types import Kind, unquote_etag


def checksum_headers(kind: Kind, digest: bytes) -> dict[str, str]:
    if kind == "crc32":
        return {"x-amz-checksum-crc32": _integrity.b64(digest)}
    return {"content-md5": _integrity.b64(digest)}


def not_echoed(provider: str, key: str, said: str) -> IntegrityError:
    return IntegrityError(
        f"{said}, so the upload cannot be verified", provider=provider, key=key, code="ChecksumNotEchoed",
        hint="this S3-compatible server lacks flexible checksums: set AWS_S3_CHECKSUM=md5",
    )


def verify_put(provider: str, key: str, what: str, kind: Kind, digest: bytes, answer: Mapping[str, str]) -> None:
    """Compare our digest with the one S3 returned. For CRC32, the echoed
    `x-amz-checksum-crc32` (a server that ignores the header echoes nothing, and then nothing
    vouches for the bytes: refused, naming the fix). For MD5, the ETag when it is one (under
    SSE-KMS it is not, and then S3's own Content-MD5 check is what vouches for the bytes)."""
    if kind == "crc32":
        echoed = answer.get("x-amz-checksum-crc32")
        if echoed is None:
            raise not_echoed(provider, key, f"{what}: the server did not confirm the CRC32 it stored")
        _integrity.verify(provider, key, what, _integrity.b64(digest), echoed)
        return
    etag = (unquote_etag(answer.get("ETag")) or "").lower()
    if _integrity.MD5_ETAG.match(etag):
        _integrity.verify(provider, key, what, digest.hex(), etag)


def verify_multipart(provider: str, key: str, crc: bool, expected: str, stored: str | None, etag: str | None) -> None:
    """A completed multipart upload: with CRC32 parts, the composite CRC32 S3 stored must be
    ours; with MD5 parts, the multipart ETag, when the ETag is one (not under SSE-KMS)."""
    if crc:
        if stored is None:
            raise not_echoed(provider, key, "multipart upload: the server did not confirm the parts' composite CRC32")
        _integrity.verify(provider, key, "multipart upload", expected, stored)
    elif etag and _integrity.MULTIPART_ETAG.match(etag.lower()):
        _integrity.verify(provider, key, "multipart upload", expected, etag.lower())
