"""The built-in providers. Importing this package loads no SDK: every provider class is imported
on first use (the local one alone pulls in json, uuid and shutil), and an SDK only when its
provider is created."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._types import ObjectInfo
from ._from_settings import build_providers
from ._protocol import Provider

if TYPE_CHECKING:
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
