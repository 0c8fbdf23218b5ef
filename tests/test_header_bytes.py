"""Header values in any byte encoding: aiohttp hands undecodable bytes on as surrogates, and no
check of a key or a secret may trip over them (401, never a 500)."""

from __future__ import annotations

import pytest

from tests import raw_http
from tests.conftest import CALLBACK_SECRET_A, CALLER_KEY_A, Gateway

PROBLEM = "application/problem+json"

HOSTILE_AUTHORIZATION = {
    "ff-alone": b"Bearer \xff",
    "key-then-ff": b"Bearer " + CALLER_KEY_A.encode() + b"\xff",
    "latin-1": b"Bearer caf\xe9",
    "utf-8": "Bearer clé".encode(),
    "lone-continuation": b"Bearer \x80\x80",
    "before-scheme": b"\xff\xfe Bearer x",
}


@pytest.mark.parametrize("value", HOSTILE_AUTHORIZATION.values(), ids=HOSTILE_AUTHORIZATION)
async def test_a_caller_key_with_non_ascii_bytes_is_401(gateway: Gateway, value: bytes) -> None:
    """Caller keys are ASCII bearer tokens: any other byte makes a key that is not valid (before:
    bytes that are not UTF-8 were a 500 while the key was digested)."""
    server = gateway.client.server
    request = raw_http.head("GET", "/v1/product-types", {"Authorization": value}, body_length=None)
    answer = await raw_http.exchange(server.host, server.port, request)
    assert answer.status == 401, answer.body
    assert answer.media_type == PROBLEM
    assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("value", HOSTILE_AUTHORIZATION.values(), ids=HOSTILE_AUTHORIZATION)
async def test_a_callback_secret_with_non_ascii_bytes_is_401(
    gateway: Gateway, value: bytes
) -> None:
    """The callback route hands headers to the plugin; a secret compared as bytes refuses them."""
    server = gateway.client.server
    for secret in (value, CALLBACK_SECRET_A.encode() + value[-1:]):
        request = raw_http.head(
            "POST", "/callbacks/acme/tenant-a/done/1", {"Authorization": secret}, body_length=0
        )
        answer = await raw_http.exchange(server.host, server.port, request)
        assert answer.status == 401, answer.body
        assert answer.media_type == PROBLEM


@pytest.mark.parametrize(
    ("header", "path"),
    [("X-Request-ID", "/v1/subscriptions"), ("Idempotency-Key", "/v1/users/u1/photos")],
)
async def test_a_header_parameter_that_is_not_utf8_is_400_naming_it(
    gateway: Gateway, header: str, path: str
) -> None:
    """A header the contract declares, sent with bytes that are not UTF-8: 400 locating it (before:
    the schema check could not take the text aiohttp made of them, a 500 on every operation for
    X-Request-ID). A fresh request id is made, as for any unusable one."""
    server = gateway.client.server
    headers = {"Authorization": f"Bearer {CALLER_KEY_A}", header: b"caf\xe9\xff"}
    request = raw_http.head(
        "GET" if "subscriptions" in path else "POST", path, headers, body_length=0
    )
    answer = await raw_http.exchange(server.host, server.port, request)
    assert answer.status == 400, answer.body
    assert answer.media_type == PROBLEM
    problem = answer.json()
    assert isinstance(problem, dict)
    assert [e["location"] for e in problem["errors"]] == [header.lower()]
    assert answer.headers["x-request-id"] == problem["requestId"] != "caf\xe9\xff"
