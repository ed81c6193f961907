"""`UnistoreStorage`: a Django file storage that writes every file to every configured provider.

    STORAGES = {"default": {"BACKEND": "unistore.contrib.django.UnistoreStorage",
                            "OPTIONS": {"STORAGE_UPLOAD_MODE": "both", ...}}}

Configured from the environment, or from `OPTIONS` (the same names, validated the same way;
see `unistore.contrib._django_options`). It runs on one `unistore.sync.SyncStorage` per storage
and process, which any number of request or Celery threads share.

- `save` fans out to every provider. A file on disk (a `TemporaryUploadedFile`, a `File` over an
  open file) is uploaded from its path; anything else is streamed from its chunks; neither is
  read whole into memory. `STORAGE_REQUIRE` decides success; a failure raises `FanOutError`,
  whose `report` holds each provider's outcome.
- With `STORAGE_OVERWRITE=false` the write is the service's conditional create: a name taken
  between Django's `exists()` check and the write (another thread, another worker) is never
  replaced; Django's next alternative name is tried instead. With overwrite on, a name is kept
  and its object replaced.
- Reads (`open`, `size`, `exists`, `get_modified_time`) come from the first healthy provider in
  read order that holds the name; `open` spools the object to a temporary file. `delete`
  removes every copy; `listdir` merges both providers' listings; `url` is presigned, or joined
  to `PUBLIC_BASE_URL`.
"""

from __future__ import annotations

import contextvars
import errno
import io
import os
import stat
import tempfile
import threading
from datetime import datetime
from typing import IO, Any, cast

from .._errors import AlreadyExistsError, FanOutError, MissingDependencyError, NotFoundError
from .._report import UploadReport
from ..sync import SyncStorage
from ._django_options import DjangoOptions, parse_options

try:
    from django.conf import settings as django_settings
    from django.core.files.base import File
    from django.core.files.storage import Storage
    from django.utils.encoding import filepath_to_uri
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without Django
    raise MissingDependencyError("django", "django", needed_by="unistore.contrib.django") from exc

NAME_ATTEMPTS = 10
"""Alternative names tried when a conditional create finds each one taken."""

_max_length: contextvars.ContextVar[int | None] = contextvars.ContextVar("unistore_max_length", default=None)


class UnistoreStorage(Storage):
    """A Django `Storage` over the fan-out; `**options` are the `OPTIONS` of `STORAGES`."""

    def __init__(self, **options: Any) -> None:
        self.settings, self.options = parse_options(options)
        self._sync: SyncStorage | None = None
        self._lock = threading.Lock()

    @property
    def sync(self) -> SyncStorage:
        """The `SyncStorage` underneath, started on first use (not when Django builds the
        storage: `migrate` and other commands that touch no file start no loop)."""
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    self._sync = SyncStorage.from_settings(self.settings)
        return self._sync

    @property
    def overwrite(self) -> bool:
        return bool(self.settings.overwrite)

    def close(self) -> None:
        """Close the providers and stop the loop thread (also done at interpreter exit)."""
        with self._lock:
            sync, self._sync = self._sync, None
        if sync is not None:
            sync.close()

    # -- writes --------------------------------------------------------------------------

    def save(self, name: str | None, content: IO[Any], max_length: int | None = None) -> str:
        # Django's save() passes max_length to get_available_name only; _save needs it too, to
        # pick a name of the same length limit when the conditional create finds one taken
        token = _max_length.set(max_length)
        try:
            return super().save(name, content, max_length)
        finally:
            _max_length.reset(token)

    def is_name_available(self, name: str, max_length: int | None = None) -> bool:
        # Django's get_available_name() asks this in its loop, after its own checks of the name
        if self.overwrite:
            return max_length is None or len(name) <= max_length  # kept, and replaced
        return super().is_name_available(name, max_length)

    def _save(self, name: str, content: File[Any]) -> str:
        for _ in range(NAME_ATTEMPTS):
            report = self._write(name, content)
            taken = [p for p, r in report.results.items() if isinstance(r.error, AlreadyExistsError)]
            if not taken or self.overwrite:
                if not report.ok:
                    raise FanOutError(report.errors, report, operation=f"save of {name!r}")
                return name
            # Another writer got the name first on `taken`. Copies this attempt created elsewhere
            # are ours alone (conditional creates), and would pair the name with other bytes.
            self._undo(name, report.succeeded)
            if not _rewind(content):
                raise FanOutError(report.errors, report, operation=f"save of {name!r} (a stream cannot be resent)")
            name = self.get_available_name(name, _max_length.get())
        raise FanOutError(report.errors, report, operation=f"save of {name!r} ({NAME_ATTEMPTS} names taken)")

    def _write(self, name: str, content: File[Any]) -> UploadReport:
        opts: dict[str, Any] = {
            "content_type": _content_type(name),
            "overwrite": self.overwrite,
            "allow_empty": self.options.ALLOW_EMPTY,
        }
        path = _path_on_disk(content)
        if path is not None:
            return self.sync.upload_file(path, name, **opts)
        size = _known_size(content)
        if size is not None and size <= int(self.settings.multipart_threshold) and _rewind(content):
            return self.sync.upload_bytes(_as_bytes(content.read()), name, **opts)
        # read in whole parts: the writer then sends each chunk as it is, with no copy to join them
        chunks = (_as_bytes(chunk) for chunk in content.chunks(int(self.settings.chunk_size)))
        return self.sync.upload_stream(chunks, name, **opts)

    def _undo(self, name: str, providers: list[str]) -> None:
        storage = self.sync.storage
        for provider in providers:
            self.sync._call(storage.provider(provider).delete, name)

    # -- reads -----------------------------------------------------------------------------

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        if any(flag in mode for flag in "wax+"):
            raise ValueError(f"UnistoreStorage opens files for reading only (mode {mode!r}): write with save()")
        spool_dir = getattr(django_settings, "FILE_UPLOAD_TEMP_DIR", None) or None
        fd, path = tempfile.mkstemp(prefix="unistore-", suffix=".download", dir=spool_dir)
        os.close(fd)
        try:
            try:
                info = self.sync.download_file(name, path)
            except NotFoundError as exc:
                raise _missing(name) from exc
            handle: IO[Any] = open(path, "rb")  # the File returned owns it
        finally:
            os.unlink(path)  # the open handle keeps the bytes until it is closed
        if "b" not in mode:
            handle = io.TextIOWrapper(cast(IO[bytes], handle), encoding="utf-8")
        spooled = File(handle, name)
        spooled.size = info.size
        return spooled

    def _locate(self, name: str) -> tuple[str, Any]:
        try:
            return self.sync.locate(name)
        except NotFoundError as exc:
            raise _missing(name) from exc

    def exists(self, name: str) -> bool:
        try:
            self.sync.locate(name)
        except NotFoundError:
            return False
        except FanOutError:
            if self.settings.require == "any":
                return False  # some provider is down; the conditional create still guards the others
            raise
        return True

    def size(self, name: str) -> int:
        return int(self._locate(name)[1].size)

    def get_modified_time(self, name: str) -> datetime:
        provider, info = self._locate(name)
        modified: datetime | None = info.last_modified
        if modified is None:
            raise NotImplementedError(f"the {provider} provider reports no modification time")
        if getattr(django_settings, "USE_TZ", True):
            return modified
        return modified.astimezone().replace(tzinfo=None)  # naive local time, as Django expects

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        directories: dict[str, None] = {}
        files: list[str] = []
        for item in self.sync.list(prefix):
            rest = item.key[len(prefix) :]
            head, slash, _ = rest.partition("/")
            if slash:
                directories.setdefault(head)
            else:
                files.append(rest)
        return list(directories), files

    def url(self, name: str | None, expire: int | None = None) -> str:
        """`PUBLIC_BASE_URL` + the name when set; else a presigned GET valid `expire` seconds
        (default `URL_EXPIRES`) from the first healthy provider that holds the name. For a name
        no provider holds, a URL of the first provider in read order (it answers 404), as
        Django's own storages do not check either."""
        if not name:
            raise ValueError("url() needs a file name")
        base = self.options.PUBLIC_BASE_URL
        if base is not None:
            return f"{base}/{filepath_to_uri(name).lstrip('/')}"
        expires = expire if expire is not None else self.options.URL_EXPIRES
        try:
            return self.sync.presigned_url(name, expires)
        except NotFoundError:
            return self.sync.presigned_url(name, expires, provider=self.sync.read_order[0])

    # -- deletes -----------------------------------------------------------------------------

    def delete(self, name: str) -> None:
        if not name:
            raise ValueError("The name must be given to delete().")
        report = self.sync.delete(name)
        if not report.all_ok:
            raise FanOutError(report.errors, report, operation=f"delete of {name!r}")

    def __repr__(self) -> str:
        return f"<UnistoreStorage providers={list(self.settings.providers)} overwrite={self.overwrite}>"


def _missing(name: str) -> FileNotFoundError:
    # Django's own storages raise FileNotFoundError for a missing name; code that catches it
    # (or OSError) keeps working. The unistore NotFoundError is its __cause__.
    return FileNotFoundError(errno.ENOENT, "no provider holds this file", name)


def _content_type(name: str) -> str | None:
    # from the stored name, never from the client's upload header (a browser-sent text/html on
    # a presigned URL would render on the bucket's domain)
    import mimetypes

    return mimetypes.guess_type(name)[0]


def _path_on_disk(content: File[Any]) -> str | None:
    """The path of a file whose bytes are all on disk, to upload it in ranges from there."""
    temporary = getattr(content, "temporary_file_path", None)
    if callable(temporary):
        if content.file is not None:
            content.file.flush()  # bytes still in the write buffer are not on disk yet
        return str(temporary())
    handle = getattr(content, "file", None)
    path = getattr(handle, "name", None)
    if not isinstance(path, str) or handle is None:
        return None
    try:
        handle.flush()
        opened, named = os.fstat(handle.fileno()), os.stat(path)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    if stat.S_ISREG(opened.st_mode) and (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino):
        return path
    return None


def _rewind(content: File[Any]) -> bool:
    """Back to the first byte, for a second read; False for a stream that cannot seek."""
    if _path_on_disk(content) is not None:
        return True
    try:
        content.seek(0)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    return True


def _known_size(content: File[Any]) -> int | None:
    try:
        return int(content.size)
    except (AttributeError, TypeError, ValueError, OSError):
        return None


def _as_bytes(chunk: bytes | str) -> bytes:
    return chunk.encode("utf-8") if isinstance(chunk, str) else chunk


__all__ = ["DjangoOptions", "UnistoreStorage"]
