"""`unistore.contrib.django` without servers: OPTIONS validated like the environment, the
missing-extra error, and the storage contract over the memory and local providers (the same
contract against SeaweedFS and Azurite, under Django's test runner, is `tests/test_django.py`)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile, File

from unistore import ConfigError, FanOutError
from unistore.contrib._django_options import known_options, options_table, parse_options
from unistore.contrib.django import UnistoreStorage

if not django_settings.configured:
    django_settings.configure(USE_TZ=True)

ROOT = Path(__file__).parent.parent


def test_options_override_the_environment_variable_by_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_RECORDING_STORAGE_BUCKET_NAME", "from-the-env")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.setenv("AZURE_STORAGE_CONTAINER_NAME", "env-container")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    settings, django = parse_options(
        {"STORAGE_UPLOAD_MODE": "both", "AWS_RECORDING_STORAGE_BUCKET_NAME": "from-options",
         "STORAGE_OVERWRITE": "false", "URL_EXPIRES": 120}
    )
    assert settings.providers == ("s3", "azure")
    assert settings.s3 is not None and settings.s3.bucket == "from-options"
    assert settings.s3.region == "eu-west-3"  # not in OPTIONS: read from the environment
    assert settings.azure is not None and settings.azure.container == "env-container"
    assert settings.overwrite is False
    assert django.URL_EXPIRES == 120 and django.PUBLIC_BASE_URL is None


def test_unknown_options_are_an_error_naming_them() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_options({"STORAGE_UPLOAD_MOD": "s3", "bucket_name": "x", "URL_EXPIRES": 60})
    assert set(caught.value.variables) == {"STORAGE_UPLOAD_MOD", "bucket_name"}
    assert "did you mean 'STORAGE_UPLOAD_MODE'?" in str(caught.value)
    assert "STORAGE_OVERWRITE" in known_options() and "PUBLIC_BASE_URL" in known_options()


@pytest.mark.parametrize(
    ("options", "variable"),
    [
        ({"STORAGE_UPLOAD_MODE": "s3", "AWS_ACCESS_KEY_ID": "AKIA", "AWS_RECORDING_STORAGE_BUCKET_NAME": "bkt"},
         "AWS_SECRET_ACCESS_KEY"),
        ({"STORAGE_UPLOAD_MODE": "memory", "STORAGE_CHUNK_SIZE": "1MiB"}, "STORAGE_CHUNK_SIZE"),
        ({"STORAGE_UPLOAD_MODE": "memory", "URL_EXPIRES": 8 * 24 * 3600}, "URL_EXPIRES"),
        ({"STORAGE_UPLOAD_MODE": "memory", "PUBLIC_BASE_URL": "https://cdn.test/x?sig=abc"}, "PUBLIC_BASE_URL"),
    ],
)
def test_bad_options_fail_like_bad_variables(options: dict[str, object], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        UnistoreStorage(**options)
    assert variable in caught.value.variables
    assert "sig=abc" not in str(caught.value)


def test_without_django_the_import_names_the_extra(tmp_path: Path) -> None:
    blocker = (
        "import sys\n"
        "class NoDjango:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'django' or name.startswith('django.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoDjango())\n"
        "try:\n"
        "    import unistore.contrib.django\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MissingDependencyError unistore.contrib.django needs 'django'"), done.stdout
    assert "pip install 'unistore[django]'" in done.stdout


@pytest.fixture
def memory_storage() -> Iterator[UnistoreStorage]:
    storage = UnistoreStorage(STORAGE_UPLOAD_MODE="memory", STORAGE_OVERWRITE="false")
    try:
        yield storage
    finally:
        storage.close()


def test_overwrite_off_never_replaces_and_retries_another_name(memory_storage: UnistoreStorage) -> None:
    first = memory_storage.save("a/take.txt", ContentFile(b"one"))
    second = memory_storage.save("a/take.txt", ContentFile(b"two"))
    raced = memory_storage._save("a/take.txt", ContentFile(b"three"))  # the name taken after the check
    assert first == "a/take.txt" and len({first, second, raced}) == 3
    with memory_storage.open(first) as handle:
        assert handle.read() == b"one"
    with memory_storage.open(raced, "r") as handle:
        assert handle.read() == "three"
    assert memory_storage.size(second) == 3
    assert sorted(memory_storage.listdir("a")[1]) == sorted(n.split("/")[1] for n in (first, second, raced))
    memory_storage.delete(first)
    assert not memory_storage.exists(first) and memory_storage.exists(second)
    with pytest.raises(FileNotFoundError):
        memory_storage.size(first)
    with pytest.raises(ValueError, match="reading only"):
        memory_storage.open(second, "wb")


def test_max_length_is_kept_when_the_conditional_create_picks_another_name(memory_storage: UnistoreStorage) -> None:
    name = "clips/" + "n" * 20 + ".txt"
    memory_storage.save(name, ContentFile(b"first"))
    other = memory_storage.save(name, ContentFile(b"second"), max_length=len(name))
    assert other != name and len(other) <= len(name)


def test_overwrite_on_keeps_the_name() -> None:
    storage = UnistoreStorage(STORAGE_UPLOAD_MODE="memory", STORAGE_OVERWRITE=True)
    try:
        assert storage.save("a.txt", ContentFile(b"one")) == "a.txt"
        assert storage.save("a.txt", ContentFile(b"two")) == "a.txt"
        assert storage.sync.download_bytes("a.txt") == b"two"
    finally:
        storage.close()


def test_a_failed_provider_fails_the_save_with_every_outcome(tmp_path: Path) -> None:
    (tmp_path / "rec.bin").mkdir()  # a folder where the local provider must write the file
    (tmp_path / "rec2.bin").mkdir()
    options = {"STORAGE_UPLOAD_MODE": "memory,local", "STORAGE_LOCAL_ROOT": str(tmp_path)}
    strict = UnistoreStorage(**options)
    lenient = UnistoreStorage(**options, STORAGE_REQUIRE="any")
    try:
        with pytest.raises(FanOutError) as caught:
            strict.save("rec.bin", ContentFile(b"x" * 100))
        report = caught.value.report
        assert report is not None and report.succeeded == ["memory"] and report.failed == ["local"]
        assert "local" in str(caught.value)
        assert lenient.save("rec2.bin", ContentFile(b"x" * 100)) == "rec2.bin"
    finally:
        strict.close()
        lenient.close()


def test_empty_files_need_allow_empty() -> None:
    refusing = UnistoreStorage(STORAGE_UPLOAD_MODE="memory")
    allowing = UnistoreStorage(STORAGE_UPLOAD_MODE="memory", ALLOW_EMPTY=True)
    try:
        with pytest.raises(Exception, match="empty"):
            refusing.save("empty.txt", ContentFile(b""))
        assert allowing.save("empty.txt", ContentFile(b"")) == "empty.txt"
        assert allowing.size("empty.txt") == 0
    finally:
        refusing.close()
        allowing.close()


def test_url_uses_the_public_base_url_or_presigns() -> None:
    public = UnistoreStorage(STORAGE_UPLOAD_MODE="memory", PUBLIC_BASE_URL="https://cdn.test/rec/")
    assert public.url("a b/c.mp4") == "https://cdn.test/rec/a%20b/c.mp4"
    assert public._sync is None, "a public URL needs no loop"
    signed = UnistoreStorage(STORAGE_UPLOAD_MODE="memory", URL_EXPIRES=90)
    try:
        signed.save("x.mp4", ContentFile(b"x"))
        assert signed.url("x.mp4") == signed.sync.presigned_url("x.mp4", 90)
        assert signed.url("missing.mp4")  # a URL that answers 404, as Django's storages give
    finally:
        signed.close()


def test_readme_lists_the_django_options() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- django-options:start -->") + len("<!-- django-options:start -->")
    end = readme.index("<!-- django-options:end -->")
    assert readme[start:end].strip() == options_table(), "regenerate with options_table()"


class _OneWayStream(io.RawIOBase):
    """A source that cannot seek (a pipe, a socket): it can be sent once only."""

    def __init__(self, data: bytes) -> None:
        self.rest = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), len(self.rest))
        buffer[:n], self.rest = self.rest[:n], self.rest[n:]
        return n


def test_a_stream_that_cannot_seek_is_not_resent_under_another_name(memory_storage: UnistoreStorage) -> None:
    memory_storage.save("pipe.bin", ContentFile(b"first"))
    with pytest.raises(FanOutError, match="cannot be resent"):
        memory_storage._save("pipe.bin", File(io.BufferedReader(_OneWayStream(b"second" * 1000)), "pipe.bin"))
    assert memory_storage.listdir("")[1] == ["pipe.bin"]
    assert memory_storage.sync.download_bytes("pipe.bin") == b"first"
    fresh = memory_storage.save("pipe-2.bin", File(io.BufferedReader(_OneWayStream(b"second" * 1000)), "x"))
    assert memory_storage.sync.download_bytes(fresh) == b"second" * 1000


def test_threads_saving_one_name_at_once_each_get_their_own(memory_storage: UnistoreStorage) -> None:
    # every thread's exists() check can pass before any write lands: the conditional create
    # is what keeps each file whole under its own name
    barrier = threading.Barrier(8)

    def save(i: int) -> str:
        barrier.wait()
        return memory_storage.save("race/take.txt", ContentFile(f"take {i}".encode()))

    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(save, range(8)))
    assert len(set(names)) == 8
    for i, name in enumerate(names):
        assert memory_storage.sync.download_bytes(name) == f"take {i}".encode()
