"""The one propagator: W3C Trace Context (`traceparent`, `tracestate`), read from requests, sent
upstream and to subscribers, kept in the store (the SDK's, never parsed by hand)."""

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()
