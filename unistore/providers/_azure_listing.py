"""Azure's listings, page by page, and blob properties as `ObjectInfo` (for `list` and `head`).
Each List Blobs page is one request through `unistore._request.call`, retried on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from .._request import call
from .._types import ObjectInfo, unquote_etag

if TYPE_CHECKING:
    from azure.storage.blob import BlobProperties

    from .azure import AzureBlobProvider


def tier_name(tier: object) -> str | None:
    """The SDK reports a blob's tier as a `StandardBlobTier` (a str enum) or a plain string."""
    if not tier:
        return None
    value = getattr(tier, "value", tier)
    return str(value)


def blob_info(props: BlobProperties) -> ObjectInfo:
    settings = props.content_settings
    md5 = settings.content_md5 if settings is not None else None
    etag = props.etag
    return ObjectInfo(
        key=props.name,
        size=int(props.size or 0),
        etag=unquote_etag(etag),
        content_type=settings.content_type if settings is not None else None,
        last_modified=props.last_modified,
        metadata=dict(props.metadata or {}),
        checksum=("md5:" + bytes(md5).hex()) if md5 else None,
        tier=tier_name(props.blob_tier),
    )


async def list_blobs(provider: AzureBlobProvider, prefix: str) -> AsyncIterator[ObjectInfo]:
    """Every blob under `prefix`, with its metadata, `provider.list_page_size` blobs a page."""
    token: str | None = None
    while True:
        items, token = await call(provider, "List Blobs", None, _page, provider, prefix, token)
        for props in items:
            yield blob_info(props)
        if not token:
            return


async def _page(
    provider: AzureBlobProvider, prefix: str, token: str | None
) -> tuple[Sequence[BlobProperties], str | None]:
    pager = (await provider._client()).list_blobs(
        name_starts_with=prefix or None, include=["metadata"], results_per_page=provider.list_page_size
    ).by_page(continuation_token=token)
    items = [props async for props in await anext(pager)]
    return items, pager.continuation_token  # type: ignore[attr-defined]
