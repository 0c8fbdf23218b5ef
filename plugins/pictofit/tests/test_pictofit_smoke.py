"""The PICTOFiT plugin through the backend authors' test kit: the gateway starts in front of the
installed plugin's sandbox, lists the backend, and carries one operation there and back, every
answer checked against the contract. (The plugin's full behaviour is tested by the
test_pictofit_* modules beside this one.)"""

from __future__ import annotations

from gateway.plugin_api import StartGateway
from gateway_pictofit.sandbox import PRODUCT_TYPES, SANDBOX_STATE, PictofitSandboxSettings


async def test_pictofit_lists_product_types_from_its_sandbox(start_gateway: StartGateway) -> None:
    """Installed through its entry point, PICTOFiT is listed as configured with its callbacks
    registered, and listProductTypes answers the sandbox's types, fetched with the tenant's
    upstream key (never the caller's)."""
    gateway = await start_gateway("pictofit")

    listed = await gateway.listing()
    assert listed["configured"] is True
    assert "listProductTypes" in listed["capabilities"]
    assert listed["health"]["callbacks"] == {"state": "synced"}

    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["backend"] == "pictofit"
    assert sorted(item["name"] for item in body["items"]) == sorted(PRODUCT_TYPES.values())

    [seen] = [
        r
        for r in gateway.sandbox_app[SANDBOX_STATE].requests
        if r.path.lower() == "/products/types"
    ]
    [key] = PictofitSandboxSettings().api_keys
    assert seen.headers["Authorization"] == f"Bearer {key}"
    assert gateway.caller_key not in str(seen)
    assert gateway.contract.checked == 2
