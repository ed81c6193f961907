"""The benchmark cases and the configurations each one compares (standard library only: the
orchestrator imports this without loading any SDK)."""

from __future__ import annotations

import dataclasses
from typing import Literal

MiB = 1024 * 1024
GiB = 1024 * MiB

Target = Literal["s3", "azure", "both", "none"]
Kind = Literal["import", "upload", "stream", "small", "download"]

UNISTORE = "unistore"

#: unistore with other settings, measured beside the defaults (their environment overrides).
UNISTORE_VARIANTS: dict[str, dict[str, str]] = {
    "unistore-crc64": {"AZURE_STORAGE_CHECKSUM": "crc64"},
    # not a unistore setting: the worker installs the OpenTelemetry SDK before it starts
    "unistore-otel": {"BENCH_OTEL": "1"},
    # not a setting either: the worker builds the Storage with the synchronous `Storage.from_env()` on
    # the loop, where `unistore` awaits `Storage.afrom_env()` as the README does
    "unistore-onloop": {"BENCH_BUILD_ON_LOOP": "1"},
}


def is_unistore(config: str) -> bool:
    return config == UNISTORE or config in UNISTORE_VARIANTS

#: What each configuration is, for the table's legend.
CONFIG_NOTES: dict[str, str] = {
    "unistore": "unistore, configured from the environment (`STORAGE_UPLOAD_MODE`, AWS_*, AZURE_STORAGE_*) "
    "by `await Storage.afrom_env()`",
    "unistore-crc64": "unistore with `AZURE_STORAGE_CHECKSUM=crc64`, what the default `auto` picks on Azure "
    "itself (on Azurite `auto` picks MD5, which Azurite checks natively but CRC-64 in JavaScript)",
    "unistore-otel": "unistore with the OpenTelemetry SDK configured (spans to a batch processor whose "
    "exporter drops them, metrics to an in-memory reader): the cost of telemetry on",
    "unistore-onloop": "unistore, the `Storage` built by the synchronous `Storage.from_env()` on the running "
    "loop rather than `await Storage.afrom_env()` (the README's way): only the whole-run step differs",
    "aioboto3": "aioboto3 `upload_file`/`download_file`, default TransferConfig (s3v4, path style, "
    "checksums `when_required`)",
    "azure-aio": "azure.storage.blob.aio `upload_blob`/`download_blob`, default `max_concurrency`",
    "azure-aio-c1": "azure.storage.blob.aio, `max_concurrency=1` (its default)",
    "azure-aio-c8": "azure.storage.blob.aio, `max_concurrency=8`",
    "obstore": "obstore `put_async`/`get_async` (S3Store / AzureStore)",
    "sdk-pair": "aioboto3 (default) + azure aio (`max_concurrency=8`) under one `asyncio.gather`",
    "obstore-pair": "obstore S3Store + AzureStore under one `asyncio.gather`",
}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    kind: Kind
    target: Target
    configs: tuple[str, ...]
    size: int = 0
    """Bytes per object (upload, stream, download) or per small object."""
    count: int = 1
    """Objects (small-object cases)."""
    quick_size: int = 0
    quick_count: int = 1
    in_flight: int = 32
    description: str = ""

    def sized(self, quick: bool) -> tuple[int, int]:
        return (self.quick_size or self.size, self.quick_count) if quick else (self.size, self.count)

    def total_bytes(self, quick: bool) -> int:
        size, count = self.sized(quick)
        return size * count

    @property
    def touches(self) -> tuple[str, ...]:
        """The servers this case writes to or reads from."""
        return {"s3": ("s3",), "azure": ("azure",), "both": ("s3", "azure"), "none": ()}[self.target]


CASES: tuple[Case, ...] = (
    Case("import", "import", "none", (UNISTORE, "aioboto3", "azure-aio", "obstore"),
         description="`import X` in a fresh interpreter"),
    Case("upload256-s3", "upload", "s3", (UNISTORE, "unistore-otel", "aioboto3", "obstore"),
         size=256 * MiB, quick_size=32 * MiB, description="256 MiB file to S3 (SeaweedFS)"),
    Case("upload256-azure", "upload", "azure", (UNISTORE, "unistore-crc64", "azure-aio-c1", "azure-aio-c8", "obstore"),
         size=256 * MiB, quick_size=32 * MiB, description="256 MiB file to Azure (Azurite)"),
    Case("upload256-both", "upload", "both", (UNISTORE, "unistore-crc64", "sdk-pair", "obstore-pair"),
         size=256 * MiB, quick_size=32 * MiB, description="256 MiB file to both at once"),
    Case("upload1g-both", "upload", "both", (UNISTORE, "unistore-crc64", "unistore-onloop", "sdk-pair", "obstore-pair"),
         size=1 * GiB, quick_size=96 * MiB, description="1 GiB file to both at once"),
    Case("stream1g-both", "stream", "both", (UNISTORE, "obstore-pair"),
         size=1 * GiB, quick_size=96 * MiB,
         description="1 GiB produced in 1 MiB chunks, streamed to both (`Storage.open_writer`)"),
    Case("small-s3", "small", "s3", (UNISTORE, "unistore-otel", "aioboto3", "obstore"),
         size=64 * 1024, count=1000, quick_count=200, description="1,000 x 64 KiB, 32 in flight, to S3"),
    Case("small-azure", "small", "azure", (UNISTORE, "azure-aio", "obstore"),
         size=64 * 1024, count=1000, quick_count=200, description="1,000 x 64 KiB, 32 in flight, to Azure"),
    Case("download256-s3", "download", "s3", (UNISTORE, "aioboto3", "obstore"),
         size=256 * MiB, quick_size=32 * MiB, description="256 MiB object from S3 to a file"),
    Case("download256-azure", "download", "azure", (UNISTORE, "azure-aio-c1", "azure-aio-c8", "obstore"),
         size=256 * MiB, quick_size=32 * MiB, description="256 MiB blob from Azure to a file"),
)

CASES_BY_NAME = {case.name: case for case in CASES}

#: SDK top-level modules that `import unistore` must not load.
SDK_MODULES = ("boto3", "botocore", "aioboto3", "aiobotocore", "azure", "aiohttp", "obstore")

#: Key of the object every download case reads (uploaded once per run).
DOWNLOAD_SOURCE_KEY = "bench-src/download.bin"
