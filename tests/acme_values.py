"""The values the test backend (`acme_backend`) answers and emits, as frozen attrs classes, as a
backend author writes them: the core writes them in camelCase through its one cattrs converter,
so each field is the contract's property (or the fragment's, acme_openapi.yaml) in snake_case.
"""

from __future__ import annotations

import attrs

from gateway.plugin_api import omit_if_none


@attrs.frozen
class TypeName:
    """`ProductType`."""

    name: str


@attrs.frozen
class TypeList:
    """`ProductTypeList`."""

    backend: str
    items: tuple[TypeName, ...]


@attrs.frozen
class Product:
    """`Product`: Acme keeps no configurations."""

    id: str
    name: str
    type: str
    sku: str | None
    backend: str
    created_at: str
    configurations: tuple[()] = ()


@attrs.frozen
class Image:
    """`Image`."""

    id: str
    kind: str
    name: str
    content_type: str
    width: int
    height: int
    bytes: int


@attrs.frozen
class Photo:
    """`Photo`: Acme's photos are one pixel, always a JPEG."""

    id: str
    dpi: int | None
    code: str | None = None
    image_name: str = "photo"
    unique_image_name: str = attrs.field()
    width: int = 1
    height: int = 1
    extension: str | None = ".jpg"
    mime_type: str | None = "image/jpeg"

    @unique_image_name.default
    def _named_after_the_id(self) -> str:
        return f"photo-{self.id}"


@attrs.frozen
class Widget:
    """`AcmeWidget` (the fragment's)."""

    id: str
    name: str
    size_mm: int


@attrs.frozen
class Done:
    """`acme.done`'s data: what was done, by a photo upload or a callback."""

    photo: str | None = omit_if_none()
    path: str | None = omit_if_none()
    widget_id: str | None = omit_if_none()
