"""The product operations' rules: idempotent PUTs, submit and download conditions."""

from __future__ import annotations

import uuid

from pictofit_harness import MakePictofit, Pictofit, image, make_pictofit, pictofit, wait_for

from gateway.plugin_api import assert_conforms
from gateway_pictofit.sandbox import STATE_FINISHED

__all__ = ["make_pictofit", "pictofit"]  # the fixtures, for this module's tests


def _readies(gateway: Pictofit) -> int:
    return sum(1 for r in gateway.sandbox.requests if r.path.endswith("/ready"))


async def test_puts_are_idempotent_end_to_end(pictofit: Pictofit) -> None:
    """The same PUT twice: 201 then 200, one product and one configuration upstream, the
    creation time kept."""
    product_id = str(uuid.uuid4())
    body = {"name": "Shirt", "type": "GARMENT_2D", "sku": "s-1"}
    created = await pictofit.call("PUT", f"/v1/products/{product_id}", expect=201, json=body)
    assert_conforms("Product", created)
    assert created["configurations"] == []
    replaced = await pictofit.call("PUT", f"/v1/products/{product_id}", expect=200, json=body)
    assert replaced["createdAt"] == created["createdAt"]

    configuration_id = str(uuid.uuid4())
    path = f"/v1/products/{product_id}/configurations/{configuration_id}"
    first = await pictofit.call("PUT", path, expect=201, json={"name": "Red"})
    assert_conforms("Configuration", first)
    assert (first["state"], first["sku"], first["results"]) == ("draft", None, [])
    second = await pictofit.call("PUT", path, expect=200, json={"name": "Red", "sku": "r"})
    assert second["sku"] == "r"
    assert list(pictofit.sandbox.products) == [product_id]
    assert list(pictofit.sandbox.configurations) == [configuration_id]

    again = await pictofit.call("PUT", f"/v1/products/{product_id}", expect=200, json=body)
    assert [c["id"] for c in again["configurations"]] == [configuration_id]


async def test_ids_must_be_uuid4_for_pictofit(pictofit: Pictofit) -> None:
    """A UUID of another version is a 400 naming the parameter, by the contract's pattern, for
    every operation that takes one; nothing goes upstream."""
    product_id = str(uuid.uuid1())
    body = {"name": "Shirt", "type": "GARMENT_2D"}
    problem = await pictofit.call("PUT", f"/v1/products/{product_id}", expect=400, json=body)
    assert problem["errors"][0]["location"] == "productId"
    assert not pictofit.sandbox.products
    problem = await pictofit.call("GET", f"/v1/products/{product_id}", expect=400)
    assert problem["errors"][0]["location"] == "productId"
    real = await pictofit.put_product()
    other = f"/v1/products/{real}/configurations/{uuid.uuid1()}"
    problem = await pictofit.call("PUT", other, expect=400, json={"name": "Red"})
    assert problem["errors"][0]["location"] == "configurationId"
    assert not pictofit.sandbox.configurations


async def test_submit_needs_a_frontal_image(pictofit: Pictofit) -> None:
    """Without a FRONTAL image submit is 422 and nothing is flagged upstream."""
    product_id = await pictofit.put_product()
    configuration_id = await pictofit.put_configuration(product_id)
    reference = await pictofit.upload(
        product_id, configuration_id, image(), kind="REFERENCE_ADDITIONAL"
    )
    assert reference.status == 201
    path = f"/v1/products/{product_id}/configurations/{configuration_id}/submit"
    problem = await pictofit.call("POST", path, expect=422)
    assert "FRONTAL" in problem["detail"]
    assert _readies(pictofit) == 0


async def test_submit_rules_and_download_conditions(make_pictofit: MakePictofit) -> None:
    """Submit twice flags once; images cannot be added after; downloads wait for `finished`,
    and a variant the configuration lacks is 404; a finished one cannot be submitted again."""
    # Processing slow enough that the second submit surely finds it still processing.
    pictofit = await make_pictofit(sandbox={"processing_delay_s": 0.4})
    product_id = await pictofit.put_product()
    configuration_id = await pictofit.put_configuration(product_id)
    base = f"/v1/products/{product_id}/configurations/{configuration_id}"
    assert (await pictofit.upload(product_id, configuration_id, image())).status == 201
    problem = await pictofit.call("GET", f"{base}/results/WEB", expect=409)
    assert "draft" in problem["detail"]
    await pictofit.call("POST", f"{base}/submit", expect=202)
    await pictofit.call("POST", f"{base}/submit", expect=202)
    assert _readies(pictofit) == 1

    late = await pictofit.upload(product_id, configuration_id, image())
    assert late.status == 409

    await wait_for(
        lambda: pictofit.sandbox.configurations[configuration_id].state_id, STATE_FINISHED
    )
    await pictofit.call("GET", f"{base}/results/GLB", expect=404)
    plain = await pictofit.client.get(
        f"{base}/results/MOBILE?compressed=false", headers=pictofit.auth()
    )
    assert plain.status == 200
    assert b"MOBILE uncompressed" in (await plain.read())[:100]
    problem = await pictofit.call("POST", f"{base}/submit", expect=409)
    assert "finished" in problem["detail"]


async def test_expired_upstream_url_is_not_a_gateway_error(pictofit: Pictofit) -> None:
    """When the service no longer serves a result file, the caller gets its 404, not a 500."""
    product_id = await pictofit.put_product()
    configuration_id = await pictofit.put_configuration(product_id)
    assert (await pictofit.upload(product_id, configuration_id, image())).status == 201
    base = f"/v1/products/{product_id}/configurations/{configuration_id}"
    await pictofit.call("POST", f"{base}/submit", expect=202)
    await wait_for(
        lambda: pictofit.sandbox.configurations[configuration_id].state_id, STATE_FINISHED
    )
    pictofit.sandbox.result_files.clear()
    problem = await pictofit.call("GET", f"{base}/results/WEB", expect=404)
    assert problem["type"] == "urn:gateway:problem:upstream-rejected"
