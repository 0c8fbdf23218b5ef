"""SQLite's dialect of the shared store logic (`SQLiteDb`): neutral SQL as it is, and SQLite's own
statements for storing an event, queuing its deliveries and claiming them. The store that runs
it, one writer thread and its readers, is `gateway.store.sqlite`."""

from __future__ import annotations

import enum
import functools
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Final

from gateway.store import rows, sql
from gateway.store.ordering import HEAD
from gateway.store.sql import Claim, Db, Row
from gateway.values import Event

# Not a delivery of a subscription held back (throttled): the few held are one index range.
HELD = "subscription_id NOT IN (SELECT id FROM subscriptions WHERE held_until > ?)"


class Unknown(enum.Enum):
    """The type of `UNKNOWN`: what the writer does not know (None is a value of its own)."""

    UNKNOWN = "unknown"


UNKNOWN: Final = Unknown.UNKNOWN


@functools.cache
def _replace(table: str, columns: str) -> str:
    marks = ", ".join("?" * len(columns.split(", ")))
    return f"INSERT OR REPLACE INTO {table} ({columns}) VALUES ({marks})"


class SQLiteDb(Db):
    """SQLite's spelling: neutral SQL as it is. One process, one writer: writes are serialised by
    the store, so nothing needs a lock, and nobody else needs waking.

    The writer remembers what spares the commonest case work: which tenants have no enabled
    subscription with a filter (`queue_matching`: recording their events reads nothing more),
    until when any subscription is held, and whether anything is ordered (`claim`: without, its
    conditions for them are left out). It forgets at once when a subscription's columns that
    these depend on change through it (temporary triggers see every statement that does), when
    another connection committed anything (`began`), and when a write is undone."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # `fetch`'s: it runs each statement to its end (which resets it) before the next, and
        # a cursor made per statement costs 1.3 k instructions more (callgrind).
        self._cursor = conn.cursor()
        self._unfiltered: set[str] = set()  # tenants without an enabled filtered subscription
        self._held: float | Unknown | None = UNKNOWN  # the latest held_until of any
        self._ordered: bool | Unknown = UNKNOWN  # a subscription orders, or a delivery is keyed
        self._version: int | None = None  # PRAGMA data_version when they were known

    def watch_subscriptions(self) -> None:
        """Forget what is known whenever a subscription changes what it is known by: triggers of
        this connection only (TEMP), made after the migrations."""
        self.conn.create_function("subscriptions_changed", 0, self.forget)
        columns = "tenant, enabled, filter, held_until, order_by"
        for event in ("INSERT", "DELETE", f"UPDATE OF {columns}"):
            name = event.split()[0].lower()
            self.conn.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS subscriptions_{name} AFTER {event}"
                " ON main.subscriptions BEGIN SELECT subscriptions_changed(); END"
            )

    def began(self) -> None:
        """A write transaction began: if another connection committed since the last one (a
        second store on the file, a command), what this one knew about subscriptions may be
        out of date."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._version = version
            self.forget()

    def forget(self) -> None:
        self._unfiltered.clear()
        self._held = self._ordered = UNKNOWN

    def _conditions(self, now: float) -> tuple[str, tuple[float, ...]]:
        """The claim's conditions for throttling and ordering, and their arguments: none when no
        subscription is held at `now` and nothing is ordered (nearly always)."""
        if self._held is UNKNOWN:
            latest: float | None = self.conn.execute(
                "SELECT MAX(held_until) FROM subscriptions WHERE held_until IS NOT NULL"
            ).fetchone()[0]
            self._held = latest
        if self._ordered is UNKNOWN:
            # While no subscription orders, no delivery is given a key (`queue_matching`).
            self._ordered = bool(
                self.conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE order_by IS NOT NULL)"
                    " OR EXISTS (SELECT 1 FROM deliveries WHERE order_key IS NOT NULL)"
                ).fetchone()[0]
            )
        held = isinstance(self._held, float) and self._held > now
        where = (f" AND {HELD}" if held else "") + (f" AND {HEAD}" if self._ordered else "")
        return where, (now,) if held else ()

    def fetch(self, query: str, args: Sequence[object] = ()) -> list[Row]:
        """The rows of `query`, here and now."""
        return self._cursor.execute(query, args).fetchall()

    async def rows(self, query: str, args: Sequence[object] = ()) -> Sequence[Row]:
        return self.fetch(query, args)

    async def row(self, query: str, args: Sequence[object] = ()) -> Row | None:
        return self.conn.execute(query, args).fetchone()

    async def value(self, query: str, args: Sequence[object] = ()) -> Any:
        row = self.conn.execute(query, args).fetchone()
        return None if row is None else row[0]

    async def count(self, query: str, args: Sequence[object] = ()) -> int:
        return self.conn.execute(query, args).rowcount

    async def many(self, query: str, args: Iterable[Sequence[object]]) -> None:
        self.conn.executemany(query, args)

    @staticmethod
    def any_of_text(column: str, count: int) -> str:
        return f"{column} IN ({','.join('?' * count)})"

    @staticmethod
    def any_of_args(values: Sequence[str]) -> Sequence[object]:
        return values

    def json_text(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    async def apply_migration(self, version: int, script: str) -> None:
        # One transaction per migration: a crash leaves the schema at a known version.
        self.conn.executescript(
            f"BEGIN;\n{script}\nINSERT INTO schema_migrations VALUES ({version},"
            f" '{sql.timestamp()}');\nCOMMIT;"
        )

    async def lock(self, lock_class: int, key: str) -> None:
        """Nothing: the transaction holds the database's one write lock already."""

    async def notify(self) -> None:
        """Nothing: the process that queued wakes its own workers."""

    def replace(self, table: str, columns: str, key: str) -> str:
        return _replace(table, columns)

    async def insert_event(self, event: Event, now: float, since: float) -> int | None:
        # A check, then an insert: one INSERT ... SELECT WHERE NOT EXISTS would copy its row
        # through a temporary table (it reads the table it writes), twice the time.
        if event.dedupe_key is not None:
            seen = self.conn.execute(
                "SELECT 1 FROM events WHERE tenant = ? AND dedupe_key = ?"
                " AND received_epoch > ? LIMIT 1",
                (event.tenant, event.dedupe_key, since),
            ).fetchone()
            if seen is not None:
                return None
        inserted = self.conn.execute(
            f"INSERT INTO events ({rows.EVENT}, received_at, received_epoch)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*rows.event_values(event), sql.timestamp(), now),
        )
        return inserted.lastrowid  # seq is the table's INTEGER PRIMARY KEY: its rowid

    async def insert_subscription(self, args: Sequence[object]) -> None:
        # No identity column: the next creation number is the largest so far, plus one.
        self.conn.execute(
            "INSERT INTO subscriptions (id, tenant, url, event_types, description, enabled,"
            " disabled_reason, secret, previous_secret, previous_expires_at, failing_since,"
            " seq, created_at, updated_at, filter, max_per_second, throttled_until, order_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " (SELECT COALESCE(MAX(seq), 0) + 1 FROM subscriptions), ?, ?, ?, ?, ?, ?)",
            args,
        )

    async def queue(
        self, event_id: str, tenant: str, subscription_ids: Sequence[str], now: float
    ) -> list[str]:
        ids = [f"dlv_{uuid.uuid4().hex}" for _ in subscription_ids]
        self.conn.executemany(
            "INSERT INTO deliveries (id, event_id, subscription_id, tenant, status, attempts,"
            " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            [
                (delivery_id, event_id, subscription_id, tenant, now, now, now)
                for delivery_id, subscription_id in zip(ids, subscription_ids, strict=True)
            ],
        )
        return ids

    async def queue_matching(
        self, event: Event, now: float, order: tuple[str, int] | None = None
    ) -> bool:
        # Subscription.matches, in SQL: one statement queues all those without a filter (ids as
        # random as uuid4's).
        key, seq = order or (None, None)
        self.conn.execute(
            "INSERT INTO deliveries (id, event_id, subscription_id, tenant, status, attempts,"
            " next_attempt_at, created_at, updated_at, order_key, order_seq)"
            " SELECT 'dlv_' || lower(hex(randomblob(16))), ?, id, tenant, 'pending', 0, ?, ?, ?,"
            " CASE WHEN order_by IS NOT NULL THEN ? END, CASE WHEN order_by IS NOT NULL THEN ? END"
            " FROM subscriptions WHERE tenant = ? AND enabled = TRUE AND filter IS NULL"
            " AND EXISTS (SELECT 1 FROM json_each(event_types) WHERE value IN ('*', ?))",
            (event.id, now, now, now, key, seq, event.tenant, event.type),
        )
        if event.tenant in self._unfiltered:
            return False
        filtered = self.conn.execute(
            "SELECT 1 FROM subscriptions WHERE tenant = ? AND enabled = TRUE"
            " AND filter IS NOT NULL LIMIT 1",
            (event.tenant,),
        ).fetchone()
        if filtered is None:
            self._unfiltered.add(event.tenant)
        return filtered is not None

    async def claim(self, claim: Claim) -> Sequence[Row]:
        db, now, exclude, limit = self.conn, claim.now, claim.exclude, claim.limit
        skip = ",".join("?" * len(exclude))
        # Leases that ended (a dead worker's): few, whoever's they are.
        due: dict[str, list[tuple[float, str]]] = {}
        where, held = self._conditions(now)
        for tenant, delivery_id, next_at in db.execute(
            "SELECT tenant, id, next_attempt_at FROM deliveries WHERE status = 'delivering'"
            f" AND lease_until < ? AND subscription_id NOT IN ({skip}){where}",
            (now, *exclude, *held),
        ):
            due.setdefault(tenant, []).append((next_at or 0.0, delivery_id))
        tenants = {row[0] for row in db.execute("SELECT DISTINCT tenant FROM subscriptions")}
        # Turns: every tenant's oldest due, then every tenant's second, ... each up to its room.
        turns: list[tuple[int, float, str]] = []
        for tenant in tenants | due.keys():
            room = min(limit, claim.most - claim.busy.get(tenant, 0))
            if room <= 0:
                continue
            pending = db.execute(
                "SELECT next_attempt_at, id FROM deliveries WHERE tenant = ?"
                " AND status = 'pending' AND next_attempt_at <= ?"
                f" AND subscription_id NOT IN ({skip}){where}"
                " ORDER BY next_attempt_at LIMIT ?",
                (tenant, now, *exclude, *held, room),
            ).fetchall()
            oldest = sorted([*due.get(tenant, ()), *pending])[:room]
            turns.extend((turn, at, i) for turn, (at, i) in enumerate(oldest))
        ids = [delivery_id for _, _, delivery_id in sorted(turns)[:limit]]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        db.execute(
            "UPDATE deliveries SET status = 'delivering', lease_owner = ?, lease_until = ?,"
            f" updated_at = ? WHERE id IN ({marks})",
            (claim.owner, now + claim.lease, now, *ids),
        )
        return db.execute(
            f"SELECT {rows.DELIVERY_JOINED} FROM deliveries d"
            " JOIN events e ON e.id = d.event_id"
            " JOIN subscriptions s ON s.id = d.subscription_id"
            f" WHERE d.id IN ({marks})",
            ids,
        ).fetchall()
