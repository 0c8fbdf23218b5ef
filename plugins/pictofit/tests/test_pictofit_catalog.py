"""Type names: listed from the service, resolved to its ids by name, cached per tenant."""

from __future__ import annotations

import uuid

from pictofit_harness import Pictofit, image, make_pictofit, pictofit

from gateway.plugin_api import assert_conforms

__all__ = ["make_pictofit", "pictofit"]  # the fixtures, for this module's tests


def _types_calls(gateway: Pictofit, path: str) -> int:
    return sum(1 for r in gateway.sandbox.requests if r.path == path)


async def test_lists_product_and_image_type_names(pictofit: Pictofit) -> None:
    """listProductTypes and listImageTypes answer the service's names, not its ids."""
    products = await pictofit.call("GET", "/v1/product-types", expect=200)
    assert_conforms("ProductTypeList", products)
    assert products == {
        "backend": "pictofit",
        "items": [{"name": n} for n in ("GARMENT_2D", "GARMENT_3D", "AVATAR_2D", "GARMENT")],
    }
    images = await pictofit.call("GET", "/v1/image-types", expect=200)
    assert_conforms("ImageTypeList", images)
    assert [i["name"] for i in images["items"]] == ["FRONTAL", "REFERENCE_ADDITIONAL"]


async def test_type_name_is_sent_as_the_services_id(pictofit: Pictofit) -> None:
    """putProduct's `type` name becomes the typeId the service listed for it."""
    product_id = await pictofit.put_product(type="AVATAR_2D")
    assert pictofit.sandbox.products[product_id].type_id == 3


async def test_unknown_product_type_is_422_with_valid_names(pictofit: Pictofit) -> None:
    """An unknown product type name is refused before the product goes upstream."""
    product_id = str(uuid.uuid4())
    body = {"name": "Shirt", "type": "GARMENT_4D"}
    problem = await pictofit.call("PUT", f"/v1/products/{product_id}", expect=422, json=body)
    assert problem["validNames"] == ["AVATAR_2D", "GARMENT", "GARMENT_2D", "GARMENT_3D"]
    [error] = problem["errors"]
    assert error["location"] == "/type"
    assert "GARMENT_4D" in error["message"]
    assert product_id not in pictofit.sandbox.products


async def test_unknown_image_kind_is_422_with_valid_names(pictofit: Pictofit) -> None:
    """An unknown image kind is refused; no file reaches the service."""
    product_id = await pictofit.put_product()
    configuration_id = await pictofit.put_configuration(product_id)
    response = await pictofit.upload(product_id, configuration_id, image(), kind="SIDEWAYS")
    assert response.status == 422
    problem = await response.json()
    assert problem["validNames"] == ["FRONTAL", "REFERENCE_ADDITIONAL"]
    assert problem["errors"][0]["location"] == "/kind"
    assert not pictofit.sandbox.files
