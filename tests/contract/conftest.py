"""The `provider` fixture: every backend, one parameter each, for the contract suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from unistore.providers._base import BaseProvider

BACKENDS = [
    pytest.param(("memory", {}), id="memory"),
    pytest.param(("local", {}), id="local"),
    pytest.param(("s3", {}), id="s3", marks=pytest.mark.servers),
    pytest.param(("azure", {"auth": "connection_string"}), id="azure-connection-string", marks=pytest.mark.servers),
    pytest.param(("azure", {"auth": "account_key"}), id="azure-account-key", marks=pytest.mark.servers),
    pytest.param(("azure", {"auth": "managed_identity"}), id="azure-managed-identity", marks=pytest.mark.servers),
]


@pytest.fixture(params=BACKENDS)
def make_provider(request: pytest.FixtureRequest) -> Callable[..., BaseProvider]:
    kind, defaults = request.param
    factory: Callable[..., BaseProvider] = request.getfixturevalue(f"make_{kind}_provider")

    def make(**overrides: Any) -> BaseProvider:
        return factory(**{**defaults, **overrides})

    return make


@pytest.fixture
async def provider(make_provider: Callable[..., BaseProvider]) -> AsyncIterator[BaseProvider]:
    async with make_provider() as p:
        yield p


@pytest.fixture
def ca_file(request: pytest.FixtureRequest) -> str | None:
    """The CA that signed Azurite's certificate, for the HTTPS (managed identity) backend."""
    if "managed-identity" in request.node.callspec.id:
        return str(request.getfixturevalue("azurite_oauth").ca_cert)
    return None
