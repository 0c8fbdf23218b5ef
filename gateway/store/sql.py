"""What the shared store logic (`gateway.store.logic`) asks of a database: one connection in one
SQL dialect, and the few steps each dialect spells its own way.

The logic writes its queries once, in neutral SQL: `?` placeholders, `ON CONFLICT DO NOTHING`,
`TRUE`/`FALSE`. A dialect renders them (PostgreSQL numbers the placeholders) and adds only what
differs between the databases: how a list is matched, text ordered and a row replaced; how rows
are locked and other processes woken; how an event is stored and its deliveries queued and
claimed, where each database has a faster statement of its own. A dialect's own statements are
written in its native spelling and never rendered.
"""

from __future__ import annotations

import abc
import datetime
import functools
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

import attrs

from gateway.values import Event

# The columns of an attempt (`rows.ATTEMPT`; rows imports this module).
ATTEMPT = "delivery_id, number, at, status, duration_ms, error, response_excerpt"
Row = Any  # a tuple (SQLite) or an asyncpg Record: indexable and sliceable alike

# Lock classes of `Db.lock` (PostgreSQL's advisory locks: keep the numbers, replicas share them).
DEDUPE_LOCK = 1  # (tenant, dedupe key): a callback's check and insert
SUBSCRIPTIONS_LOCK = 2  # a tenant: its subscription count and a create
ORDER_LOCK = 3  # (tenant, an event's key): its events recorded one after another
RECOVERY_LOCK = 3  # a subscription: its running recovery and a new one


def timestamp() -> str:
    """Now, as the stores write created_at and updated_at of resources and subscriptions."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def migrations(package: str) -> list[tuple[int, str]]:
    """The numbered migration scripts (`0001_name.sql`) of `package`, in order."""
    found = []
    for entry in resources.files(package).iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


@attrs.frozen
class Claim:
    """What `Store.claim_deliveries` asks for, as a dialect's `Db.claim` takes it: a tenant gets
    at most `most` less what `owner` has in flight for it (`busy`)."""

    owner: str
    now: float
    lease: float
    limit: int
    exclude: Sequence[str]
    most: int
    busy: Mapping[str, int]


@functools.lru_cache(maxsize=1024)
def numbered(query: str) -> str:
    """`?` placeholders as `$1`, `$2`, ... (PostgreSQL's): neutral queries hold no other `?`."""
    parts = query.split("?")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1)) + parts[-1]


class Db(abc.ABC):
    """One connection, as the shared logic sees it: neutral SQL in, rows out."""

    binary: str = ""  # appended to a text column in ORDER BY: compare bytes, not a locale
    for_update: str = ""  # appended to a SELECT whose rows the transaction then writes

    # -- running neutral SQL ----------------------------------------------------------------------

    @abc.abstractmethod
    async def rows(self, query: str, args: Sequence[object] = ()) -> Sequence[Row]: ...

    @abc.abstractmethod
    async def row(self, query: str, args: Sequence[object] = ()) -> Row | None: ...

    @abc.abstractmethod
    async def value(self, query: str, args: Sequence[object] = ()) -> Any:
        """The first column of the first row; None without a row."""

    @abc.abstractmethod
    async def count(self, query: str, args: Sequence[object] = ()) -> int:
        """Run a write; how many rows it changed."""

    @abc.abstractmethod
    async def many(self, query: str, args: Iterable[Sequence[object]]) -> None:
        """Run a write once per argument tuple."""

    async def attempts_of(self, delivery_ids: Sequence[str]) -> Sequence[Row]:
        """The attempts (columns of `rows.ATTEMPT`) of a page of deliveries, each delivery's in
        order; looked up delivery by delivery in the primary key, statistics or none."""
        among, args = self.any_of("delivery_id", delivery_ids)
        return await self.rows(
            f"SELECT {ATTEMPT} FROM attempts WHERE {among} ORDER BY delivery_id, number", args
        )

    async def listed_deliveries(
        self, query: str, args: Sequence[object]
    ) -> Sequence[tuple[Row, Sequence[Row]]]:
        """The rows of `query` (a page of deliveries, `id` their first column), in its order,
        each with its attempts (`attempts_of`)."""
        found = await self.rows(query, args)
        attempts: dict[str, list[Row]] = {}
        if found:
            for row in await self.attempts_of([row[0] for row in found]):
                attempts.setdefault(row[0], []).append(row)
        return [(row, attempts.get(row[0], [])) for row in found]

    @abc.abstractmethod
    def json_text(self, column: str, key: str) -> str:
        """The text of top-level `key` of the JSON in `column`, spelt as the expression indexes
        on it are (`key` is a constant of the caller's, never input)."""

    def any_of(self, column: str, values: Sequence[str]) -> tuple[str, Sequence[object]]:
        """A condition that `column` is one of `values` (not empty), and its arguments."""
        return self.any_of_text(column, len(values)), self.any_of_args(values)

    @staticmethod
    @abc.abstractmethod
    def any_of_text(column: str, count: int) -> str:
        """`any_of`'s condition for `count` values: the same for any values, so a caller may
        keep it (`any_of_args` are its arguments). Of the dialect, not of a connection."""

    @staticmethod
    @abc.abstractmethod
    def any_of_args(values: Sequence[str]) -> Sequence[object]:
        """`any_of`'s arguments for `values`, in place of its condition's placeholders."""

    # -- the dialect's own steps ------------------------------------------------------------------

    @abc.abstractmethod
    async def apply_migration(self, version: int, script: str) -> None:
        """Run one migration script and record its version."""

    @abc.abstractmethod
    async def lock(self, lock_class: int, key: str) -> None:
        """Hold a lock on (`lock_class`, `key`) until the transaction ends, for a check and a
        write that must be one step across processes."""

    @abc.abstractmethod
    async def notify(self) -> None:
        """Wake the other processes' workers once this transaction commits: it queued deliveries
        without `queue` or `queue_matching` (which notify by themselves)."""

    @abc.abstractmethod
    def replace(self, table: str, columns: str, key: str) -> str:
        """An INSERT of `columns` ("a, b, c": a placeholder each) that replaces the row with the
        same `key` columns ("a, b"), if there is one."""

    @abc.abstractmethod
    async def insert_event(self, event: Event, now: float, since: float) -> int | None:
        """Store `event`, received `now`, unless its tenant has one with its dedupe key received
        after `since`; its position (`seq`) when it was stored, None when it was not."""

    @abc.abstractmethod
    async def insert_subscription(self, args: Sequence[object]) -> None:
        """Store a subscription (the columns of `rows.SUBSCRIPTION`, in that order) last in its
        tenant's creation order (`seq`)."""

    @abc.abstractmethod
    async def queue(
        self, event_id: str, tenant: str, subscription_ids: Sequence[str], now: float
    ) -> list[str]:
        """Queue one pending delivery of the event to each subscription; their ids."""

    @abc.abstractmethod
    async def queue_matching(
        self, event: Event, now: float, order: tuple[str, int] | None = None
    ) -> bool:
        """Queue one pending delivery of `event` to each enabled subscription of its tenant
        without a filter whose event types match (`Subscription.matches`); `order`, the event's
        key and position, goes on the deliveries to subscriptions that order theirs
        (`gateway.store.ordering`). Whether the tenant has enabled subscriptions with a filter
        (not queued here): without any, recording an event reads nothing more."""

    @abc.abstractmethod
    async def claim(self, claim: Claim) -> Sequence[Row]:
        """Lease the due deliveries `claim` describes (`Store.claim_deliveries`); their rows, in
        the columns of `rows.DELIVERY_JOINED`."""


async def migrate(db: Db, package: str) -> None:
    """Apply the migrations of `package` that the database has not had yet, in order."""
    await db.count(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
        " applied_at TEXT NOT NULL)"
    )
    current = await db.value("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    for version, script in migrations(package):
        if version > current:
            await db.apply_migration(version, script)
