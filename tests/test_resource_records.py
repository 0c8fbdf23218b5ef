"""Resource records are created once, by the backend, after its upstream accepted the resource.

The core only checks ownership before a call (another tenant's id is 404 and reaches no upstream);
a create the upstream refused leaves no row; two tenants racing for one id end with one owner.
"""

from __future__ import annotations

import asyncio
import uuid

from gateway.state import STORE
from tests.conftest import CALLER_KEY_A, CALLER_KEY_B, Gateway, MakeGateway


def _puts_to(gateway: Gateway, product_id: str) -> int:
    return sum(
        1
        for r in gateway.upstream.requests
        if r["method"] == "PUT" and r["path"] == f"/products/{product_id}"
    )


async def test_a_create_the_upstream_refused_writes_no_row(gateway: Gateway) -> None:
    """Acme refuses the create (409): the caller gets the 409 and the store has no row for the
    id, so another tenant may create it afterwards."""
    product_id = str(uuid.uuid4())
    refused = await gateway.client.put(
        f"/v1/products/{product_id}",
        json={"name": "reject-me", "type": "SHIRT"},
        headers=gateway.auth(CALLER_KEY_B),
    )
    assert refused.status == 409, await refused.text()
    assert await gateway.client.app[STORE].get_resource("product", product_id) is None
    created = await gateway.client.put(
        f"/v1/products/{product_id}", json={"name": "A's", "type": "SHIRT"}, headers=gateway.auth()
    )
    assert created.status == 201


async def test_racing_tenants_in_one_process_end_with_one_owner(gateway: Gateway) -> None:
    """A and B create the same new id at once: creates of one id take turns, so one gets 201, the
    other 404 before anything of its reaches the upstream (nothing overwritten), and only the
    winner reads it."""
    product_id = str(uuid.uuid4())
    gateway.upstream.hang_seconds = 0.2  # both requests are in the gateway at once

    async def create(key: str) -> int:
        answer = await gateway.client.put(
            f"/v1/products/{product_id}",
            json={"name": key[-4:], "type": "SHIRT"},
            headers=gateway.auth(key),
        )
        return answer.status

    statuses = await asyncio.gather(create(CALLER_KEY_A), create(CALLER_KEY_B))
    gateway.upstream.hang_seconds = 0
    assert sorted(statuses) == [201, 404]
    assert _puts_to(gateway, product_id) == 1, "the loser's create never reached the upstream"
    record = await gateway.client.app[STORE].get_resource("product", product_id)
    assert record is not None
    winner, loser = (
        (CALLER_KEY_A, CALLER_KEY_B) if statuses[0] == 201 else (CALLER_KEY_B, CALLER_KEY_A)
    )
    assert record.tenant == ("tenant-a" if winner == CALLER_KEY_A else "tenant-b")
    url = f"/v1/products/{product_id}"
    assert (await gateway.client.get(url, headers=gateway.auth(winner))).status == 200
    assert (await gateway.client.get(url, headers=gateway.auth(loser))).status == 404


async def test_racing_tenants_on_two_processes_end_with_one_owner(
    make_gateway: MakeGateway,
) -> None:
    """Two gateways on one store (as replicas are) take A's and B's creates of one id at once:
    both pass the check and reach their upstream (the race the turns of one process cannot
    close), and still exactly one tenant owns the id; the other is answered 404."""
    first: Gateway = await make_gateway()
    second: Gateway = await make_gateway()  # the same SQLite file, its own Owners and upstream
    product_id = str(uuid.uuid4())
    first.upstream.hang_seconds = second.upstream.hang_seconds = 0.2
    url = f"/v1/products/{product_id}"
    body = {"name": "mine", "type": "SHIRT"}
    answers = await asyncio.gather(
        first.client.put(url, json=body, headers=first.auth(CALLER_KEY_A)),
        second.client.put(url, json=body, headers=second.auth(CALLER_KEY_B)),
    )
    first.upstream.hang_seconds = second.upstream.hang_seconds = 0
    assert sorted(a.status for a in answers) == [201, 404]
    assert _puts_to(first, product_id) == _puts_to(second, product_id) == 1
    record = await first.client.app[STORE].get_resource("product", product_id)
    assert record is not None
    winner = CALLER_KEY_A if answers[0].status == 201 else CALLER_KEY_B
    assert record.tenant == ("tenant-a" if winner == CALLER_KEY_A else "tenant-b")
    for gateway in (first, second):
        for key in (CALLER_KEY_A, CALLER_KEY_B):
            read = await gateway.client.get(url, headers=gateway.auth(key))
            assert read.status == (200 if key == winner else 404)
