"""The CLI's output pieces without servers: sizes, one-line errors with the fix their class
carries (redacted), plain tables and progress lines, and whole commands run in-process on the
memory provider (doctor, upload, a bad environment)."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest

from unistore import cli
from unistore._cli_output import Output, error_parts, human_size, one_line
from unistore._cli_progress import ProgressLines, upload_progress
from unistore._errors import AuthenticationError, ConfigError, MissingDependencyError, NotFoundError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("STORAGE_", "AWS_", "AZURE_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("size", "shown"),
    [(None, "?"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (50_000_000, "47.7 MiB"), (3 * 1024**3, "3.00 GiB")],
)
def test_human_size(size: int | None, shown: str) -> None:
    assert human_size(size) == shown


def test_error_parts_reuse_the_fix_of_each_error_class() -> None:
    auth = AuthenticationError(
        "Put Blob failed", provider="azure", code="AuthenticationFailed", status=403,
        hint="check AZURE_STORAGE_ACCOUNT_KEY",
    )
    assert error_parts(auth) == (
        "Put Blob failed (code=AuthenticationFailed, status=403)", "check AZURE_STORAGE_ACCOUNT_KEY"
    )
    assert one_line(auth) == (
        "Put Blob failed (code=AuthenticationFailed, status=403); fix: check AZURE_STORAGE_ACCOUNT_KEY"
    )
    missing = MissingDependencyError("azure", "azure.storage.blob")
    assert error_parts(missing)[1] == "pip install 'unistore[azure]'"
    assert one_line(missing).count("pip install") == 1  # the message says it already: not repeated
    bucket = "AWS_RECORDING_STORAGE_BUCKET_NAME"
    named = ConfigError(f"{bucket} is required", variables=[bucket])
    assert error_parts(named) == (f"{bucket} is required", None)
    unnamed = ConfigError("two providers share a name", variables=["STORAGE_UPLOAD_MODE"])
    assert error_parts(unnamed)[1] == "check STORAGE_UPLOAD_MODE"
    # a code the message already states is not repeated
    assert error_parts(NotFoundError("no NoSuchKey here", provider="s3", code="NoSuchKey"))[0] == "no NoSuchKey here"


def test_one_line_is_one_line_and_redacted() -> None:
    secret = "c2VjcmV0IGtleSBvZiB0aGUgdGVzdA=="
    exc = ConfigError(f"bad connection string\nAccountName=a;AccountKey={secret};\nsee the docs")
    line = one_line(exc)
    assert "\n" not in line and secret not in line and "AccountKey=REDACTED" in line


def test_plain_table_aligns_columns_and_leaves_the_last_unpadded() -> None:
    out = io.StringIO()
    Output(out=out).table(("A", "LONGER", "LAST"), [("xyz", "1", "end"), ("q", "22222222", "x")])
    assert out.getvalue().splitlines() == ["A    LONGER    LAST", "xyz  1         end", "q    22222222  x"]


def test_progress_lines_print_each_quarter_once_and_not_the_end() -> None:
    out = io.StringIO()
    progress = ProgressLines(Output(out=out), ["s3", "azure"])
    mib = 1024 * 1024
    for done in (8, 16, 24, 32, 40):
        progress("s3", done * mib, 40 * mib)
    progress("azure", 40 * mib, 40 * mib)  # a single put reports once, at its end
    assert out.getvalue().splitlines() == [
        "s3: 40% (16.0 MiB of 40.0 MiB)", "s3: 60% (24.0 MiB of 40.0 MiB)", "s3: 80% (32.0 MiB of 40.0 MiB)"
    ]


def test_no_progress_in_json_mode_and_no_bars_off_a_terminal() -> None:
    assert type(upload_progress(Output(json_mode=True), ["s3"], 10)).__name__ == "UploadProgress"
    assert isinstance(upload_progress(Output(out=io.StringIO()), ["s3"], 10), ProgressLines)


def test_doctor_and_upload_in_process_on_the_memory_provider(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    clean_env.setenv("STORAGE_UPLOAD_MODE", "memory")
    assert cli.main(["doctor", "--json", "--timeout", "1"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [c["check"] for c in document["checks"]] == [
        "settings", "providers", "credentials", "bucket", "write", "read", "delete"
    ]
    assert document["ok"] is True

    source = tmp_path / "talk.webm"
    source.write_bytes(b"recorded" * 100)
    assert cli.main(["upload", str(source), "--key", "talks/1.webm", "--delete-local"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("memory: stored 'talks/1.webm' (800 B in ")
    assert out[1:] == ["uploaded 'talks/1.webm' to 1 of 1 providers", f"deleted the local file {str(source)!r}"]
    assert not source.exists()


def test_a_bad_environment_is_one_line_and_exit_2(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("STORAGE_UPLOAD_MODE", "dropbox")
    assert cli.main(["ls"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unistore ls: ") and "STORAGE_UPLOAD_MODE" in lines[0]
    assert cli.main(["ls", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "ConfigError"


def test_a_missing_source_is_one_line_and_exit_1(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("STORAGE_UPLOAD_MODE", "memory")
    assert cli.main(["upload", "/nonexistent/recording.mp4"]) == 1
    assert capsys.readouterr().err == (
        "unistore upload: source file '/nonexistent/recording.mp4' does not exist: check the path\n"
    )


def test_verbose_prints_the_library_log_lines_on_stderr(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    clean_env.setenv("STORAGE_UPLOAD_MODE", "memory")
    source = tmp_path / "a.bin"
    source.write_bytes(b"a" * 10)
    try:
        assert cli.main(["upload", str(source), "-v"]) == 0
    finally:
        logger = logging.getLogger("unistore")
        for handler in [h for h in logger.handlers if h.get_name() == "unistore-cli"]:
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    err = capsys.readouterr().err
    assert "INFO unistore: Uploading to configured providers: memory" in err
    assert "Unified storage manager finished uploading to all providers" in err


def test_config_and_cleanup_take_json_too(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0] == {
        "variable": "STORAGE_UPLOAD_MODE",
        "meaning": "`s3`, `azure`, `both`; also `local`, `memory`, `all` (s3+azure+local) or a comma list.",
        "default": "s3",
    }
    assert {r["variable"] for r in rows} >= {"AWS_RECORDING_STORAGE_BUCKET_NAME", "AZURE_STORAGE_CONTAINER_NAME"}
    clean_env.setenv("STORAGE_UPLOAD_MODE", "memory")
    assert cli.main(["cleanup", "--older-than", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "provider": "memory", "note": "no incomplete-upload cleanup for this provider"
    }


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["upload"], "unistore upload: the following arguments are required: FILE (see unistore upload --help)"),
        (["presign", "k", "--expires", "0"], "unistore presign: argument --expires: '0' must be above 0 seconds "
         "(see unistore presign --help)"),
        (["doctor", "--timeout", "soon"], "unistore doctor: argument --timeout: 'soon' is not a number of seconds "
         "(see unistore doctor --help)"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(argv: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err == line + "\n"
