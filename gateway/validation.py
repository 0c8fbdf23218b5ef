"""Requests checked against the contract before any handler runs.

Malformed JSON and bad path, query or header parameters are 400; a body that breaks its schema is
422 with one error per problem, located by JSON pointer; a content type the operation does not take
is 415; an oversized body is 413 (aiohttp's limit for JSON, `read_form`'s for multipart).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import orjson
from aiohttp import web

from gateway import problems
from gateway.contract import Operation
from gateway.forms import Form, Spool, body_cut_short, read_form
from gateway.problems import FieldError
from gateway.schema_errors import body_errors, json_pointer
from gateway.values import value_repr

BINARY_PLACEHOLDER = "<binary>"


class Input:
    """A request's validated parts, coerced to their schema types.

    A plain class with `Final` fields, as `gateway.values.Reply` and for the same reason."""

    def __init__(
        self,
        path: Mapping[str, Any],
        query: Mapping[str, Any],
        headers: Mapping[str, str],
        body: Any = None,
        form: Form | None = None,
    ) -> None:
        self.path: Final = path
        self.query: Final = query
        self.headers: Final = headers
        self.body: Final[Any] = body
        self.form: Final = form

    def __repr__(self) -> str:
        return value_repr(self, ("path", "query", "body", "form"))  # headers may hold a key


def _parameters(
    operation: Operation, location: str, source: Mapping[str, str]
) -> tuple[dict[str, Any], list[FieldError]]:
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for param in operation.params_in(location):
        raw = source.get(param.name)
        if raw is None:
            if param.required:
                errors.append(FieldError(param.name, f"required {location} parameter is missing"))
            elif "default" in param.schema:
                values[param.name] = param.schema["default"]
            continue
        if not _is_text(raw):
            errors.append(FieldError(param.name, "is not valid UTF-8"))
            continue
        value, problems_found = param.check(raw)
        errors.extend(problems_found)
        values[param.name] = value
    return values, errors


def _is_text(raw: str) -> bool:
    """False for bytes that were not UTF-8: aiohttp keeps them as lone surrogates, which no
    schema check (nor the store, nor a JSON answer) can take."""
    if raw.isascii():
        return True
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def validate_request(
    request: web.Request, operation: Operation, *, limit: int, spool: Spool | None
) -> Input:
    """The request's parts checked and coerced; a form's files go into `spool`, which the caller
    empties when the request ends (also when this raises). `spool` may be None for an operation
    that takes no form."""
    # A location without parameters is not looked at: parsing the query costs every request.
    by_location = operation.by_location
    path, errors = _parameters(operation, "path", request.match_info)
    query: dict[str, Any] = {}
    headers: dict[str, Any] = {}
    if by_location["query"]:
        query, query_errors = _parameters(operation, "query", request.query)
        errors += query_errors
    if by_location["header"]:
        # Header parameter names are lower case; the request's headers are looked up case-blind.
        headers, header_errors = _parameters(operation, "header", request.headers)
        errors += header_errors
    if errors:
        raise problems.bad_request("the request's parameters are invalid", errors)
    if not operation.body_validators:  # no body to read (most reads): no coroutine to await
        return Input(path=path, query=query, headers=headers)
    body, form = await _body(request, operation, limit, spool)
    return Input(path=path, query=query, headers=headers, body=body, form=form)


async def read_body(request: web.Request, *, limit: int) -> bytes:
    """The whole raw body, for handlers that take any content; 413 as soon as it passes `limit`
    bytes, whether its length was declared or it is streamed (chunked)."""
    if (request.content_length or 0) > limit:
        raise problems.payload_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        # One read returns only what has arrived so far: read until the end.
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                raise problems.payload_too_large(limit)
            chunks.append(chunk)
    except ConnectionError:
        raise body_cut_short() from None
    return b"".join(chunks)


def _has_body(request: web.Request) -> bool:
    return bool(request.content_length) or request.headers.get("Transfer-Encoding") == "chunked"


async def _body(
    request: web.Request, operation: Operation, limit: int, spool: Spool | None
) -> tuple[Any, Form | None]:
    if not operation.body_validators or operation.raw_body:
        # Any content (upstream callbacks): the handler reads the raw body itself.
        return None, None
    if not _has_body(request):
        if operation.body_required:
            raise problems.invalid_input("a request body is required", [FieldError("/", "missing")])
        return None, None
    content_type = request.content_type
    validator = operation.body_validators.get(content_type)
    if validator is None:
        accepted = ", ".join(operation.body_validators)
        raise problems.unsupported_media_type(
            f"{operation.operation_id} takes {accepted}, not {content_type or 'no content type'}"
        )
    if content_type == "multipart/form-data":
        if spool is None:
            raise RuntimeError(f"{operation.operation_id} takes a form: pass a spool")
        form = await read_form(request, limit=limit, spool=spool)
        instance: dict[str, Any] = {**form.fields, **dict.fromkeys(form.files, BINARY_PLACEHOLDER)}
        instance = _coerce_form(validator, operation, instance)
        errors = _misplaced_parts(operation, form) + body_errors(validator, instance)
        if errors:
            raise problems.invalid_input("the form does not match the contract", errors)
        return instance, form
    try:
        raw = await request.read()
    except ConnectionError:
        raise body_cut_short() from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise problems.bad_request(f"the body is not valid JSON: {exc}") from None
    errors = body_errors(validator, body)
    if errors:
        raise problems.invalid_input("the body does not match the contract", errors)
    return body, None


def _misplaced_parts(operation: Operation, form: Form) -> list[FieldError]:
    """Text where the contract wants a file, or a file where it wants text: the schema cannot tell,
    since a file is checked as a placeholder string."""
    errors = []
    for name, schema in operation.form_properties.items():
        binary = schema.get("format") == "binary"
        if binary and name in form.fields:
            errors.append(FieldError(json_pointer([name]), "must be a file part (with a filename)"))
        elif not binary and name in form.files:
            errors.append(FieldError(json_pointer([name]), "must be a text field, not a file"))
    return errors


# What a form integer may look like: `int()` also takes "+5", " 5", "1_0" and other scripts'
# digits, and `str.isdigit()` says yes to "²", which `int()` refuses.
_INTEGER = re.compile(r"-?[0-9]{1,4000}")


def _coerce_form(validator: Any, operation: Operation, fields: dict[str, Any]) -> dict[str, Any]:
    """Form fields arrive as text; give integers and booleans their schema type before checking.
    Text that is not plainly one stays text, so the schema check names the field (422)."""
    properties = operation.form_properties
    coerced = dict(fields)
    for name, value in fields.items():
        kind = properties.get(name, {}).get("type")
        if not isinstance(value, str):
            continue
        if kind == "integer" and _INTEGER.fullmatch(value):
            coerced[name] = int(value)  # at most 4000 digits: within int()'s limit for text
        elif kind == "boolean" and value.lower() in {"true", "false"}:
            coerced[name] = value.lower() == "true"
    for name, schema in properties.items():
        if name not in coerced and "default" in schema:
            coerced[name] = schema["default"]
    return coerced
