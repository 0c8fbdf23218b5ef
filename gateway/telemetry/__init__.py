"""Tracing with OpenTelemetry: W3C Trace Context in and out, spans exported over OTLP.

Installed by the app factory only when `[telemetry]` is configured; without it the gateway starts
no span, adds no middleware and no log processor, and the upstream client and the delivery worker
pay one `is None` check an attempt. The instrumentation is the gateway's own: `server` (a SERVER
span per request), `traced` (the trace context kept with the resources a request writes and the
events it publishes, links from a callback to the job it reports on), `clients` (a CLIENT span
per upstream attempt and per delivery attempt, `traceparent` sent with each), `contexts` (how a
context is kept in the store), `provider` (the SDK's tracer provider and exporter).
"""
