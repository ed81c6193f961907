"""Opening a provider's SDK client without holding the event loop (issue #22).

A provider's first use imports its SDK and builds its client. Done inline, that is one loop
step of loop-thread CPU, measured from a fresh process here (2 cores, the bench's
`cold_step_ms`): 430-515 ms for aioboto3 (its import, ~215 ms alone, and botocore's service
model, endpoint rules and partitions read from JSON, ~55 ms), 80-90 ms for azure-storage-blob's
import. Every other task of the application (a bot's audio, its heartbeats) waits that long.

So the slow, loop-free part runs in a worker thread: the imports, and botocore's loads, which
it caches on the session (`Loader` results are cached per instance), so the client creation
that follows on the loop finds them done. Nothing loop-bound is made in the thread: aiohttp
sessions, connectors and the aiobotocore client itself are created on the loop, as before.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def installed(*modules: str) -> bool:
    """Whether every module can be imported, without importing it (a parent package is
    imported to look a submodule up, so name top-level packages here)."""
    return all(importlib.util.find_spec(name) is not None for name in modules)


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(name)


async def import_off_loop(*modules: str) -> None:
    """Import `modules` in a worker thread, unless all are imported already (no thread hop
    then). An `ImportError` is raised here, as an inline import would raise it."""
    if all(name in sys.modules for name in modules):
        return
    await asyncio.to_thread(_import_all, modules)


async def off_loop(fn: Callable[[], T]) -> T:
    """`fn()` in a worker thread: a client's loop-free set-up (see the module docstring)."""
    return await asyncio.to_thread(fn)


_CLIENT_PLUGINS = {"s3": ("boto3.s3.inject", "aioboto3.s3.inject")}
"""Modules boto3's and aioboto3's `creating-client-class` handlers import for a service (with
s3transfer and multiprocessing: ~25 ms)."""


def warm_botocore(session: Any, service: str) -> None:
    """Load what botocore reads from disk to create a `service` client into `session`'s caches
    (an aioboto3 `Session`): the service model, the endpoint rule set, the partitions, the
    endpoint resolver and the shared config file. Best effort: a botocore that moved these only
    loses the head start, the client creation then loads them itself."""
    core = getattr(session, "_session", None)  # aioboto3.Session -> aiobotocore's AioSession
    if core is None:
        return
    try:
        loader = core.get_component("data_loader")
        loader.load_service_model(service, "service-2")
        loader.load_service_model(service, "endpoint-rule-set-1")
        loader.load_data("partitions")
        loader.load_data("sdk-default-configuration")
        core._get_internal_component("endpoint_resolver")
        core._get_internal_component("exceptions_factory")
        core.get_scoped_config()
        _import_all(_CLIENT_PLUGINS.get(service, ()))
    except Exception:
        return


def azure_modules(auth_mode: str, checksum: str) -> tuple[str, ...]:
    """What `AzureBlobProvider._connect` imports for an auth mode and a digest kind."""
    modules = ["aiohttp", "azure.core.pipeline.transport", "azure.storage.blob", "azure.storage.blob.aio"]
    if auth_mode == "account_key":
        modules.append("azure.core.credentials")
    elif auth_mode == "managed_identity":
        modules.append("azure.identity.aio")
    if checksum == "crc64":
        modules.append("awscrt.checksums")
    return tuple(modules)
