"""The contract's values PICTOFiT answers and emits, as frozen attrs classes, and its event types.

The core writes them in the wire format (camelCase, through its one cattrs converter), so a field
here is the contract's property of the same name in snake_case (`openapi/gateway.yaml`'s schema
named in each docstring). `None` is written as null where the contract's property is nullable,
and left out where it is only optional (`omit_if_none`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from gateway.plugin_api import omit_if_none

__all__ = [
    "EVENT_TYPES",
    "Configuration",
    "ConfigurationList",
    "Image",
    "Product",
    "ProductEventData",
    "Result",
    "TypeList",
    "TypeName",
]

# The events the backend emits (`Backend.event_types`); their data is `ProductEventData`.
EVENT_TYPES: Final[Mapping[str, str]] = {
    "product.completed": (
        "PICTOFiT finished a product (callback PRODUCT_COMPLETED); data: productId and its "
        "configurations with states and gateway result URLs."
    ),
    "product.rejected": (
        "PICTOFiT rejected a product's input (callback PRODUCT_REJECTED); data: productId and "
        "its configurations."
    ),
    "pictofit.*": (
        "Any other PICTOFiT callback type, lower-cased (e.g. pictofit.product_updated); data: "
        "callbackType, objectId, and productId with configurations when it names a product."
    ),
}


@attrs.frozen
class TypeName:
    """`ProductType`, `ImageType`."""

    name: str


@attrs.frozen
class TypeList:
    """`ProductTypeList`, `ImageTypeList`."""

    backend: str
    items: tuple[TypeName, ...]


@attrs.frozen
class Image:
    """`Image`: an image uploaded to a configuration through the gateway."""

    id: str
    kind: str
    name: str
    content_type: str
    width: int
    height: int
    bytes: int


@attrs.frozen
class Result:
    """`Result`: one asset of a finished configuration, at the gateway's downloadResult URL."""

    format: str
    compressed: bool
    url: str
    file_name: str | None


@attrs.frozen
class Configuration:
    """`Configuration`."""

    id: str
    product_id: str
    name: str
    sku: str | None
    state: str
    images: tuple[Image, ...]
    results: tuple[Result, ...]
    updated_at: str | None


@attrs.frozen
class ConfigurationList:
    """`ConfigurationList`."""

    items: tuple[Configuration, ...]


@attrs.frozen
class Product:
    """`Product`."""

    id: str
    name: str
    type: str
    sku: str | None
    backend: str
    created_at: str
    configurations: tuple[Configuration, ...]


@attrs.frozen
class ProductEventData:
    """`ProductEventData` (product.completed, product.rejected: `product_id` and
    `configurations`); other callbacks' events (`pictofit.*`) carry `callback_type` and
    `object_id`, and the product when they name one of the tenant's."""

    callback_type: str | None = omit_if_none()
    object_id: str | None = omit_if_none()
    product_id: str | None = omit_if_none()
    configurations: tuple[Configuration, ...] | None = omit_if_none()
