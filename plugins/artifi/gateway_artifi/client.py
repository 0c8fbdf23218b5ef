"""Artifi as one operation call sees it: its paths, a concurrency slot, the envelope decoded.

The core's upstream client adds the tenant's credentials (query string, see `auth`), logs each
attempt with the key redacted, retries what may be retried and runs the breaker; this module adds
what is Artifi's own. Calls in flight per tenant are bounded (`Slots`: Artifi publishes no rate
limits). Every answer is meant to be `{"Response", "Message", "Data", "ErrorCode"}` with HTTP 200,
errors included; the docs show quirks `decode` absorbs so that no operation has to: keys in lower
case, `Data` as JSON inside a string, `ErrorCode` as a string listing several codes
(`"221,234"`), and validation failures as a bare HTTP 400 ProblemDetails body.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import orjson
import structlog

from gateway.plugin_api import (
    BodyFactory,
    BoundUpstream,
    FieldError,
    ProblemError,
    TtlCache,
    UpstreamResponse,
)
from gateway_artifi import NAME
from gateway_artifi.auth import scrub
from gateway_artifi.config import ArtifiConfig, Assumptions
from gateway_artifi.preflight import UnreadableSettings, UploadRules

__all__ = [
    "CREDENTIAL_CODES",
    "ArtifiClient",
    "ArtifiProblem",
    "Context",
    "RulesCache",
    "Slots",
    "decode",
    "fold_keys",
    "unexpected",
]

UPLOAD_PATH: Final = "/api/2/UploadPhoto/UploadUserPhotos"
SETTINGS_PATH: Final = "/api/3/UploadImage/GetImageSettings"
LIST_PATH: Final = "/api/3/UploadImage/GetUserUploadedList"
DELETE_PATH: Final = "/api/3/UploadImage/DeleteUserPhoto"
UPDATE_USER_PATH: Final = "/api/3/User/UpdateUserId"

# The gateway's own configuration is wrong (website id, client key), never the caller's input.
CREDENTIAL_CODES: Final = frozenset({"372", "221", "226", "234"})
_VALIDATION: Final[Mapping[str, str]] = {
    "261": "Artifi rejected the user id",
    "262": "Artifi rejected the file as invalid or missing",
    "265": "Artifi rejected the DPI",
}
_MESSAGE_MAX: Final = 200
_CODE_SPLIT: Final = re.compile(r"[\s,;|]+")
_BUSY_RETRY_AFTER: Final = "1"

_log = structlog.get_logger("gateway_artifi")

RulesCache = TtlCache[str, UploadRules]  # tenant -> the website's upload rules


def unexpected(what: str) -> ProblemError:
    """Artifi answered something the gateway cannot read: the caller's 502."""
    return ProblemError(502, "upstream-error", "Upstream error", f"backend {NAME} answered {what}")


class Slots:
    """Each tenant's concurrent calls to Artifi, at most the configured number."""

    def __init__(self) -> None:
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def slot(self, tenant: str, size: int, deadline: float) -> AsyncIterator[None]:
        """Hold one of the tenant's `size` concurrent-call slots; 503 if none frees in time.

        `deadline` is the caller's (absolute `loop.time()`): waiting for a slot must not outlive
        the request that waits.
        """
        semaphore = self._semaphores.setdefault(tenant, asyncio.Semaphore(size))
        try:
            async with asyncio.timeout_at(deadline):
                await semaphore.acquire()
        except TimeoutError:
            raise ProblemError(
                503,
                "backend-busy",
                "Backend busy",
                f"too many calls to {NAME} are in flight for this tenant (at most {size})",
                headers={"Retry-After": _BUSY_RETRY_AFTER},
            ) from None
        try:
            yield
        finally:
            semaphore.release()


class ArtifiClient:
    """The calls of one caller request to the tenant's Artifi website; `slots` and `rules` are
    the backend object's."""

    def __init__(
        self, upstream: BoundUpstream, config: ArtifiConfig, slots: Slots, rules: RulesCache
    ) -> None:
        self.upstream = upstream
        self.tenant = upstream.tenant
        self.config = config
        self.assumptions = config.assumptions
        self._slots = slots
        self._rules = rules

    async def send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        fields: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        data: BodyFactory | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """One Artifi call; its `Data`, or the mapped problem raised.

        `fields` names, for each upstream parameter (lower case), where the caller gave its value,
        so that a rejection points at the caller's input.
        """
        upstream = self.upstream
        async with self._slots.slot(self.tenant, self.config.max_concurrency, upstream.deadline):
            # 400 comes back to us: Artifi sends validation failures as a bare ProblemDetails.
            response = await upstream.request(
                method,
                self.config.url(path),
                operation=operation,
                params=params,
                data=data,
                idempotent=idempotent,
                expect=(400,),
            )
        context = Context(
            tenant=self.tenant,
            operation=operation,
            assumptions=self.assumptions,
            fields=fields,
            scrub=lambda text: scrub(self.config, text),
        )
        return decode(response, context)

    async def rules(self) -> UploadRules:
        """The website's upload rules, from the tenant's cache while they are fresh."""

        async def fetch() -> UploadRules:
            # A read: safe to retry although Artifi makes it a POST.
            data = await self.send(
                "POST", SETTINGS_PATH, operation="GetImageSettings", fields={}, idempotent=True
            )
            try:
                return UploadRules.from_data(data, self.assumptions)
            except UnreadableSettings as exc:
                raise unexpected(str(exc)) from None

        return await self._rules.get(self.tenant, self.config.settings_ttl_s, fetch)

    def forget_rules(self) -> None:
        """The website refused a file that passed the cached rules: they may have changed."""
        self._rules.forget(self.tenant)


# --- the envelope ---------------------------------------------------------------------------


class ArtifiProblem(ProblemError):
    """A problem mapped from Artifi's error codes; `codes` lets an operation refine it."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        codes: Sequence[str],
        errors: Sequence[FieldError] = (),
    ) -> None:
        super().__init__(
            status, slug, title, detail, errors=errors, extra={"upstreamErrorCodes": list(codes)}
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
    if response.status == 400 and (envelope is None or "response" not in envelope):
        _raise_for_problem_details(envelope, context)
    if envelope is None:
        raise unexpected(f"with an answer that is not an envelope (HTTP {response.status})")
    outcome = envelope.get("response")
    if isinstance(outcome, str) and outcome.lower() == "success":
        return _unwrap(envelope.get("data"))
    if isinstance(outcome, str) and outcome.lower() == "error":
        raise _for_codes(_codes(envelope.get("errorcode")), _message(envelope, context), context)
    raise unexpected("with an envelope whose Response is neither Success nor Error")


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


def _for_codes(codes: tuple[str, ...], message: str, context: Context) -> ProblemError:
    rejected = [c for c in codes if c in CREDENTIAL_CODES]
    if rejected:
        # Operators must fix the tenant's configuration; the caller can do nothing about it.
        _log.error(
            "artifi.credentials_rejected",
            tenant=context.tenant,
            backend=NAME,
            operation=context.operation,
            codes=list(codes),
            message=message,
        )
        return ArtifiProblem(
            502,
            "upstream-credentials-rejected",
            "Upstream rejected the gateway's credentials",
            f"backend {NAME} rejected the gateway's credentials for this tenant "
            f"(error codes {', '.join(codes)}): its website_id or client_key is wrong",
            codes=codes,
        )
    for code in codes:
        if code in _VALIDATION:
            locations = [
                location
                for name, location in context.fields.items()
                if context.assumptions.code_of_field(name) == code
            ] or ["(unknown)"]
            note = f"{_VALIDATION[code]} (error {code})"
            return ArtifiProblem(
                422,
                "validation-failed",
                "Unprocessable content",
                f"{_VALIDATION[code]}" + (f": {message}" if message else ""),
                codes=codes,
                errors=[FieldError(location, note) for location in locations],
            )
    what = f"error code {', '.join(codes)}" if codes else "an error without a code"
    return ArtifiProblem(
        502,
        "upstream-error",
        "Upstream error",
        f"backend {NAME} answered with {what}" + (f": {message}" if message else ""),
        codes=codes,
    )


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
        raise ArtifiProblem(
            422,
            "validation-failed",
            "Unprocessable content",
            "; ".join(_VALIDATION[c] for c in codes),
            codes=codes,
            errors=[error for _, error in found],
        )
    title = folded.get("title")
    reason = _shorten(context.scrub(title)) if isinstance(title, str) else "no reason given"
    # A request the gateway built and Artifi refused: not something the caller can correct.
    raise ArtifiProblem(
        502,
        "upstream-error",
        "Upstream error",
        f"backend {NAME} refused the gateway's request (HTTP 400): {reason}",
        codes=(),
    )
