"""One benchmark run of one (case, configuration), in a fresh process.

    python -m tests.bench.bench_workers CASE CONFIG

The orchestrator (`tests/bench/run.py`) sets the environment: the servers' variables (AWS_*,
AZURE_STORAGE_*, and `STORAGE_UPLOAD_MODE` for unistore) and `BENCH_*` (sizes, source file,
key prefix, server PIDs, work directory). The worker builds its clients, warms one connection
with a request for a missing key (every configuration alike), writes and deletes scratch
(page-cache footing), then times the work inside a `Probe` and prints ONE line
`BENCH_RESULT {json}` to stdout, flushed, before it closes anything: obstore may abort at
interpreter exit (a Rust runtime shutdown race), and the orchestrator tolerates a non-zero
exit after that line.

The whole run is also measured as a user's bot pays it (issue #22, `bench_stall.ColdSteps`):
the library is imported first, as an application's own `import` lines do before its loop
starts (`IMPORTS`; that import is the `import` case), then every loop step from the first
(client creation, the warm-up request, the work, the close, the loop's shutdown) counts, the
bench's own scaffolding on the loop thread excepted. That goes out after the loop is closed,
as a second line `BENCH_COLD {json}`, which the orchestrator merges into the first.

Only the standard library is imported at module level; each configuration imports its own SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import traceback
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.bench_cases import CASES_BY_NAME, DOWNLOAD_SOURCE_KEY, SDK_MODULES, Case, is_unistore
from tests.bench.bench_measure import MiB, Probe, parse_server_pids, vm_status, write_scratch
from tests.bench.bench_stall import ColdSteps

RESULT_PREFIX = "BENCH_RESULT "
COLD_PREFIX = "BENCH_COLD "
COLD = ColdSteps(sample=bool(os.environ.get("BENCH_STALL_SAMPLE")))
"""Every loop step of this worker's run (started in `main`); `COLD.paused()` around scaffolding."""
Op = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Env:
    """What the orchestrator told this worker."""

    case: Case
    config: str
    size: int
    count: int
    in_flight: int
    source: str
    prefix: str
    workdir: str
    server_pids: dict[str, int]
    scratch_bytes: int
    profile: str | None
    bucket: str
    container: str

    @classmethod
    def from_environ(cls, case_name: str, config: str) -> Env:
        case = CASES_BY_NAME[case_name]
        e = os.environ
        return cls(
            case=case,
            config=config,
            size=int(e.get("BENCH_SIZE", case.size)),
            count=int(e.get("BENCH_COUNT", case.count)),
            in_flight=int(e.get("BENCH_IN_FLIGHT", case.in_flight)),
            source=e.get("BENCH_SOURCE", ""),
            prefix=e.get("BENCH_PREFIX", f"bench/{case_name}/{config}"),
            workdir=e.get("BENCH_WORKDIR", "/tmp"),
            server_pids=parse_server_pids(e.get("BENCH_SERVER_PIDS")),
            scratch_bytes=int(e.get("BENCH_SCRATCH_BYTES", 320 * MiB)),
            profile=e.get("BENCH_PROFILE") or None,
            bucket=e.get("AWS_RECORDING_STORAGE_BUCKET_NAME", ""),
            container=e.get("AZURE_STORAGE_CONTAINER_NAME", ""),
        )

    @property
    def key(self) -> str:
        return f"{self.prefix}/object.bin"

    def small_key(self, i: int) -> str:
        return f"{self.prefix}/{i:05d}.bin"

    @property
    def download_path(self) -> str:
        return os.path.join(self.workdir, f"download-{os.getpid()}.bin")


def emit(result: dict[str, Any], prefix: str = RESULT_PREFIX) -> None:
    sys.stdout.write(prefix + json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------
# clients, exactly as a user of each library would make them
# --------------------------------------------------------------------------------------------


def _azure_parts() -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in os.environ["AZURE_STORAGE_CONNECTION_STRING"].split(";"):
        name, sep, value = item.partition("=")
        if sep:
            parts[name.strip()] = value.strip()
    return parts


@contextlib.asynccontextmanager
async def aioboto3_client(max_pool_connections: int | None = None) -> AsyncIterator[Any]:
    import aioboto3
    from botocore.config import Config

    options: dict[str, Any] = {
        "signature_version": "s3v4",
        "s3": {"addressing_style": "path"},
        # botocore >= 1.36 default CRC checksums / aws-chunked trailers: S3-compatible servers
        # mishandle them (PITFALLS); this is what a careful user sets for a custom endpoint.
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    if max_pool_connections:
        options["max_pool_connections"] = max_pool_connections
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(**options),
    ) as client:
        yield client


async def aioboto3_warm(client: Any, env: Env) -> None:
    from botocore.exceptions import ClientError

    with contextlib.suppress(ClientError):
        await client.head_object(Bucket=env.bucket, Key=f"{env.prefix}/warm-up")


@contextlib.asynccontextmanager
async def azure_container() -> AsyncIterator[Any]:
    from azure.storage.blob.aio import BlobServiceClient

    service = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
    async with service:
        yield service.get_container_client(os.environ["AZURE_STORAGE_CONTAINER_NAME"])


async def azure_warm(container: Any, env: Env) -> None:
    await container.get_blob_client(f"{env.prefix}/warm-up").exists()


def obstore_store(target: str) -> Any:
    with COLD.created():
        return _obstore_store(target)


def _obstore_store(target: str) -> Any:
    from obstore.store import AzureStore, S3Store

    if target == "s3":
        return S3Store(
            os.environ["AWS_RECORDING_STORAGE_BUCKET_NAME"],
            endpoint=os.environ["AWS_ENDPOINT_URL"],
            access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )
    parts = _azure_parts()
    # Azurite: account + key + its blob endpoint (`use_emulator` would ignore the endpoint and
    # go to port 10000)
    return AzureStore(
        container_name=os.environ["AZURE_STORAGE_CONTAINER_NAME"],
        account_name=parts["AccountName"],
        access_key=parts["AccountKey"],
        endpoint=parts["BlobEndpoint"],
        client_options={"allow_http": True},
    )


async def obstore_warm(store: Any, env: Env) -> None:
    import obstore

    with contextlib.suppress(FileNotFoundError):
        await obstore.head_async(store, f"{env.prefix}/warm-up")


@contextlib.asynccontextmanager
async def unistore_storage(env: Env) -> AsyncIterator[Any]:
    from unistore import Storage

    with COLD.created():
        if os.environ.get("BENCH_BUILD_ON_LOOP"):  # `unistore-onloop`
            built = Storage.from_env()
        else:
            built = await Storage.afrom_env()
    async with built as storage:
        for provider in storage.providers.values():
            await provider.exists(f"{env.prefix}/warm-up")
        yield storage


DIGESTS: dict[str, str] = {}
"""The digest kind each provider's upload used (from `ObjectInfo.checksum`), for the CPU split."""


def note_digests(report: Any) -> None:
    for name, result in report.results.items():
        label = result.info.checksum if result.info is not None else None
        if label:
            DIGESTS[name] = label.split(":", 1)[0].removesuffix("-parts")


def hash_cost(kinds: set[str], size: int = 32 * MiB) -> dict[str, float]:
    """CPU seconds per GiB of each digest kind, measured in this process on this machine, one
    thread (outside the timed window): to tell the hashing share of an upload's CPU."""
    from unistore import _integrity

    data = os.urandom(size)
    cost: dict[str, float] = {}
    for name in sorted(kinds):
        kind = typing.cast("_integrity.Kind", name)
        _integrity.digest(kind, data[: 1024 * 1024])  # imports, first-call set-up
        began = time.thread_time()
        _integrity.digest(kind, data)
        cost[name] = round((time.thread_time() - began) * (1024 * MiB) / size, 3)
    return cost


def _concurrency(config: str) -> int:
    return int(config.rsplit("-c", 1)[1]) if "-c" in config else 1


# --------------------------------------------------------------------------------------------
# the work of each (kind, configuration); each yields the timed operation
# --------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def upload(env: Env) -> AsyncIterator[Op]:
    path, key, target, config = env.source, env.key, env.case.target, env.config
    if is_unistore(config):
        async with unistore_storage(env) as storage:

            async def op() -> None:
                report = await storage.upload_file(path, key)
                report.raise_for_failures()
                note_digests(report)

            yield op
    elif config == "aioboto3":
        async with aioboto3_client() as client:
            await aioboto3_warm(client, env)

            async def op() -> None:
                await client.upload_file(path, env.bucket, key)

            yield op
    elif config.startswith("azure-aio"):
        async with azure_container() as container:
            await azure_warm(container, env)

            async def op() -> None:
                await _azure_upload_file(container, path, key, _concurrency(config))

            yield op
    elif config == "obstore":
        store = obstore_store(target)
        await obstore_warm(store, env)

        async def op() -> None:
            import obstore

            await obstore.put_async(store, key, Path(path))

        yield op
    elif config == "sdk-pair":
        async with aioboto3_client() as client, azure_container() as container:
            await asyncio.gather(aioboto3_warm(client, env), azure_warm(container, env))

            async def op() -> None:
                await asyncio.gather(
                    client.upload_file(path, env.bucket, key), _azure_upload_file(container, path, key, 8)
                )

            yield op
    elif config == "obstore-pair":
        stores = [obstore_store("s3"), obstore_store("azure")]
        await asyncio.gather(*(obstore_warm(s, env) for s in stores))

        async def op() -> None:
            import obstore

            await asyncio.gather(*(obstore.put_async(s, key, Path(path)) for s in stores))

        yield op
    else:
        raise SystemExit(f"no upload worker for {config!r}")


async def _azure_upload_file(container: Any, path: str, key: str, concurrency: int) -> None:
    with open(path, "rb") as fh:
        await container.upload_blob(key, fh, overwrite=True, max_concurrency=concurrency)


def _stream_chunks(env: Env, chunk: int = MiB) -> Iterator[bytes]:
    """`size` bytes in 1 MiB chunks cycled from eight random ones (8 MiB held, not the stream)."""
    with COLD.paused():  # the producer's data, not the library's work
        pool = [os.urandom(chunk) for _ in range(8)]
    sent = 0
    i = 0
    while sent < env.size:
        piece = pool[i % len(pool)]
        if env.size - sent < len(piece):
            piece = piece[: env.size - sent]
        yield piece
        sent += len(piece)
        i += 1


@contextlib.asynccontextmanager
async def stream(env: Env) -> AsyncIterator[Op]:
    if is_unistore(env.config):
        async with unistore_storage(env) as storage:

            async def op() -> None:
                async with storage.open_writer(env.key) as writer:
                    for chunk in _stream_chunks(env):
                        await writer.write(chunk)
                writer.report.raise_for_failures()
                note_digests(writer.report)

            yield op
    elif env.config == "obstore-pair":
        import obstore

        stores = [obstore_store("s3"), obstore_store("azure")]
        await asyncio.gather(*(obstore_warm(s, env) for s in stores))

        async def op() -> None:
            queues: list[asyncio.Queue[bytes | None]] = [asyncio.Queue(maxsize=4) for _ in stores]

            async def drain(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
                while (item := await queue.get()) is not None:
                    yield item

            async def produce() -> None:
                for chunk in _stream_chunks(env):
                    for queue in queues:
                        await queue.put(chunk)
                for queue in queues:
                    await queue.put(None)

            await asyncio.gather(
                produce(), *(obstore.put_async(s, env.key, drain(q)) for s, q in zip(stores, queues, strict=True))
            )

        yield op
    else:
        raise SystemExit(f"no stream worker for {env.config!r}")


@contextlib.asynccontextmanager
async def small(env: Env) -> AsyncIterator[Op]:
    payload = os.urandom(env.size)
    keys = [env.small_key(i) for i in range(env.count)]
    target = env.case.target

    async def fan(put: Callable[[str], Awaitable[object]]) -> None:
        gate = asyncio.Semaphore(env.in_flight)

        async def one(key: str) -> None:
            async with gate:
                await put(key)

        await asyncio.gather(*(one(k) for k in keys))

    if is_unistore(env.config):
        async with unistore_storage(env) as storage:

            async def put_unistore(key: str) -> None:
                (await storage.upload_bytes(payload, key)).raise_for_failures()

            yield lambda: fan(put_unistore)
    elif env.config == "aioboto3":
        async with aioboto3_client() as client:
            await aioboto3_warm(client, env)
            yield lambda: fan(lambda key: client.put_object(Bucket=env.bucket, Key=key, Body=payload))
    elif env.config.startswith("azure-aio"):
        async with azure_container() as container:
            await azure_warm(container, env)
            yield lambda: fan(lambda key: container.upload_blob(key, payload, overwrite=True))
    elif env.config == "obstore":
        import obstore

        store = obstore_store(target)
        await obstore_warm(store, env)
        yield lambda: fan(lambda key: obstore.put_async(store, key, payload))
    else:
        raise SystemExit(f"no small-object worker for {env.config!r}")


@contextlib.asynccontextmanager
async def download(env: Env) -> AsyncIterator[Op]:
    key, dest, target = DOWNLOAD_SOURCE_KEY, env.download_path, env.case.target
    if is_unistore(env.config):
        async with unistore_storage(env) as storage:
            provider = storage.provider(target)

            async def op() -> None:
                await provider.download_file(key, dest)

            yield op
    elif env.config == "aioboto3":
        async with aioboto3_client() as client:
            await aioboto3_warm(client, env)

            async def op() -> None:
                await client.download_file(env.bucket, key, dest)

            yield op
    elif env.config.startswith("azure-aio"):
        async with azure_container() as container:
            await azure_warm(container, env)
            concurrency = _concurrency(env.config)

            async def op() -> None:
                downloader = await container.get_blob_client(key).download_blob(max_concurrency=concurrency)
                with open(dest, "wb") as fh:
                    await downloader.readinto(fh)

            yield op
    elif env.config == "obstore":
        import obstore

        store = obstore_store(target)
        await obstore_warm(store, env)

        async def op() -> None:
            result = await obstore.get_async(store, key)
            with open(dest, "wb") as fh:
                async for buf in result.stream():
                    fh.write(buf)

        yield op
    else:
        raise SystemExit(f"no download worker for {env.config!r}")


WORKERS = {"upload": upload, "stream": stream, "small": small, "download": download}


# --------------------------------------------------------------------------------------------
# running one
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _profiled(env: Env) -> Iterator[None]:
    """pyinstrument around the timed work (main thread only: worker threads are not sampled)."""
    if not env.profile:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        Path(env.profile + ".html").write_text(profiler.output_html())
        Path(env.profile + ".txt").write_text(
            profiler.output_text(unicode=True)
            + "\n\nFlat, self time (the loop thread; idle time is the selector's poll):\n\n"
            + profiler.output_text(unicode=True, flat=True)
        )


async def run_timed(env: Env) -> dict[str, Any]:
    setup_began = time.perf_counter()
    async with WORKERS[env.case.kind](env) as op:
        setup_s = time.perf_counter() - setup_began
        with COLD.paused():
            scratch_s = write_scratch(env.workdir, env.scratch_bytes) if env.scratch_bytes else 0.0
        probe = Probe(env.server_pids, scaffolding=COLD.paused)
        with _profiled(env):
            async with probe:
                await op()
        with COLD.paused():
            return _finish(env, probe, setup_s, scratch_s)


def _finish(env: Env, probe: Probe, setup_s: float, scratch_s: float) -> dict[str, Any]:
    result = probe.result()
    total = env.size * env.count
    result.update(
        ok=True,
        bytes=total,
        objects=env.count,
        mibps=round(total / MiB / probe.wall_s, 2),
        objps=round(env.count / probe.wall_s, 1),
        setup_s=round(setup_s, 3),
        scratch_s=round(scratch_s, 3),
    )
    if DIGESTS:
        result.update(digests=dict(DIGESTS), hash_cpu_s_per_gib=hash_cost(set(DIGESTS.values())))
    if env.case.kind == "download":
        got = os.path.getsize(env.download_path)
        os.unlink(env.download_path)
        if got != env.size:
            result.update(ok=False, error=f"downloaded {got} bytes, expected {env.size}")
    emit(result)  # before any client closes: obstore may abort at exit
    return result


IMPORTS = {
    "unistore": "unistore",
    "aioboto3": "aioboto3",
    "azure-aio": "azure.storage.blob.aio",
    "obstore": "obstore",
}

#: What an application using each configuration imports at its top, before its loop runs.
APP_IMPORTS = {
    "unistore": ("unistore",),
    "aioboto3": ("aioboto3", "botocore.config", "botocore.exceptions"),
    "azure-aio": ("azure.storage.blob.aio",),
    "obstore": ("obstore", "obstore.store"),
    "sdk-pair": ("aioboto3", "botocore.config", "botocore.exceptions", "azure.storage.blob.aio"),
}


def app_imports(config: str) -> tuple[str, ...]:
    if is_unistore(config):
        return APP_IMPORTS["unistore"]
    family = "obstore" if config.startswith("obstore") else "azure-aio" if config.startswith("azure-aio") else config
    return APP_IMPORTS.get(family, ())

_IMPORT_PROBE = """
import time
t0 = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t0
import json, sys
sdks = sorted({{m.split(".")[0] for m in sys.modules}} & set({sdks!r}) - {{"{top}"}})
print(json.dumps({{"import_s": elapsed, "sdk_modules": sdks}}))
"""


def run_import(env: Env) -> dict[str, Any]:
    """`import X` timed in a fresh interpreter (this worker's own imports stay out of it)."""
    module = IMPORTS[env.config]
    code = _IMPORT_PROBE.format(module=module, sdks=SDK_MODULES, top=module.split(".")[0])
    cwd = str(Path(__file__).resolve().parents[2])
    if is_unistore(env.config):
        # pip compiles an installed wheel's bytecode at install time, so the peers import from
        # .pyc files; this editable checkout has none where PYTHONDONTWRITEBYTECODE is set (as on
        # these machines), and would be timed compiling every module from source (~35 ms here)
        import compileall

        compileall.compile_dir(str(Path(cwd) / "unistore"), quiet=1)
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=cwd
    ).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    result: dict[str, Any] = {
        "ok": True,
        "wall_s": round(probe["import_s"], 4),
        "import_ms": round(probe["import_s"] * 1000, 1),
        "sdk_modules": probe["sdk_modules"],
    }
    if is_unistore(env.config):
        result["importtime_top"] = _importtime_top(code.split("import time")[0] + f"import {module}", cwd)
    emit(result)
    return result


def _importtime_top(code: str, cwd: str, top: int = 8) -> list[list[Any]]:
    """The modules with the largest self time under `python -X importtime` (microseconds)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], check=True, capture_output=True, text=True, cwd=cwd
    ).stderr
    rows: list[tuple[int, str]] = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        fields = line[len("import time:") :].split("|")
        if len(fields) == 3:
            rows.append((int(fields[0]), fields[2].strip()))
    rows.sort(reverse=True)
    return [[name, us] for us, name in rows[:top]]


def install_otel() -> None:
    """Telemetry on (`unistore-otel`): the SDK as an application would set it up, with exporters
    that keep nothing, so what is measured is unistore's recording plus the SDK's processing."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropped()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m tests.bench.bench_workers CASE CONFIG\n")
        return 2
    case_name, config = argv
    env = Env.from_environ(case_name, config)
    if os.environ.get("BENCH_OTEL"):
        install_otel()
    try:
        if env.case.kind == "import":
            run_import(env)
        else:
            import importlib

            for module in app_imports(config):
                importlib.import_module(module)
            COLD.start()
            try:
                asyncio.run(run_timed(env))
            finally:
                COLD.stop()
            emit(COLD.result(), COLD_PREFIX)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        traceback.print_exc()
        emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000], "peak_rss_mib": vm_status() / MiB})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
