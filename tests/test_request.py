"""The one request path (`unistore._request`): the same fault means the same error on every
provider that speaks HTTP. Each case is fed to S3's and Azure's `map_error` as that provider's
SDK raises it, through the same `translate` every request uses; no server is needed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from unistore import (
    AlreadyExistsError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    TransientError,
)
from unistore._errors import Context
from unistore._request import call, translate
from unistore._retry import RetryPolicy
from unistore.providers._base import BaseProvider


def s3_provider() -> BaseProvider:
    from unistore.providers.s3 import S3Provider

    return S3Provider(bucket="recordings", endpoint_url="http://127.0.0.1:9", access_key_id="a", secret_access_key="b")


def azure_provider() -> BaseProvider:
    from unistore.providers.azure import AzureBlobProvider

    return AzureBlobProvider(container="recordings", connection_string="UseDevelopmentStorage=true")


def s3_answer(status: int, code: str | None) -> Exception:
    from botocore.exceptions import ClientError

    error = {"Code": code, "Message": "said the service"} if code else {}
    answer: Exception = ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")
    return answer


def azure_answer(status: int, code: str | None) -> Exception:
    from azure.core.exceptions import HttpResponseError

    error = HttpResponseError(message="said the service")
    error.status_code = status
    error.error_code = code  # type: ignore[attr-defined]
    return error


PROVIDERS: dict[str, tuple[Callable[[], BaseProvider], Callable[[int, str | None], Exception]]] = {
    "s3": (s3_provider, s3_answer),
    "azure": (azure_provider, azure_answer),
}
CONDITION = {"s3": "PreconditionFailed", "azure": "ConditionNotMet"}

# (case, status, code or None for "the provider's own 412 code", conditional, expected class, transient)
STATUS_CASES = [
    ("412-not-conditional", 412, None, False, ProviderError, False),
    ("412-conditional-create", 412, None, True, AlreadyExistsError, False),
    ("408", 408, "SomeTimeout", False, TransientError, True),
    ("429", 429, "SomeThrottle", False, TransientError, True),
    ("500", 500, "SomeFault", False, TransientError, True),
    ("503", 503, "SomeBusy", False, TransientError, True),
    ("401", 401, "SomeAuth", False, AuthenticationError, False),
    ("403", 403, "SomeDenial", False, PermissionDeniedError, False),
    ("404", 404, "SomeMissing", False, NotFoundError, False),
    ("400", 400, "SomeRefusal", False, ProviderError, False),
]


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(("case", "status", "code", "conditional", "expected", "transient"), STATUS_CASES,
                         ids=[c[0] for c in STATUS_CASES])
def test_a_status_means_the_same_on_every_provider(
    name: str, case: str, status: int, code: str | None, conditional: bool, expected: type[ProviderError],
    transient: bool,
) -> None:
    make, answer = PROVIDERS[name]
    provider = make()
    error = translate(provider, answer(status, code or CONDITION[name]), Context(name, "GetObject", "k", conditional))
    assert type(error) is expected, (case, error)
    assert error.transient is transient and error.status == status and error.provider == name
    assert error.key == "k"
    if case == "412-not-conditional":
        assert "changed while it was being read" in str(error) and error.hint == "read it again"


TRANSPORT = [
    aiohttp.ClientPayloadError("payload broke off"),
    aiohttp.ServerDisconnectedError(),
    ConnectionResetError(104, "reset"),
    TimeoutError(),
]


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("fault", TRANSPORT, ids=lambda e: type(e).__name__)
def test_a_transport_fault_is_transient_on_every_provider(name: str, fault: Exception) -> None:
    provider = PROVIDERS[name][0]()
    error = translate(provider, fault, Context(name, "Put Blob", "k"))
    assert type(error) is TransientError and "Put Blob failed: the connection" in str(error), error


@pytest.mark.parametrize("name", ["memory", "s3", "azure"])
async def test_call_retries_transient_faults_and_names_the_context(name: str) -> None:
    if name == "memory":
        from unistore.providers import MemoryProvider

        provider: Any = MemoryProvider()
    else:
        provider = PROVIDERS[name][0]()
    provider.transfer = type(provider.transfer)(retry=RetryPolicy(attempts=3, base_delay=0, sleep=_no_sleep))
    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionResetError(104, "reset")
        return "ok"

    assert await call(provider, "HeadObject", "k", flaky) == "ok" and len(attempts) == 3

    async def broken() -> str:
        raise ConnectionResetError(104, "reset")

    with pytest.raises(TransientError, match="gave up after 3 attempt") as caught:
        await call(provider, "HeadObject", "k", broken)
    assert caught.value.provider == provider.name and caught.value.key == "k"


async def _no_sleep(_delay: float) -> None:
    await asyncio.sleep(0)
