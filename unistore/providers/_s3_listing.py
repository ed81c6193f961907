"""S3's listings, page by page, and its answers as `ObjectInfo`: ListObjectsV2 for `list`,
ListMultipartUploads for `cleanup_incomplete_uploads`, HeadObject's headers for `head`. Each
page is one request through `unistore._request.call`, retried on its own."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import _integrity
from .._request import call
from .._types import ObjectInfo, unquote_etag

if TYPE_CHECKING:
    from .s3 import S3Provider


def head_info(key: str, response: dict[str, Any]) -> ObjectInfo:
    """A HeadObject (or GetObject) answer as `ObjectInfo`."""
    etag = unquote_etag(response.get("ETag"))
    return ObjectInfo(
        key=key,
        size=int(response.get("ContentLength") or 0),
        etag=etag,
        content_type=response.get("ContentType"),
        last_modified=response.get("LastModified"),
        metadata=dict(response.get("Metadata") or {}),
        checksum=_integrity.s3_crc32_checksum(response.get("ChecksumCRC32")) or _integrity.s3_etag_checksum(etag),
        tier=response.get("StorageClass") or "STANDARD",  # S3 omits the header for STANDARD
    )


async def list_objects(provider: S3Provider, prefix: str) -> AsyncIterator[ObjectInfo]:
    """Every object under `prefix`, `provider.list_page_size` keys a page. Listings carry no
    content type or user metadata."""
    params: dict[str, Any] = {"Bucket": provider.bucket, "Prefix": prefix, "MaxKeys": provider.list_page_size}
    while True:
        page = await call(provider, "ListObjectsV2", None, provider._api, "list_objects_v2", params)
        for item in page.get("Contents") or []:
            etag = unquote_etag(item.get("ETag"))
            yield ObjectInfo(
                key=item["Key"], size=int(item.get("Size") or 0), etag=etag,
                last_modified=item.get("LastModified"), checksum=_integrity.s3_etag_checksum(etag),
                tier=item.get("StorageClass") or "STANDARD",
            )
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
        params["ContinuationToken"] = token


async def stale_uploads(
    provider: S3Provider, prefix: str, older_than: float
) -> list[tuple[str, str, datetime | None]]:
    """(key, upload id, when it started) of every multipart upload under `prefix` started more
    than `older_than` seconds ago (all of them for 0 or less, and those S3 gives no date)."""
    now = time.time()
    stale: list[tuple[str, str, datetime | None]] = []
    params: dict[str, Any] = {"Bucket": provider.bucket, "Prefix": prefix}
    while True:
        page = await call(provider, "ListMultipartUploads", None, provider._api, "list_multipart_uploads", params)
        for upload in page.get("Uploads") or []:
            started: datetime | None = upload.get("Initiated")
            if older_than <= 0 or started is None or now - started.timestamp() >= older_than:
                stale.append((upload["Key"], upload["UploadId"], started))
        if not page.get("IsTruncated"):
            return stale
        params["KeyMarker"] = page.get("NextKeyMarker", "")
        params["UploadIdMarker"] = page.get("NextUploadIdMarker", "")
