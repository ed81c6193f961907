"""Logger, the operator-facing INFO lines, and the one place that redacts secrets.

The INFO lines keep the wording operators already grep for in the bot's logs
("Successfully uploaded recording to AWS S3", ...). `redact()` is applied to anything that
might carry a secret before it reaches a repr, a log line or an exception message.
"""

from __future__ import annotations

import json
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


def log_provider_success(label: str, key: str, size: int, seconds: float, provider: str = "") -> None:
    logger.info(
        "Successfully uploaded recording to %s (key=%s, %d bytes, %.2fs)", label, key, size, seconds,
        extra={"unistore": {"event": "provider_committed", "provider": provider or label, "key": key,
                            "bytes": size, "duration_s": round(seconds, 6)}},
    )


def log_provider_failure(label: str, key: str, error: BaseException, provider: str = "") -> None:
    code = getattr(error, "code", None) or type(error).__name__
    logger.error(
        "Failed to upload recording to %s (key=%s): %s", label, key, redact(str(error)),
        extra={"unistore": {"event": "provider_failed", "provider": provider or label, "key": key,
                            "error_code": code}},
    )


def log_finished(ok: int, total: int) -> None:
    fields = {"unistore": {"event": "upload_settled", "succeeded": ok, "providers": total}}
    if ok == total:
        logger.info("Unified storage manager finished uploading to all providers", extra=fields)
    else:
        logger.warning(
            "Unified storage manager finished uploading: %d of %d providers succeeded", ok, total,
            extra=fields,
        )


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (secrets redacted) and the
    line's structured fields (`record.unistore`, a dict, which unistore's own lines carry), for
    log pipelines. `STORAGE_LOG_FORMAT=json` puts it on the handlers unistore installs (the
    CLI's `-v`); an application that configures logging itself sets it on its own handler:
    `handler.setFormatter(unistore.JsonLogFormatter())`."""

    def format(self, record: logging.LogRecord) -> str:
        shape: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        fields = getattr(record, "unistore", None)
        if isinstance(fields, dict):
            shape.update(fields)
        if record.exc_info:
            shape["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(shape, default=str, separators=(",", ":"))


CLI_HANDLER = "unistore-cli"
"""The name of the handler unistore's own command installs (the only one it formats)."""


def apply_format(log_format: str) -> None:
    """`STORAGE_LOG_FORMAT`: put the JSON formatter on the handlers unistore installed (by
    name); handlers the application installed keep their own format."""
    if log_format != "json":
        return
    for handler in logger.handlers:
        if handler.get_name() == CLI_HANDLER:
            handler.setFormatter(JsonLogFormatter())
