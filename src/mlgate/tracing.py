"""OpenTelemetry tracing: off unless an OTLP endpoint is configured, and then spans across the whole path.

Spans (docs/operations.md, "Tracing"): ``HTTP <method> <route>`` (kind server, one per HTTP request, made by
``mlgate.edge.tracing``), ``job submit`` (producer, in the request that queued the job), ``job run``
(consumer, in the runner that ran it: the server's own or an ``mlgate worker``; its parent is the submit
span, whose W3C ``traceparent`` the job's database row carries, so it survives the broker, a restart and a
worker that died), and ``model <name>`` (internal, around one runtime call of a batch: ``mlgate.batch.rows``,
``mlgate.batch.requests``; its parent is the first request of the batch, the others are links).

Off by default, and then free: ``configure`` imports nothing of OpenTelemetry, ``active()`` is one global
read, and no middleware is installed. On (the setting ``otel_exporter_otlp_endpoint``, or the standard
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``), spans are batched by the SDK's
``BatchSpanProcessor`` (``OTEL_BSP_*`` variables apply) and sent over OTLP/HTTP protobuf; the sampler is the
SDK's (``OTEL_TRACES_SAMPLER``, parent-based always-on by default). The provider is this module's own, not
OpenTelemetry's global one, so libraries that trace through the global provider stay silent.
Needs the ``otel`` extra (``pip install 'mlgate[otel]'``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlgate.settings import Settings

__all__ = ["active", "annotate", "configure", "current_context", "flush", "inject", "span", "wanted"]

ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""The standard variables honoured when the setting is unset (the first one is the full URL of traces)."""

_tracer: Any = None
"""The ``opentelemetry.trace.Tracer`` once ``configure`` turned tracing on; None while off."""
_provider: Any = None


def wanted(settings: Settings) -> bool:
    """Whether ``settings`` (or the environment) ask for traces; imports nothing."""
    return bool(settings.otel_exporter_otlp_endpoint or any(os.environ.get(name) for name in ENDPOINT_ENV))


def active() -> bool:
    """Whether spans are being made in this process."""
    return _tracer is not None


def configure(settings: Settings) -> bool:
    """Turn tracing on in this process when ``wanted(settings)``; True when it is on. Idempotent: the first
    configuration of a process wins. Raises RuntimeError when traces are asked for without the ``otel``
    extra installed."""
    global _tracer, _provider
    if _tracer is not None:
        return True
    if not wanted(settings):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError("traces are configured (otel_exporter_otlp_endpoint or OTEL_EXPORTER_OTLP_ENDPOINT) "
                           "but OpenTelemetry is not installed: pip install 'mlgate[otel]'") from exc
    from mlgate import __version__

    endpoint = settings.otel_exporter_otlp_endpoint
    # The setting is a base URL, like OTEL_EXPORTER_OTLP_ENDPOINT; without it the exporter reads the variables.
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces") if endpoint else OTLPSpanExporter()
    name = os.environ.get("OTEL_SERVICE_NAME") or settings.otel_service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name, "service.version": __version__}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _provider, _tracer = provider, provider.get_tracer("mlgate", __version__)
    return True


def flush(timeout_s: float = 5.0) -> None:
    """Send the spans still buffered (at shutdown); nothing when off."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


def current_context() -> Any:
    """The caller's OpenTelemetry context (to parent work done elsewhere: a batch), None when off."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


def inject() -> str | None:
    """The W3C ``traceparent`` of the current span (to carry it across a process), None when off or none."""
    if _tracer is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def annotate(attributes: Mapping[str, Any]) -> None:
    """Set ``attributes`` on the current span (none when off or outside a span)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(dict(attributes))


def _from_traceparent(traceparent: str) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


@contextlib.contextmanager
def span(name: str, *, kind: str = "internal", parent: Any = None, traceparent: str | None = None,
         links: Sequence[Any] = (), attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A span named ``name``, current inside the ``with`` (yields it; yields None when off).

    ``kind``: ``server``, ``client``, ``producer``, ``consumer`` or ``internal``. Its parent is the current
    span, or ``parent`` (a context from ``current_context``), or ``traceparent`` (from ``inject``, in another
    process). ``links``: contexts of other work it serves (the other requests of a batch). An exception
    leaving the ``with`` is recorded and sets the status to error.
    """
    if _tracer is None:
        yield None
        return
    from opentelemetry import trace

    if traceparent:
        parent = _from_traceparent(traceparent)
    span_links = [trace.Link(ctx) for ctx in (trace.get_current_span(c).get_span_context() for c in links)
                  if ctx.is_valid]
    with _tracer.start_as_current_span(name, context=parent, kind=getattr(trace.SpanKind, kind.upper()),
                                       links=span_links, attributes=dict(attributes or {})) as current:
        yield current
