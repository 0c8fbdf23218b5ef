"""The core's end of the events pipeline: events become durable, then the workers are woken."""

from __future__ import annotations

from gateway.backend import hookimpl
from gateway.settings import EventsSettings
from gateway.store.protocol import Store
from gateway.telemetry.traced import current as telemetry_current
from gateway.values import Event
from gateway.webhooks.delivery import DeliveryWorker

TEST_EVENT = "gateway.test"
SUBSCRIPTION_DISABLED = "subscription.disabled"
CORE_EVENT_TYPES = {
    TEST_EVENT: "A test event sent on request to one subscription (sendTestEvent).",
    SUBSCRIPTION_DISABLED: "A subscription was disabled (it answered 410, or failed too long).",
}


class CoreEvents:
    """Runs last: a plugin may observe an event first; here it is committed with its deliveries."""

    def __init__(self, store: Store, settings: EventsSettings, worker: DeliveryWorker) -> None:
        self.store = store
        self.settings = settings
        self.worker = worker

    @hookimpl(trylast=True)
    async def gateway_publish_event(self, event: Event) -> bool:
        if (traced := telemetry_current()) is not None:
            # Kept before the event is: a worker that claims a delivery finds its context.
            await traced.published(event.id)
        if self.store.writes_in_order:
            # Woken first, not once committed: its claim queues behind the event's write and
            # takes the deliveries it queued, in the same transaction (one commit for both)
            # unless a claim was under way, then in the next: a round trip earlier either way.
            self.worker.wake()
            return await self.store.record_event(event, dedupe_window=self.settings.dedupe_window)
        new = await self.store.record_event(event, dedupe_window=self.settings.dedupe_window)
        if new:
            self.worker.wake()
        return new
