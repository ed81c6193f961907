"""OpenTelemetry spans and metrics, when the application runs OpenTelemetry (`unistore[otel]`).

Nothing here imports opentelemetry until a `Storage` is made (`refresh()`); when the API is
absent that answer is cached, and each upload looks again (`refresh()`) only until the
application has configured a tracer or a meter provider. The request path reads one global
(`active()`): with telemetry off a request pays a function call. Spans:
`unistore.upload` (one per upload), `unistore.provider_upload` (one per provider of it) and
`unistore.request` (one per service request of `_request.call`: part, block, commit, head...).

Attributes never hold object keys (they may be user data: meeting names) nor URLs (a
presigned URL is a credential): provider and operation names, byte counts, attempts, the
outcome and `error.type` (OpenTelemetry's semantic convention) holding unistore's error code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._report import UploadReport

SCOPE = "unistore"

# attribute names: OpenTelemetry's where one exists, unistore's own under `unistore.`
PROVIDER = "unistore.provider"
OPERATION = "unistore.operation"
BYTES = "unistore.bytes"
ATTEMPTS = "unistore.attempts"
OUTCOME = "unistore.outcome"
ERROR_TYPE = "error.type"


class Telemetry:
    """The tracer and instruments, made once OpenTelemetry is configured."""

    def __init__(self) -> None:
        from opentelemetry import metrics, trace

        from . import __version__
        from ._budget import default_budget

        self._trace = trace
        self.tracer = trace.get_tracer(SCOPE, __version__)
        meter = metrics.get_meter(SCOPE, __version__)
        self.bytes_uploaded = meter.create_counter(
            "unistore.upload.bytes", unit="By", description="Bytes stored, per provider, by uploads that committed")
        self.upload_duration = meter.create_histogram(
            "unistore.upload.duration", unit="s", description="Time of one provider's upload, committed or failed")
        self.upload_failures = meter.create_counter(
            "unistore.upload.failures", unit="{upload}", description="Provider uploads that failed, by error.type")
        self.requests = meter.create_counter(
            "unistore.requests", unit="{request}", description="Service requests, by provider, operation and outcome")
        self.retries = meter.create_counter(
            "unistore.request.retries", unit="{attempt}", description="Attempts of a request after its first")
        self.journal_records = meter.create_counter(
            "unistore.repair.pending", unit="{record}",
            description="Journal records written for missed copies (pending repairs; `unistore repair` clears them)")
        budget = default_budget()

        def held(_options: Any) -> Iterator[Any]:
            yield metrics.Observation(budget.held)

        meter.create_observable_gauge(
            "unistore.buffer.bytes", callbacks=[held], unit="By",
            description="Part bytes held in the process's buffer budget (STORAGE_MAX_BUFFER_BYTES)")

    def span(self, name: str, attributes: dict[str, Any]) -> contextlib.AbstractContextManager[Any]:
        # exceptions are not recorded as span events: their messages and tracebacks are not
        # ours to vouch for (an SDK's may quote a signed request); error.type says what failed
        return self.tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False)

    def fail(self, span: Any, code: str) -> None:
        span.set_attribute(ERROR_TYPE, code)
        span.set_status(self._trace.StatusCode.ERROR, code)


_telemetry: Telemetry | None = None
_api_missing = False


def active() -> Telemetry | None:
    """The telemetry to record into, or None: OpenTelemetry absent or not configured (as of the
    last `refresh`). One global read: the request path asks it for every request."""
    return _telemetry


def refresh() -> Telemetry | None:
    """Look again whether the application configured OpenTelemetry: when a `Storage` is made
    and as each upload starts (the API's provider look-ups cost microseconds, too much for
    every request). Once configured it stays so (a process sets its providers once)."""
    if _telemetry is not None or _api_missing:
        return _telemetry
    return _resolve()


def _resolve() -> Telemetry | None:
    global _telemetry, _api_missing
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        _api_missing = True
        return None
    traced = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)
    # the API's default meter provider is a private proxy class: a configured one is the SDK's
    # or another implementation, never the API's own no-op
    meter_provider = metrics.get_meter_provider()
    metered = not (isinstance(meter_provider, metrics.NoOpMeterProvider)
                   or type(meter_provider).__module__.startswith("opentelemetry.metrics"))
    if not (traced or metered):
        return None
    _telemetry = Telemetry()
    return _telemetry


def error_code(exc: BaseException) -> str:
    from ._events import error_code as code

    return code(exc)


# -- what the fan-out and the request path call (each a no-op when telemetry is off) --------

@contextlib.contextmanager
def _maybe(name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    tel = active()
    if tel is None:
        yield None
        return
    with tel.span(name, attributes) as span:
        yield span


def upload_span(providers: Sequence[str]) -> contextlib.AbstractContextManager[Any]:
    refresh()
    return _maybe("unistore.upload", {OPERATION: "upload", "unistore.providers": list(providers)})


def upload_done(span: Any, report: UploadReport | None, elapsed: float, exc: BaseException | None) -> None:
    if span is None:
        return
    tel = active()
    assert tel is not None
    span.set_attribute("unistore.duration_s", elapsed)
    if report is None:
        span.set_attribute(OUTCOME, "cancelled")
        tel.fail(span, error_code(exc) if exc is not None else "cancelled")
        return
    span.set_attribute(BYTES, max((r.bytes for r in report.results.values()), default=0))
    span.set_attribute("unistore.providers.succeeded", report.succeeded)
    span.set_attribute("unistore.require", report.require)
    if report.journal is not None:
        span.set_attribute("unistore.journal_written", report.journal.ok)
    if report.ok:
        span.set_attribute(OUTCOME, "ok" if report.all_ok else "partial")
    else:
        span.set_attribute(OUTCOME, "failed")
        first = next(iter(report.errors.values()), None)
        tel.fail(span, error_code(first) if first is not None else "failed")


def provider_span(provider: str) -> contextlib.AbstractContextManager[Any]:
    return _maybe("unistore.provider_upload", {PROVIDER: provider, OPERATION: "upload"})


def provider_done(span: Any, provider: str, elapsed: float, size: int, exc: BaseException | None) -> None:
    tel = active()
    if tel is None:
        return
    attrs: dict[str, Any] = {PROVIDER: provider, OUTCOME: "ok" if exc is None else "failed"}
    if exc is None:
        tel.bytes_uploaded.add(size, {PROVIDER: provider})
    else:
        code = error_code(exc)
        attrs[ERROR_TYPE] = code
        tel.upload_failures.add(1, {PROVIDER: provider, ERROR_TYPE: code})
    tel.upload_duration.record(elapsed, attrs)
    if span is not None:
        span.set_attribute(BYTES, size)
        span.set_attribute(OUTCOME, attrs[OUTCOME])
        if exc is not None:
            tel.fail(span, attrs[ERROR_TYPE])


def journal_written(ok: bool) -> None:
    tel = active()
    if tel is not None and ok:
        tel.journal_records.add(1)
