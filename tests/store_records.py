"""Records as the store tests make them: a subscription and an event as the store takes them, and
the spans of time the retention tests keep them for."""

from __future__ import annotations

from gateway.plugin_api import Event
from gateway.store.records import Subscription

DAY = 86400.0
MONTH = 30 * DAY


def subscription(sid: str, tenant: str = "t1", types: tuple[str, ...] = ("*",)) -> Subscription:
    return Subscription(
        id=sid,
        tenant=tenant,
        url="http://127.0.0.1:9/hook",
        event_types=types,
        description=None,
        enabled=True,
        disabled_reason=None,
        secret="whsec_" + "A" * 43 + "=",
        previous_secret=None,
        previous_expires_at=None,
        failing_since=None,
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )


def event(event_type: str = "acme.done", tenant: str = "t1", dedupe: str | None = None) -> Event:
    return Event.new(event_type, {"n": 1}, tenant=tenant, backend="acme", dedupe_key=dedupe)
