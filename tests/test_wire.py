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


def test_empty_tuples_and_values_inside_plain_data_are_written_alike() -> None:
    """An empty tuple of values is an empty array (a list in plain data, as a full one is); values
    inside lists and dicts are written by their class's function, the same on every call."""
    empty = Page(0, ())
    assert unstructure(empty) == {"pageSize": 0, "items": []}
    assert type(unstructure(Page(1, (Item(None, 1),)))["items"]) is list
    mixed = [empty, {"item": Item("b", 3)}, Item(None, 4)]
    for _ in range(2):  # the second time through the functions already found
        assert orjson.loads(wire.dumps(mixed)) == [
            {"pageSize": 0, "items": []},
            {"item": {"fileName": "b", "size": 3}},
            {"fileName": None, "size": 4},
        ]
