"""A CLIENT span per upstream attempt and per delivery attempt, with `traceparent` sent.

`UpstreamClient.run` and `DeliveryWorker` call these only when tracing is on (`tracer is None`
otherwise): the attempt runs as it would, inside a span current while it runs (its log line
carries the span's ids), with the span's context added to the request's headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from yarl import URL

from gateway.logs import get_logger
from gateway.redaction import redact_url, shown_url
from gateway.sink import SendOutcome
from gateway.store.protocol import Store
from gateway.store.records import ClaimedDelivery
from gateway.telemetry import contexts
from gateway.telemetry.propagation import PROPAGATOR
from gateway.upstream.bound import BoundUpstream
from gateway.upstream.client import Outcome, UpstreamClient
from gateway.upstream.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.failures import Failure
from gateway.upstream.values import UpstreamCall, UpstreamResponse
from gateway.webhooks.delivery import Send

log = get_logger("gateway.telemetry")


class UpstreamTracer:
    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    async def attempt(
        self,
        client: UpstreamClient,
        bound: BoundUpstream[Any],
        call: UpstreamCall,
        attempt: int,
        *,
        after: Outcome | None,
        send: Callable[[UpstreamCall], Awaitable[Outcome]],
    ) -> Outcome:
        """`send(call)` in a span, `traceparent` added to the call's headers: backend,
        operation, attempt number, why it is a retry (the last attempt's failure), the breaker's
        state before it, the status."""
        attributes: dict[str, str | int] = {
            "http.request.method": call.method,
            # Redacted as the log line's (the credentials' query is added after: never here).
            "url.full": client.attempt_log.redacted(call.url),
            "server.address": call.url.host or "",
            "gateway.backend": client.backend,
            "gateway.operation": call.operation,
            "gateway.tenant": bound.tenant,
            "gateway.request_id": bound.request_id,
            "gateway.attempt": attempt,
            "gateway.breaker_state": client.breaker.state.value,
        }
        if call.url.port is not None:
            attributes["server.port"] = call.url.port
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        if isinstance(after, Failure):
            attributes["gateway.retry_reason"] = retry_reason(after)
        with self.tracer.start_as_current_span(
            f"{call.method} {call.operation}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,  # an exception's text may quote the upstream: its type only
            set_status_on_exception=False,
        ) as span:
            headers = dict(call.headers)
            PROPAGATOR.inject(headers)
            try:
                outcome = await send(call.with_headers(headers))
            except BaseException as exc:
                _failed(span, type(exc).__name__)
                raise
            _ended(span, outcome)
            return outcome


def retry_reason(failure: Failure) -> str:
    """Why the attempt after `failure` is made, in a word."""
    if failure.refresh:
        return "credentials_refused"  # a 401: fresh credentials, sent once more
    if isinstance(failure.error, UpstreamTimeout):
        return "timeout"
    if isinstance(failure.error, UpstreamUnavailable):
        return "connection_error"
    status = getattr(failure.error, "upstream_status", None)
    return f"status_{status}" if status is not None else type(failure.error).__name__


def _ended(span: Span, outcome: Outcome) -> None:
    if isinstance(outcome, UpstreamResponse):
        span.set_attribute("http.response.status_code", outcome.status)
    elif isinstance(outcome, Failure):
        status = getattr(outcome.error, "upstream_status", None)
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        _failed(span, str(status) if status is not None else type(outcome.error).__name__)
    else:  # a stream handed to the plugin: its body is read after the span
        span.set_attribute("http.response.status_code", outcome.response.status)


def _failed(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(StatusCode.ERROR)


class DeliveryTracer:
    def __init__(self, tracer: trace.Tracer, store: Store) -> None:
        self.tracer = tracer
        self.store = store

    async def attempt(
        self,
        item: ClaimedDelivery,
        number: int,
        body: bytes,
        headers: dict[str, str],
        send: Send,
    ) -> SendOutcome:
        """`send(item, body, headers)` in a span that continues the event's trace (kept when it
        was published: the caller's request that started the job, for a callback's event) and
        links to the span that published it; `traceparent` goes to the subscriber."""
        event, subscription = item.event, item.subscription
        kept = await self._kept(event.id)
        parent = trace.set_span_in_context(trace.NonRecordingSpan(kept.context)) if kept else None
        links = (
            [trace.Link(link, {"gateway.link": "published"}) for link in kept.links] if kept else []
        )
        url = URL(subscription.url)
        http = url.scheme in ("http", "https")
        attributes: dict[str, str | int] = {
            # A broker URL's userinfo is a secret: shown without it, as in the log line.
            "url.full": redact_url(shown_url(subscription.url)),
            "server.address": url.host or "",
            "gateway.tenant": event.tenant,
            "gateway.subscription": subscription.id,
            "gateway.delivery": item.delivery.id,
            "gateway.event_id": event.id,
            "gateway.event_type": event.type,
            "gateway.attempt": number,
        }
        if url.port is not None:
            attributes["server.port"] = url.port
        if http:
            attributes["http.request.method"] = "POST"
        else:  # a sink plugin's broker (messaging semantic conventions)
            attributes["messaging.system"] = url.scheme
            attributes["messaging.operation.type"] = "send"
        with self.tracer.start_as_current_span(
            f"POST {event.type}" if http else f"send {event.type}",
            context=parent,
            kind=SpanKind.CLIENT if http else SpanKind.PRODUCER,
            links=links,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            PROPAGATOR.inject(headers)
            sent = await send(item, body, headers)
            if sent.status is not None:
                span.set_attribute("http.response.status_code", sent.status)
            if not sent.ok:
                _failed(span, str(sent.status) if sent.status is not None else "send_error")
            return sent

    async def _kept(self, event_id: str) -> contexts.Kept | None:
        try:
            found = await self.store.trace_contexts([f"event:{event_id}"])
        except Exception as exc:  # the attempt goes out untraced rather than not at all
            log.warning("telemetry.context_unavailable", error=type(exc).__name__)
            return None
        text = found.get(f"event:{event_id}")
        return contexts.decode(text) if text is not None else None
