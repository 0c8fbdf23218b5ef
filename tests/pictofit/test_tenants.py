"""Two tenants with their own PICTOFiT keys never see each other's products. This tests the core's
tenant isolation (resources owned by the tenant that created them) through that backend."""

from __future__ import annotations

import uuid

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


async def test_an_id_in_another_spelling_never_reaches_another_tenant(pictofit: Pictofit) -> None:
    """A's product id in upper case is still A's: B's every call with it is 404 and never reaches
    PICTOFiT (which compares ids case-blind), and A's own calls in that spelling reach A's product,
    answered in the one canonical spelling."""
    product_id = await pictofit.put_product(name="A's shirt")
    configuration_id = await pictofit.put_configuration(product_id)
    upper, upper_configuration = product_id.upper(), configuration_id.upper()
    base = f"/v1/products/{upper}"
    config = f"{base}/configurations/{upper_configuration}"
    before = len(pictofit.sandbox.requests)

    b = CALLER_KEY_B
    await pictofit.call("PUT", base, b, 404, json={"name": "B's", "type": "GARMENT_2D"})
    await pictofit.call("GET", base, b, 404)
    await pictofit.call("GET", f"{base}/configurations", b, 404)
    await pictofit.call("PUT", config, b, 404, json={"name": "stolen"})
    await pictofit.call("POST", f"{config}/submit", b, 404)
    await pictofit.call("GET", f"{config}/results/WEB", b, 404)
    assert (await pictofit.upload(upper, upper_configuration, image(), key=b)).status == 404
    assert len(pictofit.sandbox.requests) == before, "B's attempts never reached PICTOFiT"
    assert pictofit.sandbox.products[product_id].name == "A's shirt"

    own = await pictofit.call("GET", base, CALLER_KEY_A, 200)
    assert own["id"] == product_id
    assert [c["id"] for c in own["configurations"]] == [configuration_id]
    renamed = await pictofit.call(
        "PUT", base, CALLER_KEY_A, 200, json={"name": "A's blouse", "type": "GARMENT_2D"}
    )
    assert renamed["id"] == product_id
    assert {r.path for r in pictofit.sandbox.requests[before:]} >= {f"/products/{product_id}"}


async def test_a_refused_create_leaves_the_id_free(pictofit: Pictofit) -> None:
    """B's create with a type PICTOFiT does not have is refused (422) and claims nothing: A can
    then create a product, and a configuration, under those very ids."""
    product_id = str(uuid.uuid4())
    refused = {"name": "B's", "type": "NOPE"}
    await pictofit.call("PUT", f"/v1/products/{product_id}", CALLER_KEY_B, 422, json=refused)
    await pictofit.put_product(product_id, CALLER_KEY_A)

    own = await pictofit.put_product(key=CALLER_KEY_B)
    configuration_id = str(uuid.uuid4())
    path = f"/v1/products/{own}/configurations/{configuration_id}"
    pictofit.sandbox.faults.fail_next = 5  # every attempt of B's configuration create fails
    response = await pictofit.client.put(
        path, json={"name": "Blue, M"}, headers=pictofit.auth(CALLER_KEY_B)
    )
    assert response.status >= 500, await response.text()
    pictofit.sandbox.faults.fail_next = 0
    product_a = await pictofit.put_product(key=CALLER_KEY_A)
    taken = f"/v1/products/{product_a}/configurations/{configuration_id}"
    await pictofit.call("PUT", taken, CALLER_KEY_A, 201, json={"name": "Red, S"})
