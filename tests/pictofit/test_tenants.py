"""Two tenants with their own PICTOFiT keys never see each other's products."""

from __future__ import annotations

from tests.conftest import CALLER_KEY_A, CALLER_KEY_B
from tests.pictofit.conftest import PICTOFIT_KEY_A, PICTOFIT_KEY_B, Pictofit, image


async def test_tenants_are_isolated(pictofit: Pictofit) -> None:
    """Everything about A's product is 404 to B, and each tenant's calls carry its own key."""
    product_id = await pictofit.put_product(name="A's shirt")
    configuration_id = await pictofit.put_configuration(product_id)
    base = f"/v1/products/{product_id}"
    config = f"{base}/configurations/{configuration_id}"
    before = len(pictofit.sandbox.requests)

    b = CALLER_KEY_B
    await pictofit.call("GET", base, b, 404)
    await pictofit.call("GET", f"{base}/configurations", b, 404)
    await pictofit.call("PUT", config, b, 404, json={"name": "stolen"})
    await pictofit.call("POST", f"{config}/submit", b, 404)
    await pictofit.call("GET", f"{config}/results/WEB", b, 404)
    assert (await pictofit.upload(product_id, configuration_id, image(), key=b)).status == 404
    taken = await pictofit.client.put(
        base, json={"name": "B's", "type": "GARMENT_2D"}, headers=pictofit.auth(b)
    )
    assert taken.status in (404, 409)
    assert len(pictofit.sandbox.requests) == before, "B's attempts never reached PICTOFiT"
    assert pictofit.sandbox.products[product_id].name == "A's shirt"

    own = await pictofit.put_product(key=b)
    assert (await pictofit.call("GET", f"/v1/products/{own}", b, 200))["id"] == own
    await pictofit.call("GET", f"/v1/products/{own}", CALLER_KEY_A, 404)

    keys = {
        r.headers["Authorization"]
        for r in pictofit.sandbox.requests
        if r.path == f"/products/{own}" or r.path == f"/products/{own}/configurations"
    }
    assert keys == {f"Bearer {PICTOFIT_KEY_B}"}
    keys_a = {
        r.headers["Authorization"]
        for r in pictofit.sandbox.requests
        if r.path.startswith(f"/products/{product_id}")
    }
    assert keys_a == {f"Bearer {PICTOFIT_KEY_A}"}
