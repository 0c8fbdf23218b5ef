"""A store that one process alone writes remembers a parent's few children.

Every proxied listing reads the children of its parent; see `gateway.store.children` for what
that read cost and why what is remembered is what the database holds. These are `SQLStore`'s
resource methods, remembering what they read and forgetting what they write; SQLite's store is
one (`gateway serve --workers` refuses it), PostgreSQL's (replicas) is not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.store.children import Children
from gateway.store.logic import SQLStore
from gateway.store.records import ResourceRecord
from gateway.store.resources import FEW_CHILDREN

REMEMBERED_PARENTS = 20_000  # parents whose few children are remembered


class RemembersChildren(SQLStore):
    def __init__(self) -> None:
        self._children = Children(parents=REMEMBERED_PARENTS, most=FEW_CHILDREN)

    def known_resources(
        self, tenant: str, kind: str, parent_ids: Sequence[str]
    ) -> list[ResourceRecord] | None:
        return self._children.get(tenant, kind, parent_ids)

    async def list_resources(
        self, tenant: str, kind: str, parent_ids: Sequence[str]
    ) -> Sequence[ResourceRecord]:
        known = self._children.get(tenant, kind, parent_ids)
        if known is not None:
            return known
        generation = self._children.generation
        found = await super().list_resources(tenant, kind, parent_ids)
        self._children.remember(generation, tenant, kind, parent_ids, found)
        return found

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
        try:
            put = await super().put_resource(
                kind,
                resource_id,
                tenant=tenant,
                backend=backend,
                parent_id=parent_id,
                attributes=attributes,
            )
        except BaseException:
            self._children.forget_all()  # committed or not: ask the database again
            raise
        record = put[0]  # as stored: another tenant's, or under its first parent
        self._children.forget(record.tenant, kind, record.parent_id)
        return put

    async def release_resource(self, kind: str, resource_id: str, *, tenant: str) -> bool:
        try:
            return await super().release_resource(kind, resource_id, tenant=tenant)
        finally:
            self._children.forget_all()  # a refused create: rare, and its parent is not known here

    async def update_resource(
        self, kind: str, resource_id: str, attributes: Mapping[str, Any]
    ) -> ResourceRecord | None:
        try:
            record = await super().update_resource(kind, resource_id, attributes)
        except BaseException:
            self._children.forget_all()
            raise
        if record is not None:  # else there was no such record: nothing changed
            self._children.forget(record.tenant, kind, record.parent_id)
        return record
