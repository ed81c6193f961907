"""Object key rules shared by every provider."""

from __future__ import annotations

import re

from ._errors import UnistoreError

MAX_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidKeyError(UnistoreError, ValueError):
    """The object key is not acceptable to every provider."""


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
