"""Every response a test's gateway sends, checked against the contract that gateway serves (the
core's with its backends' fragments merged in).

The fixtures that build gateway apps put `ContractCheck.middleware` outermost, so it sees each
answer exactly as the caller gets it (after the edge turned errors into problems). A response whose
status is not documented for its operation, whose content type differs, or whose JSON body breaks
the schema is recorded; the fixture fails the test at teardown with every violation. (Raising in the
middleware would only turn into a 500 that the test might never look at.) Unmatched routes, which
have no operation, must still answer an RFC 9457 problem.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
import jsonschema_rs
import orjson
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.contract import (
    Contract,
    ResponseTable,
    compile_responses,
    default_contract,
    response_problems,
)
from gateway.plugins import PluginHost
from gateway.problems import PROBLEM_CONTENT_TYPE
from gateway.state import CONTRACT
from tests.acme_backend import AcmePlugin


def gateway_contract() -> Contract:
    """The contract the tests' gateways serve: the core's, with the fragments of the installed
    backends and of Acme merged in (built once: `merged_contract` caches it)."""
    return PluginHost.build(extra=[AcmePlugin()]).contract()


# A contract's document is a dict (unhashable): its JSON bytes name it.
_TABLES: dict[bytes, ResponseTable] = {}


def response_table(contract: Contract) -> ResponseTable:
    table = _TABLES.get(contract.json_bytes)
    if table is None:
        table = _TABLES[contract.json_bytes] = compile_responses(contract)
    return table


@functools.cache
def _problem_validator() -> Any:
    components = default_contract().document["components"]
    schema = {"$ref": "#/components/schemas/Problem", "components": components}
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def media_type(response: web.StreamResponse) -> str | None:
    raw = response.headers.get(hdrs.CONTENT_TYPE)
    return raw.split(";", 1)[0].strip().lower() if raw else None


def body_of(response: web.StreamResponse) -> bytes | None:
    """The bytes of a buffered response; None for a streamed one (already sent)."""
    if type(response) is not web.Response:
        return None
    body = response.body
    if body is None:
        return b""
    return body if isinstance(body, bytes) else None


@attrs.define
class ContractCheck:
    """Collects contract violations of the responses of every app it is installed in."""

    violations: list[str] = attrs.field(factory=list)
    checked: int = 0

    def install(self, app: web.Application) -> web.Application:
        app.middlewares.insert(0, self.middleware)
        return app

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # Escaped the edge: aiohttp answers it itself, as text/plain.
            self.record(request, exc)
            raise
        if request.transport is None:  # the client is gone (cut off for idling): nobody reads it
            return response
        self.record(request, response)
        return response

    def record(self, request: web.Request, response: web.StreamResponse) -> None:
        self.checked += 1
        where = f"{request.method} {request.path}"
        self.violations.extend(f"{where}: {p}" for p in self.problems(request, response))

    def problems(self, request: web.Request, response: web.StreamResponse) -> list[str]:
        content_type = media_type(response)
        body = body_of(response)
        operation_id = request.match_info.route.name
        # An app that is no gateway (a test's canned one) is held to the core contract.
        contract = request.app.get(CONTRACT) or default_contract()
        found: list[str] = []
        if operation_id is None or operation_id not in contract.operations:
            found += self._unmatched(response.status, content_type, body)
        else:
            found += response_problems(
                response_table(contract), operation_id, response.status, content_type, body
            )
        if content_type == PROBLEM_CONTENT_TYPE and body:
            status = orjson.loads(body).get("status")
            if status != response.status:
                found.append(f"problem status {status} differs from the HTTP status")
        return found

    @staticmethod
    def _unmatched(status: int, content_type: str | None, body: bytes | None) -> list[str]:
        if content_type != PROBLEM_CONTENT_TYPE:
            return [f"unmatched route answered {status} as {content_type}, not a problem"]
        if body is None:
            return []
        errors = _problem_validator().iter_errors(orjson.loads(body))
        return [f"unmatched route: not a Problem: {error.message}" for error in errors]

    def assert_clean(self) -> None:
        assert not self.violations, "responses drifted from the contract:\n" + "\n".join(
            self.violations
        )
