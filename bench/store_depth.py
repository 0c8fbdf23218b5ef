"""`python -m bench.store_depth [SIZE ...]`: why an API read costs more at a larger history.

Each store (SQLite; PostgreSQL when its binaries are installed) is filled to each size
(`tests.store_fill`, default 10k and 1M events; PostgreSQL then analyzed, as `store-scale` does),
and the queries behind the reads of `bench.store_ops` are taken as the store sends them. For each,
at each size: the index it reads and that index's B-tree depth (PostgreSQL's `bt_metap`, SQLite's
`dbstat`), and the pages it touches: PostgreSQL's `EXPLAIN (ANALYZE, BUFFERS)` (buffers hit and
read, execution time, with a listing's settings), SQLite's page cache
misses of the `sqlite3` shell's `.stats` for the query on a fresh connection (every page it
reads, from the OS's cache or the disk).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.store_db import analyze_postgres
from bench.store_ops import OPERATIONS, Context
from gateway.store import sql
from gateway.store.opening import open_store
from gateway.store.postgres import IN_INDEX_ORDER
from gateway.store.protocol import Store
from tests.pg import PostgresServer, find_binaries
from tests.store_fill import fill
from tests.test_store_scale import record_reads

SIZES = (10_000, 1_000_000)
READS = [op for op in OPERATIONS if op.read and op.measure is not None]  # store-scale's reads


async def queries(store: Store, size: int) -> dict[str, list[tuple[str, list[object]]]]:
    """Each read row's queries (with their arguments) as the store sends them, one call each."""
    found: dict[str, list[tuple[str, list[object]]]] = {}
    patch = pytest.MonkeyPatch()
    try:
        seen = record_reads(store, patch)
        for op in READS:
            assert op.measure is not None
            await op.measure(Context(store, size, reads=1, churn=0))
            found[op.name] = [(q, a) for q, a, _ in seen if not q.startswith("SELECT 1")]
            seen.clear()
    finally:
        patch.undo()
    return found


async def postgres_figures(url: str, query: str, args: list[object]) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(IN_INDEX_ORDER)
            lines = [
                row[0]
                for row in await conn.fetch(
                    f"EXPLAIN (ANALYZE, BUFFERS) {sql.numbered(query)}", *args
                )
            ]
        indexes = sorted(set(re.findall(r" using (\w+)", "\n".join(lines))))
        depths = {}
        for index in indexes:
            depths[index] = 1 + await conn.fetchval("SELECT level FROM bt_metap($1)", index)
    finally:
        await conn.close()
    top = next(line for line in lines if "Buffers:" in line)
    return {
        "depth": depths,
        "hit": int((re.findall(r"hit=(\d+)", top) or ["0"])[0]),
        "read": int((re.findall(r"read=(\d+)", top) or ["0"])[0]),
        "ms": float(re.findall(r"Execution Time: ([\d.]+)", "\n".join(lines))[0]),
    }


def sqlite_figures(path: Path, query: str, args: list[object]) -> dict[str, Any]:
    parts = query.split("?")
    numbered = "".join(f"{p}?{n}" for n, p in enumerate(parts[:-1], 1)) + parts[-1]

    def literal(value: object) -> str:
        return str(value) if isinstance(value, int | float) else "'" + str(value) + "'"

    script = "".join(f".parameter set ?{n} {literal(v)}\n" for n, v in enumerate(args, 1))
    script += f".stats on\n{numbered};\n"
    out = subprocess.run(
        ["sqlite3", str(path)], input=script, capture_output=True, text=True, check=True
    ).stdout
    db = sqlite3.connect(path)
    try:
        plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {query}", args))
        # The indexes searched, and the tables whose rows they lead to (by rowid).
        trees = re.findall(r"USING (?:COVERING )?INDEX (\w+)", plan)
        trees += re.findall(r"SEARCH (\w+)", plan)
        depths = {}
        for tree in sorted(set(trees)):
            paths = db.execute("SELECT max(length(path)) FROM dbstat WHERE name = ?", (tree,))
            depths[tree] = (paths.fetchone()[0] or 1) // 4 + 1  # '/', '/000/', '/000/000/'...
    finally:
        db.close()
    return {"depth": depths, "pages": int(re.findall(r"Page cache misses:\s+(\d+)", out)[0])}


async def run(sizes: tuple[int, ...]) -> None:
    with tempfile.TemporaryDirectory(prefix="store-depth-") as workdir:
        server = None
        urls = {f"sqlite {s}": f"sqlite:///{workdir}/depth-{s}.db" for s in sizes}
        binaries = find_binaries()
        if binaries is not None:
            server = PostgresServer(binaries)
            await asyncio.to_thread(server.start, durable=True)
            for s in sizes:
                urls[f"postgresql {s}"] = await server.create_database()
        try:
            for name, url in urls.items():
                size = int(name.split()[1])
                store = open_store(url)
                await store.open()
                started = time.perf_counter()
                await fill(url, size)
                await analyze_postgres(url)
                print(f"{name}: filled in {time.perf_counter() - started:.0f} s", flush=True)
                if not url.startswith("sqlite:"):
                    conn = await asyncpg.connect(url)
                    await conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
                    await conn.close()
                for row, sent in (await queries(store, size)).items():
                    for query, args in sent:
                        if url.startswith("sqlite:"):
                            f = sqlite_figures(Path(url.partition("://")[2][1:]), query, args)
                        else:
                            f = await postgres_figures(url, query, args)
                        print(f"  {row}: {f}  <- {query[:90]}...", flush=True)
                await store.close()
        finally:
            if server is not None:
                await asyncio.to_thread(server.remove)


if __name__ == "__main__":
    asyncio.run(run(tuple(int(a) for a in sys.argv[1:]) or SIZES))
