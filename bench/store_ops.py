"""The operations `python -m bench store-scale` times, as a table of named rows (issue 16).

Each row times one store operation at the history the store holds now: `read` rows are what the
API reads (the p95 goal applies to them), the others what ingest and delivery write. A row whose
store method does not exist yet says so ("not yet measured") rather than being faked; it slots in
once the method lands. The benchmark runs the table in rounds, each row a round's share of its
calls (`Context.numbers`), alternating between the sizes it compares: the reads over the filled
history first, then the writes, whose deliveries the claims drain (nothing stays queued for the
next round); the rows marked `after_churn` run once both stores took a burst of traffic.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import attrs

from gateway.store.protocol import Store
from gateway.store.records import Attempt, AttemptOutcome, ClaimedDelivery, EventFilter, Position
from gateway.values import Event
from tests.store_fill import PAYLOAD, PRODUCTS, TENANTS, loop_gaps

PAGE = 50
CLAIM = 10  # deliveries a claim leases (a worker's free slots)
EMPTY_TENANT = "nobody"


@attrs.define
class Context:
    """The store under measurement, how many events it was filled with, how many times a row
    runs, and what the claims leave for the completions."""

    store: Store
    size: int
    reads: int  # a round's calls of a row (fewer for the costlier ones)
    churn: int  # events recorded and delivered in a burst before the "after churn" rows
    round: int = 0
    newest: float = attrs.field(factory=time.time)  # when the fill's last event was received
    rng: random.Random = attrs.field(factory=lambda: random.Random(16))
    claimed: list[ClaimedDelivery] = attrs.field(factory=list)

    def filled_event(self) -> tuple[str, str]:
        """(tenant, id) of a random event of the fill (`tests.store_fill` numbers them)."""
        n = self.rng.randrange(self.size)
        return TENANTS[n % len(TENANTS)], f"evt_{n:010d}"

    def numbers(self, share: int = 1) -> range:
        """This round's call numbers for a row making a `share`-th of `reads` calls a round: each
        round goes on where the last stopped (a recovery's hour is never recovered twice)."""
        calls = max(1, self.reads // share)
        return range(self.round * calls, (self.round + 1) * calls)


Timings = list[float]  # milliseconds


async def timed(numbers: Iterable[int], call: Callable[[int], Awaitable[object]]) -> Timings:
    """`call(n)` for each of `numbers`, one at a time; each one's milliseconds."""
    times = []
    for n in numbers:
        started = time.perf_counter()
        await call(n)
        times.append((time.perf_counter() - started) * 1000)
    return times


@attrs.frozen
class Operation:
    """A row: its name, whether the read goal applies, how it is timed (None: its store method
    has not landed yet), and whether it runs after the burst of traffic."""

    name: str
    read: bool
    measure: Callable[[Context], Awaitable[Timings]] | None
    note: str = ""
    after_churn: bool = False  # timed once the store took `churn`'s burst


def _tenant(n: int) -> str:
    return TENANTS[n % len(TENANTS)]


async def list_first_page(ctx: Context) -> Timings:
    return await timed(
        ctx.numbers(),
        lambda n: ctx.store.list_events(_tenant(n), event_type=None, after=None, limit=PAGE),
    )


async def list_deep_cursor(ctx: Context) -> Timings:
    middle = Position(ctx.size // 2)
    return await timed(
        ctx.numbers(),
        lambda n: ctx.store.list_events(_tenant(n), event_type=None, after=middle, limit=PAGE),
    )


async def list_by_type(ctx: Context) -> Timings:
    return await timed(
        ctx.numbers(),
        lambda n: ctx.store.list_events(_tenant(n), event_type="acme.done", after=None, limit=PAGE),
    )


async def list_by_resource(ctx: Context) -> Timings:
    """A product's events (`tests.store_fill` gives event n the product p{n % PRODUCTS}: even
    ones are t1's), a full page at every size."""

    async def call(n: int) -> object:
        where = EventFilter(product_id=f"p{(n % (PRODUCTS // 2)) * 2 + n % 2}")
        return await ctx.store.list_events(
            _tenant(n), event_type=None, after=None, limit=PAGE, where=where
        )

    return await timed(ctx.numbers(), call)


def hour_ago(ctx: Context, n: int) -> float:
    """The start of an hour in the middle of the history, a different one for each `n` (the fill
    receives an event a second, ending now)."""
    return ctx.newest - ctx.size / 2 - 3600.0 * (n + 1)


WINDOW = 600.0  # seconds: 300 events of each tenant, a full page at every size


def window_start(ctx: Context, n: int) -> float:
    """The start of a 10-minute window in the older half of the history, one of 8 (`n`): inside
    the smallest history compared (10k seconds), so that the page is full at every size."""
    return ctx.newest - ctx.size / 2 - WINDOW * (n % 8 + 1)


async def list_by_time(ctx: Context) -> Timings:
    """A 10-minute window's events, half-way down the history (the time-range query reads two
    positions, then the page: the same work at any size once the page is full)."""

    async def call(n: int) -> object:
        since = window_start(ctx, n)
        where = EventFilter(since=since, until=since + WINDOW)
        return await ctx.store.list_events(
            _tenant(n), event_type=None, after=None, limit=PAGE, where=where
        )

    return await timed(ctx.numbers(), call)


async def list_subscription_deliveries(ctx: Context) -> Timings:
    """A subscription's failed deliveries, newest first (1 % of its history failed)."""
    return await timed(
        ctx.numbers(),
        lambda n: ctx.store.list_subscription_deliveries(
            _tenant(n),
            f"sub_{_tenant(n)}_{n % 5}",
            status="failed",
            since=None,
            until=None,
            after=None,
            limit=PAGE,
        ),
    )


async def recover(ctx: Context) -> Timings:
    """A bulk recovery of a subscription's failed deliveries of an hour, start to done (batches
    of 100 by one recoverer); the claims below drain what it queued."""

    async def call(n: int) -> None:
        tenant, now = _tenant(n), time.time()
        since = hour_ago(ctx, n)
        started = await ctx.store.start_recovery(
            tenant, f"sub_{tenant}_{n % 5}", since=since, until=since + 3600.0, now=now
        )
        assert started is not None
        claimed = await ctx.store.claim_recovery(owner="bench", now=now, lease=60.0)
        assert claimed is not None
        while claimed is not None and claimed.status == "running":
            claimed = await ctx.store.recover_step(
                claimed.id, owner="bench", now=now, lease=60.0, batch=100
            )

    return await timed(ctx.numbers(10), call)


async def list_empty_tenant(ctx: Context) -> Timings:
    return await timed(
        ctx.numbers(),
        lambda n: ctx.store.list_events(EMPTY_TENANT, event_type=None, after=None, limit=PAGE),
    )


async def get_event(ctx: Context) -> Timings:
    async def call(_: int) -> None:
        tenant, event_id = ctx.filled_event()
        assert await ctx.store.get_event(tenant, event_id) is not None

    return await timed(ctx.numbers(), call)


async def list_event_deliveries(ctx: Context) -> Timings:
    async def call(_: int) -> None:
        tenant, event_id = ctx.filled_event()
        assert await ctx.store.list_deliveries(tenant, event_id)

    return await timed(ctx.numbers(), call)


async def list_subscriptions(ctx: Context) -> Timings:
    return await timed(
        ctx.numbers(), lambda n: ctx.store.list_subscriptions(_tenant(n), after=None, limit=PAGE)
    )


async def queue_depth(ctx: Context) -> Timings:
    return await timed(ctx.numbers(), lambda _: ctx.store.queue_depth())


async def redeliver(ctx: Context) -> Timings:
    """One event of the history queued again to its tenant's 5 subscriptions (the claims below
    drain them)."""

    async def call(_: int) -> None:
        tenant, event_id = ctx.filled_event()
        assert await ctx.store.redeliver(tenant, event_id, None)

    return await timed(ctx.numbers(4), call)


def new_event(n: int) -> Event:
    """A ~1 KB event as a callback brings it (with a dedupe key), for the tenant `n` picks."""
    data = {"n": n, "productId": f"p{n % 1000}", "pad": PAYLOAD}
    dedupe_key = f"bench-{time.time_ns()}-{n}"
    return Event.new("acme.done", data, tenant=_tenant(n), backend="acme", dedupe_key=dedupe_key)


async def record(ctx: Context) -> Timings:
    """An event stored with its 5 deliveries, one at a time (what one callback costs)."""

    async def call(n: int) -> None:
        assert await ctx.store.record_event(new_event(n), dedupe_window=86400.0)

    return await timed(ctx.numbers(), call)


async def claim_all(store: Store, *, limit: int = CLAIM) -> tuple[Timings, list[ClaimedDelivery]]:
    """Claims until nothing is due: each claim's milliseconds, and what they leased."""
    times: Timings = []
    leased: list[ClaimedDelivery] = []
    while True:
        started = time.perf_counter()
        found = await store.claim_deliveries(
            owner="bench", now=time.time(), lease=300.0, limit=limit, exclude=(), per_tenant=limit
        )
        times.append((time.perf_counter() - started) * 1000)
        if not found:
            return times[:-1] or times, leased
        leased.extend(found)


async def claim(ctx: Context) -> Timings:
    """Leases of 10 due deliveries at a time, until the recorded and redelivered ones are all
    leased."""
    times, ctx.claimed = await claim_all(ctx.store)
    return times


def succeeded(claimed: ClaimedDelivery) -> AttemptOutcome:
    attempt = Attempt(1, "2026-01-01T00:00:00Z", 204, 12.5, None, None)
    d = claimed.delivery
    return AttemptOutcome(d.id, d.subscription_id, attempt, "succeeded", None, True)


async def complete_batches(store: Store, claimed: Sequence[ClaimedDelivery], size: int) -> Timings:
    batches = [claimed[i : i + size] for i in range(0, len(claimed), size)]
    return await timed(
        range(len(batches)),
        lambda n: store.complete_attempts([succeeded(c) for c in batches[n]], now=time.time()),
    )


async def complete(ctx: Context) -> Timings:
    """Outcomes written back 10 at a time (a worker's batch), for every delivery claimed."""
    return await complete_batches(ctx.store, ctx.claimed, CLAIM)


async def churn(ctx: Context) -> None:
    """`ctx.churn` events recorded (waves of 100 at once), their deliveries claimed and completed
    100 at a time: every delivery row updated twice, as a burst of traffic does, leaving dead row
    versions on PostgreSQL until autovacuum comes by."""
    for start in range(0, ctx.churn, 100):
        events = [new_event(n) for n in range(start, min(start + 100, ctx.churn))]
        await asyncio.gather(*(ctx.store.record_event(e, dedupe_window=86400.0) for e in events))
        _, leased = await claim_all(ctx.store, limit=100)
        await complete_batches(ctx.store, leased, 100)


async def queue_depth_after_churn(ctx: Context) -> Timings:
    """The queue's depth (0) right after `churn`: issue 16 saw 8 ms at 1M on PostgreSQL."""
    return await timed(ctx.numbers(), lambda _: ctx.store.queue_depth())


async def claim_after_churn(ctx: Context) -> Timings:
    """One event's 5 deliveries claimed right after `churn` (then completed, untimed)."""

    times: Timings = []
    for n in ctx.numbers(4):
        await ctx.store.record_event(new_event(n), dedupe_window=86400.0)
        started = time.perf_counter()
        leased = await ctx.store.claim_deliveries(
            owner="bench", now=time.time(), lease=300.0, limit=CLAIM, exclude=(), per_tenant=CLAIM
        )
        times.append((time.perf_counter() - started) * 1000)
        assert len(leased) == 5  # the tenant's subscriptions
        await complete_batches(ctx.store, leased, CLAIM)
    return times


OPERATIONS: tuple[Operation, ...] = (
    Operation("list first page", True, list_first_page),
    Operation("list deep cursor", True, list_deep_cursor),
    Operation("list by type", True, list_by_type),
    Operation("list by resource", True, list_by_resource),
    Operation("list by time range", True, list_by_time),
    Operation("list empty tenant", True, list_empty_tenant),
    Operation("get event", True, get_event),
    Operation("list event deliveries", True, list_event_deliveries),
    Operation("list subscription deliveries", True, list_subscription_deliveries),
    Operation("list subscriptions", True, list_subscriptions),
    Operation("queue depth", False, queue_depth),
    Operation("redeliver", False, redeliver),
    Operation("recover (bulk)", False, recover),
    Operation("record", False, record),
    Operation("claim", False, claim),
    Operation("complete", False, complete),
    Operation("queue depth after churn", False, queue_depth_after_churn, after_churn=True),
    Operation("claim after churn", False, claim_after_churn, after_churn=True),
)


async def longest_stall(store: Store, size: int, *, rounds: int = 5) -> float:
    """Milliseconds the event loop was held at most while 20 listings ran at once (10 first
    pages, 10 deep cursors half-way down a history of `size` events, both tenants), `rounds`
    times: a 1 ms ticker's longest gap."""
    sizes: list[Any] = []
    async with loop_gaps() as gaps:
        for _ in range(rounds):
            pages = await asyncio.gather(
                *(
                    store.list_events(tenant, event_type=None, after=after, limit=PAGE)
                    for tenant in TENANTS
                    for after in (None, Position(size // 2))
                    for _ in range(5)
                )
            )
            sizes.extend(len(page.items) for page in pages)
    assert all(n == PAGE for n in sizes)
    return max(gaps) * 1000
