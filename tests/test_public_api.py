"""The public names of DESIGN.md exist, and importing unistore loads no SDK."""

from __future__ import annotations

import subprocess
import sys

import unistore
import unistore.providers
import unistore.sync

DESIGN_NAMES = [
    "StorageSettings", "S3Settings", "AzureSettings", "Storage", "UploadReport", "ProviderResult", "ObjectInfo",
    "Provider", "UnistoreError", "ConfigError", "MissingDependencyError", "ProviderError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "ContainerNotFoundError", "AlreadyExistsError", "TransientError",
    "FanOutError", "ListedObject", "RepairReport", "JournalWrite",
]


def test_design_names_are_exported() -> None:
    for name in DESIGN_NAMES:
        assert name in unistore.__all__, name
        assert getattr(unistore, name) is not None
    for name in ["S3Provider", "AzureBlobProvider", "LocalProvider", "MemoryProvider"]:
        assert name in unistore.providers.__all__
        assert getattr(unistore.providers, name).__name__ == name
    assert unistore.sync.SyncStorage.__name__ == "SyncStorage"


def test_error_hierarchy() -> None:
    for name in ["AuthenticationError", "PermissionDeniedError", "NotFoundError", "ContainerNotFoundError",
                 "AlreadyExistsError", "TransientError"]:
        assert issubclass(getattr(unistore, name), unistore.ProviderError)
    for name in ["ConfigError", "MissingDependencyError", "ProviderError", "FanOutError"]:
        assert issubclass(getattr(unistore, name), unistore.UnistoreError)


SDK_PREFIXES = ("boto3", "botocore", "aiobotocore", "aioboto3", "azure", "aiohttp", "pydantic")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True, capture_output=True, text=True,
    ).stdout
    return set(out.split())


def test_import_loads_no_sdk() -> None:
    loaded = _modules_after("import unistore, unistore.providers")
    heavy = sorted(m for m in loaded if m.split(".")[0] in SDK_PREFIXES)
    assert heavy == [], heavy


def test_provider_classes_load_without_their_sdk() -> None:
    loaded = _modules_after("from unistore.providers import S3Provider, AzureBlobProvider")
    heavy = sorted(m for m in loaded if m.split(".")[0] in SDK_PREFIXES[:-1])
    assert heavy == [], heavy
