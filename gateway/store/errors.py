"""The store's errors that callers handle: an event whose payload is gone, a store that cannot be
reached."""

from __future__ import annotations


class PayloadPurged(Exception):
    """The event's payload is gone (the store's retention purged it): it cannot be delivered."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"the payload of event {event_id} was purged by the store's retention")
        self.event_id = event_id


class StoreUnavailable(Exception):
    """The store cannot be reached (its server is down, the connection was lost). The operation
    was not acknowledged: the caller is answered 503 with Retry-After and may retry."""
