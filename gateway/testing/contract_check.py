"""The contract check: every answer of an app held against the contract that app serves; and a
body held against one of the contract's schemas."""

from __future__ import annotations

from typing import Any

import attrs
import jsonschema_rs
import orjson
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.contract import Contract, default_contract
from gateway.contract_responses import ResponseTable, compile_responses, response_problems
from gateway.problems import PROBLEM_CONTENT_TYPE
from gateway.state import CONTRACT

__all__ = ["ContractCheck", "assert_conforms", "problem_validator", "schema_validator"]


def schema_validator(name: str, contract: Contract | None = None) -> Any:
    """The contract's `components/schemas/<name>`, compiled (formats checked)."""
    components = (contract or default_contract()).document["components"]
    schema = {"$ref": f"#/components/schemas/{name}", "components": components}
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def problem_validator(contract: Contract | None = None) -> Any:
    """The contract's `Problem` schema, compiled (formats checked)."""
    return schema_validator("Problem", contract)


def assert_conforms(schema: str, instance: Any) -> None:
    """Fails naming every reason when `instance` is not a valid `components/schemas/<schema>` of
    the contract the installed backends serve (e.g. an event's body, which no answer's schema
    checks as precisely as its own)."""
    errors = [error.message for error in schema_validator(schema).iter_errors(instance)]
    assert not errors, f"not a valid {schema}: {errors}"


def _media_type(response: web.StreamResponse) -> str | None:
    raw = response.headers.get(hdrs.CONTENT_TYPE)
    return raw.split(";", 1)[0].strip().lower() if raw else None


def _body_of(response: web.StreamResponse) -> bytes | None:
    """The bytes of a buffered response; None for a streamed one (already sent)."""
    if type(response) is not web.Response:
        return None
    body = response.body
    if body is None:
        return b""
    return body if isinstance(body, bytes) else None


@attrs.define
class ContractCheck:
    """Collects the contract violations of every answer of the apps it is installed in.

    `install` puts its middleware outermost, so it sees each answer exactly as the caller gets it
    (after the edge turned errors into problems), and checks it against the contract that app
    serves: a status not documented for the operation, another content type, a JSON body breaking
    its schema, or a problem whose `status` differs from the HTTP one. Unmatched routes have no
    operation and must answer an RFC 9457 problem. Violations are recorded, not raised (raising in
    the middleware would only become a 500 the test might never look at): `assert_clean` fails
    with all of them.
    """

    violations: list[str] = attrs.field(factory=list)
    checked: int = 0
    # The compiled answers of the contract last seen (one per app; apps share the default one).
    _compiled: tuple[Contract, ResponseTable, Any] | None = attrs.field(default=None, repr=False)

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
        contract, table, problem_schema = self._compile(request.app.get(CONTRACT))
        content_type = _media_type(response)
        body = _body_of(response)
        operation_id = request.match_info.route.name
        found: list[str] = []
        if operation_id is None or operation_id not in contract.operations:
            found += self._unmatched(problem_schema, response.status, content_type, body)
        else:
            found += response_problems(table, operation_id, response.status, content_type, body)
        if content_type == PROBLEM_CONTENT_TYPE and body:
            status = orjson.loads(body).get("status")
            if status != response.status:
                found.append(f"problem status {status} differs from the HTTP status")
        return found

    def _compile(self, contract: Contract | None) -> tuple[Contract, ResponseTable, Any]:
        contract = contract or default_contract()
        if self._compiled is None or self._compiled[0] is not contract:
            self._compiled = (contract, compile_responses(contract), problem_validator(contract))
        return self._compiled

    @staticmethod
    def _unmatched(
        problem_schema: Any, status: int, content_type: str | None, body: bytes | None
    ) -> list[str]:
        if content_type != PROBLEM_CONTENT_TYPE:
            return [f"unmatched route answered {status} as {content_type}, not a problem"]
        if body is None:
            return []
        errors = problem_schema.iter_errors(orjson.loads(body))
        return [f"unmatched route: not a Problem: {error.message}" for error in errors]

    def assert_clean(self) -> None:
        assert not self.violations, "responses drifted from the contract:\n" + "\n".join(
            self.violations
        )
