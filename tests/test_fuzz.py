"""Every operation of the contract driven with malformed input: never a 5xx, every 4xx a problem.

Hypothesis draws, per operation, requests whose path, query, header and body values are hostile
(numbers past 64 bits, digits `int()` refuses, bytes that are not UTF-8, duplicate and nameless
form parts, JSON that is no JSON or breaks the schema, wrong content types), sent byte for byte over
a socket so that header values can be any bytes HTTP allows. The framing itself stays valid HTTP:
requests aiohttp's parser refuses never reach the app (aiohttp answers those itself).

100 examples per operation (FUZZ_EXAMPLES overrides), ~20 s on 2 cores, different ones each run. A
failure prints the request and a `@reproduce_failure` blob that replays it.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings, strategies as st

from gateway.contract import Operation
from gateway.state import UPLOADS
from gateway.testing import GatewayLogs
from tests import raw_http
from tests.acme_backend import AcmeBackend
from tests.conftest import CALLBACK_SECRET_A, CALLER_KEY_A, Gateway, gateway_contract

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
# The gateway fixture's contract: the backends' fragments' operations are fuzzed too.
CONTRACT = gateway_contract()
OPERATIONS = CONTRACT.operations
PROBLEM = "application/problem+json"
BOUNDARY = "fuzz-boundary"

# 5xx by design, not by accident: an operation no backend of the tenant serves (501: the tests'
# tenants have only Acme), and readiness while one of its checks fails (503).
UNSERVED = CONTRACT.backend_operations - AcmeBackend.capabilities
DESIGNED_5XX = {name: {501} for name in UNSERVED} | {"getReadiness": {503}}

# Values that broke or nearly broke something once, and their relatives.
NASTY = [
    "",
    "0",
    "-0",
    "--5",
    "+5",
    " 5",
    "5 ",
    "1_000",
    "0x10",
    "1e400",
    "NaN",
    "-1",
    "99999999999999999999999",
    "9" * 5000,
    "²",
    "٣",
    "true",
    "TRUE",
    "null",
    "..",
    "../..",
    "%",
    "%zz",
    "a" * 600,
    "\x00",
    "\u202e",
    "\ud800",  # a lone surrogate: sent as the bytes surrogateescape would give back
    str(uuid.uuid4()),
    "gateway.test",
    "*",
]


def _raw(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


text_values = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.from_regex(r"-?[0-9]{1,30}", fullmatch=True),
)
# Any bytes: what a percent-escape or a header value can carry that text cannot.
byte_values = st.binary(max_size=40)
values = st.one_of(text_values.map(_raw), byte_values)
# In the request line, shorter: aiohttp refuses a line over 8 KiB before the app sees it.
url_values = values.filter(lambda raw: len(raw) <= 600)


def percent(raw: bytes, *, slashes: bool = False) -> str:
    return urllib.parse.quote_from_bytes(raw, safe="/" if slashes else "")


# What HTTP lets a header value hold (VCHAR, obs-text, space, tab); no CR, LF or other controls.
header_bytes = st.binary(max_size=60).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c <= 126 or c >= 128).strip()
)

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    text_values,
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["url", "eventTypes", "name", "type"]) | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


def _schema_names(operation: Operation) -> list[str]:
    names = set(operation.form_properties)
    document = CONTRACT.document
    node = document["paths"][operation.path][operation.method.lower()]
    body = node.get("requestBody", {})
    for media in body.get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        schema = document["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
        names.update(schema.get("properties", {}))
    return sorted(names) or ["x"]


@st.composite
def json_body(draw: st.DrawFn, operation: Operation) -> bytes:
    """A JSON body: the operation's own field names with hostile values, or anything at all."""
    names = _schema_names(operation)
    value = draw(
        st.dictionaries(st.sampled_from(names), json_values, max_size=len(names) + 1) | json_values
    )
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    return draw(st.sampled_from([_raw(text), _raw(text)[: len(text) // 2], b"\xff" + _raw(text)]))


@st.composite
def form_body(draw: st.DrawFn, operation: Operation) -> bytes:
    """A multipart body: the operation's part names, repeated or not, with hostile content."""
    names = _schema_names(operation)
    parts = []
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        name = draw(st.sampled_from([*names, "file", ""]) | st.text(max_size=10))
        name_bytes = _raw(name).replace(b'"', b"").replace(b"\r", b"").replace(b"\n", b"")
        content = draw(values)
        is_file = draw(st.booleans())
        disposition = b'form-data; name="' + name_bytes + b'"'
        if is_file:
            disposition += b'; filename="' + draw(header_bytes).replace(b'"', b"") + b'"'
        parts.append(
            f"--{BOUNDARY}\r\n".encode()
            + b"Content-Disposition: "
            + disposition
            + b"\r\n\r\n"
            + content
            + b"\r\n"
        )
    body = b"".join(parts)
    if draw(st.booleans()):
        body += f"--{BOUNDARY}--\r\n".encode()
    return body


@st.composite
def hostile_request(draw: st.DrawFn, operation: Operation) -> tuple[bytes, dict[str, Any]]:
    """A raw request for `operation` with hostile values, and what was drawn (for reports)."""
    drawn: dict[str, Any] = {}
    path = operation.path
    for param in operation.params_in("path"):
        sensible = {"backend": "acme", "tenantId": "tenant-a", "callbackPath": "done/1"}.get(
            param.name, str(uuid.uuid4())
        )
        raw = draw(st.just(_raw(sensible)) | url_values)
        drawn[param.name] = raw
        path = path.replace("{" + param.name + "}", percent(raw, slashes=param.greedy) or "x")
    query = []
    for param in [*operation.params_in("query"), None]:
        name = param.name if param else draw(st.sampled_from(["cursor", "limit", "zz"]))
        for _ in range(draw(st.integers(min_value=0, max_value=2))):
            raw = draw(url_values)
            drawn.setdefault(f"?{name}", []).append(raw)
            query.append(f"{percent(_raw(name))}={percent(raw)}")
    target = path + ("?" + "&".join(query) if query else "")
    assume(len(target) < 8000)

    headers: dict[str, bytes] = {}
    if operation.path.startswith("/callbacks/"):
        secret = _raw(CALLBACK_SECRET_A)
    else:
        secret = b"Bearer " + _raw(CALLER_KEY_A)
    # Half the time the right key or secret, so that the rest of the request is looked at.
    headers["Authorization"] = draw(
        st.sampled_from(["valid", "valid", "bytes", "valid+bytes"]).flatmap(
            lambda how: (
                st.just(secret)
                if how == "valid"
                else header_bytes.map(lambda b: (secret if how == "valid+bytes" else b"") + b)
            )
        )
    )
    for param in operation.params_in("header"):
        if draw(st.booleans()):
            headers[param.name] = draw(header_bytes | st.just(b"a" * 300))
    if draw(st.booleans()):
        headers["X-Request-ID"] = draw(header_bytes)

    kind = draw(st.sampled_from(["none", "json", "form", "bytes"]))
    body = b""
    if kind == "json":
        body = draw(json_body(operation))
        content_type = b"application/json"
    elif kind == "form":
        body = draw(form_body(operation))
        content_type = draw(
            st.sampled_from(
                [
                    f"multipart/form-data; boundary={BOUNDARY}".encode(),
                    b"multipart/form-data",
                    b"multipart/form-data; boundary=",
                    b"multipart/mixed; boundary=" + BOUNDARY.encode(),
                ]
            )
        )
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
        content_type = draw(header_bytes | st.just(b"application/octet-stream"))
    if kind != "none":
        headers["Content-Type"] = content_type
    drawn["headers"] = headers
    drawn["body"] = body[:200]

    chunked = kind != "none" and draw(st.booleans())
    if chunked:
        headers["Transfer-Encoding"] = b"chunked"
        framed = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
        request = raw_http.head(operation.method, target, headers, body_length=None) + framed
    else:
        length = len(body) if body or operation.method in {"POST", "PUT", "PATCH"} else None
        request = raw_http.head(operation.method, target, headers, body_length=length) + body
    return request, drawn


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_malformed_input_never_gets_a_5xx(
    gateway: Gateway, logs: GatewayLogs, operation_id: str, data: st.DataObject
) -> None:
    """Whatever the values, no 5xx (but the designed ones), every 4xx a problem document with its
    status, no spooled file left behind, nothing logged as an unhandled error; every answer is
    also checked against the contract (the `gateway` fixture)."""
    operation = OPERATIONS[operation_id]
    request, drawn = data.draw(hostile_request(operation), label="request")
    crashes_before = len(logs.events("http.unhandled_error"))  # the log spans every example
    server = gateway.client.server
    answer = await raw_http.exchange(server.host, server.port, request)
    event(f"status {answer.status}")  # --hypothesis-show-statistics: how far requests got
    designed = DESIGNED_5XX.get(operation_id, set())
    assert answer.status < 500 or answer.status in designed, (answer.status, answer.body, drawn)
    if 400 <= answer.status < 500:
        assert answer.media_type == PROBLEM, (answer.status, answer.body, drawn)
        problem = answer.json()
        assert isinstance(problem, dict)
        assert problem["status"] == answer.status
    assert not list(gateway.client.app[UPLOADS].iterdir()), drawn
    assert len(logs.events("http.unhandled_error")) == crashes_before, drawn
