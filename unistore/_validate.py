"""Checks of what a caller hands in, made before anything is written: the object key, user
metadata, the content type and an upload's source file. Every provider and the manager run
the same ones; a rule only one backend has (the local provider's file names) stays there."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping

from ._errors import ConfigError, EmptySourceError, InvalidKeyError, SourceError
from ._types import UPLOAD_OPTION_NAMES, UploadOptions

_META_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_key(key: str) -> str:
    """Keys must be non-empty, at most 1024 UTF-8 bytes (S3's and Azure's limit), free of
    control characters (they break listings, logs and some servers' signatures), and made of
    non-empty '/'-separated segments other than '.' and '..': HTTP clients and servers
    normalise such paths, so the object would be stored under another name on one provider
    (SeaweedFS stores '/a' as 'a') or refused with a misleading error on another (Azure
    answers a signature mismatch), and the local provider cannot represent them at all."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"object key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKeyError("object key is empty: pass a name such as 'recordings/bot-1.mp4'")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"object key is {len(key.encode('utf-8', 'surrogatepass'))} bytes; S3 and Azure allow "
            f"at most {MAX_KEY_BYTES}: shorten it"
        )
    if _CONTROL.search(key):
        raise InvalidKeyError(
            f"object key {key!r} contains a control character (NUL, newline, tab, ...): remove it"
        )
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise InvalidKeyError(
            f"object key {key!r} has an empty, '.' or '..' path segment (a leading, trailing or "
            "doubled '/', or a relative path): services normalise such names and store or refuse "
            "them differently; use '/'-separated names such as 'recordings/2024/bot-1.mp4'"
        )
    return key


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata travels as HTTP headers: names must be identifiers (Azure requires C#
    identifiers), values printable ASCII. S3 returns names lower-cased."""
    result: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _META_KEY.match(name):
            raise ConfigError(
                f"metadata name {name!r} is invalid: use letters, digits and '_', not starting "
                "with a digit (e.g. 'meeting_id')"
            )
        if not isinstance(value, str) or not all(32 <= ord(c) < 127 for c in value):
            raise ConfigError(
                f"metadata value of {name!r} must be printable ASCII text: encode other text "
                "(e.g. urllib.parse.quote) before storing it"
            )
        result[name] = value
    return result


_CONTENT_TYPE = re.compile(r"^[\x21-\x7e]+/[\x20-\x7e]+$")


def check_content_type(content_type: str | None) -> str | None:
    """A content type travels as an HTTP header: 'type/subtype' in printable ASCII (a CR or
    LF would inject headers; services refuse other bytes)."""
    if content_type is None:
        return None
    if not isinstance(content_type, str) or not _CONTENT_TYPE.match(content_type):
        raise ConfigError(
            f"content_type {content_type!r} is invalid: use a MIME type in printable ASCII such as "
            "'video/mp4' (or None to guess it from the file name)"
        )
    return content_type


def source_size(path: str | os.PathLike[str]) -> int:
    """Size of an upload source, or a `SourceError` that says what is wrong with it. The file
    is opened once here, so that an unreadable one fails before anything is written."""
    where = os.fspath(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise SourceError(f"source file {where!r} does not exist: check the path") from None
    except PermissionError:
        raise SourceError(
            f"source file {where!r} is not readable by this process: check its permissions "
            "and those of its folders"
        ) from None
    except OSError as exc:
        raise SourceError(f"source file {where!r} cannot be used: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"source {where!r} is a directory: upload the files in it one by one")
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(
            f"source {where!r} is not a regular file (a FIFO, socket or device): upload a regular "
            "file, or pass a live source's chunks to upload_stream()"
        )
    try:
        os.close(os.open(path, os.O_RDONLY))
    except PermissionError:
        raise SourceError(
            f"source file {where!r} is not readable by this process: check its permissions (chmod)"
        ) from None
    except OSError as exc:
        raise SourceError(f"source file {where!r} cannot be read: {exc.strerror or exc}") from None
    return st.st_size


def guess_content_type(path: str | os.PathLike[str]) -> str | None:
    import mimetypes  # imported when first needed: `import unistore` stays cheap

    kind, _ = mimetypes.guess_type(os.fspath(path))
    return kind


def empty_source(key: str, path: str | os.PathLike[str] | None = None) -> EmptySourceError:
    where = f"source file {os.fspath(path)!r}" if path is not None else "source"
    return EmptySourceError(
        f"{where} for {key!r} is empty (0 bytes): nothing was uploaded; pass allow_empty=True "
        "to store an empty object on purpose"
    )


def check_upload_options(
    method: str, options: Mapping[str, object], also: frozenset[str] = frozenset()
) -> None:
    """A `TypeError` for a keyword an upload does not take (`UploadOptions` plus `also`), as
    Python raises for a misspelt keyword argument: `**options` would otherwise accept
    `overwite=False` silently and replace the recording it was meant to protect."""
    allowed = UPLOAD_OPTION_NAMES | also
    unknown = sorted(set(options) - allowed)
    if unknown:
        import difflib  # only on the error path

        hints = [
            f"{name!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(name, allowed, 1))
            else repr(name)
            for name in unknown
        ]
        raise TypeError(
            f"{method}() got an unexpected keyword argument {', '.join(hints)}; "
            f"it takes {', '.join(sorted(allowed))}"
        )


def check_upload(
    method: str, key: str, options: UploadOptions, also: frozenset[str] = frozenset()
) -> tuple[str | None, dict[str, str]]:
    """The checks every upload makes before anything is written, on `Storage` and on each
    provider alike: the option names, the key, the content type and the metadata; returns the
    content type and metadata as checked."""
    check_upload_options(method, options, also)
    check_key(key)
    return check_content_type(options.get("content_type")), check_metadata(options.get("metadata"))


PRESIGN_METHODS = ("GET", "PUT")


def check_presign(key: str, expires_in: int, method: str, max_seconds: int | None = None) -> str:
    """The upper-cased method of a presigned URL of `key` valid `expires_in` seconds (at most
    `max_seconds`, when the service has a limit), once the request is known to be one."""
    check_key(key)
    verb = method.upper()
    if verb not in PRESIGN_METHODS:
        raise ConfigError(f"presigned URLs support GET and PUT, not {method!r}")
    if max_seconds is None and expires_in <= 0:
        raise ConfigError(f"expires_in must be a positive number of seconds (got {expires_in})")
    if max_seconds is not None and not 1 <= expires_in <= max_seconds:
        raise ConfigError(f"expires_in must be 1 to {max_seconds} seconds (got {expires_in})")
    return verb
