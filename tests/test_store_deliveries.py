"""The store's contract for queueing and claiming deliveries, run against every implementation:
fan-out to the matching subscriptions (filters too) and deduplication, leases, tenants' turns,
holds and ordering, and two stores on one database recording and claiming at once."""

from __future__ import annotations

import asyncio
import time

import attrs

from gateway.plugin_api import Event
from gateway.store.protocol import Store
from gateway.store.records import AttemptOutcome, SubscriptionChanges
from tests.store_records import event, subscription


async def test_event_fans_out_to_matching_enabled_subscriptions(store: Store) -> None:
    """One delivery per enabled subscription whose filter matches, in the event's tenant."""
    await store.create_subscription(subscription("s-all"))
    await store.create_subscription(subscription("s-type", types=("acme.done",)))
    await store.create_subscription(subscription("s-other", types=("gateway.test",)))
    await store.create_subscription(subscription("s-tenant2", tenant="t2"))
    await store.create_subscription(subscription("s-off"))
    await store.update_subscription("t1", "s-off", SubscriptionChanges(enabled=False))
    stored = event()
    assert await store.record_event(stored, dedupe_window=60)
    deliveries = await store.list_deliveries("t1", stored.id)
    assert {d.subscription_id for d in deliveries} == {"s-all", "s-type"}
    assert await store.queue_depth() == 2


async def test_duplicates_within_the_window_are_recognised(store: Store) -> None:
    """The same dedupe key inside the window is refused; outside it, accepted again."""
    assert await store.record_event(event(dedupe="cb-1"), dedupe_window=60)
    assert not await store.record_event(event(dedupe="cb-1"), dedupe_window=60)
    assert await store.record_event(event(dedupe="cb-1", tenant="t2"), dedupe_window=60)
    assert await store.record_event(event(dedupe="cb-1"), dedupe_window=0)


async def test_a_callback_received_twice_at_once_is_stored_once(store: Store, twin: Store) -> None:
    """The dedupe check and insert are one step across stores: concurrent duplicates lose."""
    await store.create_subscription(subscription("s1"))
    results = await asyncio.gather(
        *(s.record_event(event(dedupe="cb-race"), dedupe_window=60) for s in [store, twin] * 8)
    )
    assert sorted(results) == [False] * 15 + [True]
    assert await store.queue_depth() == 1


async def test_a_filter_made_after_a_tenants_events_applies_to_its_next_one(
    store: Store, twin: Store
) -> None:
    """Recording the events of a tenant without filtered subscriptions reads no filter; a filter
    that appears later, however it appears (a subscription created with one, a filter set on one,
    a filtered one enabled again, one made through another store on the database), applies to the
    tenant's very next event."""
    filtered = SubscriptionChanges(filter="data.n == `2`")

    async def delivered(n: int) -> set[str]:
        recorded = Event.new("acme.done", {"n": n}, tenant="t1", backend="acme")
        assert await store.record_event(recorded, dedupe_window=0)
        return {d.subscription_id for d in await store.list_deliveries("t1", recorded.id)}

    await store.create_subscription(subscription("s1"))
    assert await delivered(1) == {"s1"}
    await store.update_subscription("t1", "s1", filtered)  # a filter set on it
    assert await delivered(1) == set()
    assert await delivered(2) == {"s1"}
    await store.update_subscription("t1", "s1", SubscriptionChanges(filter=None))
    assert await delivered(1) == {"s1"}
    await store.create_subscription(attrs.evolve(subscription("s2"), filter="data.n == `2`"))
    assert await delivered(1) == {"s1"}  # created with one
    assert await delivered(2) == {"s1", "s2"}
    await store.disable_subscription("s2", "test")
    assert await delivered(2) == {"s1"}
    await store.update_subscription("t1", "s2", SubscriptionChanges(enabled=True))
    assert await delivered(1) == {"s1"}  # enabled again
    assert await delivered(2) == {"s1", "s2"}
    await store.delete_subscription("t1", "s2")
    assert await delivered(2) == {"s1"}
    await twin.update_subscription("t1", "s1", filtered)  # through another store
    assert await delivered(1) == set()
    assert await delivered(2) == {"s1"}


async def test_leases_hand_out_each_delivery_once_until_they_expire(store: Store) -> None:
    """A claimed delivery is invisible to other workers until its lease ends (a dead worker)."""
    await store.create_subscription(subscription("s1"))
    await store.record_event(event(), dedupe_window=60)
    now = time.time()
    first = await store.claim_deliveries(owner="a", now=now, lease=30, limit=10, exclude=())
    assert len(first) == 1
    assert first[0].event.type == "acme.done"
    assert first[0].subscription.id == "s1"
    again = await store.claim_deliveries(owner="b", now=now + 1, lease=30, limit=10, exclude=())
    assert again == []
    after = await store.claim_deliveries(owner="b", now=now + 31, lease=30, limit=10, exclude=())
    assert [c.delivery.id for c in after] == [first[0].delivery.id]


async def test_excluded_subscriptions_are_not_claimed(store: Store) -> None:
    """A worker at its limit for a subscription claims only others' deliveries."""
    await store.create_subscription(subscription("busy"))
    await store.create_subscription(subscription("free"))
    await store.record_event(event(), dedupe_window=60)
    claimed = await store.claim_deliveries(
        owner="a", now=time.time(), lease=30, limit=10, exclude=["busy"]
    )
    assert [c.subscription.id for c in claimed] == ["free"]


async def test_tenants_take_turns_within_their_share(store: Store) -> None:
    """A tenant's backlog does not take every slot: each tenant's oldest first, in turns, each
    at most `per_tenant` less what the claimant has in flight for it already."""
    await store.create_subscription(subscription("a1", tenant="ta"))
    await store.create_subscription(subscription("a2", tenant="ta"))
    await store.create_subscription(subscription("b1", tenant="tb"))
    for _ in range(10):
        await store.record_event(event(tenant="ta"), dedupe_window=60)
    await store.record_event(event(tenant="tb"), dedupe_window=60)  # due last of all
    now = time.time() + 1

    async def claim(limit: int, per_tenant: int, busy: dict[str, int]) -> list[str]:
        claimed = await store.claim_deliveries(
            owner="w", now=now, lease=30, limit=limit, exclude=(), per_tenant=per_tenant, busy=busy
        )
        return sorted(c.delivery.tenant for c in claimed)

    assert await claim(2, 16, {}) == ["ta", "tb"]  # turns: ta's oldest, then tb's only one
    assert await claim(8, 3, {"ta": 1}) == ["ta", "ta"]  # 3 less the one in flight
    assert await claim(8, 3, {"ta": 3}) == []  # at its share, though 17 are due
    assert await claim(20, 20, {}) == ["ta"] * 17


async def test_replicas_claiming_at_once_leave_every_tenant_its_turn(
    store: Store, twin: Store
) -> None:
    """Two processes claiming together each take at most their share of the big tenant's
    backlog, and the small tenant's deliveries go out in the same round."""
    for n in range(4):
        await store.create_subscription(subscription(f"a{n}", tenant="ta"))
    await store.create_subscription(subscription("b1", tenant="tb"))
    for _ in range(10):
        await store.record_event(event(tenant="ta"), dedupe_window=60)
    for _ in range(2):
        await store.record_event(event(tenant="tb"), dedupe_window=60)
    now = time.time() + 1
    rounds = await asyncio.gather(
        *(
            s.claim_deliveries(
                owner=f"w{i}", now=now, lease=30, limit=4, exclude=(), per_tenant=2, busy={}
            )
            for i, s in enumerate([store, twin])
        )
    )
    for claimed in rounds:
        assert sum(c.delivery.tenant == "ta" for c in claimed) <= 2
    assert sum(c.delivery.tenant == "tb" for claimed in rounds for c in claimed) == 2


async def test_concurrent_claims_never_hand_out_a_delivery_twice(store: Store, twin: Store) -> None:
    """Two stores claiming at once share the due deliveries between them, each exactly once."""
    for n in range(6):
        await store.create_subscription(subscription(f"s{n}"))
    for _ in range(6):
        await store.record_event(event(), dedupe_window=60)
    claimed: list[str] = []
    now = time.time()

    async def worker(s: Store, owner: str) -> None:
        while batch := await s.claim_deliveries(
            owner=owner, now=now, lease=30, limit=5, exclude=()
        ):
            claimed.extend(c.delivery.id for c in batch)

    await asyncio.gather(*(worker(s, f"w{i}") for i, s in enumerate([store, twin] * 3)))
    assert len(claimed) == 36
    assert len(set(claimed)) == 36


async def test_a_hold_or_an_order_made_after_claims_applies_to_the_next_claim(
    store: Store, twin: Store
) -> None:
    """Claims made while no subscription is held or ordered check neither; a subscriber's hold
    (429 with Retry-After) and an ordering subscription made later, even through another store
    on the database, apply to the very next claim."""

    async def claim() -> list[str]:
        found = await store.claim_deliveries(
            owner="w", now=time.time(), lease=30, limit=10, exclude=()
        )
        return [c.delivery.event_id for c in found]

    await store.create_subscription(subscription("s1"))
    first = event()
    assert await store.record_event(first, dedupe_window=0)
    [claimed] = await store.claim_deliveries(
        owner="w", now=time.time(), lease=30, limit=10, exclude=()
    )
    assert claimed.delivery.event_id == first.id
    await store.complete_attempts(
        [
            AttemptOutcome(
                claimed.delivery.id, "s1", None, "pending", time.time(), False, time.time() + 60
            )
        ],
        now=time.time(),
    )
    assert await store.record_event(event(), dedupe_window=0)
    assert await claim() == []  # s1 is held for a minute
    await store.delete_subscription("t1", "s1")
    assert await claim() == []  # nothing held, nothing ordered
    ordered = attrs.evolve(subscription("s2"), order_by="resource")
    await twin.create_subscription(ordered)
    about = [
        Event.new("acme.done", {"productId": "p1", "n": n}, tenant="t1", backend="acme")
        for n in (1, 2)
    ]
    for each in about:
        assert await store.record_event(each, dedupe_window=0)
    assert await claim() == [about[0].id]  # the second waits for the first
    assert await claim() == []
