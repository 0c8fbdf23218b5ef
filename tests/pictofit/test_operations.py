"""The core's store read by PICTOFiT's listConfigurations: the images of every configuration in one
read. (The product operations' own rules are tested in plugins/pictofit/tests.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.state import STORE
from tests.pictofit.conftest import Pictofit, image


async def test_listing_configurations_reads_their_images_at_once(pictofit: Pictofit) -> None:
    """Each configuration lists its own images, and the store is read twice whatever their
    number (the configurations, then the images of all of them): no read per configuration."""
    product_id = await pictofit.put_product()
    configurations = [await pictofit.put_configuration(product_id) for _ in range(3)]
    for configuration_id in configurations[:2]:
        response = await pictofit.upload(product_id, configuration_id, image())
        assert response.status == 201, await response.text()
    store = pictofit.client.app[STORE]
    reads: list[tuple[str, tuple[str, ...]]] = []
    list_resources = store.list_resources

    async def counted(tenant: str, kind: str, parent_ids: Sequence[str]) -> Any:
        reads.append((kind, tuple(parent_ids)))
        return await list_resources(tenant, kind, parent_ids)

    store.list_resources = counted  # type: ignore[method-assign]
    body = await pictofit.call("GET", f"/v1/products/{product_id}/configurations", expect=200)
    images = {c["id"]: [i["kind"] for i in c["images"]] for c in body["items"]}
    assert images == {configurations[0]: ["FRONTAL"], configurations[1]: ["FRONTAL"]} | {
        configurations[2]: []
    }
    assert [kind for kind, _ in reads] == ["configuration", "image"]
    assert sorted(reads[1][1]) == sorted(configurations)
