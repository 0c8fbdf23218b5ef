"""Resource ownership, remembered in the process."""

from __future__ import annotations

from gateway.store import ResourceRecord, Store


class Owners:
    """Who owns which resource, remembered: a resource's owner, backend and parent never change
    once its create succeeded, so the hot path asks the store once per resource and process.

    A claim with nothing recorded on it may be a create still in flight, which is released if the
    backend refuses it: it is not remembered from the store, only once its create succeeded here.
    """

    def __init__(self, store: Store, size: int = 100_000) -> None:
        self._store = store
        self._size = size
        self._known: dict[tuple[str, str], ResourceRecord] = {}

    async def get(self, kind: str, resource_id: str) -> ResourceRecord | None:
        key = (kind, resource_id)
        found = self._known.get(key)
        if found is None:
            found = await self._store.get_resource(kind, resource_id)
            if found is not None and found.attributes:
                self.remember(found)
        return found

    def remember(self, record: ResourceRecord) -> None:
        if len(self._known) >= self._size:
            self._known.pop(next(iter(self._known)))  # the oldest: dicts keep insertion order
        self._known[(record.kind, record.id)] = record
