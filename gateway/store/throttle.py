"""Throttling: a subscription's token bucket, shared by every process on the database, and the
holds that keep its deliveries from being claimed.

A subscription with `max_per_second` r has a bucket of at most `burst(r)` tokens, refilled at r
a second; each delivery sent takes one. The bucket's state (tokens left at `tokens_at`) is on the
subscription's row, which the step taking tokens locks (PostgreSQL: `FOR UPDATE`), so that
replicas claiming at once take from one bucket. When the bucket is empty the subscription is held
(`held_until`: when the next token is there) and the claim skips it; a subscriber's 429 or 503
with Retry-After holds it the same way (`throttled_until`, shown in answers). Over any window of
t seconds a subscription gets at most r·t + burst(r) deliveries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gateway.store.records import AttemptOutcome, ClaimedDelivery
from gateway.store.sql import Db

# The later of a column and a time, in neutral SQL (both dialects' MAX/GREATEST differ).
LATER = "CASE WHEN {0} IS NULL OR {0} < ? THEN ? ELSE {0} END"


def burst(rate: float) -> float:
    """The bucket's size: a second's worth of tokens, and at least one (a rate under 1/s still
    sends one delivery at a time)."""
    return max(1.0, rate)


async def take(
    db: Db, claimed: Sequence[ClaimedDelivery], owner: str, now: float
) -> list[ClaimedDelivery]:
    """Of `claimed` (just leased to `owner`), those the buckets of their throttled subscriptions
    have tokens for, oldest due first; the others are handed back (pending), and a subscription
    whose bucket is empty is held until its next token."""
    throttled: dict[str, list[ClaimedDelivery]] = {}
    for item in claimed:
        if item.subscription.max_per_second is not None:
            throttled.setdefault(item.subscription.id, []).append(item)
    if not throttled:
        return list(claimed)
    among, args = db.any_of("id", sorted(throttled))
    # Locked in id order: two processes' claims cannot deadlock on each other.
    buckets = await db.rows(
        "SELECT id, max_per_second, tokens, tokens_at, held_until FROM subscriptions"
        f" WHERE {among} ORDER BY id{db.binary}{db.for_update}",
        args,
    )
    refused: list[str] = []
    for subscription_id, rate, tokens, tokens_at, held_until in buckets:
        items = sorted(
            throttled.pop(subscription_id),
            key=lambda c: (c.delivery.next_attempt_at or 0.0, c.delivery.created_at),
        )
        if rate is None:  # no longer throttled since the claim read it
            continue
        if tokens is None or tokens_at is None:
            have = burst(rate)
        else:
            have = min(burst(rate), tokens + max(0.0, now - tokens_at) * rate)
        taken = 0 if (held_until or 0.0) > now else min(len(items), math.floor(have))
        refused.extend(c.delivery.id for c in items[taken:])
        left = have - taken
        hold = now + (1.0 - left) / rate if left < 1.0 else None
        await db.count(
            "UPDATE subscriptions SET tokens = ?, tokens_at = ?,"
            f" held_until = {LATER.format('held_until')} WHERE id = ?",
            (left, now, now, hold, subscription_id),
        )
    refused.extend(c.delivery.id for items in throttled.values() for c in items)  # gone
    if refused:
        among, args = db.any_of("id", sorted(refused))
        await db.count(
            "UPDATE deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL,"
            f" next_attempt_at = COALESCE(next_attempt_at, ?), updated_at = ? WHERE {among}"
            " AND status = 'delivering' AND lease_owner = ?",
            (now, now, *args, owner),
        )
    kept = set(refused)
    return [c for c in claimed if c.delivery.id not in kept]


async def hold(db: Db, outcomes: Sequence[AttemptOutcome]) -> None:
    """Hold the subscriptions whose subscriber asked for it (`AttemptOutcome.hold_until`)."""
    asked = sorted((o.subscription_id, o.hold_until) for o in outcomes if o.hold_until is not None)
    if asked:
        await db.many(
            f"UPDATE subscriptions SET throttled_until = {LATER.format('throttled_until')},"
            f" held_until = {LATER.format('held_until')} WHERE id = ?",
            [(until, until, until, until, subscription_id) for subscription_id, until in asked],
        )
