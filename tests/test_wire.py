"""The wire format of attrs values: the one converter's camelCase, nulls and omitted fields."""

from __future__ import annotations

import attrs
import orjson

from gateway import wire
from gateway.plugin_api import omit_if_none, unstructure


@attrs.frozen
class Item:
    file_name: str | None
    size: int


@attrs.frozen
class Page:
    page_size: int
    items: tuple[Item, ...]
    next_cursor: str | None = omit_if_none()


def test_values_are_written_in_camel_case_with_nulls_and_omissions() -> None:
    """Field names in camelCase; a nullable field's None is null; an `omit_if_none()` field is
    left out while None and written once set; nested tuples of values are arrays of objects."""
    page = Page(2, (Item(None, 1), Item("a.png", 2)))
    assert orjson.loads(wire.dumps(page)) == {
        "pageSize": 2,
        "items": [{"fileName": None, "size": 1}, {"fileName": "a.png", "size": 2}],
    }
    assert unstructure(attrs.evolve(page, next_cursor="c"))["nextCursor"] == "c"
    assert orjson.loads(wire.dumps({"page": page})) == unstructure({"page": page})
