"""Object key rules: kept importable here; they live in `unistore._validate`."""

from __future__ import annotations

from ._errors import InvalidKeyError
from ._validate import MAX_KEY_BYTES, check_key

__all__ = ["MAX_KEY_BYTES", "InvalidKeyError", "check_key"]
