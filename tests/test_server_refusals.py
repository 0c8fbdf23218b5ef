"""The listening server (gateway.server), driven over raw sockets: aiohttp's own refusals are
problem documents, and a caller key in a refused request never reaches the log."""

from __future__ import annotations

import logging

import pytest

from gateway.redaction import REDACTED
from gateway.testing import GatewayLogs
from tests.conftest import CALLER_KEY_A
from tests.edge_server import Serve, exchange, get, serve

__all__ = ["serve"]  # the fixture, for this module's tests


# -- aiohttp's refusals as problems (row 9) and without the request in the log (row 8) -------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "slug"),
    [
        (get("/healthz", "X-Big: " + "a" * 9000), 431, "header-fields-too-large"),
        (get("/healthz", *(f"X-Many-{i}: x" for i in range(200))), 431, "header-fields-too-large"),
        (get("/healthz?q=" + "a" * 9000), 414, "uri-too-long"),
        (b"GET /healthz HTTP/1.1 and more\r\nHost: gateway.test\r\n\r\n", 400, "bad-request"),
        (b"G@T /healthz HTTP/1.1\r\nHost: gateway.test\r\n\r\n", 400, "bad-request"),
        (get("/healthz", "Content-Length: twelve"), 400, "bad-request"),
    ],
    ids=["header-too-long", "too-many-headers", "url-too-long", "bad-line", "bad-method", "bad-cl"],
)
async def test_requests_aiohttp_refuses_get_problem_documents(
    serve: Serve, logs: GatewayLogs, request_bytes: bytes, status: int, slug: str
) -> None:
    """Each refusal of aiohttp's parser is a problem document with the right status (431 for
    header fields, 414 for the request line, 400 otherwise), logged once as `http.refused`."""
    edge = await serve()
    answer = await exchange(edge.port, request_bytes)
    assert answer.status == status, answer.body
    problem = answer.problem()
    assert problem["type"] == f"urn:gateway:problem:{slug}"
    assert problem["title"]
    assert problem["detail"]
    [refused] = logs.events("http.refused")
    assert (refused["status"], refused["request_id"]) == (status, problem["requestId"])


async def test_a_caller_key_in_a_refused_header_is_never_logged(
    serve: Serve, logs: GatewayLogs
) -> None:
    """`Authorization: Bearer <key>\\x01` is refused (400 problem) and the key appears in no log
    line; aiohttp's own handler logs the raw header line at ERROR."""
    edge = await serve()
    answer = await exchange(
        edge.port, get("/v1/product-types", f"Authorization: Bearer {CALLER_KEY_A}\x01")
    )
    assert answer.problem()["status"] == 400
    assert CALLER_KEY_A.encode() not in answer.body
    text = logs.text()
    assert logs.events("http.refused")
    assert CALLER_KEY_A not in text
    assert CALLER_KEY_A.removeprefix("gwk_") not in text


def test_library_log_records_lose_credentials_by_shape(logs: GatewayLogs) -> None:
    """What a library logs is scrubbed of anything shaped like a credential, since caller keys
    are known only as digests: the value of an Authorization header, a Bearer or Basic token,
    any `gwk_` key; the rest of the line stays readable."""
    library = logging.getLogger("aiohttp.server")
    library.error("line b'Authorization: Bearer gwk_one-0123456789abcdef\\x01\\r\\n' refused")
    library.error("headers {'authorization': 'Basic dXNlcjpwYXNzd29yZA=='} from peer")
    library.error("sent bearer eyJhbGciOiJIUzI1NiJ9.e30.sig and gwk_two-fedcba9876543210")
    text = logs.text()
    for secret in ("gwk_one", "0123456789abcdef", "dXNlcjpwYXNzd29yZA", "eyJhbGci", "gwk_two"):
        assert secret not in text, secret
    first, second, third = (line["event"] for line in logs.all())
    assert first == f"line b'Authorization: {REDACTED}\\x01\\r\\n' refused"
    assert second == f"headers {{'authorization': '{REDACTED}'}} from peer"
    assert third == f"sent bearer {REDACTED} and {REDACTED}"
