"""The OpenTelemetry SDK with in-memory exporters, installed once per test process (the API
lets a process set its tracer and meter providers once): what unistore exports, to assert on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_state: tuple[InMemorySpanExporter, InMemoryMetricReader] | None = None


def install() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    global _state
    if _state is None:
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _state = exporter, reader
    return _state


def spans() -> list[ReadableSpan]:
    return list(install()[0].get_finished_spans())


def clear() -> None:
    exporter, reader = install()
    exporter.clear()
    reader.get_metrics_data()  # cumulative sums stay; tests compare before and after


def points(name: str) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, data point) of every point of metric `name` (cumulative)."""
    data = install()[1].get_metrics_data()
    found: list[tuple[dict[str, Any], Any]] = []
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
    return found


def total(name: str, **attrs: Any) -> float:
    """Sum (or histogram count) of `name` over the points whose attributes include `attrs`."""
    value = 0.0
    for attributes, point in points(name):
        if all(attributes.get(k) == v for k, v in attrs.items()):
            value += point.value if hasattr(point, "value") else point.count
    return value


def exported_texts() -> Iterator[tuple[str, str]]:
    """Every name, attribute and status text of the spans and metrics exported so far."""
    for span in spans():
        yield f"span {span.name}", f"{span.name} {dict(span.attributes or {})!r} {span.status.description!r}"
        for event in span.events:
            yield f"span {span.name} event", f"{event.name} {dict(event.attributes or {})!r}"
    data = install()[1].get_metrics_data()
    if data is not None:
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        yield f"metric {metric.name}", f"{metric.name} {dict(point.attributes or {})!r}"
