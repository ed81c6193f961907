"""OpenTelemetry: the spans and metrics a `both` upload exports to the SDK's in-memory exporters
(SeaweedFS and Azurite), a retried part's attempts, a failed provider's code, no secret in any
attribute; and nothing imported or paid without the API."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import otel, servers
from unistore import JsonLogFormatter, Storage
from unistore import _logging as unistore_logging
from unistore._multipart import MiB
from unistore.providers.azure import AzureBlobProvider
from unistore.providers.s3 import S3Provider

Factory = Callable[..., Any]
SIZE = 6 * MiB + 5  # above the test transfers' 5 MiB threshold: two parts on each provider


@pytest.fixture(autouse=True)
def exported() -> None:
    otel.install()
    otel.clear()


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "meeting.mp4"
    path.write_bytes(b"r" * SIZE)
    return path


def _by_name(name: str) -> list[Any]:
    return [s for s in otel.spans() if s.name == name]


def _scan_for(secrets: list[str]) -> list[str]:
    return [f"{where}: {text}" for where, text in otel.exported_texts() for s in secrets if s in text]


@pytest.mark.servers
async def test_both_upload_exports_spans_and_metrics(
    make_s3_provider: Factory, make_azure_provider: Factory, recording: Path,
    s3_server: servers.S3Server, azurite: servers.AzuriteServer,
) -> None:
    before_bytes = otel.total("unistore.upload.bytes", **{"unistore.provider": "s3"})
    before_durations = otel.total("unistore.upload.duration", **{"unistore.provider": "azure"})
    s3: S3Provider = make_s3_provider()
    azure: AzureBlobProvider = make_azure_provider()
    async with Storage([s3, azure]) as storage:
        report = await storage.upload_file(recording, "secret-meeting/2026-12-03.mp4")
    assert report.ok

    [upload] = _by_name("unistore.upload")
    assert upload.attributes["unistore.outcome"] == "ok"
    assert list(upload.attributes["unistore.providers"]) == ["s3", "azure"]
    assert upload.attributes["unistore.bytes"] == SIZE
    per_provider = {s.attributes["unistore.provider"]: s for s in _by_name("unistore.provider_upload")}
    assert set(per_provider) == {"s3", "azure"}
    for span in per_provider.values():
        assert span.parent is not None and span.parent.span_id == upload.context.span_id
        assert span.attributes["unistore.bytes"] == SIZE and span.attributes["unistore.outcome"] == "ok"

    requests = _by_name("unistore.request")
    for name, provider_span in per_provider.items():
        mine = [r for r in requests if r.parent is not None and r.parent.span_id == provider_span.context.span_id]
        ops = sorted(r.attributes["unistore.operation"] for r in mine)
        assert ops.count("part") == 2 and "complete upload" in ops, (name, ops)
        parts = [r for r in mine if r.attributes["unistore.operation"] == "part"]
        assert sorted(r.attributes["unistore.part_number"] for r in parts) == [1, 2]
        assert sum(r.attributes["unistore.bytes"] for r in parts) == SIZE
        assert all(r.attributes["unistore.attempts"] == 1 and r.attributes["unistore.outcome"] == "ok" for r in mine)
        assert all(r.attributes["unistore.provider"] == name for r in mine)

    assert otel.total("unistore.upload.bytes", **{"unistore.provider": "s3"}) - before_bytes == SIZE
    assert otel.total("unistore.upload.duration", **{"unistore.provider": "azure"}) - before_durations == 1
    assert otel.total("unistore.requests", **{"unistore.provider": "s3", "unistore.operation": "part"}) >= 2
    assert otel.points("unistore.buffer.bytes"), "the buffer budget's gauge is observed"

    # the object key may be user data: it is in no attribute; nor is any secret
    texts = [text for _, text in otel.exported_texts()]
    assert not [t for t in texts if "secret-meeting" in t]
    assert not _scan_for([s3_server.secret_key, azurite.account_key])


@pytest.mark.servers
async def test_a_retried_part_shows_its_attempts(make_s3_provider: Factory, recording: Path) -> None:
    s3: S3Provider = make_s3_provider()
    real_put_part = s3._put_part
    failed: list[int] = []

    async def reset_once(handle: Any, number: int, data: bytes, digest: bytes) -> Any:
        if number == 2 and not failed:
            failed.append(number)
            raise ConnectionResetError(104, "Connection reset by peer")  # the transport's fault
        return await real_put_part(handle, number, data, digest)

    s3._put_part = reset_once  # type: ignore[method-assign]
    before = otel.total("unistore.request.retries", **{"unistore.provider": "s3", "unistore.operation": "part"})
    async with Storage([s3]) as storage:
        report = await storage.upload_file(recording, "rec/retried.mp4")
    assert report.ok and failed == [2]
    parts = {s.attributes["unistore.part_number"]: s for s in _by_name("unistore.request")
             if s.attributes["unistore.operation"] == "part"}
    assert parts[1].attributes["unistore.attempts"] == 1
    assert parts[2].attributes["unistore.attempts"] == 2 and parts[2].attributes["unistore.outcome"] == "ok"
    after = otel.total("unistore.request.retries", **{"unistore.provider": "s3", "unistore.operation": "part"})
    assert after - before == 1


@pytest.mark.servers
async def test_a_failed_provider_shows_its_code(
    make_s3_provider: Factory, make_azure_provider: Factory, azurite: servers.AzuriteServer,
) -> None:
    # the meter is process-wide: count only this provider and code, as the assertion below does
    before = otel.total("unistore.upload.failures", **{"unistore.provider": "azure", "error.type": "ContainerNotFound"})
    before_journal = otel.total("unistore.repair.pending")
    azure: AzureBlobProvider = make_azure_provider(container="no-such-container-for-telemetry")
    async with Storage([make_s3_provider(), azure]) as storage:
        report = await storage.upload_bytes(b"meeting", "rec/half.mp4")
    assert report.failed == ["azure"]
    code = getattr(report.errors["azure"], "code", None)
    assert code == "ContainerNotFound"

    [upload] = _by_name("unistore.upload")
    assert upload.attributes["unistore.outcome"] == "failed" and upload.attributes["error.type"] == code
    failed = [s for s in _by_name("unistore.provider_upload") if s.attributes["unistore.provider"] == "azure"]
    assert failed[0].attributes["error.type"] == code and failed[0].status.status_code.name == "ERROR"
    [request] = [s for s in _by_name("unistore.request") if s.attributes["unistore.provider"] == "azure"]
    assert request.attributes["error.type"] == code and request.attributes["unistore.outcome"] == "failed"
    assert not request.events, "exceptions are not recorded: their text is not ours to vouch for"
    assert otel.total("unistore.upload.failures", **{"unistore.provider": "azure", "error.type": code}) - before == 1
    assert otel.total("unistore.repair.pending") - before_journal == 1, "the missed copy was journalled"
    assert not _scan_for([azurite.account_key])


async def test_memory_upload_records_without_servers() -> None:
    from unistore.providers import MemoryProvider

    async with Storage([MemoryProvider(name="m")]) as storage:
        await storage.upload_bytes(b"abc", "k")
    [span] = [s for s in _by_name("unistore.provider_upload") if s.attributes["unistore.provider"] == "m"]
    assert span.attributes["unistore.bytes"] == 3


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_the_api_nothing_is_imported_and_uploads_run() -> None:
    out = _run(
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if unistore[otel] were not installed\n"
        "import asyncio, unistore\n"
        "from unistore import _telemetry\n"
        "from unistore.providers import MemoryProvider\n"
        "async def main():\n"
        "    async with unistore.Storage([MemoryProvider(name='m')]) as s:\n"
        "        print((await s.upload_bytes(b'x', 'k')).ok, _telemetry.active())\n"
        "asyncio.run(main())\n"
    )
    assert out.split() == ["True", "None"]


def test_with_the_api_but_no_provider_telemetry_stays_off() -> None:
    out = _run(
        "import sys, asyncio, unistore\n"
        "from unistore import _telemetry\n"
        "from unistore.providers import MemoryProvider\n"
        "print('opentelemetry' in sys.modules)\n"
        "async def main():\n"
        "    async with unistore.Storage([MemoryProvider(name='m')]) as s:\n"
        "        await s.upload_bytes(b'x', 'k')\n"
        "asyncio.run(main())\n"
        "print(_telemetry.active())\n"
    )
    assert out.split() == ["False", "None"]


def test_json_log_lines_carry_level_logger_message_and_fields() -> None:
    record = logging.LogRecord("unistore", logging.INFO, __file__, 1, "Successfully uploaded %s", ("x",), None)
    record.unistore = {"provider": "s3", "bytes": 5}
    line = json.loads(JsonLogFormatter().format(record))
    assert line["level"] == "INFO" and line["logger"] == "unistore" and line["message"] == "Successfully uploaded x"
    assert line["provider"] == "s3" and line["bytes"] == 5 and "time" in line
    secret = logging.LogRecord("unistore", logging.ERROR, __file__, 1, "bad AccountKey=abc123;", (), None)
    assert "abc123" not in JsonLogFormatter().format(secret)


async def test_log_format_json_reformats_only_unistore_s_own_handler(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from unistore._cli_run import library_logs

    logger = logging.getLogger("unistore")
    saved = list(logger.handlers), logger.level
    try:
        library_logs(verbose=True)
        monkeypatch.setenv("STORAGE_UPLOAD_MODE", "memory")
        monkeypatch.setenv("STORAGE_LOG_FORMAT", "JSON")
        async with Storage.from_env() as storage:
            await storage.upload_bytes(b"abc", "rec/json.mp4")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        success = [line for line in lines if line["message"].startswith("Successfully uploaded recording to")]
        assert success and success[0]["provider"] == "memory" and success[0]["bytes"] == 3
        assert success[0]["event"] == "provider_committed" and success[0]["level"] == "INFO"
        assert any(line["message"] == "Unified storage manager finished uploading to all providers" for line in lines)
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
    assert unistore_logging.CLI_HANDLER == "unistore-cli"
