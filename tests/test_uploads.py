"""Multipart uploads: strict form values."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import FormData

from tests.conftest import Gateway

PROBLEM = "application/problem+json"
PHOTOS = "/v1/users/u1/photos"


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json()
    return body


def photo_form(*fields: tuple[str, str], file: bytes = b"\xff\xd8photo") -> FormData:
    form = FormData()
    for name, value in fields:
        form.add_field(name, value)
    form.add_field("file", file, filename="p.jpg", content_type="image/jpeg")
    return form


@pytest.mark.parametrize(
    "dpi",
    ["--5", "٣", "+5", " 5", "5.0", "1_0", "0x10", "9" * 5000],
    ids=["double-minus", "arabic-digit", "plus", "space", "decimal", "underscore", "hex", "huge"],
)
async def test_a_form_integer_that_is_not_plain_base_10_is_422_naming_it(
    gateway: Gateway, dpi: str
) -> None:
    """Only `-?[0-9]+` becomes an integer; anything else stays text and the schema check names
    the field (before: `--5` and 5000 digits were 500s, an Arabic-Indic digit was taken as 3)."""
    response = await gateway.client.post(
        PHOTOS, data=photo_form(("dpi", dpi)), headers=gateway.auth()
    )
    body = await problem(response, 422)
    assert [e["location"] for e in body["errors"]] == ["/dpi"]


async def test_a_plain_form_integer_is_taken(gateway: Gateway) -> None:
    """Leading zeros are still base 10."""
    response = await gateway.client.post(
        PHOTOS, data=photo_form(("dpi", "0300")), headers=gateway.auth()
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["dpi"] == 300
