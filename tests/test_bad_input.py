"""Bad input, one table: every case must fail with a `UnistoreError` subclass whose message
names the fix (a distinctive fragment: the variable, the rule or the remedy), echo no secret,
and leave nothing behind: no object, no pending multipart upload, no staged file, no budget.

Invalid environments already covered by `tests/test_settings.py` (mode typos, missing bucket or
container, half credentials, ...) are not repeated here; this table adds malformed connection
strings, bucket/container/account names by each service's rules (through the environment, the
settings models and the provider constructors), keys, sources, metadata, content types and
`Storage` misuse. `test_rejected_inputs_never_reach_the_services` replays the cases that go
through a `Storage` against the real S3 server and Azurite, and checks both stay empty.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.test_settings import ALL_VARS
from unistore import (
    AzureSettings,
    ConfigError,
    EmptySourceError,
    InvalidKeyError,
    S3Settings,
    SourceError,
    Storage,
    StorageSettings,
    UnistoreError,
)
from unistore._budget import default_budget
from unistore.providers import LocalProvider, MemoryProvider
from unistore.providers.azure import AzureBlobProvider
from unistore.providers.s3 import S3Provider

# Values that must never appear in an error message, whatever the case.
SIG = "SIGvalueMUSTnotLEAK0123456789abcdef%2B%3D"
PRESIGN_SIG = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"
ACCOUNT_KEY = "QmFkSW5wdXRUZXN0QWNjb3VudEtleVZhbHVlMDEyMzQ1Njc4OQ=="
PASSWORD = "hunter2PASSWORDvalue"
SECRETS = (SIG, PRESIGN_SIG, ACCOUNT_KEY, PASSWORD)

SAS_URL = f"https://acct1.blob.core.windows.net/rec?sv=2022-11-02&ss=b&sp=rw&se=2030-01-01&sig={SIG}"
PRESIGNED_URL = (
    "http://127.0.0.1:9000/recordings/rec/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z"
    f"&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={PRESIGN_SIG}"
)
DEV = "UseDevelopmentStorage=true"  # a valid connection string, for cases about something else
AZ_ENV = {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": "recordings"}
AZ_MI = {**AZ_ENV, "AZURE_STORAGE_ACCOUNT_NAME": "acct1"}
S3_ENV = {"STORAGE_UPLOAD_MODE": "s3"}
PAYLOAD = b"recording bytes " * 64


@dataclass
class Ctx:
    """What a case may use. `storage` fans out to `memory` and `local` (or, in the server
    test, to S3 and Azure)."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    memory: MemoryProvider
    local: LocalProvider
    storage: Storage

    def env(self, values: dict[str, str]) -> Ctx:
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)
        return self

    def settings(self) -> StorageSettings:
        return StorageSettings()

    def from_env(self) -> Storage:
        return Storage.from_env()

    def file(self, name: str = "meeting.mp4", data: bytes = PAYLOAD) -> Path:
        path = self.tmp / "src" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return path

    def fifo(self) -> Path:
        path = self.tmp / "src" / "live.fifo"
        path.parent.mkdir(exist_ok=True)
        os.mkfifo(path)
        return path

    def unreadable(self) -> Path:
        path = self.file("locked.mp4")
        path.chmod(0)
        if os.access(path, os.R_OK):
            pytest.skip(
                "chmod 000 does not apply to this process (it runs as root, which reads any file); "
                "test_unreadable_file_without_root_privileges covers it in a child without CAP_DAC_OVERRIDE, "
                "and the FIFO and path-under-a-file cases cover sources this process cannot use"
            )
        return path


async def _chunks(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        await asyncio.sleep(0)
        yield item


async def _empty_writer(ctx: Ctx) -> None:
    async with ctx.storage.open_writer("rec/empty.mp4"):
        pass


async def _writer(ctx: Ctx, key: str) -> None:
    async with ctx.storage.open_writer(key) as writer:
        await writer.write(PAYLOAD)


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Ctx], object]
    error: type[UnistoreError]
    fragment: str
    via_storage: bool = False
    """Goes through `ctx.storage`: replayed against the real services."""


def case(
    id: str, error: type[UnistoreError], fragment: str, run: Callable[[Ctx], object], *, via_storage: bool = False
) -> Case:
    return Case(id, run, error, fragment, via_storage)


CASES: list[Case] = [
    # -- Azure connection strings, several shapes (env, settings model, constructor) ---------
    case("connstr-pair-without-equals-env", ConfigError, "'Name=value' pairs",
         lambda c: c.env({**AZ_ENV, "AZURE_STORAGE_CONNECTION_STRING": "AccountName=acct1;AccountKey"}).settings()),
    case("connstr-empty-name-ctor", ConfigError, "'Name=value' pairs",
         lambda c: AzureBlobProvider(container="recordings",
                                     connection_string=f"=x;AccountName=acct1;AccountKey={ACCOUNT_KEY}")),
    case("connstr-blank-settings", ConfigError, "AZURE_STORAGE_CONNECTION_STRING is set but empty",
         lambda c: AzureSettings(container="recordings", connection_string="   ")),
    case("connstr-only-semicolons-ctor", ConfigError, "needs AccountName and AccountKey",
         lambda c: AzureBlobProvider(container="recordings", connection_string=";;;")),
    case("connstr-key-without-account-env", ConfigError, "needs AccountName and AccountKey",
         lambda c: c.env({**AZ_ENV, "AZURE_STORAGE_CONNECTION_STRING": f"AccountKey={ACCOUNT_KEY}"}).settings()),
    case("connstr-endpoint-without-sas-settings", ConfigError, "BlobEndpoint and SharedAccessSignature",
         lambda c: AzureSettings(container="recordings",
                                 connection_string="BlobEndpoint=http://127.0.0.1:10000/acct1")),
    case("connstr-devstorage-false-ctor", ConfigError, "UseDevelopmentStorage=true",
         lambda c: AzureBlobProvider(container="recordings", connection_string="UseDevelopmentStorage=false")),
    case("connstr-is-a-sas-url-env", ConfigError, "AZURE_STORAGE_CONNECTION_STRING is incomplete",
         lambda c: c.env({**AZ_ENV, "AZURE_STORAGE_CONNECTION_STRING": SAS_URL}).from_env()),
    case("connstr-key-not-base64-env", ConfigError, "AccountKey of AZURE_STORAGE_CONNECTION_STRING is not a base64",
         lambda c: c.env({**AZ_ENV, "AZURE_STORAGE_CONNECTION_STRING": "AccountName=acct1;AccountKey=pass word!"})
         .settings()),
    case("connstr-key-empty-ctor", ConfigError, "not a base64 account key",
         lambda c: AzureBlobProvider(container="recordings", connection_string="AccountName=acct1;AccountKey=")),
    # -- Azure account key, account name, account URL ---------------------------------------
    case("account-key-not-base64-settings", ConfigError, "AZURE_STORAGE_ACCOUNT_KEY is not a base64 account key",
         lambda c: AzureSettings(container="recordings", account_name="acct1", account_key=f"{PASSWORD}!")),
    case("account-key-blank-ctor", ConfigError, "AZURE_STORAGE_ACCOUNT_KEY is set but empty",
         lambda c: AzureBlobProvider(container="recordings", account_name="acct1", account_key="  ")),
    case("account-name-too-short-ctor", ConfigError, "3-24 lowercase letters and digits",
         lambda c: AzureBlobProvider(container="recordings", account_name="ab")),
    case("account-name-too-long-settings", ConfigError, "3-24 lowercase letters and digits",
         lambda c: AzureSettings(container="recordings", account_name="a" * 25)),
    case("account-url-is-a-sas-url-env", ConfigError, "looks like a presigned/SAS URL",
         lambda c: c.env({**AZ_MI, "AZURE_STORAGE_ACCOUNT_URL": SAS_URL}).settings()),
    case("account-url-with-password-ctor", ConfigError, "AZURE_STORAGE_ACCOUNT_URL (for http://127.0.0.1)",
         lambda c: AzureBlobProvider(container="recordings", account_name="acct1",
                                     account_url=f"http://acct1:{PASSWORD}@127.0.0.1:10000/acct1")),
    # -- S3 endpoint and credentials -----------------------------------------------------------
    case("endpoint-is-a-presigned-url-ctor", ConfigError, "looks like a presigned/SAS URL",
         lambda c: S3Provider(bucket="recordings", endpoint_url=PRESIGNED_URL)),
    case("endpoint-is-a-presigned-url-env", ConfigError, "AWS_ENDPOINT_URL (for http://127.0.0.1)",
         lambda c: c.env({**S3_ENV, "AWS_RECORDING_STORAGE_BUCKET_NAME": "recordings",
                           "AWS_ENDPOINT_URL": PRESIGNED_URL}).from_env()),
    case("endpoint-with-password-settings", ConfigError, "user:password@",
         lambda c: S3Settings(bucket="recordings", endpoint_url=f"http://minio:{PASSWORD}@127.0.0.1:9000")),
    case("endpoint-without-scheme-ctor", ConfigError, "use e.g. http://127.0.0.1:9000",
         lambda c: S3Provider(bucket="recordings", endpoint_url="127.0.0.1:9000")),
    case("s3-half-credentials-ctor", ConfigError, "AWS_SECRET_ACCESS_KEY",
         lambda c: S3Provider(bucket="recordings", access_key_id="AKIAEXAMPLE")),
    # -- S3 bucket names (env, settings model, constructor) ------------------------------------
    case("bucket-too-long-env", ConfigError, "3-63 lowercase letters",
         lambda c: c.env({**S3_ENV, "AWS_RECORDING_STORAGE_BUCKET_NAME": "a" * 64}).settings()),
    case("bucket-empty-env", ConfigError, "AWS_RECORDING_STORAGE_BUCKET_NAME=''",
         lambda c: c.env({**S3_ENV, "AWS_RECORDING_STORAGE_BUCKET_NAME": ""}).settings()),
    case("bucket-underscore-ctor", ConfigError, "is not a valid S3 bucket name",
         lambda c: S3Provider(bucket="rec_bucket")),
    case("bucket-uppercase-settings", ConfigError, "lowercase letters",
         lambda c: S3Settings(bucket="Recordings")),
    case("bucket-leading-hyphen-settings", ConfigError, "starting and ending with a letter or digit",
         lambda c: S3Settings(bucket="-recordings")),
    case("bucket-trailing-hyphen-env", ConfigError, "starting and ending with a letter or digit",
         lambda c: c.env({**S3_ENV, "AWS_RECORDING_STORAGE_BUCKET_NAME": "recordings-"}).settings()),
    case("bucket-period-next-to-hyphen-ctor", ConfigError, "no period next to a hyphen",
         lambda c: S3Provider(bucket="rec.-ordings")),
    case("bucket-adjacent-dots-settings", ConfigError, "no adjacent periods",
         lambda c: S3Settings(bucket="rec..ordings")),
    case("bucket-ip-shaped-ctor", ConfigError, "must not be formatted as an IP address",
         lambda c: S3Provider(bucket="10.0.0.1")),
    case("bucket-reserved-prefix-env", ConfigError, "reserved prefix",
         lambda c: c.env({**S3_ENV, "AWS_RECORDING_STORAGE_BUCKET_NAME": "xn--recordings"}).settings()),
    # -- Azure container names (env, settings model, constructor) ------------------------------
    case("container-too-short-env", ConfigError, "3-63 lowercase letters, digits or single hyphens",
         lambda c: c.env({**AZ_MI, "AZURE_STORAGE_CONTAINER_NAME": "ab"}).settings()),
    case("container-too-long-ctor", ConfigError, "3-63 lowercase letters, digits or single hyphens",
         lambda c: AzureBlobProvider(container="a" * 64, connection_string=DEV)),
    case("container-underscore-ctor", ConfigError, "is not a valid Azure container name",
         lambda c: AzureBlobProvider(container="rec_ordings", connection_string=DEV)),
    case("container-uppercase-settings", ConfigError, "lowercase letters",
         lambda c: AzureSettings(container="Recordings", connection_string=DEV)),
    case("container-leading-hyphen-settings", ConfigError, "starting and ending with a letter or digit",
         lambda c: AzureSettings(container="-recordings", account_name="acct1")),
    case("container-trailing-hyphen-env", ConfigError, "starting and ending with a letter or digit",
         lambda c: c.env({**AZ_MI, "AZURE_STORAGE_CONTAINER_NAME": "recordings-"}).from_env()),
    case("container-consecutive-hyphens-ctor", ConfigError, "single hyphens",
         lambda c: AzureBlobProvider(container="rec--ordings", connection_string=DEV)),
    case("container-period-env", ConfigError, "AZURE_STORAGE_CONTAINER_NAME='rec.ordings'",
         lambda c: c.env({**AZ_MI, "AZURE_STORAGE_CONTAINER_NAME": "rec.ordings"}).settings()),
    case("container-ip-shaped-settings", ConfigError, "is not a valid Azure container name",
         lambda c: AzureSettings(container="10.0.0.1", account_name="acct1")),
    # -- keys ----------------------------------------------------------------------------------
    case("key-empty", InvalidKeyError, "object key is empty",
         lambda c: c.storage.upload_bytes(PAYLOAD, ""), via_storage=True),
    case("key-1025-bytes", InvalidKeyError, "at most 1024",
         lambda c: c.storage.upload_bytes(PAYLOAD, "a" * 1025), via_storage=True),
    case("key-1026-bytes-in-513-characters", InvalidKeyError, "1026 bytes",
         lambda c: c.storage.upload_file(c.file(), "é" * 513), via_storage=True),
    case("key-nul", InvalidKeyError, "control character",
         lambda c: c.storage.upload_bytes(PAYLOAD, "rec/a\x00.mp4"), via_storage=True),
    case("key-newline-writer", InvalidKeyError, "control character",
         lambda c: _writer(c, "rec/a\n.mp4"), via_storage=True),
    case("key-del-stream", InvalidKeyError, "control character",
         lambda c: c.storage.upload_stream(_chunks(PAYLOAD), "rec/a\x7f.mp4"), via_storage=True),
    case("key-not-a-string", InvalidKeyError, "must be a str",
         lambda c: c.memory.upload_bytes(PAYLOAD, 42)),  # type: ignore[arg-type]
    case("key-parent-escape-local", InvalidKeyError, "'.' or '..' path segment",
         lambda c: c.local.upload_bytes(PAYLOAD, "../x")),
    case("key-nested-escape-fanout", InvalidKeyError, "'.' or '..' path segment",
         lambda c: c.storage.upload_file(c.file(), "a/../../b"), via_storage=True),
    case("key-absolute-local", InvalidKeyError, "leading, trailing or doubled '/'",
         lambda c: c.local.upload_file(c.file(), "/abs")),
    case("key-double-slash-fanout", InvalidKeyError, "use '/'-separated names",
         lambda c: c.storage.upload_bytes(PAYLOAD, "a//b"), via_storage=True),
    case("key-dot-segment-writer", InvalidKeyError, "'.' or '..' path segment",
         lambda c: _writer(c, "rec/./a.mp4"), via_storage=True),
    case("key-trailing-slash-memory", InvalidKeyError, "leading, trailing or doubled '/'",
         lambda c: c.memory.upload_bytes(PAYLOAD, "rec/")),
    case("key-reserved-local-prefix", InvalidKeyError, "local provider's own folders",
         lambda c: c.local.upload_bytes(PAYLOAD, ".unistore/meta/x.json")),
    case("key-backslash-escape-local", InvalidKeyError, "not usable by the local provider",
         lambda c: c.local.upload_bytes(PAYLOAD, "..\\outside.mp4")),
    # -- sources -------------------------------------------------------------------------------
    case("source-missing", SourceError, "does not exist: check the path",
         lambda c: c.storage.upload_file(c.tmp / "no-such.mp4", "rec/a.mp4"), via_storage=True),
    case("source-is-a-directory", SourceError, "is a directory: upload the files in it one by one",
         lambda c: c.local.upload_file(c.tmp, "rec/a.mp4")),
    case("source-is-a-fifo", SourceError, "upload_stream()",
         lambda c: c.storage.upload_file(c.fifo(), "rec/a.mp4"), via_storage=True),
    case("source-is-a-device", SourceError, "not a regular file",
         lambda c: c.memory.upload_file("/dev/null", "rec/a.mp4")),
    case("source-under-a-file", SourceError, "does not exist",
         lambda c: c.storage.upload_file(c.file() / "inner.mp4", "rec/a.mp4"), via_storage=True),
    case("source-unreadable-chmod-000", SourceError, "not readable by this process",
         lambda c: c.storage.upload_file(c.unreadable(), "rec/a.mp4"), via_storage=True),
    # -- empty sources without allow_empty -----------------------------------------------------
    case("empty-file-fanout", EmptySourceError, "pass allow_empty=True",
         lambda c: c.storage.upload_file(c.file("empty.mp4", b""), "rec/empty.mp4"), via_storage=True),
    case("empty-bytes-local", EmptySourceError, "allow_empty=True",
         lambda c: c.local.upload_bytes(b"", "rec/empty.mp4")),
    case("empty-stream-fanout", EmptySourceError, "allow_empty=True",
         lambda c: c.storage.upload_stream(_chunks(), "rec/empty.mp4"), via_storage=True),
    case("empty-writer-fanout", EmptySourceError, "allow_empty=True", _empty_writer, via_storage=True),
    case("empty-chunks-stream-memory", EmptySourceError, "allow_empty=True",
         lambda c: c.memory.upload_stream(_chunks(b"", b""), "rec/empty.mp4")),
    # -- metadata and content type -------------------------------------------------------------
    case("metadata-name-with-hyphen", ConfigError, "use letters, digits and '_'",
         lambda c: c.storage.upload_bytes(PAYLOAD, "rec/a.mp4", metadata={"meeting-id": "1"}), via_storage=True),
    case("metadata-name-starts-with-digit", ConfigError, "not starting with a digit",
         lambda c: c.local.upload_bytes(PAYLOAD, "rec/a.mp4", metadata={"1st": "x"})),
    case("metadata-name-empty", ConfigError, "metadata name '' is invalid",
         lambda c: _writer_with_metadata(c, {"": "x"}), via_storage=True),
    case("metadata-value-non-ascii", ConfigError, "urllib.parse.quote",
         lambda c: c.storage.upload_file(c.file(), "rec/a.mp4", metadata={"title": "café"}), via_storage=True),
    case("metadata-value-header-injection", ConfigError, "printable ASCII",
         lambda c: c.memory.upload_bytes(PAYLOAD, "rec/a.mp4", metadata={"title": "a\r\nX-Evil: 1"})),
    case("metadata-value-not-a-string", ConfigError, "printable ASCII",
         lambda c: c.storage.upload_bytes(PAYLOAD, "rec/a.mp4", metadata={"n": 5}),  # type: ignore[dict-item]
         via_storage=True),
    case("content-type-header-injection", ConfigError, "such as 'video/mp4'",
         lambda c: c.storage.upload_bytes(PAYLOAD, "rec/a.mp4", content_type="video/mp4\r\nX-Evil: 1"),
         via_storage=True),
    case("content-type-without-subtype", ConfigError, "MIME type",
         lambda c: c.local.upload_file(c.file(), "rec/a.mp4", content_type="mp4")),
    # -- Storage misuse, local root --------------------------------------------------------------
    case("storage-duplicate-provider-names", ConfigError, "give each a distinct name",
         lambda c: Storage([MemoryProvider(), MemoryProvider()])),
    case("storage-no-providers", ConfigError, "at least one provider", lambda c: Storage([])),
    case("storage-unknown-provider", ConfigError, "add it to STORAGE_UPLOAD_MODE",
         lambda c: c.storage.provider("gcs")),
    case("storage-bad-require", ConfigError, "require must be 'all', 'any' or 'primary'",
         lambda c: Storage([c.memory], require="most")),  # type: ignore[arg-type]
    case("settings-bad-require-kwarg", ConfigError, "STORAGE_REQUIRE",
         lambda c: StorageSettings(upload_mode="memory", require="some")),
    case("local-root-is-a-file-env", ConfigError, "point STORAGE_LOCAL_ROOT at a folder",
         lambda c: c.env({"STORAGE_UPLOAD_MODE": "local", "STORAGE_LOCAL_ROOT": str(c.file())}).from_env()),
    case("local-root-under-a-file-ctor", ConfigError, "is a file",
         lambda c: LocalProvider(c.file() / "storage")),
    # -- presigned URLs ------------------------------------------------------------------------
    case("presign-unsupported-method", ConfigError, "GET and PUT",
         lambda c: S3Provider(bucket="recordings").presigned_url("rec/a.mp4", method="DELETE")),
    case("presign-longer-than-seven-days", ConfigError, "1 to 604800 seconds",
         lambda c: S3Provider(bucket="recordings").presigned_url("rec/a.mp4", expires_in=8 * 24 * 3600)),
]


async def _writer_with_metadata(ctx: Ctx, metadata: dict[str, str]) -> None:
    async with ctx.storage.open_writer("rec/a.mp4", metadata=metadata) as writer:
        await writer.write(PAYLOAD)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def ctx(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Iterator[Ctx]:
    memory = MemoryProvider()
    local = LocalProvider(tmp_path / "local-root")
    yield Ctx(tmp_path, clean_env, memory, local, Storage([memory, local]))


async def _run(case: Case, ctx: Ctx) -> UnistoreError:
    with pytest.raises(UnistoreError) as caught:
        result = case.run(ctx)
        if inspect.isawaitable(result):
            await result
    return caught.value


def _check_message(case: Case, error: UnistoreError) -> None:
    assert isinstance(error, case.error), f"{case.id}: {type(error).__name__}: {error}"
    assert case.fragment in str(error), f"{case.id}: {error}"
    for text in (str(error), repr(error)):
        for secret in SECRETS:
            assert secret not in text, f"{case.id} echoes a secret: {text}"


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()) if root.exists() else []


def test_the_table_is_large_and_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_refused_with_the_fix_and_writes_nothing(case: Case, ctx: Ctx) -> None:
    error = await _run(case, ctx)
    _check_message(case, error)
    assert ctx.memory.objects == {} and ctx.memory.uploads == {}
    assert _files_under(ctx.local.root) == []
    assert default_budget().held == 0
    await ctx.storage.aclose()


@pytest.mark.servers
async def test_rejected_inputs_never_reach_the_services(
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    make_s3_provider: Callable[..., S3Provider],
    make_azure_provider: Callable[..., AzureBlobProvider],
) -> None:
    """Every case that goes through a `Storage`, against S3 + Azure: after all of them the
    bucket has no object and no multipart upload, and the container no blob."""
    s3, azure = make_s3_provider(), make_azure_provider()
    ran = 0
    async with Storage([s3, azure]) as storage:
        ctx = Ctx(tmp_path, clean_env, MemoryProvider(), LocalProvider(tmp_path / "local-root"), storage)
        for case in [c for c in CASES if c.via_storage]:
            try:
                error = await _run(case, ctx)
            except pytest.skip.Exception:
                continue
            _check_message(case, error)
            ran += 1
        assert [o.key async for o in s3.list()] == []
        assert [o.key async for o in azure.list()] == []
        client: Any = await s3._client()
        uploads = await client.list_multipart_uploads(Bucket=s3.bucket)
        assert uploads.get("Uploads", []) == []
    assert ran >= 20
    assert default_budget().held == 0


UNREADABLE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from unistore import SourceError, Storage
    from unistore.providers import LocalProvider, MemoryProvider

    async def main() -> None:
        memory = MemoryProvider()
        local = LocalProvider(sys.argv[2])
        try:
            await Storage([memory, local]).upload_file(sys.argv[1], "rec/a.mp4")
        except SourceError as exc:
            print("SourceError:", exc)
        assert memory.objects == {}
    asyncio.run(main())
    """
)


SETPRIV = shutil.which("setpriv")


@pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None, reason="needs root and util-linux setpriv")
def test_unreadable_file_without_root_privileges() -> None:
    """chmod 000 binds root only without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: run the upload
    in a child whose capability bounding set lacks both (util-linux `setpriv`), and check the
    file is refused, naming the fix, before anything is written."""
    assert SETPRIV is not None
    with tempfile.TemporaryDirectory(prefix="unistore-unreadable-") as folder:
        source = Path(folder) / "locked.mp4"
        source.write_bytes(PAYLOAD)
        source.chmod(0)
        done = subprocess.run(
            [SETPRIV, "--bounding-set=-dac_override,-dac_read_search", "--",
             sys.executable, "-c", UNREADABLE_SCRIPT, str(source), str(Path(folder) / "root")],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "SourceError:" in done.stdout and "not readable by this process" in done.stdout, done.stdout
        assert "check its permissions" in done.stdout
        assert _files_under(Path(folder) / "root") == []
