"""No secret anywhere: failing operations run with known secrets, and everything they produce is
searched for them.

Secrets: the S3 secret key (a wrong one, and the server's real one) and session token, the Azure
account key (a wrong one in key mode and in a connection string, and Azurite's real one), the
`sig=` of SAS tokens (a wrong one, a valid account SAS, the SAS URL `presigned_url` makes) and the
`X-Amz-Signature` of an S3 presigned URL.

Searched: every exception's str/repr, its args, its hint, and its whole `__cause__`/`__context__`
chain (even where `from None` hides the context from tracebacks: error trackers walk it), the
formatted traceback, `repr()` of settings, providers, `Storage`, reports and results, and every
log record at DEBUG and above (message and formatted exception), with the root logger at DEBUG,
and every span and metric exported to OpenTelemetry (names, attributes, statuses, events).

Responsibility: unistore's own records (`unistore.*`) must never carry a secret, at any level.
SDK records (botocore, azure, aiohttp, ...) are unistore's concern only at INFO and above, where a
default logging setup would show them: they must not carry one either. SDK DEBUG output is the
operator's explicit choice and the SDKs' responsibility: botocore prints there the canonical
request and the request headers, so the `AWS_SESSION_TOKEN` (X-Amz-Security-Token) and every
signature, presigned URLs' included ("Signature: ..."); azure-core prints nothing of the kind
(its HTTP logging policy redacts headers and `sig`). Keep `botocore` at INFO when the root
logger is at DEBUG. `test_sdk_debug_output_is_not_ours_to_police` checks that even there the
secret keys themselves never appear, and that unistore's own records carry no signature.
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests import otel, servers
from tests.test_settings import ALL_VARS
from unistore import (
    AuthenticationError,
    FanOutError,
    Storage,
    StorageSettings,
    UnistoreError,
    UploadReport,
)
from unistore._multipart import MiB
from unistore.providers import Provider
from unistore.providers.azure import AzureBlobProvider
from unistore.providers.s3 import S3Provider

pytestmark = pytest.mark.servers

WRONG_S3_SECRET = "wrongS3secretKEY/value+0123456789abcdEF"
SESSION_TOKEN = "SESSIONtokenSECRETvalue0123456789"
WRONG_ACCOUNT_KEY = base64.b64encode(b"wrong-azure-account-key-for-tests-" * 2)[:88].decode()
WRONG_SIG = "d3JvbmdTQVNzaWduYXR1cmVGb3JUZXN0cw=="
SDK_LOGGERS = ("botocore", "aiobotocore", "aioboto3", "boto3", "urllib3", "azure", "aiohttp", "asyncio")


# -- capture ------------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _record_text(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info:
        text += "\n" + logging.Formatter().formatException(record.exc_info)
    return text


@contextmanager
def debug_logs() -> Iterator[_Records]:
    """Every record of every logger, with the root (and so the SDK loggers) at DEBUG."""
    handler = _Records()
    root = logging.getLogger()
    touched = [root, logging.getLogger("unistore"), *(logging.getLogger(n) for n in SDK_LOGGERS)]
    levels = [lg.level for lg in touched]
    root.addHandler(handler)
    for lg in touched:
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for lg, level in zip(touched, levels, strict=True):
            lg.setLevel(level)


def exception_texts(exc: BaseException) -> list[str]:
    """str, repr, args and hint of `exc` and of everything chained to it (causes, contexts,
    a FanOutError's per-provider errors), plus the formatted traceback."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), *(repr(a) for a in current.args)]
        texts += [str(getattr(current, name, "")) for name in ("hint", "message", "code")]
        stack += [current.__cause__, current.__context__]
        if isinstance(current, FanOutError):
            stack += current.errors.values()
            texts.append(repr(current.report))
    return texts


@dataclass
class Evidence:
    """Everything a scenario produced, to be searched for `secrets`."""

    secrets: set[str]
    texts: list[tuple[str, str]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def add(self, where: str, *texts: str) -> None:
        self.texts += [(where, t) for t in texts]

    def add_objects(self, where: str, *objects: object) -> None:
        self.add(where, *(repr(o) for o in objects), *(str(o) for o in objects))

    def add_report(self, where: str, report: UploadReport) -> None:
        self.add_objects(where, report, *report.results.values())
        try:
            report.raise_for_failures()
        except FanOutError as exc:
            self.add_error(where, exc)

    def add_error(self, where: str, exc: BaseException) -> None:
        self.errors.append(exc)
        self.add(where, *exception_texts(exc))

    async def attempt(self, where: str, op: Coroutine[Any, Any, Any]) -> Any:
        try:
            result = await op
        except Exception as exc:
            self.add_error(where, exc)
            return None
        if isinstance(result, UploadReport):
            self.add_report(where, result)
        return result

    def leaks(self, records: Iterable[logging.LogRecord], *, sdk_debug: bool = False) -> list[str]:
        found = []
        for where, text in [*self.texts, *otel.exported_texts()]:
            found += [f"{where}: {_mark(text, s)}" for s in self.secrets if s in text]
        for record in records:
            ours = record.name == "unistore" or record.name.startswith("unistore.")
            if not ours and record.levelno < logging.INFO and not sdk_debug:
                continue
            text = _record_text(record)
            found += [f"log {record.name}/{record.levelname}: {_mark(text, s)}" for s in self.secrets if s in text]
        return found


def _mark(text: str, secret: str) -> str:
    at = text.index(secret)
    return text[max(0, at - 120) : at].replace("\n", " ") + "<<SECRET>>"


def _variants(*values: str) -> set[str]:
    """A secret as given and as it appears URL-encoded."""
    out = set()
    for value in values:
        out |= {value, quote(value, safe=""), quote(value, safe="/")}
    return out


def _sig(url: str, name: str) -> str:
    return parse_qs(urlsplit(url).query)[name][0]


async def _exercise(ev: Evidence, storage: Storage, name: str, tmp_path: Path) -> None:
    """Failing operations of every kind, through the fan-out and on the provider itself."""
    big = tmp_path / "big.bin"
    big.write_bytes(b"m" * (6 * MiB))  # above the test threshold: a multipart start
    await ev.attempt("upload_bytes", storage.upload_bytes(b"meeting", "secrets/small.bin"))
    await ev.attempt("upload_file multipart", storage.upload_file(big, "secrets/big.bin"))

    async def chunks() -> AsyncIterator[bytes]:
        yield b"live chunk"

    await ev.attempt("upload_stream", storage.upload_stream(chunks(), "secrets/stream.bin"))
    provider: Provider = storage.provider(name)
    await ev.attempt("head", provider.head("secrets/small.bin"))
    await ev.attempt("exists", provider.exists("secrets/small.bin"))
    await ev.attempt("download_bytes", provider.download_bytes("secrets/small.bin"))
    await ev.attempt("download_file", provider.download_file("secrets/small.bin", tmp_path / "back.bin"))
    await ev.attempt("delete", provider.delete("secrets/small.bin"))
    await ev.attempt("head missing", provider.head("secrets/missing.bin"))
    await ev.attempt("download missing", provider.download_bytes("secrets/missing.bin"))

    async def listing() -> list[str]:
        return [o.key async for o in provider.list("secrets/")]

    await ev.attempt("list", listing())

    # the same through the storage: its failover and per-provider errors, and the delete report
    async def streamed() -> bytes:
        return b"".join([c async for c in storage.iter_bytes("secrets/small.bin")])

    async def merged() -> list[str]:
        return [o.key async for o in storage.list("secrets/")]

    for where, op in (
        ("storage.download_bytes", storage.download_bytes("secrets/small.bin")),
        ("storage.download_file", storage.download_file("secrets/small.bin", tmp_path / "back2.bin")),
        ("storage.iter_bytes", streamed()),
        ("storage.locate", storage.locate("secrets/small.bin")),
        ("storage.head", storage.head("secrets/small.bin")),
        ("storage.exists", storage.exists("secrets/small.bin")),
        ("storage.delete", storage.delete("secrets/small.bin")),
        ("storage.list", merged()),
        ("storage.presigned_url PUT", storage.presigned_url("secrets/new.bin", method="PUT")),
    ):
        await ev.attempt(where, op)
    ev.add_objects("reprs", storage, provider, *storage.providers.values())


def _settings_reprs(ev: Evidence) -> None:
    settings = StorageSettings()
    ev.add_objects("settings", settings, settings.s3, settings.azure)
    ev.add("settings dump", repr(settings.model_dump()), settings.model_dump_json())


@pytest.fixture(autouse=True)
def exported_telemetry() -> None:
    """Spans and metrics go to the in-memory exporters that `Evidence.leaks` searches."""
    otel.install()
    otel.clear()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


# -- scenarios ----------------------------------------------------------------------------------


async def test_wrong_s3_secret_key(
    s3_server: servers.S3Server, s3_bucket: str, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _set_env(clean_env, {**s3_server.env(s3_bucket), "STORAGE_UPLOAD_MODE": "s3",
                         "AWS_SECRET_ACCESS_KEY": WRONG_S3_SECRET, "AWS_SESSION_TOKEN": SESSION_TOKEN,
                         "STORAGE_RETRY_ATTEMPTS": "1"})
    ev = Evidence(_variants(WRONG_S3_SECRET, SESSION_TOKEN, s3_server.secret_key))
    with debug_logs() as logs:
        _settings_reprs(ev)
        async with Storage.from_env() as storage:
            await _exercise(ev, storage, "s3", tmp_path)
            url = await storage.provider("s3").presigned_url("secrets/small.bin")
        ev.secrets |= _variants(_sig(url, "X-Amz-Signature"))
    assert any(isinstance(e, AuthenticationError) for e in ev.errors), [type(e) for e in ev.errors]
    assert any(where == "span unistore.request" for where, _ in otel.exported_texts()), "telemetry was searched"
    assert not ev.leaks(logs.records), "\n".join(ev.leaks(logs.records))


@pytest.mark.parametrize("mode", ["account_key", "connection_string"])
async def test_wrong_azure_account_key(
    azurite: servers.AzuriteServer, azure_container: str, clean_env: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    env = {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": azure_container,
           "STORAGE_RETRY_ATTEMPTS": "1"}
    if mode == "account_key":
        env |= {"AZURE_STORAGE_ACCOUNT_NAME": azurite.account_name, "AZURE_STORAGE_ACCOUNT_KEY": WRONG_ACCOUNT_KEY,
                "AZURE_STORAGE_ACCOUNT_URL": azurite.blob_url}
    else:
        env["AZURE_STORAGE_CONNECTION_STRING"] = (
            f"DefaultEndpointsProtocol=http;AccountName={azurite.account_name};AccountKey={WRONG_ACCOUNT_KEY};"
            f"BlobEndpoint={azurite.blob_url};"
        )
    _set_env(clean_env, env)
    ev = Evidence(_variants(WRONG_ACCOUNT_KEY, azurite.account_key))
    with debug_logs() as logs:
        _settings_reprs(ev)
        async with Storage.from_env() as storage:
            await _exercise(ev, storage, "azure", tmp_path)
            url = await storage.provider("azure").presigned_url("secrets/small.bin")
        ev.secrets |= _variants(_sig(url, "sig"))
    assert any(isinstance(e, AuthenticationError) for e in ev.errors), [type(e) for e in ev.errors]
    assert not ev.leaks(logs.records), "\n".join(ev.leaks(logs.records))


def _account_sas(azurite: servers.AzuriteServer) -> str:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    return generate_account_sas(
        azurite.account_name, azurite.account_key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1), start=datetime.now(UTC) - timedelta(minutes=5),
    )


@pytest.mark.parametrize("which", ["wrong-sig", "valid-sas"])
async def test_sas_connection_string(
    azurite: servers.AzuriteServer, azure_container: str, clean_env: pytest.MonkeyPatch, tmp_path: Path, which: str
) -> None:
    """A SAS in the connection string: a wrong signature fails every request; a valid one
    fails where the object is missing, already exists (overwrite=False), or a presigned URL
    needs an account key."""
    if which == "wrong-sig":
        sas = f"sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&spr=http,https&sig={quote(WRONG_SIG)}"
        secrets = _variants(WRONG_SIG)
    else:
        sas = _account_sas(azurite)
        secrets = _variants(_sig("?" + sas, "sig"))
    _set_env(clean_env, {
        "STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": azure_container, "STORAGE_RETRY_ATTEMPTS": "1",
        "AZURE_STORAGE_CONNECTION_STRING": f"BlobEndpoint={azurite.blob_url};SharedAccessSignature={sas}",
    })
    ev = Evidence(secrets | _variants(azurite.account_key))
    with debug_logs() as logs:
        _settings_reprs(ev)
        async with Storage.from_env() as storage:
            await _exercise(ev, storage, "azure", tmp_path)
            provider = storage.provider("azure")
            await ev.attempt("overwrite=False", provider.upload_bytes(b"x", "secrets/once.bin", overwrite=False))
            await ev.attempt("overwrite=False again", provider.upload_bytes(b"x", "secrets/once.bin", overwrite=False))
            await ev.attempt("presign without a key", provider.presigned_url("secrets/once.bin"))
    assert len(ev.errors) >= 4
    assert not ev.leaks(logs.records), "\n".join(ev.leaks(logs.records))


async def test_presigned_and_sas_urls_pasted_into_endpoints(
    make_s3_provider: Callable[..., S3Provider],
    make_azure_provider: Callable[..., AzureBlobProvider],
    azurite: servers.AzuriteServer,
    clean_env: pytest.MonkeyPatch,
) -> None:
    """Real signed URLs (an S3 presigned URL, an Azure SAS URL) pasted where a service URL
    belongs are refused at start-up without echoing their signature, and making them logs
    nothing of it either."""
    ev = Evidence(set())
    with debug_logs() as logs:
        s3, azure = make_s3_provider(), make_azure_provider("connection_string")
        await s3.upload_bytes(b"shared", "secrets/shared.bin")
        await azure.upload_bytes(b"shared", "secrets/shared.bin")
        presigned = await s3.presigned_url("secrets/shared.bin", expires_in=600)
        sas_url = await azure.presigned_url("secrets/shared.bin", expires_in=600)
        ev.secrets |= _variants(_sig(presigned, "X-Amz-Signature"), _sig(sas_url, "sig"), azurite.account_key)
        bucket = s3.bucket
        attempts: list[tuple[str, Callable[[], object]]] = [
            ("S3Provider(endpoint_url=presigned)", lambda: S3Provider(bucket=bucket, endpoint_url=presigned)),
            ("AzureBlobProvider(account_url=sas)", lambda: AzureBlobProvider(
                container="recordings", account_name=azurite.account_name, account_url=sas_url)),
        ]
        for where, make in attempts:
            with pytest.raises(UnistoreError) as caught:
                make()
            ev.add_error(where, caught.value)
        for env in (
            {"STORAGE_UPLOAD_MODE": "s3", "AWS_RECORDING_STORAGE_BUCKET_NAME": bucket, "AWS_ENDPOINT_URL": presigned},
            {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": "recordings",
             "AZURE_STORAGE_ACCOUNT_NAME": azurite.account_name, "AZURE_STORAGE_ACCOUNT_URL": sas_url},
        ):
            with clean_env.context() as patch:
                _set_env(patch, env)
                with pytest.raises(UnistoreError) as caught:
                    Storage.from_env()
                ev.add_error(f"from_env {sorted(env)}", caught.value)
    assert all("presigned/SAS URL" in str(e) for e in ev.errors), [str(e) for e in ev.errors]
    assert not ev.leaks(logs.records), "\n".join(ev.leaks(logs.records))


async def test_sdk_debug_output_is_not_ours_to_police(
    s3_server: servers.S3Server, s3_bucket: str, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the SDK loggers at DEBUG, the secret key appears nowhere, not even in botocore's
    records, and unistore's own records carry no signature. botocore's DEBUG records do carry
    signatures and the session token (see the module docstring): not checked here."""
    _set_env(clean_env, {**s3_server.env(s3_bucket), "STORAGE_UPLOAD_MODE": "s3",
                         "AWS_SECRET_ACCESS_KEY": WRONG_S3_SECRET, "STORAGE_RETRY_ATTEMPTS": "1"})
    ev = Evidence(_variants(WRONG_S3_SECRET))
    with debug_logs() as logs:
        async with Storage.from_env() as storage:
            await ev.attempt("upload_bytes", storage.upload_bytes(b"meeting", "secrets/small.bin"))
            url = await storage.provider("s3").presigned_url("secrets/small.bin")
    # the secret key itself: nowhere, not even in SDK DEBUG records
    assert not ev.leaks(logs.records, sdk_debug=True), "\n".join(ev.leaks(logs.records, sdk_debug=True))
    signature = _sig(url, "X-Amz-Signature")
    ours = [r for r in logs.records if r.name.startswith("unistore")]
    assert ours and not any(signature in _record_text(r) for r in ours)
    assert any(r.name.startswith("botocore") and r.levelno == logging.DEBUG for r in logs.records)
