"""A parent's children, remembered by the one process that writes them.

Every proxied listing reads the children of its parent (a product's configurations, their
images): one SQLite statement of 21 k instructions inside `sqlite3` for no row at all, most of it
beginning and ending the read. A SQLite store serves one process (`gateway serve --workers`
refuses it), and every write of a resource goes through that store, which forgets what it
changes: what is remembered is what the database holds.

A read that began before a write and ends after it may have seen either side of it: it is not
remembered (`generation`), so the next read asks the database again.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.records import ResourceRecord

Key = tuple[str, str, str]  # tenant, kind, parent id


class Children:
    def __init__(self, *, parents: int, most: int) -> None:
        self._parents = parents  # parents remembered; the oldest goes first
        self._most = most  # children a parent may have and be remembered
        self._known: dict[Key, tuple[ResourceRecord, ...]] = {}
        self.generation = 0

    def get(self, tenant: str, kind: str, parent_ids: Sequence[str]) -> list[ResourceRecord] | None:
        """The children of every one of `parent_ids`, oldest first; None if one is not known."""
        if len(parent_ids) == 1:
            found = self._known.get((tenant, kind, parent_ids[0]))
            return None if found is None else list(found)
        records: list[ResourceRecord] = []
        for parent_id in parent_ids:
            found = self._known.get((tenant, kind, parent_id))
            if found is None:
                return None
            records += found
        return sorted(records, key=creation_order)

    def remember(
        self,
        generation: int,
        tenant: str,
        kind: str,
        parent_ids: Sequence[str],
        records: Sequence[ResourceRecord],
    ) -> None:
        """What a read that began at `generation` found, unless a write ended since."""
        if generation != self.generation:
            return
        by_parent: dict[str, list[ResourceRecord]] = {parent_id: [] for parent_id in parent_ids}
        for record in records:
            if record.parent_id is not None and record.parent_id in by_parent:
                by_parent[record.parent_id].append(record)
        known = self._known
        for parent_id, children in by_parent.items():
            if len(children) > self._most:
                continue
            if len(known) >= self._parents:
                known.pop(next(iter(known)))  # the oldest: dicts keep insertion order
            known[(tenant, kind, parent_id)] = tuple(children)

    def forget(self, tenant: str, kind: str, parent_id: str | None) -> None:
        """A write of a `kind` resource under `parent_id` ended (or failed)."""
        self.generation += 1
        if parent_id is not None:
            self._known.pop((tenant, kind, parent_id), None)

    def forget_all(self) -> None:
        self.generation += 1
        self._known.clear()


def creation_order(record: ResourceRecord) -> tuple[str, str]:
    return record.created_at, record.id
