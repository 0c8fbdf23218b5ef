"""A trace context as the store keeps it: JSON text with the W3C `traceparent` (and
`tracestate`) of the context to continue, the time it was kept, and the contexts to link to."""

from __future__ import annotations

import time
from collections.abc import Sequence

import attrs
import orjson
from opentelemetry import trace
from opentelemetry.trace import SpanContext

from gateway.telemetry.propagation import PROPAGATOR

MAX_LINKS = 32  # to one span: a callback that reads a product with many configurations


@attrs.frozen
class Kept:
    """A context read back from the store: the one to continue, when it was kept, its links."""

    context: SpanContext
    at: float
    links: tuple[SpanContext, ...] = ()


def encode(context: SpanContext, links: Sequence[SpanContext] = (), at: float | None = None) -> str:
    carrier: dict[str, object] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(trace.NonRecordingSpan(context)))
    carrier["at"] = time.time() if at is None else at
    if links:
        carrier["links"] = [_traceparent(link) for link in links[:MAX_LINKS]]
    return orjson.dumps(carrier).decode()


def decode(text: str) -> Kept | None:
    """None for text that is not a context this module wrote (never an error: tracing must not
    fail what it observes)."""
    try:
        carrier = orjson.loads(text)
        context = _extract(carrier)
        if context is None:
            return None
        links = tuple(
            link
            for value in carrier.get("links", ())[:MAX_LINKS]
            if (link := _extract({"traceparent": value})) is not None
        )
        return Kept(context, float(carrier.get("at", 0.0)), links)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None


def _extract(carrier: dict[str, object]) -> SpanContext | None:
    if not isinstance(carrier.get("traceparent"), str):
        return None
    context = trace.get_current_span(PROPAGATOR.extract(carrier)).get_span_context()
    return context if context.is_valid else None


def _traceparent(context: SpanContext) -> str:
    trace_id = trace.format_trace_id(context.trace_id)
    return f"00-{trace_id}-{trace.format_span_id(context.span_id)}-{context.trace_flags:02x}"
