"""How the SQLite store reads resources: a lookup on the loop's thread and a reader thread's hop
only when busy, a parent's few children listed on the loop and remembered until a write under
it, and remembered children kept bounded."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.store.children import Children
from gateway.store.records import ResourceRecord
from gateway.store.resources import FEW_CHILDREN
from gateway.store.sqlite import SQLiteStore
from gateway.store.sqlite_dialect import SQLiteDb


def _reader_hops(store: SQLiteStore) -> list[str]:
    """A list that gets "reader" for every read `store` sends to a reader thread from now on."""
    hops: list[str] = []
    reads = store._read

    async def counted(op: Any) -> Any:
        hops.append("reader")
        return await reads(op)

    store._read = counted  # type: ignore[method-assign]
    return hops


async def test_sqlite_looks_a_resource_up_on_the_loops_thread_and_hops_only_when_busy(
    tmp_path: Path,
) -> None:
    """SQLite answers a lookup by key (the resource read of every proxied call) on the event
    loop's thread, sparing the reader thread's hop; when SQLite cannot answer at once there (busy),
    the same read goes to a reader thread instead of waiting on the loop."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.open()
    try:
        await store.put_resource(
            "product", "p1", tenant="t1", backend="acme", parent_id=None, attributes={}
        )
        threads = _reader_hops(store)
        found = await store.get_resource("product", "p1")
        assert found is not None
        assert found.tenant == "t1"
        assert threads == []

        async def busy_on_the_loop(db: Any) -> str:
            if threading.current_thread() is threading.main_thread():
                raise sqlite3.OperationalError("database is locked")
            return threading.current_thread().name

        answered_in = await store._lookup(busy_on_the_loop)
        assert answered_in.startswith("sqlite-reader")
        assert threads == ["reader"]
    finally:
        await store.close()


class _BusyCursor(sqlite3.Cursor):
    """A cursor SQLite cannot answer on at once, as while it recovers a WAL file."""

    def execute(self, *_: Any) -> sqlite3.Cursor:
        raise sqlite3.OperationalError("database is locked")


class _BusyConnection(sqlite3.Connection):
    def cursor(self, *_: Any) -> sqlite3.Cursor:
        return super().cursor(_BusyCursor)

    def execute(self, *_: Any) -> sqlite3.Cursor:
        raise sqlite3.OperationalError("database is locked")


async def test_sqlite_reads_a_parents_children_in_a_reader_when_busy_on_the_loop(
    tmp_path: Path,
) -> None:
    """The children lookup (a statement on the loop's thread, without an operation) takes the
    reader thread's hop when SQLite cannot answer at once there, and lists the same children."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.open()
    prober = store._prober
    assert prober is not None
    try:
        for n in range(2):
            await store.claim_resource(
                "configuration", f"c{n}", tenant="t1", backend="acme", parent_id="p1"
            )
        threads = _reader_hops(store)
        store._prober = SQLiteDb(sqlite3.connect(tmp_path / "gateway.db", factory=_BusyConnection))
        listed = await store.list_resources("t1", "configuration", ["p1"])
        assert [r.id for r in listed] == ["c0", "c1"]
        assert threads == ["reader"]
    finally:
        await store.close()
        prober.conn.close()


async def test_sqlite_lists_a_parents_few_children_on_the_loops_thread(tmp_path: Path) -> None:
    """A parent's children (the configurations every proxied listing reads) are a lookup on
    SQLite while there are at most `FEW_CHILDREN`: no reader thread's hop. Past that bound the
    loop reads no more than the bound, and the whole list comes from a reader thread, still
    oldest first."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.open()
    try:
        threads = _reader_hops(store)

        async def children(count: int, parent: str) -> None:
            # Ids against the order of creation, so the order can only come from created_at.
            for n in reversed(range(count)):
                await store.claim_resource(
                    "configuration", f"{parent}-{n:03}", tenant="t1", backend="acme",
                    parent_id=parent,
                )  # fmt: skip
                await asyncio.sleep(0.002)  # created_at has milliseconds

        await children(FEW_CHILDREN, "few")
        listed = await store.list_resources("t1", "configuration", ["few"])
        assert [r.id for r in listed] == [f"few-{n:03}" for n in reversed(range(FEW_CHILDREN))]
        assert threads == []

        await children(FEW_CHILDREN + 1, "many")
        listed = await store.list_resources("t1", "configuration", ["many"])
        assert [r.id for r in listed] == [f"many-{n:03}" for n in reversed(range(FEW_CHILDREN + 1))]
        assert threads == ["reader"]
    finally:
        await store.close()


def _lookups(store: SQLiteStore) -> list[Sequence[object]]:
    """A list that gets the arguments of every children lookup `store` makes from now on."""
    made: list[Sequence[object]] = []
    lookup = store._lookup_rows

    async def counted(query: str, args: Sequence[object]) -> Sequence[Any]:
        made.append(args)
        return await lookup(query, args)

    store._lookup_rows = counted  # type: ignore[method-assign]
    return made


async def test_sqlite_remembers_a_parents_children_until_one_is_written(tmp_path: Path) -> None:
    """The SQLite store serves one process, which writes every resource through it: a parent's
    children are read from the database once, then again only after a write under that parent;
    each tenant's apart."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.open()
    try:
        await store.claim_resource(
            "configuration", "c1", tenant="t1", backend="acme", parent_id="p1"
        )
        lookups = _lookups(store)
        for _ in range(3):
            assert [r.id for r in await store.list_resources("t1", "configuration", ["p1"])] == [
                "c1"
            ]
        assert len(lookups) == 1
        assert await store.list_resources("t2", "configuration", ["p1"]) == []
        assert len(lookups) == 2
        await store.claim_resource(
            "configuration", "c2", tenant="t1", backend="acme", parent_id="p2"
        )
        await store.list_resources("t1", "configuration", ["p1"])
        assert len(lookups) == 2  # a write under another parent
        await store.claim_resource(
            "configuration", "c3", tenant="t1", backend="acme", parent_id="p1"
        )
        listed = await store.list_resources("t1", "configuration", ["p1", "p2"])
        assert [r.id for r in listed] == ["c1", "c2", "c3"]
        assert len(lookups) == 3
    finally:
        await store.close()


async def test_sqlite_forgets_a_listing_read_while_a_write_ended(tmp_path: Path) -> None:
    """A children lookup that read the database before a write under its parent ended, and
    returns after it, answers what it read, and is not remembered: the next listing has the
    written child."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.open()
    try:
        await store.claim_resource(
            "configuration", "c1", tenant="t1", backend="acme", parent_id="p1"
        )
        lookup = store._lookup_rows

        async def overtaken(query: str, args: Sequence[object]) -> Sequence[Any]:
            found = await lookup(query, args)
            await store.claim_resource(
                "configuration", "c2", tenant="t1", backend="acme", parent_id="p1"
            )
            return found

        store._lookup_rows = overtaken  # type: ignore[method-assign]
        listed = await store.list_resources("t1", "configuration", ["p1"])
        assert [r.id for r in listed] == ["c1"]
        store._lookup_rows = lookup  # type: ignore[method-assign]
        listed = await store.list_resources("t1", "configuration", ["p1"])
        assert [r.id for r in listed] == ["c1", "c2"]
    finally:
        await store.close()


def test_remembered_children_stay_bounded() -> None:
    """At most `parents` parents are remembered (the oldest goes first), and a parent with more
    than `most` children is not remembered at all: memory stays bounded at any size."""
    made = [
        ResourceRecord("image", f"i{n}", "t1", "acme", "many", {}, f"2026-01-01T00:00:0{n}Z", "")
        for n in range(3)
    ]
    children = Children(parents=2, most=2)
    for parent in ("a", "b", "c"):
        children.remember(children.generation, "t1", "image", [parent], [])
    assert children.get("t1", "image", ["a"]) is None
    assert children.get("t1", "image", ["b", "c"]) == []
    children.remember(children.generation, "t1", "image", ["many"], made)
    assert children.get("t1", "image", ["many"]) is None
    children.remember(children.generation, "t1", "image", ["many"], made[:2])
    assert children.get("t1", "image", ["many"]) == made[:2]
