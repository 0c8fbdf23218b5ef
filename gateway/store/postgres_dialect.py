"""PostgreSQL's dialect of the shared store logic (`PostgresDb`): placeholders numbered, lists as
arrays, advisory locks, NOTIFY on the deliveries' channel, and PostgreSQL's own statements for
storing an event, queuing its deliveries and claiming them across replicas. The store that runs it,
its pools and its listener, is `gateway.store.postgres`."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

from gateway.store import rows, sql
from gateway.store.ordering import HEAD
from gateway.store.sql import Claim, Db, Row
from gateway.values import Event

CHANNEL = "gateway_deliveries"

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]


def _attempts(listed: str | None) -> list[tuple[object, ...]]:
    """Rows of `sql.ATTEMPT` from their JSON array (`PostgresDb.listed_deliveries`); a duration
    that JSON wrote without a fraction is a float again."""
    return [
        (delivery_id, number, at, status, float(duration), error, excerpt)
        for delivery_id, number, at, status, duration, error, excerpt in orjson.loads(
            listed or "[]"
        )
    ]


def _notify_if_queued(origin: int) -> str:
    """The end of a `WITH queued AS (INSERT ... RETURNING 1)` statement: a notification if it
    queued anything; `origin` is the parameter number of the notifying store's id."""
    return f"SELECT pg_notify('{CHANNEL}', ${origin}) FROM (SELECT FROM queued LIMIT 1) AS q"


@functools.cache
def _replace(table: str, columns: str, key: str) -> str:
    names, keys = columns.split(", "), key.split(", ")
    update = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in keys)
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(names))})"
        f" ON CONFLICT ({key}) DO UPDATE SET {update}"
    )


class PostgresDb(Db):
    """PostgreSQL's spelling: placeholders numbered, lists as arrays, text ordered by bytes."""

    binary = ' COLLATE "C"'
    for_update = " FOR UPDATE"

    def __init__(self, conn: Conn, origin: str) -> None:
        self.conn = conn
        self._origin = origin  # the notifying store's id

    async def rows(self, query: str, args: Sequence[object] = ()) -> Sequence[Row]:
        return await self.conn.fetch(sql.numbered(query), *args)

    async def row(self, query: str, args: Sequence[object] = ()) -> Row | None:
        return await self.conn.fetchrow(sql.numbered(query), *args)

    async def value(self, query: str, args: Sequence[object] = ()) -> Any:
        return await self.conn.fetchval(sql.numbered(query), *args)

    async def count(self, query: str, args: Sequence[object] = ()) -> int:
        status = await self.conn.execute(sql.numbered(query), *args)
        changed = status.rpartition(" ")[2]  # "UPDATE 2", "INSERT 0 1"; "CREATE TABLE"
        return int(changed) if changed.isdigit() else 0

    async def many(self, query: str, args: Iterable[Sequence[object]]) -> None:
        await self.conn.executemany(sql.numbered(query), args)

    @staticmethod
    def any_of_text(column: str, count: int) -> str:
        return f"{column} = ANY(?::text[])"

    @staticmethod
    def any_of_args(values: Sequence[str]) -> Sequence[object]:
        return [list(values)]

    async def attempts_of(self, delivery_ids: Sequence[str]) -> Sequence[Row]:
        # Without statistics `delivery_id = ANY(a page of ids)` is estimated at a quarter of the
        # table, and scanned; a lateral subquery per id (ordered: it stays one) is a lookup each.
        return await self.rows(
            "SELECT a.* FROM unnest(?::text[]) AS k (id) CROSS JOIN LATERAL"
            f" (SELECT {sql.ATTEMPT} FROM attempts WHERE delivery_id = k.id ORDER BY number)"
            " AS a",
            [list(delivery_ids)],
        )

    async def listed_deliveries(
        self, query: str, args: Sequence[object]
    ) -> Sequence[tuple[Row, Sequence[Row]]]:
        # One statement, one round trip: each delivery's attempts in order (an index range of
        # the primary key each, as `attempts_of` reads them) as a JSON array on its row. A
        # projection of the subquery keeps its rows in the subquery's order.
        found = await self.rows(
            f"SELECT p.*, (SELECT json_agg(json_build_array({sql.ATTEMPT}))"
            f" FROM (SELECT {sql.ATTEMPT} FROM attempts WHERE delivery_id = p.id ORDER BY number)"
            f" AS a) FROM ({query}) AS p",
            args,
        )
        return [(row[:-1], _attempts(row[-1])) for row in found]

    def json_text(self, column: str, key: str) -> str:
        return f"({column} ->> '{key}')"

    async def apply_migration(self, version: int, script: str) -> None:
        await self.conn.execute(script)
        await self.conn.execute(
            "INSERT INTO schema_migrations VALUES ($1, $2)", version, sql.timestamp()
        )

    async def lock(self, lock_class: int, key: str) -> None:
        # Its own statement, so that the statements after it see what the previous holder
        # committed.
        await self.conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", lock_class, key)

    async def notify(self) -> None:
        await self.conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self._origin)

    def replace(self, table: str, columns: str, key: str) -> str:
        return _replace(table, columns, key)

    async def insert_event(self, event: Event, now: float, since: float) -> int | None:
        # The check and the insert in one statement ($3 is the tenant, $7 the dedupe key).
        stored = await self.conn.fetchval(
            f"INSERT INTO events ({rows.EVENT}, received_at, received_epoch)"
            " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE $7::text IS NULL OR NOT EXISTS"
            " (SELECT 1 FROM events WHERE tenant = $3 AND dedupe_key = $7"
            " AND received_epoch > $10) RETURNING seq",
            *rows.event_values(event),
            sql.timestamp(),
            now,
            since,
        )
        return None if stored is None else int(stored)

    async def insert_subscription(self, args: Sequence[object]) -> None:
        # seq is an identity column: PostgreSQL numbers it.
        await self.conn.execute(
            f"INSERT INTO subscriptions ({rows.SUBSCRIPTION}) VALUES ($1, $2, $3, $4, $5, $6,"
            " $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            *args,
        )

    async def queue(
        self, event_id: str, tenant: str, subscription_ids: Sequence[str], now: float
    ) -> list[str]:
        ids = [f"dlv_{uuid.uuid4().hex}" for _ in subscription_ids]
        if ids:
            await self.conn.execute(
                "WITH queued AS (INSERT INTO deliveries (id, event_id, subscription_id, tenant,"
                " status, attempts, next_attempt_at, created_at, updated_at)"
                " SELECT d.id, $2, d.subscription_id, $3, 'pending', 0, $4, $4, $4"
                " FROM unnest($1::text[], $5::text[]) AS d (id, subscription_id) RETURNING 1)"
                f" {_notify_if_queued(6)}",
                ids,
                event_id,
                tenant,
                now,
                list(subscription_ids),
                self._origin,
            )
        return ids

    async def queue_matching(
        self, event: Event, now: float, order: tuple[str, int] | None = None
    ) -> bool:
        # Subscription.matches, in SQL: one statement queues all those without a filter, and
        # says whether there are others, as of the same snapshot (no round trip more for them).
        key, seq = order or (None, None)
        filtered = await self.conn.fetchval(
            "WITH queued AS (INSERT INTO deliveries (id, event_id, subscription_id,"
            " tenant, status, attempts, next_attempt_at, created_at, updated_at, order_key,"
            " order_seq)"
            " SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), $1, id,"
            " tenant, 'pending', 0, $4, $4, $4, CASE WHEN order_by IS NOT NULL THEN $6::text END,"
            " CASE WHEN order_by IS NOT NULL THEN $7::bigint END FROM subscriptions"
            " WHERE tenant = $2 AND enabled AND filter IS NULL"
            " AND (event_types ? '*' OR event_types ? $3)"
            f" RETURNING 1), woken AS ({_notify_if_queued(5)})"
            # Counting `woken` runs it (a WITH query nobody reads is not run).
            " SELECT EXISTS (SELECT 1 FROM subscriptions WHERE tenant = $2 AND enabled"
            " AND filter IS NOT NULL) FROM (SELECT count(*) FROM woken) AS w",
            event.id,
            event.tenant,
            event.type,
            now,
            self._origin,
            key,
            seq,
        )
        return bool(filtered)

    async def claim(self, claim: Claim) -> Sequence[Row]:
        # Each tenant's oldest due deliveries up to its room (one index range each) and the
        # leases that ended (few), then turns: every tenant's first, every tenant's second, ...
        # SKIP LOCKED: replicas claiming at the same moment take different rows, never wait;
        # rows locked here but not taken are free again when the statement ends. Subscriptions
        # held back (throttled: `gateway.store.throttle`) are skipped.
        return await self.conn.fetch(
            "WITH held AS (SELECT id FROM subscriptions WHERE held_until > $1),"
            " rooms AS (SELECT t.tenant, LEAST($5, $6 - COALESCE(b.n, 0)) AS room"
            " FROM (SELECT DISTINCT tenant FROM subscriptions) AS t"
            " LEFT JOIN unnest($7::text[], $8::int[]) AS b (tenant, n) USING (tenant)),"
            " pending AS (SELECT r.tenant, c.id, c.next_attempt_at FROM rooms AS r"
            " CROSS JOIN LATERAL (SELECT id, next_attempt_at FROM deliveries"
            " WHERE tenant = r.tenant AND status = 'pending' AND next_attempt_at <= $1"
            " AND subscription_id <> ALL($4::text[])"
            f" AND subscription_id NOT IN (SELECT id FROM held) AND {HEAD}"
            " ORDER BY next_attempt_at LIMIT GREATEST(r.room, 0) FOR UPDATE SKIP LOCKED) AS c),"
            " expired AS (SELECT tenant, id, next_attempt_at FROM deliveries"
            " WHERE status = 'delivering' AND lease_until < $1"
            " AND subscription_id <> ALL($4::text[])"
            f" AND subscription_id NOT IN (SELECT id FROM held) AND {HEAD}"
            " FOR UPDATE SKIP LOCKED),"
            " picked AS (SELECT u.id, u.next_attempt_at, r.room, row_number() OVER"
            " (PARTITION BY u.tenant ORDER BY u.next_attempt_at) AS turn"
            " FROM (SELECT * FROM pending UNION ALL SELECT * FROM expired) AS u"
            " JOIN rooms AS r USING (tenant)),"
            " due AS (SELECT id FROM picked WHERE turn <= room"
            " ORDER BY turn, next_attempt_at LIMIT $5)"
            " UPDATE deliveries d SET status = 'delivering', lease_owner = $2,"
            " lease_until = $3, updated_at = $1"
            " FROM due, events e, subscriptions s"
            " WHERE d.id = due.id AND e.id = d.event_id AND s.id = d.subscription_id"
            f" RETURNING {rows.DELIVERY_JOINED}",
            claim.now,
            claim.owner,
            claim.now + claim.lease,
            list(claim.exclude),
            claim.limit,
            claim.most,
            list(claim.busy),
            list(claim.busy.values()),
        )
