"""Resources created through the gateway, as the shared store logic keeps them: who owns each
(claimed once, released when a backend refused the create) and what its backend keeps about it,
and a parent's children, read as a lookup while they are few."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gateway.store import rows, steps
from gateway.store.children import creation_order
from gateway.store.operations import Operations
from gateway.store.records import ResourceRecord
from gateway.store.rows import to_json
from gateway.store.sql import Db, timestamp

# The most rows `list_resources` reads as a lookup (see `Operations._lookup`).
FEW_CHILDREN = 32


class Resources(Operations):
    """The resource operations of `Store`."""

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None:
        return await self._lookup(lambda db: steps.get_resource(db, kind, resource_id))

    async def claim_resource(
        self, kind: str, resource_id: str, *, tenant: str, backend: str, parent_id: str | None
    ) -> ResourceRecord:
        record, _ = await self.put_resource(
            kind, resource_id, tenant=tenant, backend=backend, parent_id=parent_id, attributes={}
        )
        return record

    async def put_resource(
        self,
        kind: str,
        resource_id: str,
        *,
        tenant: str,
        backend: str,
        parent_id: str | None,
        attributes: Mapping[str, Any],
    ) -> tuple[ResourceRecord, bool]:
        async def op(db: Db) -> tuple[ResourceRecord, bool]:
            now = timestamp()
            created = await db.count(
                "INSERT INTO resources (kind, id, tenant, backend, parent_id, attributes,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (kind, resource_id, tenant, backend, parent_id, to_json(attributes), now, now),
            )
            if not created:
                current = await db.row(
                    "SELECT tenant, attributes FROM resources WHERE kind = ? AND id = ?"
                    f"{db.for_update}",
                    (kind, resource_id),
                )
                if current is not None and current[0] == tenant and attributes:
                    merged = steps.merge_patch(orjson.loads(current[1]), dict(attributes))
                    await db.count(
                        "UPDATE resources SET attributes = ?, updated_at = ?"
                        " WHERE kind = ? AND id = ?",
                        (to_json(merged), now, kind, resource_id),
                    )
            record = await steps.get_resource(db, kind, resource_id)
            assert record is not None
            return record, created == 1

        return await self._write(op)

    async def release_resource(self, kind: str, resource_id: str, *, tenant: str) -> bool:
        deleted = await self._write(
            lambda db: db.count(
                "DELETE FROM resources WHERE kind = ? AND id = ? AND tenant = ?"
                " AND attributes = '{}'",
                (kind, resource_id, tenant),
            ),
            single=True,
        )
        return deleted == 1

    async def update_resource(
        self, kind: str, resource_id: str, attributes: Mapping[str, Any]
    ) -> ResourceRecord | None:
        async def op(db: Db) -> ResourceRecord | None:
            current = await db.value(
                f"SELECT attributes FROM resources WHERE kind = ? AND id = ?{db.for_update}",
                (kind, resource_id),
            )
            if current is None:
                return None
            merged = steps.merge_patch(orjson.loads(current), dict(attributes))
            await db.count(
                "UPDATE resources SET attributes = ?, updated_at = ? WHERE kind = ? AND id = ?",
                (to_json(merged), timestamp(), kind, resource_id),
            )
            return await steps.get_resource(db, kind, resource_id)

        return await self._write(op)

    def known_resources(
        self, tenant: str, kind: str, parent_ids: Sequence[str]
    ) -> list[ResourceRecord] | None:
        return None  # replicas write too: only the database knows

    async def list_resources(
        self, tenant: str, kind: str, parent_ids: Sequence[str]
    ) -> Sequence[ResourceRecord]:
        if not parent_ids:
            return []
        args = (*self.dialect.any_of_args(parent_ids), kind, tenant)
        # A parent's children are a few rows as a rule: read as a lookup (on SQLite, on the
        # loop's thread, sparing the reader thread's hop), bounded so that a parent with many
        # children never holds the loop; those are read again, in full, as any listing is.
        if len(parent_ids) <= FEW_CHILDREN:
            query = _children(self.dialect, len(parent_ids), FEW_CHILDREN + 1)
            found = await self._lookup_rows(query, args)
            if len(found) <= FEW_CHILDREN:
                # The index range stops at the limit, and the few are sorted here: SQLite's
                # sorter costs more than the whole lookup (26 k instructions of 47 k, with no
                # row). Python compares text by code point, as BINARY and "C" do UTF-8's bytes.
                return sorted([rows.resource(row) for row in found], key=creation_order)
        query = _children(self.dialect, len(parent_ids), None)
        return [rows.resource(row) for row in await self._read(lambda db: db.rows(query, args))]


@functools.lru_cache(maxsize=4 * FEW_CHILDREN)
def _children(dialect: type[Db], parents: int, limit: int | None) -> str:
    """`list_resources`' query, built once per shape (every proxied listing reads children):
    the same str every time, whose hash sqlite3's statement cache and `sql.numbered` keep."""
    among = dialect.any_of_text("parent_id", parents)
    query = f"SELECT {rows.RESOURCE} FROM resources WHERE {among} AND kind = ? AND tenant = ?"
    if limit is None:
        return f"{query} ORDER BY created_at{dialect.binary}, id{dialect.binary}"
    return f"{query} LIMIT {limit}"
