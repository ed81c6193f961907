"""Shared fixtures: the real servers (started once per session, on free loopback ports, only
when a test asks for them) and the memory/local provider factories. The S3 and Azure provider
factories live in `tests/fixtures_s3.py` and `tests/fixtures_azure.py`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from unistore._multipart import MiB, Transfer
from unistore._retry import RetryPolicy
from unistore.providers import LocalProvider, MemoryProvider

pytest_plugins = [
    f"tests.{m}" for m in ("fixtures_s3", "fixtures_azure") if (Path(__file__).parent / f"{m}.py").exists()
]

SMALL_TRANSFER = Transfer(
    threshold=5 * MiB,
    chunk_size=5 * MiB,
    max_concurrency=4,
    retry=RetryPolicy(attempts=3, deadline=10, base_delay=0.01),
)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.S3Server]:
    server = servers.start_s3_server(tmp_path_factory.mktemp("s3-server"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.AzuriteServer]:
    server = servers.start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def azurite_oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.AzuriteServer]:
    server = servers.start_azurite(tmp_path_factory.mktemp("azurite-oauth"), oauth=True)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def identity_endpoint() -> Iterator[servers.IdentityEndpoint]:
    endpoint = servers.start_managed_identity_endpoint()
    try:
        yield endpoint
    finally:
        endpoint.stop()


def unique_name(prefix: str = "t") -> str:
    """A bucket/container-safe unique name."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def make_memory_provider() -> Callable[..., MemoryProvider]:
    def make(**overrides: Any) -> MemoryProvider:
        overrides.setdefault("transfer", SMALL_TRANSFER)
        return MemoryProvider(**overrides)

    return make


@pytest.fixture
def make_local_provider(tmp_path: Path) -> Callable[..., LocalProvider]:
    def make(**overrides: Any) -> LocalProvider:
        overrides.setdefault("transfer", SMALL_TRANSFER)
        root = overrides.pop("root", tmp_path / "local-root")
        return LocalProvider(root, **overrides)

    return make
