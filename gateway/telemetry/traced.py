"""The traced request running now, and the trace context kept with what it starts.

A request that writes a resource (`submitConfiguration` records its configuration) keeps its
context with it; a callback that reads such resources links its span to each of them, and the
event it publishes keeps the latest as the context its deliveries continue: a subscriber's
webhook carries the trace of the caller's request that started the job, across restarts and
replicas. An event published by any other request continues that request's trace.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Iterable
from typing import TypeVar

import attrs
from opentelemetry.trace import Span

from gateway.logs import get_logger
from gateway.store.protocol import Store
from gateway.store.records import ResourceRecord
from gateway.telemetry import contexts

T = TypeVar("T")
CALLBACK_OPERATION = "receiveBackendCallback"

log = get_logger("gateway.telemetry")


@attrs.define
class RequestTrace:
    """The traced request running in this context: its span, and what a callback found."""

    store: Store
    span: Span
    callback: bool
    origins: list[contexts.Kept] = attrs.field(factory=list)
    seen: set[str] = attrs.field(factory=set)

    async def recorded(self, kind: str, resource_id: str) -> None:
        """The request (not a callback) wrote a resource: keep its context with it."""
        if self.callback:
            return
        now = time.time()
        text = contexts.encode(self.span.get_span_context(), at=now)
        await _quietly(
            self.store.save_trace_context(f"resource:{kind}:{resource_id}", text, now=now)
        )

    async def read(self, records: Iterable[ResourceRecord]) -> None:
        """A callback read these resources: link its span to the requests that wrote them."""
        if not self.callback or len(self.seen) >= contexts.MAX_LINKS:
            return
        subjects = [
            subject
            for record in records
            if (subject := f"resource:{record.kind}:{record.id}") not in self.seen
        ][: contexts.MAX_LINKS]
        if not subjects:
            return
        self.seen.update(subjects)
        found = await _quietly(self.store.trace_contexts(subjects))
        for text in (found or {}).values():
            kept = contexts.decode(text)
            if kept is not None and len(self.origins) < contexts.MAX_LINKS:
                self.origins.append(kept)
                self.span.add_link(kept.context, {"gateway.link": "job"})

    async def published(self, event_id: str) -> None:
        """Keep the context the event's deliveries continue: the job's a callback found (the
        latest written), linked to the callback's own span; else this request's."""
        own = self.span.get_span_context()
        if self.origins:
            job = max(self.origins, key=lambda kept: kept.at)
            text = contexts.encode(job.context, links=[own])
        else:
            text = contexts.encode(own)
        await _quietly(self.store.save_trace_context(f"event:{event_id}", text, now=time.time()))


CURRENT: contextvars.ContextVar[RequestTrace | None] = contextvars.ContextVar(
    "gateway_request_trace", default=None
)
current = CURRENT.get
"""The traced request running in this context; None when tracing is off or outside a request."""


async def _quietly(operation: Awaitable[T]) -> T | None:
    """Tracing never fails what it observes: a store error loses the context, not the request."""
    try:
        return await operation
    except Exception as exc:
        log.warning("telemetry.context_unavailable", error=type(exc).__name__)
        return None
