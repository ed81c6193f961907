"""The plain data every layer shares: what a service holds (`ObjectInfo`), how a caller asks
for an upload (`UploadOptions`) and how a provider receives it (`PutOptions`), and what a
provider declares about itself (`ProviderInfo`).

A leaf module: it imports nothing else of unistore, so core modules and providers can both
depend on it without depending on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypedDict

MiB = 1024 * 1024

Kind = Literal["md5", "crc32", "crc64"]
"""A digest kind a put or part can carry (see `unistore._integrity`)."""

ProgressCallback = Callable[[str, int, "int | None"], None]
"""Called as `(provider name, bytes done, total bytes or None)` as parts complete."""

Tier = str | Mapping[str, str]
"""The `tier=` of an upload: one value for every provider, or one per provider name (see
`unistore._tiers`)."""


class UploadOptions(TypedDict, total=False):
    """The keyword options every upload takes: `Storage.upload_file`, `upload_bytes`,
    `upload_stream` and `open_writer`, their `SyncStorage` twins, and each provider's uploads.
    Written once here so the layers cannot drift apart; a name not listed is a `TypeError`
    (`unistore._validate.check_upload_options`), as a misspelt keyword argument would be."""

    content_type: str | None
    """The object's Content-Type; None: guessed from a file's name, else the service default."""
    metadata: Mapping[str, str] | None
    """User metadata (ASCII names and values), stored with every copy."""
    overwrite: bool | None
    """False: refuse to replace an existing object (conditional create); None: the
    `STORAGE_OVERWRITE` setting."""
    allow_empty: bool
    """Store a 0-byte source instead of refusing it (`EmptySourceError`). Default False."""
    progress: ProgressCallback | None
    """Called with each provider's progress as parts complete."""
    tier: Tier | None
    """The storage tier (S3 storage class, Azure access tier, or a generic name); None: the
    provider's configured default."""


UPLOAD_OPTION_NAMES: frozenset[str] = frozenset(UploadOptions.__annotations__)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a service says it holds under a key."""

    key: str
    size: int
    etag: str | None = None
    """The entity tag without quotes, as the service sent it otherwise (one form everywhere)."""
    content_type: str | None = None
    last_modified: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    checksum: str | None = None
    """The digest the service vouched for, prefixed by its kind: `md5:<hex>`, `crc32:<hex>`,
    `crc64:<hex>`, or `<kind>-parts:...` for a multipart upload (an S3 multipart ETag is not
    the object's MD5)."""
    tier: str | None = None
    """The storage tier the service reports, in its own spelling (S3 storage class such as
    `STANDARD_IA`, Azure access tier such as `Cool`; local and memory: the generic name);
    None when the service does not say."""


def unquote_etag(etag: str | None) -> str | None:
    """The one form of `ObjectInfo.etag` on every provider: without its quotes (and without a
    weak validator's `W/`), its case as the service sent it (Azure's are upper-case hex)."""
    if not etag:
        return None
    return etag.removeprefix("W/").strip('"') or None


@dataclass(frozen=True)
class PutOptions:
    content_type: str | None
    metadata: dict[str, str]
    overwrite: bool
    allow_empty: bool
    digest: Kind = "md5"
    """The digest every put and part of this upload carries (see `unistore._integrity`)."""
    tier: str | None = None
    """The tier to store the object in, already in this provider's spelling (see
    `unistore._tiers`); None: the service's default, and no tier header is sent."""


@dataclass(frozen=True)
class PartLimits:
    """A service's upload limits (S3: 10,000 parts of 5 MiB-5 GiB and single puts up to 5 GiB;
    Azure: 50,000 blocks of up to 4000 MiB and Put Blob up to 5000 MiB)."""

    max_parts: int = 10_000
    min_part: int = 5 * MiB
    max_part: int = 5 * 1024 * MiB
    max_single_put: int = 5 * 1024 * MiB
    """Largest object one request may store: larger ones always go in parts."""


@dataclass(frozen=True)
class ProviderInfo:
    """What a provider declares to the manager (`Provider.info`)."""

    label: str = "storage"
    """Operator-facing name used in the INFO log lines ("AWS S3", "Azure Blob Storage")."""
    digests: tuple[Kind, ...] = ("md5",)
    """Digest kinds the service can verify, most preferred first; an upload uses the first, or,
    in a fan-out, the one the fan-out computes for all when this provider accepts it."""
    limits: PartLimits = PartLimits()
    cleans_incomplete_uploads: bool = False
    """Whether the provider has `cleanup_incomplete_uploads()` (`IncompleteUploadCleaner`)."""
    no_cleanup_note: str = "no incomplete-upload cleanup for this provider"
    """What `unistore cleanup` says for a provider that has none."""
    one_shot_max: int = 16 * MiB
    """Largest upload sent in one request (`STORAGE_MULTIPART_THRESHOLD`, capped by the
    service's `max_single_put`); larger ones go in parts."""
    part_size: int = 8 * MiB
    """The part size this provider starts with (`STORAGE_CHUNK_SIZE`, at least `min_part`): a
    fan-out reads its source in chunks of the largest one."""
