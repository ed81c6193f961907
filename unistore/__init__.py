"""unistore: put meeting recordings into AWS S3, Azure Blob Storage, or both at once.

    async with Storage.afrom_env() as storage:
        report = await storage.upload_file("meeting.mp4", "recordings/meeting.mp4")
        report.raise_for_failures()

No SDK is imported here; each provider imports its SDK in a worker thread when it first talks
to its service.
"""

from typing import TYPE_CHECKING

from ._errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConfigError,
    ContainerNotFoundError,
    EmptySourceError,
    FanOutError,
    IntegrityError,
    InvalidKeyError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    SourceError,
    TransientError,
    UnistoreError,
)
from ._events import EventCallback, UploadEvent
from ._journal import JournalWrite
from ._logging import JsonLogFormatter
from ._reads import ListedObject
from ._report import ProviderResult, UploadReport
from ._storage import Storage, StorageWriter
from ._types import ObjectInfo, PartLimits, ProgressCallback, ProviderInfo, UploadOptions
from .providers._protocol import Provider

if TYPE_CHECKING:
    from ._repair import RepairReport
    from ._settings import AzureSettings, S3Settings, StorageSettings

__version__ = "0.1.0"

_LAZY = {"StorageSettings", "S3Settings", "AzureSettings"}


def __getattr__(name: str) -> object:
    # pydantic-settings costs ~100 ms to import: load it when settings are first used
    if name in _LAZY:
        from . import _settings

        return getattr(_settings, name)
    if name == "RepairReport":  # repair's machinery loads with the first repair
        from ._repair import RepairReport

        return RepairReport
    raise AttributeError(f"module 'unistore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "AzureSettings",
    "ConfigError",
    "ContainerNotFoundError",
    "EmptySourceError",
    "EventCallback",
    "FanOutError",
    "IntegrityError",
    "InvalidKeyError",
    "JournalWrite",
    "JsonLogFormatter",
    "ListedObject",
    "MissingDependencyError",
    "NotFoundError",
    "ObjectInfo",
    "PartLimits",
    "PermissionDeniedError",
    "ProgressCallback",
    "Provider",
    "ProviderInfo",
    "ProviderError",
    "ProviderResult",
    "RepairReport",
    "S3Settings",
    "SourceError",
    "Storage",
    "StorageSettings",
    "StorageWriter",
    "TransientError",
    "UnistoreError",
    "UploadEvent",
    "UploadOptions",
    "UploadReport",
    "__version__",
]
