"""Artifi's answer envelope read: its `Data`, or the problem its error codes map to.

Every answer is meant to be `{"Response", "Message", "Data", "ErrorCode"}` with HTTP 200, errors
included; the docs show quirks `decode` absorbs so that no operation has to: keys in lower case,
`Data` as JSON inside a string, `ErrorCode` as a string listing several codes (`"221,234"`), and
validation failures as a bare HTTP 400 ProblemDetails body. The problems are the core's
(`invalid_input`, `UpstreamCredentialsRejected`, `UpstreamServerError`), with Artifi's codes added.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import orjson
import structlog

from gateway.plugin_api import (
    FieldError,
    ProblemError,
    UpstreamCredentialsRejected,
    UpstreamResponse,
    UpstreamServerError,
    invalid_input,
)
from gateway_artifi import NAME
from gateway_artifi.config import Assumptions

__all__ = [
    "CREDENTIAL_CODES",
    "ArtifiProblem",
    "Context",
    "decode",
    "fold_keys",
    "unexpected",
]

# The gateway's own configuration is wrong (website id, client key), never the caller's input.
CREDENTIAL_CODES: Final = frozenset({"372", "221", "226", "234"})
_VALIDATION: Final[Mapping[str, str]] = {
    "261": "Artifi rejected the user id",
    "262": "Artifi rejected the file as invalid or missing",
    "265": "Artifi rejected the DPI",
}
_MESSAGE_MAX: Final = 200
_CODE_SPLIT: Final = re.compile(r"[\s,;|]+")

_log = structlog.get_logger("gateway_artifi")


def unexpected(what: str, status: int | None = None) -> UpstreamServerError:
    """Artifi answered something the gateway cannot read: the caller's 502."""
    return UpstreamServerError(NAME, status, what)


class ArtifiProblem(ProblemError):
    """The core's problem for an Artifi error answer, with Artifi's error codes added
    (`upstreamErrorCodes`); `codes` lets an operation refine it."""

    def __init__(self, problem: ProblemError, codes: Sequence[str]) -> None:
        super().__init__(
            problem.status,
            problem.slug,
            problem.title,
            problem.detail,
            errors=problem.errors,
            headers=problem.headers,
            extra={**problem.extra, "upstreamErrorCodes": list(codes)},
        )
        self.codes = tuple(codes)


@attrs.frozen
class Context:
    """Who made the call and how to name its inputs to the caller.

    `fields` maps an upstream parameter name (lower case) to the caller's location of the value it
    came from, e.g. `frontappuserid` -> `userId`, `dpi` -> `/dpi`. `scrub` removes anything secret
    from upstream text before it reaches a problem or a log line.
    """

    tenant: str
    operation: str
    assumptions: Assumptions
    fields: Mapping[str, str]
    scrub: Callable[[str], str]


def fold_keys(value: Any) -> Any:
    """Keys lower-cased at every depth, so that `Data.Width` and `data.width` read the same."""
    if isinstance(value, dict):
        return {str(k).lower(): fold_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fold_keys(v) for v in value]
    return value


def decode(response: UpstreamResponse, context: Context) -> Any:
    """The envelope's `Data` (keys folded to lower case), or raise the mapped `ProblemError`."""
    try:
        document = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        document = None
    envelope = fold_keys(document) if isinstance(document, dict) else None
    status = response.status
    if status == 400 and (envelope is None or "response" not in envelope):
        _raise_for_problem_details(envelope, context)
    if envelope is None:
        raise unexpected("an answer that is not an envelope", status)
    outcome = envelope.get("response")
    if isinstance(outcome, str) and outcome.lower() == "success":
        return _unwrap(envelope.get("data"))
    if isinstance(outcome, str) and outcome.lower() == "error":
        codes = _codes(envelope.get("errorcode"))
        raise _for_codes(codes, _message(envelope, context), status, context)
    raise unexpected("an envelope whose Response is neither Success nor Error", status)


def _unwrap(data: Any) -> Any:
    # `Data` is sometimes the JSON text of the object rather than the object.
    if isinstance(data, str):
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            return data
        return fold_keys(parsed)
    return data


def _codes(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, list):
        return tuple(c for item in raw for c in _codes(item))
    return tuple(c for c in _CODE_SPLIT.split(str(raw).strip()) if c)


def _message(envelope: Mapping[str, Any], context: Context) -> str:
    message = envelope.get("message")
    return _shorten(context.scrub(message)) if isinstance(message, str) else ""


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 1] + "…"


def _for_codes(
    codes: tuple[str, ...], message: str, status: int, context: Context
) -> ArtifiProblem:
    listed = ", ".join(codes)
    if any(c in CREDENTIAL_CODES for c in codes):
        # Operators must fix the tenant's configuration; the caller can do nothing about it.
        _log.error(
            "artifi.credentials_rejected",
            tenant=context.tenant,
            backend=NAME,
            operation=context.operation,
            codes=list(codes),
            message=message,
        )
        reason = f"error codes {listed}: its website_id or client_key is wrong"
        return ArtifiProblem(UpstreamCredentialsRejected(NAME, status, reason), codes)
    for code in codes:
        if code in _VALIDATION:
            locations = [
                location
                for name, location in context.fields.items()
                if context.assumptions.code_of_field(name) == code
            ] or ["(unknown)"]
            note = f"{_VALIDATION[code]} (error {code})"
            detail = _VALIDATION[code] + (f": {message}" if message else "")
            errors = [FieldError(location, note) for location in locations]
            return ArtifiProblem(invalid_input(detail, errors), codes)
    what = f"error code {listed}" if codes else "an error without a code"
    reason = what + (f": {message}" if message else "")
    return ArtifiProblem(UpstreamServerError(NAME, status, reason), codes)


def _raise_for_problem_details(folded: dict[str, Any] | None, context: Context) -> None:
    """A bare 400 ProblemDetails: `errors` names the offending parameters; map them to codes."""
    folded = folded or {}
    errors = folded.get("errors")
    found: list[tuple[str, FieldError]] = []
    if isinstance(errors, dict):
        for name, messages in errors.items():
            code = context.assumptions.code_of_field(name)
            if code is None or code not in _VALIDATION:
                continue
            first = messages[0] if isinstance(messages, list) and messages else messages
            text = _shorten(context.scrub(str(first))) if first else _VALIDATION[code]
            location = context.fields.get(name, name)
            found.append((code, FieldError(location, f"{text} (error {code})")))
    if found:
        codes = tuple(dict.fromkeys(code for code, _ in found))
        detail = "; ".join(_VALIDATION[c] for c in codes)
        raise ArtifiProblem(invalid_input(detail, [error for _, error in found]), codes)
    title = folded.get("title")
    reason = _shorten(context.scrub(title)) if isinstance(title, str) else "no reason given"
    # A request the gateway built and Artifi refused: not something the caller can correct.
    raise ArtifiProblem(UpstreamServerError(NAME, 400, f"it refused the request: {reason}"), ())
