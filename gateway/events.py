"""The core's end of the events pipeline: the default `gateway_publish_event` records events."""

from __future__ import annotations

from gateway.backend import Event, hookimpl
from gateway.store import Store

CORE_EVENT_TYPES = {
    "gateway.test": "A test event sent on request to one subscription (sendTestEvent).",
    "subscription.disabled": "A subscription was disabled after failing continuously.",
}


class CoreEvents:
    """Runs last: a plugin may observe an event first, the store is where it becomes durable."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @hookimpl(trylast=True)
    async def gateway_publish_event(self, event: Event) -> bool:
        return await self.store.record_event(event)
