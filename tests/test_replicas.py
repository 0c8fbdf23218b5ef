"""Several gateway processes on one PostgreSQL database, with real processes and a real server.

Each replica is `tests.gateway_process` (the real app with the Acme test backend) on its own port;
the database is a fresh one on the session's PostgreSQL server, or a server of the test's own when
the test stops it. Subscribers are one in-process receiver counting what each of them got.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, unused_port

from gateway.config_converter import ConfigError
from gateway.config_loading import load_settings
from gateway.tenants import digest_key
from tests.conftest import ACME_KEY_A, CALLBACK_SECRET_A, CALLER_KEY_A, REPORTS, eventually
from tests.pg import running_server

ROOT = Path(__file__).resolve().parent.parent
SUBSCRIBERS = ("alpha", "beta", "gamma")
AUTH = {"Authorization": f"Bearer {CALLER_KEY_A}"}
CALLBACK_AUTH = {"Authorization": CALLBACK_SECRET_A}
DB_URL_ENV = "TEST_GATEWAY_DB_URL"


ACME = """
[tenants.backends.acme]
base_url = "http://127.0.0.1:9"
api_key = "env:TEST_ACME_KEY_A"
callback_secret = "env:TEST_CALLBACK_SECRET_A"
"""


def write_config(path: Path, *, lease: float, poll_interval: float, acme: bool = True) -> Path:
    """One tenant, on the Acme backend (callbacks only) unless `acme` is False; the database URL
    is a secret reference."""
    path.write_text(
        f"""
[store]
url = "env:{DB_URL_ENV}"
pool_size = 4

[log]
level = "warning"

[events]
lease = {lease}
poll_interval = {poll_interval}
jitter = 0.0
per_subscription = 4

[[tenants]]
id = "tenant-a"
keys = ["{digest_key(CALLER_KEY_A)}"]
"""
        + (ACME if acme else "")
    )
    return path


def environment(db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        DB_URL_ENV: db_url,
        "TEST_ACME_KEY_A": ACME_KEY_A,
        "TEST_CALLBACK_SECRET_A": CALLBACK_SECRET_A,
    }


async def wait_until_serving(base: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if process.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise AssertionError(f"the gateway at {base} did not start")


@contextlib.asynccontextmanager
async def replica(
    config: Path, db_url: str
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A gateway process on its own port; killed (if still running) when the block ends."""
    port = unused_port()
    command = ["-m", "tests.gateway_process", str(config), str(port)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command, cwd=ROOT, env=environment(db_url)
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_serving(base, process)
        yield base, process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


class Receiver:
    """The subscribers: how often each got each event (webhook-id), and which events each got
    per callback path (more than one would be a callback stored twice)."""

    def __init__(self) -> None:
        self.sends: dict[str, collections.Counter[str]] = {
            name: collections.Counter() for name in SUBSCRIBERS
        }
        self.events: dict[str, dict[str, set[str]]] = {name: {} for name in SUBSCRIBERS}

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(0.01)  # a subscriber doing some work: the queue builds up
        name, event_id = request.match_info["name"], request.headers["webhook-id"]
        self.sends[name][event_id] += 1
        self.events[name].setdefault(body["data"]["path"], set()).add(event_id)
        return web.Response(status=204)

    def total(self) -> int:
        return sum(sum(c.values()) for c in self.sends.values())

    def got_all(self, paths: set[str]) -> bool:
        return all(set(got) >= paths for got in self.events.values())

    def stored_once(self) -> bool:
        return all(len(ids) == 1 for got in self.events.values() for ids in got.values())

    def duplicate_sends(self) -> int:
        return sum(n - 1 for c in self.sends.values() for n in c.values() if n > 1)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[Receiver, TestServer]:
    subscribers = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", subscribers.hook)
    server: TestServer = await aiohttp_server(app)
    return subscribers, server


async def subscribe(base: str, server: TestServer) -> None:
    async with aiohttp.ClientSession(base) as http:
        for name in SUBSCRIBERS:
            body = {"url": str(server.make_url(f"/{name}")), "eventTypes": ["*"]}
            async with http.post("/v1/subscriptions", json=body, headers=AUTH) as response:
                assert response.status == 201, await response.text()


async def succeeded_attempts(base: str) -> float:
    """This process's successful delivery attempts, from its /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as response:
        text = await response.text()
    found = re.search(r'^gateway_webhook_attempts_total\{outcome="succeeded"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.timeout(120)
async def test_two_replicas_deliver_a_burst_once_each(
    tmp_path: Path, pg_url: str, receiver: tuple[Receiver, TestServer]
) -> None:
    """Two replicas on one database: every event reaches every subscriber exactly once (no
    duplicate send, and a callback repeated on the other replica is not stored twice), and the
    replica that received no new callback still delivers its share, woken by NOTIFY alone (its
    poll interval is longer than the test)."""
    subscribers, server = receiver
    config = write_config(tmp_path / "gateway.toml", lease=60.0, poll_interval=60.0)
    events = 150
    async with replica(config, pg_url) as (a, _), replica(config, pg_url) as (b, _):
        await subscribe(a, server)
        gate = asyncio.Semaphore(16)

        async def callback(n: int) -> tuple[int, int]:
            async with gate, aiohttp.ClientSession() as http:
                url = f"/callbacks/acme/tenant-a/burst/{n}"
                async with http.post(a + url, headers=CALLBACK_AUTH) as first:
                    pass
                # The upstream sends it again, to the other replica: a duplicate there.
                async with http.post(b + url, headers=CALLBACK_AUTH) as again:
                    return first.status, again.status

        statuses = await asyncio.gather(*(callback(n) for n in range(events)))
        assert set(statuses) == {(204, 204)}
        paths = {f"burst/{n}" for n in range(events)}
        await eventually(lambda: subscribers.got_all(paths), within=60)
        await asyncio.sleep(0.5)  # a duplicate, were there one, would come now
        by_a, by_b = await succeeded_attempts(a), await succeeded_attempts(b)
    assert subscribers.duplicate_sends() == 0
    assert subscribers.stored_once()
    assert by_a + by_b == events * len(SUBSCRIBERS)
    assert by_b > 0, "the second replica was never woken by the first one's events"
    REPORTS.append(
        f"replicas: {events} events x {len(SUBSCRIBERS)} subscribers, "
        f"{by_a:.0f} sent by one replica and {by_b:.0f} by the other, no duplicate"
    )


@pytest.mark.timeout(120)
async def test_a_replica_killed_mid_burst_loses_nothing(
    tmp_path: Path, pg_url: str, receiver: tuple[Receiver, TestServer]
) -> None:
    """SIGKILL one of two replicas while callbacks still arrive and deliveries are under way:
    callbacks it can no longer take go to the survivor (as an upstream retries), and every
    acknowledged event reaches every subscriber, the dead replica's leases included."""
    subscribers, server = receiver
    config = write_config(tmp_path / "gateway.toml", lease=2.0, poll_interval=0.2)
    events = 200
    acknowledged: set[str] = set()
    async with replica(config, pg_url) as (a, victim), replica(config, pg_url) as (b, _):
        await subscribe(a, server)
        gate = asyncio.Semaphore(8)
        killed = asyncio.Event()
        at_kill: list[int] = []

        async def callback(n: int) -> None:
            path = f"kill/{n}"
            async with gate, aiohttp.ClientSession() as http:
                for base in (a, b) if n % 2 else (b,):
                    with contextlib.suppress(aiohttp.ClientError):
                        url = f"{base}/callbacks/acme/tenant-a/{path}"
                        async with http.post(url, headers=CALLBACK_AUTH) as response:
                            assert response.status == 204, await response.text()
                            acknowledged.add(path)
                            break
            if len(acknowledged) >= events // 2 and not killed.is_set():
                killed.set()
                victim.send_signal(signal.SIGKILL)
                at_kill.append(subscribers.total())

        await asyncio.gather(*(callback(n) for n in range(events)))
        await victim.wait()
        [delivered_at_kill] = at_kill
        assert len(acknowledged) == events  # every callback taken, by one replica or the other
        await eventually(lambda: subscribers.got_all(acknowledged), within=60)
    assert delivered_at_kill < events * len(SUBSCRIBERS), "the kill came too late to prove anything"
    assert subscribers.stored_once()
    REPORTS.append(
        f"replica SIGKILL: {events} events x {len(SUBSCRIBERS)} subscribers; killed after "
        f"{delivered_at_kill} deliveries; all delivered; {subscribers.duplicate_sends()} resent"
    )


@pytest.mark.timeout(120)
async def test_postgres_stopped_and_started_under_load(
    tmp_path: Path, receiver: tuple[Receiver, TestServer]
) -> None:
    """PostgreSQL stops while callbacks arrive: they get 503 with Retry-After (never a 2xx
    without a commit, never a 500), /readyz says the store is down; once it is started again
    the gateway recovers by itself and every acknowledged callback reaches every subscriber."""
    subscribers, server = receiver
    config = write_config(tmp_path / "gateway.toml", lease=10.0, poll_interval=0.5)
    events = 150
    statuses: collections.Counter[int] = collections.Counter()
    retry_after: set[str | None] = set()
    problems: set[str] = set()
    acknowledged: set[str] = set()
    with running_server() as postgres:
        db_url = await postgres.create_database()
        async with replica(config, db_url) as (gateway, _), aiohttp.ClientSession(gateway) as http:
            await subscribe(gateway, server)

            async def upstream(n: int) -> None:
                """Sends one callback until it is taken, as an upstream does."""
                await asyncio.sleep(n * 0.02)
                for _ in range(400):
                    async with http.post(
                        f"/callbacks/acme/tenant-a/down/{n}", headers=CALLBACK_AUTH
                    ) as response:
                        statuses[response.status] += 1
                        if response.status == 204:
                            acknowledged.add(f"down/{n}")
                            return
                        if response.status == 503:
                            retry_after.add(response.headers.get("Retry-After"))
                            problems.add((await response.json())["type"])
                    await asyncio.sleep(0.05)  # sooner than Retry-After: a test has no time

            async def store_check() -> tuple[int, dict[str, Any]]:
                async with http.get("/readyz") as response:
                    return response.status, (await response.json())["checks"]["store"]

            load = asyncio.gather(*(upstream(n) for n in range(events)))
            await eventually(lambda: len(acknowledged) >= 30, within=30)
            assert (await store_check())[1] == {"ok": True}
            await asyncio.to_thread(postgres.stop)
            await eventually(lambda: statuses[503] >= 10, within=30)
            status, check = await store_check()
            assert status == 503
            assert check["ok"] is False
            assert "unreachable" in check["detail"]
            await asyncio.to_thread(postgres.start)
            await load
            assert (await store_check())[1] == {"ok": True}
            await eventually(lambda: subscribers.got_all(acknowledged), within=60)
    assert set(statuses) == {204, 503}, statuses
    assert retry_after == {"5"}
    assert problems == {"urn:gateway:problem:store-unavailable"}
    assert len(acknowledged) == events
    REPORTS.append(
        f"PostgreSQL down under load: {statuses[503]} answers 503 while it was down, "
        f"{events} callbacks acknowledged and all delivered"
    )


def pids_with_parent(parent: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid ...; comm may hold spaces: split after its closing paren.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                found.add(int(stat.parent.name))
    return found


def running(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


@pytest.mark.timeout(120)
async def test_serve_workers_runs_processes_on_one_port(tmp_path: Path, pg_url: str) -> None:
    """`gateway serve --workers 2` on PostgreSQL: two processes answer on one port, one that
    dies is replaced, and SIGTERM stops them all cleanly."""
    # The installed backends only (the Acme test backend is not one).
    config = write_config(tmp_path / "gateway.toml", lease=10.0, poll_interval=1.0, acme=False)
    port = unused_port()
    env = environment(pg_url)
    env.pop("GATEWAY_CONFIG", None)
    command = ["-m", "gateway.cli", "serve", "--config", str(config), "--workers", "2"]
    parent = await asyncio.create_subprocess_exec(
        sys.executable, *command, "--port", str(port), cwd=ROOT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_serving(base, parent)
        await eventually(lambda: len(pids_with_parent(parent.pid)) == 2, within=20)
        first = pids_with_parent(parent.pid)
        os.kill(min(first), signal.SIGKILL)
        await eventually(lambda: len(pids_with_parent(parent.pid) - first) == 1, within=20)
        async with aiohttp.ClientSession() as http:
            for _ in range(20):  # fresh connections, spread over both processes by the kernel
                async with http.get(f"{base}/readyz", headers={"Connection": "close"}) as r:
                    assert r.status == 200, await r.text()
        workers = pids_with_parent(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(parent.wait(), 40) == 0
        assert not running(workers)
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()


def test_a_password_in_the_store_url_is_refused_without_echoing_it() -> None:
    """The configuration names the mistake (store.url) but never repeats the password."""
    with pytest.raises(ConfigError) as error:
        load_settings({"store": {"url": "postgresql://gw:s3cret-pw@db:5432/gateway"}})
    assert any(p.startswith("store.url:") for p in error.value.problems)
    assert "s3cret-pw" not in str(error.value)


def test_store_urls_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL URLs without a password, secret references to whole URLs, and a separate
    password secret are accepted; other schemes are not."""
    settings = load_settings(
        {"store": {"url": "postgresql://gw@db/gateway", "password": "env:TEST_DB_PASSWORD"}}
    )
    assert settings.store.scheme() == "postgresql"
    monkeypatch.setenv("TEST_DB", "postgresql://gw:pw@db/gateway")
    assert load_settings({"store": {"url": "env:TEST_DB"}}).store.scheme() == "postgresql"
    with pytest.raises(ConfigError, match=r"store\.url"):
        load_settings({"store": {"url": "mysql://db/gateway"}})
