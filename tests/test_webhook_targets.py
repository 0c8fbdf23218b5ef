"""`[events] allowed_targets` at every attempt: real subscribers on loopback addresses (127.0.0.2
is as local as 127.0.0.1 on Linux), names looked up by a resolver the test controls."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from gateway.state import STORE
from gateway.testing import GatewayLogs
from tests.conftest import Gateway, MakeGateway, eventually
from tests.subscribers import callback, make_events_gateway, only_event_id, wait_until_final


class Resolver(AbstractResolver):
    """DNS as the test says: each name's addresses, or a script of answers for successive
    lookups (the last one repeats); every lookup is counted."""

    def __init__(self, **names: list[str] | list[list[str]]) -> None:
        self.names = names
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        answer = self.names.get(host)
        if answer is None:
            raise OSError(socket.EAI_NONAME, f"{host} does not resolve")
        if answer and isinstance(answer[0], list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if answer == ["crash"]:
            raise RuntimeError("the resolver has a bug")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in answer
            if isinstance(address, str)
        ]

    async def close(self) -> None:
        pass


@attrs.define
class Subscriber:
    """A real endpoint on one loopback address, recording what reached it."""

    server: TestServer
    got: list[bytes] = attrs.field(factory=list)
    answer: tuple[int, dict[str, str]] = (204, {})

    def url(self, host: str | None = None) -> str:
        return f"http://{host or self.server.host}:{self.server.port}/hook"


Subscribers = Callable[[str], Awaitable[Subscriber]]


@pytest.fixture
def subscriber(aiohttp_server: Any) -> Subscribers:
    async def start(host: str) -> Subscriber:
        state = Subscriber(server=None)  # type: ignore[arg-type]

        async def hook(request: web.Request) -> web.Response:
            state.got.append(await request.read())
            status, headers = state.answer
            return web.Response(status=status, headers=headers)

        app = web.Application()
        app.router.add_post("/hook", hook)
        state.server = await aiohttp_server(app, host=host)
        return state

    return start


async def post_subscription(gateway: Gateway, url: str) -> tuple[int, Any]:
    response = await gateway.client.post(
        "/v1/subscriptions", json={"url": url, "eventTypes": ["*"]}, headers=gateway.auth()
    )
    return response.status, await response.json()


async def attempts(gateway: Gateway, event_id: str) -> list[dict[str, Any]]:
    """The event's one delivery's attempts, as the API lists them."""
    response = await gateway.client.get(f"/v1/events/{event_id}/deliveries", headers=gateway.auth())
    [delivery] = (await response.json())["items"]
    return list(delivery["attempts"])


async def test_a_narrowed_allow_list_stops_deliveries_after_a_restart(
    make_gateway: MakeGateway, subscriber: Subscribers
) -> None:
    """A subscription made while 127.0.0.0/8 was allowed gets nothing once the gateway restarts
    with 127.0.0.1/32 only: each attempt is recorded as refused, and the refusals disable the
    subscription like any failure, its reason naming the policy."""
    endpoint = await subscriber("127.0.0.2")
    before = await make_events_gateway(make_gateway, allowed_targets=["127.0.0.0/8"])
    status, created = await post_subscription(before, endpoint.url())
    assert status == 201
    await callback(before, "narrowed/1")
    await eventually(lambda: len(endpoint.got) == 1)
    await before.client.close()  # the restart: same database, narrower list

    after = await make_events_gateway(
        make_gateway,
        allowed_targets=["127.0.0.1/32"],
        retry_schedule=[0, 0.05, 0.05, 0.05, 0.05],
        disable_after=0.04,
    )
    await callback(after, "narrowed/2")
    store = after.client.app[STORE]

    async def disabled() -> bool:
        found = await store.get_subscription("tenant-a", created["id"])
        return found is not None and not found.enabled

    async with asyncio.timeout(5):
        while not await disabled():  # noqa: ASYNC110 - polling the store
            await asyncio.sleep(0.02)
    assert len(endpoint.got) == 1
    listed = await after.client.get("/v1/events?type=acme.done", headers=after.auth())
    newest = next(e for e in (await listed.json())["items"] if e["data"]["path"] == "narrowed/2")
    tried = await attempts(after, newest["id"])
    assert tried
    for attempt in tried:
        assert attempt["status"] is None
        assert attempt["error"] == (
            "refused by [events] allowed_targets: address 127.0.0.2 is not in"
            " [events] allowed_targets"
        )
    got = await after.client.get(f"/v1/subscriptions/{created['id']}", headers=after.auth())
    assert "allowed_targets" in (await got.json())["disabledReason"]


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("metadata.test", ["169.254.169.254"]),
        ("mapped.test", ["::ffff:169.254.169.254"]),
        ("aws6.test", ["fd00:ec2::254"]),
        ("alibaba.test", ["100.100.100.200"]),
        ("mixed.test", ["127.0.0.2", "fe80::1"]),  # one refused address refuses the name
    ],
)
async def test_an_allowed_name_resolving_to_a_refused_address_is_refused(
    make_gateway: MakeGateway, name: str, answer: list[str]
) -> None:
    """A name entry lets the name in, not whatever it resolves to: a link-local or cloud
    metadata address refuses it when the subscription is made (422 on /url)."""
    resolver = Resolver(**{name: answer})
    gateway = await make_events_gateway(make_gateway, allowed_targets=["*.test"], resolver=resolver)
    status, problem = await post_subscription(gateway, f"http://{name}:8080/hook")
    assert status == 422
    [error] = problem["errors"]
    assert error["location"] == "/url"
    assert f"host {name!r} resolves to" in error["message"]
    # A name that does not resolve yet is accepted: every attempt checks it again.
    assert (await post_subscription(gateway, "http://later.test/hook"))[0] == 201


async def test_a_name_resolving_elsewhere_at_send_time_is_refused_then_delivered_again(
    make_gateway: MakeGateway, subscriber: Subscribers
) -> None:
    """DNS answers 127.0.0.2 when the subscription is made, the metadata address at the first
    attempt (refused, nothing sent), 127.0.0.2 again at the retry (delivered there). One lookup
    per attempt: what was checked is what the connection used (no rebinding in between)."""
    endpoint = await subscriber("127.0.0.2")
    port = endpoint.server.port
    resolver = Resolver(**{"hooks.test": [["127.0.0.2"], ["169.254.169.254"], ["127.0.0.2"]]})
    gateway = await make_events_gateway(
        make_gateway,
        allowed_targets=["hooks.test"],
        retry_schedule=[0, 0.05],
        resolver=resolver,
    )
    status, _ = await post_subscription(gateway, f"http://hooks.test:{port}/hook")
    assert status == 201
    await callback(gateway, "rebind/1")
    await eventually(lambda: len(endpoint.got) == 1)
    event_id = await only_event_id(gateway)
    await wait_until_final(gateway, event_id)
    first, second = await attempts(gateway, event_id)
    assert first["status"] is None
    assert first["error"].startswith(
        "refused by [events] allowed_targets: host 'hooks.test' resolves to 169.254.169.254,"
        " a link-local address"
    )
    assert second["status"] == 204
    assert resolver.lookups == ["hooks.test"] * 3


async def test_metadata_addresses_are_refused_even_inside_an_allowed_range(
    make_gateway: MakeGateway,
) -> None:
    """0.0.0.0/0 and ::/0 do not open link-local, metadata, 'this host' or multicast addresses
    (nor IPv4 ones written as IPv6); a CIDR entry inside the refused range does."""
    gateway = await make_events_gateway(make_gateway, allowed_targets=["0.0.0.0/0", "::/0"])
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://192.0.0.192/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://0.0.0.0:8080/",
        "http://[::]:8080/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
    ]:
        status, problem = await post_subscription(gateway, url)
        assert status == 422, url
        assert "refused unless a CIDR entry inside" in problem["errors"][0]["message"], url
    assert (await post_subscription(gateway, "http://10.1.2.3/hook"))[0] == 201
    await gateway.client.close()

    explicit = await make_events_gateway(make_gateway, allowed_targets=["169.254.169.254/32"])
    assert (await post_subscription(explicit, "http://169.254.169.254/latest/"))[0] == 201
    assert (await post_subscription(explicit, "http://169.254.169.253/"))[0] == 422


async def test_redirects_are_not_followed(
    make_gateway: MakeGateway, subscriber: Subscribers
) -> None:
    """A subscriber answering 307 to the metadata address is an unsuccessful attempt, not a
    request to that address."""
    endpoint = await subscriber("127.0.0.2")
    endpoint.answer = (307, {"Location": "http://169.254.169.254/latest/meta-data/"})
    gateway = await make_events_gateway(make_gateway, retry_schedule=[0])
    assert (await post_subscription(gateway, endpoint.url()))[0] == 201
    await callback(gateway, "redirect/1")
    event_id = await only_event_id(gateway)
    await wait_until_final(gateway, event_id)
    [attempt] = await attempts(gateway, event_id)
    assert (attempt["status"], attempt["error"]) == (307, "HTTP 307")


async def test_an_unexpected_error_while_sending_is_a_recorded_attempt(
    make_gateway: MakeGateway, logs: GatewayLogs
) -> None:
    """Whatever raises during an attempt (here the resolver itself) ends as a recorded, logged
    attempt, and the delivery moves on to failed: nothing stays leased."""
    resolver = Resolver(**{"broken.test": [["127.0.0.2"], ["crash"]]})
    gateway = await make_events_gateway(
        make_gateway, allowed_targets=["broken.test"], retry_schedule=[0, 0.02], resolver=resolver
    )
    assert (await post_subscription(gateway, "http://broken.test:9/hook"))[0] == 201
    await callback(gateway, "crash/1")
    event_id = await only_event_id(gateway)
    await wait_until_final(gateway, event_id)
    tried = await attempts(gateway, event_id)
    assert [a["error"] for a in tried] == ["RuntimeError: the resolver has a bug"] * 2
    assert len(logs.events("webhook.attempt_error")) == 2
