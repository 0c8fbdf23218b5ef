"""PICTOFiT's values built on every listing (Configuration, Result) are frozen attrs values."""

from __future__ import annotations

import attrs
import pytest

from gateway.plugin_api import unstructure
from gateway_pictofit.values import Configuration, Result


def test_listing_values_are_frozen_and_written_in_camel_case() -> None:
    """Neither a field nor a new attribute can be assigned; equal values hash alike; the wire form
    is the contract's."""
    result = Result("WEB", True, "http://h/r", None)
    configuration = Configuration("c", "p", "n", None, "done", (), (result,), None)
    for value, name in ((result, "url"), (configuration, "name"), (configuration, "other")):
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(value, name, "x")
    assert hash(result) == hash(Result("WEB", True, "http://h/r", None))
    assert unstructure(configuration) == {
        "id": "c",
        "productId": "p",
        "name": "n",
        "sku": None,
        "state": "done",
        "images": [],
        "results": [{"format": "WEB", "compressed": True, "url": "http://h/r", "fileName": None}],
        "updatedAt": None,
    }
