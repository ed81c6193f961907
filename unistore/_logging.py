"""Logger, the operator-facing INFO lines, and the one place that redacts secrets.

The INFO lines keep the wording operators already grep for in the bot's logs
("Successfully uploaded recording to AWS S3", ...). `redact()` is applied to anything that
might carry a secret before it reaches a repr, a log line or an exception message.
"""

from __future__ import annotations

import logging
import re

logger = logging.getLogger("unistore")

_SECRET_PATTERNS = [
    # connection-string parts: AccountKey=...; SharedAccessSignature=...
    re.compile(r"(?i)((?:AccountKey|SharedAccessSignature|SharedAccessKey)=)([^;\s]+)"),
    # SAS / presigned query parameters
    re.compile(r"(?i)([?&](?:sig|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=)([^&\s]+)"),
    # Authorization headers
    re.compile(r"(?i)(Authorization:\s*\S+\s+)(\S+)"),
]


def redact(text: str) -> str:
    """Replace secret values in connection strings, signed URLs and auth headers."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1REDACTED", text)
    return text


def log_uploading(labels: list[str]) -> None:
    logger.info("Uploading to configured providers: %s", ", ".join(labels))


def log_provider_success(label: str, key: str, size: int, seconds: float) -> None:
    logger.info(
        "Successfully uploaded recording to %s (key=%s, %d bytes, %.2fs)", label, key, size, seconds
    )


def log_provider_failure(label: str, key: str, error: BaseException) -> None:
    logger.error("Failed to upload recording to %s (key=%s): %s", label, key, redact(str(error)))


def log_finished(ok: int, total: int) -> None:
    if ok == total:
        logger.info("Unified storage manager finished uploading to all providers")
    else:
        logger.warning(
            "Unified storage manager finished uploading: %d of %d providers succeeded", ok, total
        )
