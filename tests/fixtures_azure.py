"""Pytest plugin: Azure fixtures over the session's Azurite servers (`azurite`, `azurite_oauth`
and `identity_endpoint`, defined in `tests/conftest.py`; see `tests/servers.py`).

- `azure_container` / `azure_oauth_container`: a fresh container per test on the plain (HTTP,
  shared key) or the OAuth (HTTPS, bearer tokens) Azurite, deleted afterwards (Azurite slows
  down as blobs accumulate).
- `make_azure_provider(auth="connection_string", **overrides)`: an `AzureBlobProvider` for the
  right server in one of the three auth modes, with the small-transfer defaults of the test
  suite; every provider it made is closed at teardown. `managed_identity` talks HTTPS to the
  OAuth Azurite (`connection_verify=` its CA) with tokens from the loopback identity endpoint,
  whose `IDENTITY_ENDPOINT` / `IDENTITY_HEADER` are set for the test by monkeypatch. The servers
  are started only when a test first asks for them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import pytest

from tests import servers
from unistore._multipart import MiB, Transfer
from unistore._retry import RetryPolicy
from unistore.providers.azure import AzureBlobProvider

AzureAuth = Literal["connection_string", "account_key", "managed_identity"]

AZURE_TEST_TRANSFER = Transfer(
    threshold=5 * MiB,
    chunk_size=5 * MiB,
    max_concurrency=4,
    retry=RetryPolicy(attempts=3, deadline=10, base_delay=0.01),
)


def new_container_name(prefix: str = "ut") -> str:
    """A unique, valid container name (lowercase letters, digits and single hyphens)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def remove_container(server: servers.AzuriteServer, name: str) -> None:
    """Best effort: Delete Container (shared key, no SDK) removes its blobs with it."""
    with contextlib.suppress(OSError, servers.ServerError):
        server.request("DELETE", f"/{name}", query={"restype": "container"})


@pytest.fixture
def azure_container(azurite: servers.AzuriteServer) -> Iterator[str]:
    name = new_container_name()
    azurite.create_container(name)
    try:
        yield name
    finally:
        remove_container(azurite, name)


@pytest.fixture
def azure_oauth_container(azurite_oauth: servers.AzuriteServer) -> Iterator[str]:
    name = new_container_name()
    azurite_oauth.create_container(name)
    try:
        yield name
    finally:
        remove_container(azurite_oauth, name)


def azure_provider_kwargs(
    server: servers.AzuriteServer, container: str, auth: AzureAuth = "connection_string"
) -> dict[str, Any]:
    """Constructor arguments that point an `AzureBlobProvider` at `server` and `container`."""
    # crc64: what `auto` means on Azure itself; against Azurite `auto` picks md5 (tested apart)
    kwargs: dict[str, Any] = {"container": container, "transfer": AZURE_TEST_TRANSFER, "checksum": "crc64"}
    if auth == "connection_string":
        kwargs["connection_string"] = server.connection_string
    elif auth == "account_key":
        kwargs.update(account_name=server.account_name, account_key=server.account_key, account_url=server.blob_url)
    else:
        kwargs.update(account_name=server.account_name, account_url=server.blob_url)
    if server.ca_cert is not None:
        kwargs["connection_verify"] = str(server.ca_cert)
    return kwargs


@pytest.fixture
async def make_azure_provider(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., AzureBlobProvider]]:
    made: list[AzureBlobProvider] = []
    identities: list[servers.IdentityEndpoint] = []

    def make(auth: AzureAuth = "connection_string", **overrides: Any) -> AzureBlobProvider:
        if auth == "managed_identity":
            server: servers.AzuriteServer = request.getfixturevalue("azurite_oauth")
            container: str = request.getfixturevalue("azure_oauth_container")
            identity: servers.IdentityEndpoint = request.getfixturevalue("identity_endpoint")
            identities.append(identity)
            for name, value in identity.env().items():
                monkeypatch.setenv(name, value)
        else:
            server = request.getfixturevalue("azurite")
            container = request.getfixturevalue("azure_container")
        provider = AzureBlobProvider(**{**azure_provider_kwargs(server, container, auth), **overrides})
        made.append(provider)
        return provider

    try:
        yield make
    finally:
        for provider in made:
            await provider.aclose()
        for identity in identities[:1]:
            # session-scoped: leave it answering for the next test
            identity.fail_with = identity.fail_times = None
            identity.delay_s = 0.0
