"""Ordered delivery per key: a subscription with `order_by` gets the events about one resource
one at a time, in the order they were recorded.

When an event is recorded, each delivery of it to an ordering subscription carries the event's key
(`resource_key`) and position (its seq): the claim then takes a delivery only at the head of its
(subscription, key): no earlier one of that key still undelivered, none of it in flight. A delivery
retrying holds back its key until it succeeds or fails for good; other keys flow. Across processes
on PostgreSQL the claim's row locks and snapshot keep the head single: a replica skips the head
another one is leasing (SKIP LOCKED) and sees it pending, still ahead of the next; and events of
one key are recorded one after another (`Db.lock`), so that their positions are their commit order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RESOURCE = "resource"  # the only `order_by`: the resource an event is about
RESOURCE_MEMBERS = ("productId", "userId")  # where an event's data names it, first found wins

# A claimable delivery is not behind another of its key (neutral SQL on an unaliased
# `deliveries`): none of the key in flight, none undelivered from an earlier event.
HEAD = (
    "(deliveries.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries AS o"
    " WHERE o.subscription_id = deliveries.subscription_id AND o.order_key = deliveries.order_key"
    " AND o.id <> deliveries.id AND (o.status = 'delivering'"
    " OR (o.status = 'pending' AND o.order_seq < deliveries.order_seq))))"
)


def resource_key(data: Mapping[str, Any]) -> str | None:
    """The resource an event is about: its data's `productId`, else its `userId`; None for an
    event about neither (delivered unordered)."""
    for member in RESOURCE_MEMBERS:
        value = data.get(member)
        if isinstance(value, str) and value:
            return value
    return None
