"""The store's contract, run against every implementation (parametrised, never copied):
resources, subscriptions, pages of events and idempotency records. Deliveries, attempts'
outcomes, migrations and each store's own ways are in the other `test_store_*` modules."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.calls import ResourceBook
from gateway.problems import ProblemError
from gateway.store.protocol import Store
from gateway.store.records import Position
from tests.store_records import event, subscription


async def test_resources_are_claimed_once(store: Store) -> None:
    """The first claim wins; later claims see the owner; attributes merge by top-level key."""
    first = await store.claim_resource("product", "p1", tenant="t1", backend="acme", parent_id=None)
    second = await store.claim_resource("product", "p1", tenant="t2", backend="x", parent_id=None)
    assert (first.tenant, second.tenant) == ("t1", "t1")
    await store.update_resource("product", "p1", {"name": "a", "sku": "s"})
    updated = await store.update_resource("product", "p1", {"name": "b"})
    assert updated is not None
    assert dict(updated.attributes) == {"name": "b", "sku": "s"}


async def test_a_bare_claim_is_released_and_a_recorded_one_stays(store: Store) -> None:
    """Releasing frees an id nothing was recorded on, for its claimant only; once the backend
    recorded attributes, the resource exists upstream and its claim stays."""
    await store.claim_resource("product", "p1", tenant="t1", backend="acme", parent_id=None)
    assert not await store.release_resource("product", "p1", tenant="t2")
    assert await store.release_resource("product", "p1", tenant="t1")
    assert await store.get_resource("product", "p1") is None
    again = await store.claim_resource("product", "p1", tenant="t2", backend="x", parent_id=None)
    assert again.tenant == "t2"
    await store.update_resource("product", "p1", {"name": "kept"})
    assert not await store.release_resource("product", "p1", tenant="t2")
    kept = await store.get_resource("product", "p1")
    assert kept is not None
    assert kept.tenant == "t2"


async def test_put_resource_creates_once_and_leaves_another_tenants_record(store: Store) -> None:
    """The store's put: created with its attributes the first time, merged afterwards for its
    owner, and another tenant's record returned unchanged (not created, nothing merged)."""
    first, created = await store.put_resource(
        "product", "p1", tenant="t1", backend="acme", parent_id=None, attributes={"name": "a"}
    )
    assert created
    assert first.tenant == "t1"
    assert dict(first.attributes) == {"name": "a"}
    again, created = await store.put_resource(
        "product", "p1", tenant="t1", backend="acme", parent_id=None, attributes={"sku": "s"}
    )
    assert not created
    assert dict(again.attributes) == {"name": "a", "sku": "s"}
    assert again.created_at == first.created_at
    other, created = await store.put_resource(
        "product", "p1", tenant="t2", backend="x", parent_id=None, attributes={"name": "b"}
    )
    assert not created
    assert other.tenant == "t1"
    assert dict(other.attributes) == {"name": "a", "sku": "s"}


async def test_a_backend_recording_another_tenants_id_is_404(store: Store) -> None:
    """When another tenant recorded the id while this call's upstream request was out (another
    process won the race), `ResourceBook.put` is a 404 and the winner's record stays as it was."""
    await store.put_resource(
        "product", "p1", tenant="t1", backend="acme", parent_id=None, attributes={"name": "a"}
    )
    book = ResourceBook(store, tenant="t2", backend="acme")
    with pytest.raises(ProblemError) as caught:
        await book.put("product", "p1", {"name": "b"})
    assert caught.value.status == 404
    kept = await store.get_resource("product", "p1")
    assert kept is not None
    assert kept.tenant == "t1"
    assert dict(kept.attributes) == {"name": "a"}
    assert book.recorded == {}


async def test_children_of_several_parents_come_in_one_read(store: Store) -> None:
    """One query lists the kind's records under every given parent, oldest first, the tenant's
    only; other kinds, other parents and no parents at all give nothing."""
    for image, parent, tenant in [
        ("i1", "c1", "t1"),
        ("i2", "c2", "t1"),
        ("i3", "c1", "t1"),
        ("i4", "c3", "t1"),
        ("i5", "c1", "t2"),
    ]:
        await store.claim_resource("image", image, tenant=tenant, backend="acme", parent_id=parent)
    await store.claim_resource("note", "n1", tenant="t1", backend="acme", parent_id="c1")
    listed = await store.list_resources("t1", "image", ["c1", "c2"])
    assert [(r.id, r.parent_id) for r in listed] == [("i1", "c1"), ("i2", "c2"), ("i3", "c1")]
    assert [r.id for r in await store.list_resources("t2", "image", ["c1"])] == ["i5"]
    assert await store.list_resources("t1", "image", []) == []


async def test_a_listing_of_children_follows_every_write(store: Store) -> None:
    """A parent's children, listed again after each kind of write of one of them (a create, new
    attributes by put and by update, a refused create released, another tenant's attempt at the
    same id), are what the database holds then, listed alone or among several parents."""

    async def listed(tenant: str = "t1", parents: tuple[str, ...] = ("p1",)) -> list[Any]:
        found = await store.list_resources(tenant, "configuration", parents)
        return [(r.id, dict(r.attributes)) for r in found]

    assert await listed() == []
    await store.claim_resource("configuration", "c1", tenant="t1", backend="acme", parent_id="p1")
    assert await listed() == [("c1", {})]
    await store.put_resource(
        "configuration", "c1", tenant="t1", backend="acme", parent_id="p1", attributes={"n": 1}
    )
    assert await listed() == [("c1", {"n": 1})]
    await store.update_resource("configuration", "c1", {"n": 2})
    assert await listed() == [("c1", {"n": 2})]
    await store.claim_resource("configuration", "c2", tenant="t1", backend="acme", parent_id="p1")
    assert await listed(parents=("p1", "p2")) == [("c1", {"n": 2}), ("c2", {})]
    assert await store.release_resource("configuration", "c2", tenant="t1")
    assert await listed() == [("c1", {"n": 2})]
    assert await listed(parents=("p2", "p1")) == [("c1", {"n": 2})]
    await store.put_resource(
        "configuration", "c1", tenant="t2", backend="acme", parent_id="p1", attributes={"n": 3}
    )
    assert await listed() == [("c1", {"n": 2})]
    assert await listed("t2") == []


async def test_the_subscription_limit_holds_under_concurrent_creates(
    store: Store, twin: Store
) -> None:
    """Creates racing through two processes never pass a tenant's limit; others' are apart."""
    results = await asyncio.gather(
        *(
            s.create_subscription(subscription(f"s{n}", tenant="t1"), limit=3)
            for n, s in enumerate([store, twin] * 5)
        )
    )
    assert sum(results) == 3
    assert await store.create_subscription(subscription("other", tenant="t2"), limit=3)
    page = await store.list_subscriptions("t1", after=None, limit=50)
    assert len(page.items) == 3


async def test_subscriptions_page_oldest_first_from_a_position(store: Store) -> None:
    """Pages of `limit` in creation order, each continuing after the position the last ended at;
    the last page has no next position; other tenants' subscriptions never show."""
    for n in range(5):
        await store.create_subscription(subscription(f"s{n}"))
        await store.create_subscription(subscription(f"other{n}", tenant="t2"))
    seen: list[str] = []
    after: Position | None = None
    for expected in (2, 2, 1):
        page = await store.list_subscriptions("t1", after=after, limit=2)
        assert len(page.items) == expected
        seen += [s.id for s in page.items]
        after = page.next_position
    assert after is None
    assert seen == [f"s{n}" for n in range(5)]


async def test_events_page_newest_first_from_a_position(store: Store) -> None:
    """Pages of `limit`, newest first, each continuing below the position the last ended at,
    also with a type filter; an event stored while paging shifts no later page."""
    stored = [event("acme.done" if n % 2 else "acme.other") for n in range(6)]
    for e in stored:
        await store.record_event(e, dedupe_window=60)
    await store.record_event(event(tenant="t2"), dedupe_window=60)
    first = await store.list_events("t1", event_type=None, after=None, limit=4)
    late = event()
    await store.record_event(late, dedupe_window=60)
    rest = await store.list_events("t1", event_type=None, after=first.next_position, limit=4)
    assert [e.id for e in [*first.items, *rest.items]] == [e.id for e in reversed(stored)]
    assert rest.next_position is None
    done = [e.id for e in [*stored, late] if e.type == "acme.done"]
    page = await store.list_events("t1", event_type="acme.done", after=None, limit=2)
    assert [e.id for e in page.items] == done[::-1][:2]
    page = await store.list_events("t1", event_type="acme.done", after=page.next_position, limit=2)
    assert [e.id for e in page.items] == done[::-1][2:]
    assert page.next_position is None


async def test_idempotency_claims_expire_as_leases(store: Store) -> None:
    """A running claim blocks others until its lease ends; a finished one replays until its TTL."""
    assert (
        await store.begin_idempotent("t1", "k", operation="op", fingerprint="f", lease=30) is None
    )
    held = await store.begin_idempotent("t1", "k", operation="op", fingerprint="f", lease=30)
    assert held is not None
    assert held.state == "running"
    await store.finish_idempotent("t1", "k", status=201, headers={}, body=b"{}", ttl=60)
    done = await store.get_idempotent("t1", "k")
    assert done is not None
    assert (done.state, done.status, done.body) == ("done", 201, b"{}")
    assert await store.begin_idempotent("t1", "x", operation="op", fingerprint="f", lease=0) is None
    assert await store.begin_idempotent("t1", "x", operation="op", fingerprint="g", lease=5) is None


async def test_an_idempotency_key_is_claimed_once_across_stores(store: Store, twin: Store) -> None:
    """Concurrent first requests with one key, through two stores: exactly one runs."""
    results = await asyncio.gather(
        *(
            s.begin_idempotent("t1", "k-race", operation="op", fingerprint="f", lease=30)
            for s in [store, twin] * 8
        )
    )
    assert sum(r is None for r in results) == 1
    assert all(r.state == "running" for r in results if r is not None)
