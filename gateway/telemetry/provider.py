"""The SDK's tracer provider as `[telemetry]` describes it, and the log lines' trace ids."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from aiohttp import web
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from gateway import __version__
from gateway.logs import SECRETS
from gateway.settings import TelemetrySettings
from gateway.telemetry.clients import UpstreamTracer


class Telemetry:
    """One app's tracer provider (never the process-wide one: tests run several apps, each
    with its own exporter), its tracer, and its shutdown."""

    def __init__(self, settings: TelemetrySettings, exporter: SpanExporter | None = None) -> None:
        """`exporter` replaces the OTLP one (tests: the SDK's in-memory exporter), and is
        given each span as it ends."""
        resource = Resource.create(
            {"service.name": settings.service_name, "service.version": __version__}
        )
        sampler = ParentBased(TraceIdRatioBased(settings.sampling_ratio))
        self.provider = TracerProvider(resource=resource, sampler=sampler)
        if exporter is None:
            headers = {name: secret.reveal() for name, secret in settings.headers.items()}
            SECRETS.add(*headers.values())  # an exporter's error may quote them
            otlp = OTLPSpanExporter(
                endpoint=settings.traces_url(), headers=headers, timeout=settings.export_timeout
            )
            # Spans are queued and exported from the processor's thread, in batches.
            self.provider.add_span_processor(BatchSpanProcessor(otlp))
        else:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("gateway", __version__)
        # The upstream clients' and the delivery worker's span makers (set by the app factory).
        self.upstream = UpstreamTracer(self.tracer)

    async def shutdown(self) -> None:
        """Export what is queued and stop (the exporter's HTTP calls block: off the loop)."""
        await asyncio.to_thread(self.provider.shutdown)


def add_trace_ids(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """`trace_id` and `span_id` of the span current when the line is logged (a request's, an
    upstream attempt's), as the W3C writes them; nothing outside a span."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = trace.format_trace_id(context.trace_id)
        event_dict["span_id"] = trace.format_span_id(context.span_id)
    return event_dict


TELEMETRY = web.AppKey("telemetry", Telemetry)
"""The app's tracing, when `[telemetry]` is configured (absent otherwise)."""
