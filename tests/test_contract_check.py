"""The response check that keeps the gateway honest to its contract, and the drifts it found.

First, that the check itself catches what it must (an undocumented status, another content type, a
body breaking its schema, an unmatched route answering something other than a problem). Then one
regression test per drift Schemathesis or the check found, each against the real gateway (whose
answers the check also validates).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import FormData, web

from gateway.contract_responses import compile_responses
from gateway.testing import ContractCheck
from tests.conftest import CALLBACK_SECRET_A, Gateway, gateway_contract


def canned_app(check: ContractCheck) -> web.Application:
    """`/healthz` routed as getHealth, answering whatever the query asks for."""

    async def health(request: web.Request) -> web.Response:
        kind = request.query.get("answer", "ok")
        if kind == "teapot":
            return web.json_response({"status": "ok"}, status=418)
        if kind == "text":
            return web.Response(text="ok")
        if kind == "wrong-body":
            return web.json_response({"status": "fine"})
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", health, name="getHealth")
    return check.install(app)


async def test_check_reports_each_kind_of_drift(aiohttp_client: Any) -> None:
    """A conforming answer passes; a wrong status, content type, body or a bare 404 is reported."""
    check = ContractCheck()
    client = await aiohttp_client(canned_app(check))
    assert (await client.get("/healthz")).status == 200
    assert check.violations == []
    for answer in ("teapot", "text", "wrong-body"):
        await client.get("/healthz", params={"answer": answer})
    await client.get("/nowhere")
    assert check.checked == 5
    [teapot, text, body, unmatched] = check.violations
    assert "status 418 is not documented" in teapot
    assert "content type text/plain is not documented" in text
    assert "/status" in body
    assert "fine" in body
    assert "GET /nowhere: unmatched route answered 404 as text/plain" in unmatched


def test_every_operation_documents_a_success() -> None:
    """The compiled table holds every operation (fragments' too), each with at least one 2xx
    answer."""
    table = compile_responses(gateway_contract())
    for operation_id in gateway_contract().operations:
        assert any(op == operation_id and 200 <= status < 300 for op, status in table), operation_id


async def test_unmatched_routes_answer_problems(
    gateway: Gateway, contract_check: ContractCheck
) -> None:
    """An unknown path (404) and a wrong method (405, with Allow) are problem documents too."""
    missing = await gateway.client.get("/v2/nothing")
    assert missing.status == 404
    wrong = await gateway.client.patch("/healthz")
    assert wrong.status == 405
    assert wrong.headers["Allow"] == "GET"
    assert wrong.content_type == missing.content_type == "application/problem+json"
    assert contract_check.checked == 2


# --- drifts found, now fixed -------------------------------------------------------------------


async def test_problem_instance_is_a_uri_reference(gateway: Gateway) -> None:
    """Non-ASCII and control characters in the path come back percent-encoded in `instance`."""
    response = await gateway.client.get(
        "/v1/subscriptions/%C3%B4_%0D%C2%AA", headers=gateway.auth()
    )
    assert response.status == 404
    assert (await response.json())["instance"] == "/v1/subscriptions/%C3%B4_%0D%C2%AA"


async def test_malformed_multipart_part_is_400(gateway: Gateway) -> None:
    """A form part whose headers do not parse is a 400 problem, not an internal error."""
    response = await gateway.client.post(
        "/v1/users/user-1/photos",
        data=b"--b0undary\r\nNone--b0undary--\r\n",
        headers=gateway.auth(**{"Content-Type": "multipart/form-data; boundary=b0undary"}),
    )
    assert response.status == 400, await response.text()
    assert "malformed multipart body" in (await response.json())["detail"]


async def test_booleans_are_true_or_false_only(gateway: Gateway) -> None:
    """`guest=0` is not a boolean: 422 naming the field (only `true` and `false` are)."""
    form = FormData()
    form.add_field("guest", "0")
    form.add_field(
        "file", b"\xff\xd8\xff" + b"x" * 100, filename="a.jpg", content_type="image/jpeg"
    )
    response = await gateway.client.post(
        "/v1/users/user-1/photos", data=form, headers=gateway.auth()
    )
    assert response.status == 422
    assert [e["location"] for e in (await response.json())["errors"]] == ["/guest"]


async def test_an_explicit_backend_that_cannot_serve_is_422(gateway: Gateway) -> None:
    """Naming a backend that does not serve the operation, or is not configured, is the caller's
    mistake (422 with `validNames`), not the gateway's (501)."""
    for backend in ("acme", "nope"):
        response = await gateway.client.get(
            "/v1/image-types", params={"backend": backend}, headers=gateway.auth()
        )
        assert response.status == 422, backend
        problem = await response.json()
        assert problem["errors"][0]["location"] == "backend"
        assert problem["validNames"] == []
    served = await gateway.client.get(
        "/v1/product-types", params={"backend": "acme"}, headers=gateway.auth()
    )
    assert served.status == 200


async def test_an_overlong_request_id_is_a_documented_400_on_probes(gateway: Gateway) -> None:
    """Probes and the contract validate X-Request-ID like every operation (and document the 400)."""
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/openapi.yaml", "/docs"):
        response = await gateway.client.get(path, headers={"X-Request-ID": "x" * 201})
        assert response.status == 400, path
        assert (await response.json())["errors"][0]["location"] == "x-request-id"


async def test_callback_paths_hold_url_characters_only(gateway: Gateway) -> None:
    """A callback path with characters no registered path has is a 400 before the plugin runs."""
    bad = await gateway.client.post(
        "/callbacks/acme/tenant-a/done/%C3%A9", headers={"Authorization": CALLBACK_SECRET_A}
    )
    assert bad.status == 400
    good = await gateway.client.post(
        f"/callbacks/acme/tenant-a/done/{uuid.uuid4()}",
        headers={"Authorization": CALLBACK_SECRET_A},
    )
    assert good.status == 204


async def test_callbacks_take_any_content_type(gateway: Gateway) -> None:
    """The contract documents callback bodies as octet-stream (so clients generate), yet the
    gateway takes any content type unread (`x-gateway-raw-body`): upstreams send what they send."""
    for content_type in ("application/json", "text/plain", "application/octet-stream"):
        response = await gateway.client.post(
            f"/callbacks/acme/tenant-a/done/{uuid.uuid4()}",
            data=b'{"objectId": "42"}',
            headers={"Authorization": CALLBACK_SECRET_A, "Content-Type": content_type},
        )
        assert response.status == 204, content_type
