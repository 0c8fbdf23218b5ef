"""The contract's responses: every documented answer of every operation, and what is wrong with
an answer held against them (tests and `gateway.testing.contract_check` check the gateway's)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.contract import Contract, compile_schema, resolve_ref
from gateway.schema_errors import json_pointer

_JSON_MEDIA = re.compile(r"^application/(?:[\w.-]+\+)?json$")


def is_json_media(media_type: str) -> bool:
    """application/json and the `+json` types (problem+json)."""
    return bool(_JSON_MEDIA.match(media_type))


# (operationId, status) -> media type -> compiled body validator; None where the body is not JSON.
ResponseTable = Mapping[tuple[str, int], Mapping[str, Any | None]]


def compile_responses(contract: Contract) -> ResponseTable:
    """Every documented response of every operation, with a validator for each JSON body.

    The gateway does not check its own answers at run time; tests do (a drift between the code and
    the contract fails them), and so may anyone holding a response and its operationId. Identical
    schemas (every shared problem response) are compiled once.
    """
    document = contract.document
    compiled: dict[bytes, Any] = {}
    table: dict[tuple[str, int], dict[str, Any | None]] = {}
    for operation_id, operation in contract.operations.items():
        node = document["paths"][operation.path][operation.method.lower()]
        for code, raw in node.get("responses", {}).items():
            media_types: dict[str, Any | None] = {}
            for media_type, media in resolve_ref(document, raw).get("content", {}).items():
                schema = media.get("schema", {})
                if not is_json_media(media_type):
                    media_types[media_type] = None
                    continue
                key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
                if key not in compiled:
                    compiled[key] = compile_schema(document, schema)
                media_types[media_type] = compiled[key]
            table[(operation_id, int(code))] = media_types
    return table


def response_problems(
    table: ResponseTable,
    operation_id: str,
    status: int,
    content_type: str | None,
    body: bytes | None,
) -> list[str]:
    """What is wrong with a response against the contract (empty when it conforms).

    `content_type` is the media type without parameters (None when the response has none);
    `body` is None when it was streamed and cannot be read back: then only the status and the
    content type are checked.
    """
    documented = table.get((operation_id, status))
    if documented is None:
        statuses = sorted(code for op, code in table if op == operation_id)
        return [f"{operation_id}: status {status} is not documented (documented: {statuses})"]
    if not documented:
        if body:
            return [f"{operation_id} {status}: a body ({content_type}) where none is documented"]
        return []
    if content_type is None or content_type not in documented:
        return [
            f"{operation_id} {status}: content type {content_type} is not documented "
            f"(documented: {sorted(documented)})"
        ]
    validator = documented[content_type]
    if validator is None or body is None:
        return []
    try:
        instance = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return [f"{operation_id} {status}: the body is not JSON: {exc}"]
    return [
        f"{operation_id} {status}: {json_pointer(error.instance_path) or '/'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]
