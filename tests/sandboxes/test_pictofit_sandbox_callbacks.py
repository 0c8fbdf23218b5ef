"""The PICTOFiT sandbox simulator's callbacks: registered per customer and type, fired when a
product completes or is rejected or on demand, a failed delivery recorded, and background work
cancelled when the app closes."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway_pictofit.sandbox import STATE_FINISHED, PictofitSandboxState
from tests.sandboxes.pictofit_catalog import (
    CUSTOMER,
    image_bytes,
    put_configuration,
    put_product,
    upload,
    wait_for_state,
)
from tests.sandboxes.pictofit_client import AUTH, Client, make_client


async def wait_for_callbacks(state: PictofitSandboxState, count: int) -> None:
    for _ in range(200):
        if len(state.callbacks_sent) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("callback never sent")


async def start_receiver(
    aiohttp_server: AiohttpServer,
) -> tuple[str, list[tuple[str, str | None, bytes]]]:
    received: list[tuple[str, str | None, bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (request.match_info["object_id"], request.headers.get("Authorization"),
             await request.read())
        )  # fmt: skip
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/{object_id}", hook)
    server = await aiohttp_server(app)
    return str(server.make_url("/hooks/")), received


async def test_callback_delivered_when_product_completes(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer
) -> None:
    """PRODUCT_COMPLETED fires once every configuration is done, to url + product id, with auth."""
    client, state = await make_client(aiohttp_client)
    hook_url, received = await start_receiver(aiohttp_server)
    register = await client.put(
        f"/customers/{CUSTOMER}/callbacks/PRODUCT_COMPLETED",
        json={"url": hook_url, "authorizationHeaderValue": "Secret s3cr3t"},
        headers=AUTH,
    )
    assert register.status == 200
    assert (await register.json())["registered"] is True
    product_id = await put_product(client)
    good = await put_configuration(client, product_id)
    bad = await put_configuration(client, product_id)
    await upload(client, good, image_bytes("JPEG"), "image/jpeg")
    await client.post(f"/configurations/{good}/ready", headers=AUTH)
    await wait_for_state(state, good, {STATE_FINISHED})
    assert state.callbacks_sent == []  # the other configuration was never flagged ready
    await client.post(f"/configurations/{bad}/ready", headers=AUTH)
    await wait_for_callbacks(state, 1)
    assert received == [(product_id, "Secret s3cr3t", b"")]
    sent = state.callbacks_sent[0]
    assert sent.callback_type == "PRODUCT_COMPLETED"
    assert sent.url == hook_url + product_id
    assert sent.status == 204
    assert sent.error is None


async def test_rejected_product_fires_product_rejected_without_auth_header(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer
) -> None:
    """All configurations rejected fire PRODUCT_REJECTED; registered by numeric id, no auth."""
    client, state = await make_client(aiohttp_client)
    hook_url, received = await start_receiver(aiohttp_server)
    for type_id in (1, 2):
        response = await client.put(
            f"/customers/{CUSTOMER}/callbacks/{type_id}",
            json={"url": hook_url, "authorizationHeaderValue": ""},
            headers=AUTH,
        )
        assert response.status == 200
    product_id = await put_product(client)
    configuration_id = await put_configuration(client, product_id)
    await client.post(f"/configurations/{configuration_id}/ready", headers=AUTH)
    await wait_for_callbacks(state, 1)
    assert received == [(product_id, None, b"")]
    assert state.callbacks_sent[0].callback_type == "PRODUCT_REJECTED"
    assert state.callbacks_sent[0].authorization is None


async def test_callback_registration_rules(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """An empty url unregisters; another customer is 403; unknown types 404; bad urls 400."""
    client, state = sandbox
    path = f"/customers/{CUSTOMER}/callbacks/PRODUCT_COMPLETED"
    body = {"url": "http://127.0.0.1:9/hooks/", "authorizationHeaderValue": "x"}
    assert (await client.put(path, json=body, headers=AUTH)).status == 200
    assert (CUSTOMER, "PRODUCT_COMPLETED") in state.callbacks
    response = await client.put(
        path, json={"url": "", "authorizationHeaderValue": ""}, headers=AUTH
    )
    assert response.status == 200
    assert (await response.json())["registered"] is False
    assert state.callbacks == {}
    other = f"/customers/{uuid.uuid4()}/callbacks/PRODUCT_COMPLETED"
    assert (await client.put(other, json=body, headers=AUTH)).status == 403
    unknown = f"/customers/{CUSTOMER}/callbacks/PRODUCT_EXPLODED"
    assert (await client.put(unknown, json=body, headers=AUTH)).status == 404
    assert (await client.put(path, json={"url": "ftp://x/"}, headers=AUTH)).status == 400


async def test_trigger_endpoint_fires_now(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer
) -> None:
    """The trigger endpoint delivers the callback for an arbitrary id and reports the outcome."""
    client, state = await make_client(aiohttp_client)
    hook_url, received = await start_receiver(aiohttp_server)
    trigger = f"/customers/{CUSTOMER}/callbacks/PRODUCT_COMPLETED/trigger/any-id"
    nothing = await (await client.post(trigger, headers=AUTH)).json()
    assert nothing["sent"] is None
    await client.put(
        f"/customers/{CUSTOMER}/callbacks/1",
        json={"url": hook_url, "authorizationHeaderValue": "token"},
        headers=AUTH,
    )
    response = await client.post(trigger, headers=AUTH)
    assert response.status == 200
    answer = await response.json()
    assert answer["sent"]["status"] == 204
    assert answer["sent"]["source"] == "trigger"
    assert received == [("any-id", "token", b"")]
    assert len(state.callbacks_sent) == 1
    forbidden = f"/customers/{uuid.uuid4()}/callbacks/1/trigger/x"
    assert (await client.post(forbidden, headers=AUTH)).status == 403


async def test_unreachable_receiver_is_recorded_as_error(
    sandbox: tuple[Client, PictofitSandboxState], aiohttp_server: AiohttpServer
) -> None:
    """A delivery to a closed port is recorded with an error instead of a status."""
    client, state = sandbox
    server = await aiohttp_server(web.Application())
    dead_url = str(server.make_url("/hooks/"))
    await server.close()
    await client.put(f"/customers/{CUSTOMER}/callbacks/1", json={"url": dead_url}, headers=AUTH)
    answer = await (
        await client.post(f"/customers/{CUSTOMER}/callbacks/1/trigger/x", headers=AUTH)
    ).json()
    assert answer["sent"]["status"] is None
    assert answer["sent"]["error"]
    assert state.callbacks_sent[0].error


async def test_cleanup_cancels_pending_processing(aiohttp_client: AiohttpClient) -> None:
    """Closing the app cancels background processing and closes the callback session."""
    client, state = await make_client(aiohttp_client, processing_delay_s=30)
    configuration_id = await put_configuration(client, await put_product(client))
    await client.post(f"/configurations/{configuration_id}/ready", headers=AUTH)
    (task,) = state.tasks
    await client.close()
    assert task.cancelled()
    assert state.tasks == set()
    assert state.http is None
