"""The built-in providers. Importing this package loads no SDK: every provider class is imported
on first use (the local one alone pulls in json, uuid and shutil), and an SDK only when its
provider is created."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._types import ObjectInfo
from ._protocol import Provider

if TYPE_CHECKING:
    from .._settings import StorageSettings
    from .azure import AzureBlobProvider
    from .local import LocalProvider
    from .memory import MemoryProvider
    from .s3 import S3Provider

__all__ = [
    "AzureBlobProvider",
    "LocalProvider",
    "MemoryProvider",
    "ObjectInfo",
    "Provider",
    "S3Provider",
    "build_providers",
]


_MODULES = {"S3Provider": "s3", "AzureBlobProvider": "azure", "LocalProvider": "local", "MemoryProvider": "memory"}
"""The module of each provider class, imported when the class is first asked for."""


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)


def build_providers(settings: StorageSettings) -> list[Provider]:
    """One provider per name in `STORAGE_UPLOAD_MODE`, configured from `settings`."""
    from .._multipart import Transfer
    from .._retry import RetryPolicy

    transfer = Transfer(
        threshold=int(settings.multipart_threshold),
        chunk_size=int(settings.chunk_size),
        max_concurrency=settings.max_concurrency,
        retry=RetryPolicy(attempts=settings.retry_attempts, deadline=settings.retry_deadline),
        upload_timeout=settings.upload_timeout,
        read_timeout=settings.read_timeout,
        min_send_rate=int(settings.min_send_rate),
    )
    providers: list[Provider] = []
    for name in settings.providers:
        if name == "s3":
            from .s3 import S3Provider

            assert settings.s3 is not None
            providers.append(S3Provider.from_settings(settings.s3, settings, transfer=transfer))
        elif name == "azure":
            from .azure import AzureBlobProvider

            assert settings.azure is not None
            providers.append(AzureBlobProvider.from_settings(settings.azure, settings, transfer=transfer))
        elif name == "local":
            from .local import LocalProvider

            providers.append(
                LocalProvider(settings.local_root, transfer=transfer, overwrite=settings.overwrite)
            )
        elif name == "memory":
            from .memory import MemoryProvider

            providers.append(MemoryProvider(transfer=transfer, overwrite=settings.overwrite))
    return providers
