"""The whole PICTOFiT flow through the gateway, against the sandbox, end to end."""

from __future__ import annotations

from collections import Counter

from pictofit_harness import (
    CALLBACK_SECRET,
    PICTOFIT_KEY_A,
    TENANT_A,
    MakePictofit,
    Pictofit,
    image,
    make_pictofit,
    path_of,
    pictofit,
    upstream_calls,
    wait_for,
    wait_for_events,
)

from gateway.plugin_api import GatewayLogs, assert_conforms
from gateway_pictofit.sandbox import RESULT_FORMATS, sandbox_result_bytes

__all__ = ["make_pictofit", "pictofit"]  # the fixtures, for this module's tests


async def test_product_to_downloaded_result(
    make_pictofit: MakePictofit, gateway_logs: GatewayLogs
) -> None:
    """Product, two configurations, FRONTAL and REFERENCE_ADDITIONAL images, submit, verified
    completion callback, enriched event, result downloaded byte for byte; every upstream call
    logged once and made with the tenant's PICTOFiT key, never the caller's."""
    gateway = await make_pictofit()
    product_id = await gateway.put_product(sku="shirt-001")
    configurations = [await gateway.put_configuration(product_id) for _ in range(2)]
    for configuration_id in configurations:
        front = await gateway.upload(product_id, configuration_id, image("PNG"))
        assert front.status == 201, await front.text()
        assert_conforms("Image", await front.json())
        reference = await gateway.upload(
            product_id,
            configuration_id,
            image("JPEG"),
            kind="REFERENCE_ADDITIONAL",
            content_type="image/jpeg",
            filename="back.jpg",
        )
        assert reference.status == 201, await reference.text()
        assert (await reference.json())["contentType"] == "image/jpeg"
    for configuration_id in configurations:
        path = f"/v1/products/{product_id}/configurations/{configuration_id}/submit"
        submitted = await gateway.call("POST", path, expect=202)
        assert_conforms("Configuration", submitted)
        assert submitted["state"] in ("submitted", "processing")

    [event] = await wait_for_events(gateway, 1)
    assert event["type"] == "product.completed"
    assert event["backend"] == "pictofit"
    data = event["data"]
    assert_conforms("ProductEventData", data)
    assert data["productId"] == product_id
    assert {c["id"] for c in data["configurations"]} == set(configurations)
    for configuration in data["configurations"]:
        assert configuration["state"] == "finished"
        assert sorted(i["kind"] for i in configuration["images"]) == [
            "FRONTAL",
            "REFERENCE_ADDITIONAL",
        ]
        assert len(configuration["results"]) == 2 * len(RESULT_FORMATS)
        for result in configuration["results"]:
            # The gateway's own route, never the sandbox's file URL.
            assert result["url"].startswith(f"{gateway.public_url}/v1/products/{product_id}/")
            assert gateway.sandbox_url not in result["url"]
    # The sandbox records its attempt after reading the gateway's answer, so the event can be
    # listed a moment before the attempt is.
    await wait_for(lambda: len(gateway.sandbox.callbacks_sent), 1)
    [sent] = gateway.sandbox.callbacks_sent
    assert (sent.callback_type, sent.object_id, sent.status) == (
        "PRODUCT_COMPLETED",
        product_id,
        204,
    )
    assert sent.authorization == CALLBACK_SECRET

    configuration = data["configurations"][0]
    [web] = [r for r in configuration["results"] if r["format"] == "WEB" and r["compressed"]]
    download = await gateway.client.get(
        web["url"].removeprefix(gateway.public_url), headers=gateway.auth()
    )
    assert download.status == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert web["fileName"] in download.headers["Content-Disposition"]
    assert await download.read() == sandbox_result_bytes(configuration["id"], "WEB", True)

    listed = await gateway.call("GET", f"/v1/products/{product_id}/configurations", expect=200)
    assert_conforms("ConfigurationList", listed)
    assert [c["state"] for c in listed["items"]] == ["finished", "finished"]
    product = await gateway.call("GET", f"/v1/products/{product_id}", expect=200)
    assert_conforms("Product", product)
    assert (product["name"], product["type"], product["sku"]) == (
        "Silk shirt",
        "GARMENT_2D",
        "shirt-001",
    )

    requests = gateway.upstream_requests()
    assert requests, "the flow reached the sandbox"
    for request in requests:
        assert request.headers.get("Authorization") == f"Bearer {PICTOFIT_KEY_A}", request.path
        assert gateway.kit.caller_keys[TENANT_A] not in str(request.headers)
    lines = upstream_calls(gateway_logs)
    seen = Counter((r.method, r.path, r.headers["X-Request-ID"]) for r in requests)
    logged = Counter((line["method"], path_of(line["url"]), line["request_id"]) for line in lines)
    assert logged == seen
    assert all(line["tenant"] == "tenant-a" and line["status"] < 300 for line in lines)


async def test_a_new_completion_is_a_new_event_but_a_repeat_is_not(pictofit: Pictofit) -> None:
    """A repeated PRODUCT_COMPLETED is stored once; one after another configuration finished is
    a new event (the dedupe key covers the configurations' states)."""
    product_id = await pictofit.put_product()
    first = await pictofit.put_configuration(product_id)
    await _ready(pictofit, product_id, first)
    await wait_for_events(pictofit, 1)

    trigger = f"/customers/{pictofit.sandbox.customer_id}/callbacks/PRODUCT_COMPLETED/trigger/"
    repeat = await pictofit.client.session.post(
        f"{pictofit.sandbox_url}{trigger}{product_id}",
        headers={"Authorization": f"Bearer {PICTOFIT_KEY_A}"},
    )
    assert (await repeat.json())["sent"]["status"] == 204
    assert len(await pictofit.events()) == 1

    second = await pictofit.put_configuration(product_id)
    await _ready(pictofit, product_id, second)
    events = await wait_for_events(pictofit, 2)
    assert [e["type"] for e in events] == ["product.completed", "product.completed"]
    newest = max(events, key=lambda e: len(e["data"]["configurations"]))
    assert {c["id"] for c in newest["data"]["configurations"]} == {first, second}


async def _ready(gateway: Pictofit, product_id: str, configuration_id: str) -> None:
    upload = await gateway.upload(product_id, configuration_id, image("PNG"))
    assert upload.status == 201, await upload.text()
    path = f"/v1/products/{product_id}/configurations/{configuration_id}/submit"
    await gateway.call("POST", path, expect=202)
