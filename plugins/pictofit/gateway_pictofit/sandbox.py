"""A sandbox simulator of the PICTOFiT Content Service (API v1.5), as an aiohttp application.

The app root plays the role of the base URL (``https://api.cs.pictofit.com/v1.5``). It follows
``/work/shared/upstreams/PICTOFIT.md``: the documented calls, plus this project's assumed choices,
which are listed here so there is one place to read them:

Auth
- Every call except ``POST /connect/token``, result downloads (``GET /_files/results/{token}``)
  and the ``/_sandbox/*`` control endpoints needs ``Authorization: Bearer <key>``, where the key is
  one of ``settings.api_keys`` or a live token issued by ``/connect/token``. All keys and tokens
  belong to the single customer ``settings.customer_id``.
- ``POST /connect/token`` takes a multipart or urlencoded form and answers the usual OAuth2 JSON
  ``{access_token, expires_in, token_type: "Bearer"}``. Errors are 400 with ``{"error": ...}``:
  ``invalid_client`` (client_id / client_secret), ``invalid_grant`` (grant_type, username,
  password), ``invalid_scope`` (scope must be exactly the set ``openid contentserviceapi``).
  Tokens expire after ``token_lifetime_s`` (monotonic clock); an expired token gets 401.

Errors (the format is not documented)
- Every error is JSON ``{"message": "..."}``; validation errors (400) add
  ``"errors": {field: [message, ...]}``. 401 adds ``WWW-Authenticate: Bearer``.
- A body that references a missing object (the product of a configuration, the configuration of a
  file) is a 400 validation error; a missing object in the path is 404. A customer id in the path
  other than the caller's is 403. Unknown routes are 404, a wrong method 405.
- A file part whose Content-Type is not image/png or image/jpeg is 415; content whose magic bytes do
  not match the declared type is 400; a file over 60 MB is 413.

Ids, names and states
- Product types: 1 GARMENT_2D, 2 GARMENT_3D, 3 AVATAR_2D, 4 GARMENT (old name). File types:
  1 FRONTAL, 2 REFERENCE_ADDITIONAL. Callback types: 1 PRODUCT_COMPLETED, 2 PRODUCT_REJECTED.
- States: 1 created, 2 ready, 3 in progress, 4 finished, 5 rejected.
- Product and configuration ids must be UUID version 4; file ids any UUID. Ids are answered in
  canonical lower-case form. Timestamps are epoch float seconds, like the doc example.
- ``PUT`` upserts: 201 when created, 200 when replaced (``createdAt`` and the state are kept).
  ``POST /files`` is idempotent by id: 201 the first time, 200 when it replaces the file.
- Literal path segments are matched case-insensitively (the service is case-insensitive, the doc
  prints ``/Customer/callbacks/types``); ``/customer(s)/callbacks/types`` both work.

Processing
- ``POST /configurations/{id}/ready`` answers 200 with the configuration: the state goes 2 then at
  once 3; after ``processing_delay_s`` it becomes 4 (finished) when the configuration has at least
  one FRONTAL file at that moment, else 5 (rejected, no results). Flagging a configuration that is
  ready, in progress or finished again changes nothing; a rejected one is processed again.
- A finished configuration has four results: formats MOBILE and WEB, each compressed and
  uncompressed, as ``{format, compressed, url, fileName}``. The url is an absolute URL of this
  sandbox with an unguessable token, served without auth as application/octet-stream; the bytes
  are ``sandbox_result_bytes(configuration_id, format, compressed)`` (deterministic, 64-256 KiB).
  File names end in the product type's extension (.garment, .gm3d, .avatar). Download tokens
  live in ``state.result_files``: remove entries to simulate expired upstream URLs (404).

Callbacks
- Registration (``PUT /customers/{customerId}/callbacks/{callbackTypeId}``) takes the numeric id or
  the name, answers 200 with ``{customerId, callbackTypeId, name, url, registered}`` (never the
  authorization value); an empty ``url`` unregisters.
- When every configuration of a product is 4 or 5 (so each was flagged ready), the product's
  callback fires once: PRODUCT_COMPLETED if at least one configuration finished, else
  PRODUCT_REJECTED. Reprocessing a rejected configuration fires again when it completes.
- Delivery: ``POST url + objectId`` (the product id), empty body, ``Authorization:
  <authorizationHeaderValue>`` only when that value is non-empty, ``callback_timeout_s`` total
  timeout, one attempt, no retries; each attempt is recorded in ``state.callbacks_sent``.
- ``POST .../trigger/{id}`` delivers at once and answers 200 ``{callbackType, objectId, sent}``,
  ``sent`` being the recorded attempt or null when nothing is registered.

Sandbox control (no auth, never faulted, not recorded in ``state.requests``)
- ``POST /_sandbox/faults`` with JSON fields of ``Faults`` (partial update) answers the faults;
  ``GET /_sandbox/state`` answers a JSON summary.
- Faults apply to every other request, in this order: latency, then drop (close the connection
  without an answer), then 429 with ``Retry-After`` (``throttle_remaining``), then 503
  (``fail_next``), then 500 (``error_rate``). Random draws come from ``random.Random(seed)`` and
  are taken only when the rate is above zero. Note that aiohttp's client retries an idempotent
  request once when a reused connection is dropped, so one client call may show as two requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any, Final

import aiohttp
import attrs
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from yarl import URL

__all__ = [
    "CALLBACK_TYPES",
    "FILE_TYPES",
    "PRODUCT_TYPES",
    "RESULT_FORMATS",
    "SANDBOX_STATE",
    "STATE_CREATED",
    "STATE_FINISHED",
    "STATE_IN_PROGRESS",
    "STATE_READY",
    "STATE_REJECTED",
    "Faults",
    "IssuedToken",
    "PictofitSandboxSettings",
    "PictofitSandboxState",
    "RecordedRequest",
    "ResultEntry",
    "ResultFile",
    "SandboxConfiguration",
    "SandboxProduct",
    "SentCallback",
    "StateTransition",
    "StoredFile",
    "create_sandbox_app",
    "sandbox_result_bytes",
]

JSON = dict[str, Any]

PRODUCT_TYPES: Final[Mapping[int, str]] = {
    1: "GARMENT_2D",
    2: "GARMENT_3D",
    3: "AVATAR_2D",
    4: "GARMENT",
}
FILE_TYPES: Final[Mapping[int, str]] = {1: "FRONTAL", 2: "REFERENCE_ADDITIONAL"}
CALLBACK_TYPES: Final[Mapping[int, str]] = {1: "PRODUCT_COMPLETED", 2: "PRODUCT_REJECTED"}
_RESULT_EXTENSIONS: Final[Mapping[int, str]] = {
    1: ".garment",
    2: ".gm3d",
    3: ".avatar",
    4: ".garment",
}
RESULT_FORMATS: Final = ("MOBILE", "WEB")

STATE_CREATED: Final = 1
STATE_READY: Final = 2
STATE_IN_PROGRESS: Final = 3
STATE_FINISHED: Final = 4
STATE_REJECTED: Final = 5

_FRONTAL_ID: Final = 1
_CLIENT_ID: Final = "contentserviceapi.service.client"
_SCOPES: Final = frozenset({"openid", "contentserviceapi"})
_MAX_FILE_BYTES: Final = 60 * 1024 * 1024
_MAX_FIELD_BYTES: Final = 64 * 1024
_DOWNLOAD_CHUNK: Final = 64 * 1024
_ALLOWED_IMAGE_TYPES: Final = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
# Routes that need no Bearer token (by route name).
_PUBLIC_ROUTES: Final = frozenset({"connect-token", "result-file"})
_CONTROL_SEGMENT: Final = "_sandbox"


def _default_token_users() -> Mapping[str, str]:
    return {"sandbox-user": "sandbox-password"}


@attrs.frozen
class PictofitSandboxSettings:
    """How the sandbox behaves; every field has a default that works out of the box."""

    api_keys: frozenset[str] = frozenset({"sandbox-pictofit-key"})
    customer_id: str = "00000000-0000-4000-8000-000000000001"
    # Mutable mapping type for convenience; eq/hash ignore it so the settings stay hashable.
    token_users: Mapping[str, str] = attrs.field(factory=_default_token_users, eq=False, hash=False)
    client_secret: str = "sandbox-client-secret"  # noqa: S105 - a well-known sandbox default
    token_lifetime_s: int = 3600
    processing_delay_s: float = 0.2
    callback_timeout_s: float = 5.0
    seed: int = 0


def _rate(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1]")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


@attrs.define
class Faults:
    """Fault knobs, mutable at run time; validated on every assignment."""

    latency_s: float = attrs.field(default=0.0, validator=_non_negative)
    error_rate: float = attrs.field(default=0.0, validator=_rate)
    drop_rate: float = attrs.field(default=0.0, validator=_rate)
    throttle_remaining: int = attrs.field(default=0, validator=_non_negative)
    throttle_retry_after: int = attrs.field(default=1, validator=_non_negative)
    fail_next: int = attrs.field(default=0, validator=_non_negative)


_FAULT_FIELD_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "latency_s": (int, float),
    "error_rate": (int, float),
    "drop_rate": (int, float),
    "throttle_remaining": (int,),
    "throttle_retry_after": (int,),
    "fail_next": (int,),
}


@attrs.frozen
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@attrs.frozen
class SentCallback:
    """One delivery attempt: ``status`` when the receiver answered, else ``error``."""

    callback_type: str
    object_id: str
    url: str
    authorization: str | None
    status: int | None
    error: str | None
    source: str  # "processing" or "trigger"

    def to_json(self) -> JSON:
        return {
            "callbackType": self.callback_type,
            "objectId": self.object_id,
            "url": self.url,
            "authorization": self.authorization,
            "status": self.status,
            "error": self.error,
            "source": self.source,
        }


@attrs.frozen
class IssuedToken:
    access_token: str
    username: str
    expires_at: float  # time.monotonic() based


@attrs.frozen
class CallbackRegistration:
    url: str
    authorization_header_value: str


@attrs.frozen
class SandboxProduct:
    id: str
    customer_id: str
    name: str
    type_id: int
    sku: str | None
    created_at: float
    modified_at: float

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "customerId": self.customer_id,
            "name": self.name,
            "typeId": self.type_id,
            "sku": self.sku,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
        }


@attrs.frozen
class ResultEntry:
    format: str
    compressed: bool
    url: str
    file_name: str

    def to_json(self) -> JSON:
        return {
            "format": self.format,
            "compressed": self.compressed,
            "url": self.url,
            "fileName": self.file_name,
        }


@attrs.frozen
class SandboxConfiguration:
    id: str
    product_id: str
    name: str
    sku: str | None
    created_at: float
    modified_at: float
    state_id: int = STATE_CREATED
    results: tuple[ResultEntry, ...] = ()


@attrs.frozen
class StoredFile:
    id: str
    name: str
    configuration_id: str
    type_id: int
    content_type: str
    data: bytes = attrs.field(repr=False)

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "configurationId": self.configuration_id,
            "typeId": self.type_id,
            "contentType": self.content_type,
            "size": len(self.data),
        }


@attrs.frozen
class ResultFile:
    """What a download token serves; the bytes are derived, not stored."""

    token: str
    configuration_id: str
    format: str
    compressed: bool
    file_name: str


@attrs.frozen
class StateTransition:
    configuration_id: str
    state_id: int
    at: float


def sandbox_result_bytes(configuration_id: str, fmt: str, compressed: bool) -> bytes:
    """The deterministic content of one result file (64-256 KiB), for byte-for-byte checks."""
    variant = "compressed" if compressed else "uncompressed"
    seed = f"{configuration_id}|{fmt}|{variant}".encode()
    pick = int.from_bytes(hashlib.sha256(seed).digest()[:4], "big")
    # Compressed results are smaller, as they would be upstream.
    size = 64 * 1024 + pick % (64 * 1024) if compressed else 160 * 1024 + pick % (96 * 1024)
    header = f"PICTOFIT SANDBOX RESULT {configuration_id} {fmt} {variant}\n".encode()
    return header + hashlib.shake_256(seed).digest(size - len(header))


class PictofitSandboxState:
    """Everything the simulator knows; tests read and steer it through ``app[SANDBOX_STATE]``."""

    def __init__(self, settings: PictofitSandboxSettings) -> None:
        self.settings = settings
        self.customer_id = _canonical_uuid(settings.customer_id) or settings.customer_id.lower()
        self.products: dict[str, SandboxProduct] = {}
        self.configurations: dict[str, SandboxConfiguration] = {}
        self.files: dict[str, StoredFile] = {}
        # (customer_id, callback type name) -> registration
        self.callbacks: dict[tuple[str, str], CallbackRegistration] = {}
        self.requests: list[RecordedRequest] = []
        self.callbacks_sent: list[SentCallback] = []
        self.tokens: dict[str, IssuedToken] = {}
        self.result_files: dict[str, ResultFile] = {}
        self.transitions: list[StateTransition] = []
        self.faults = Faults()
        self.rng = random.Random(settings.seed)
        self.tasks: set[asyncio.Task[None]] = set()
        self.http: aiohttp.ClientSession | None = None

    def is_authorized(self, bearer: str) -> bool:
        if bearer in self.settings.api_keys:
            return True
        token = self.tokens.get(bearer)
        return token is not None and time.monotonic() < token.expires_at

    def expire_token(self, access_token: str) -> None:
        """Make an issued token expired now (for tests of refresh logic)."""
        self.tokens[access_token] = attrs.evolve(self.tokens[access_token], expires_at=0.0)

    def configurations_of(self, product_id: str) -> list[SandboxConfiguration]:
        return [c for c in self.configurations.values() if c.product_id == product_id]

    def set_state(self, configuration: SandboxConfiguration, state_id: int) -> SandboxConfiguration:
        updated = attrs.evolve(configuration, state_id=state_id, modified_at=time.time())
        self.configurations[updated.id] = updated
        self.transitions.append(StateTransition(updated.id, state_id, updated.modified_at))
        return updated

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a background job that app cleanup cancels."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def deliver_callback(
        self, callback_type: str, object_id: str, source: str
    ) -> SentCallback | None:
        """POST the registered callback of this type for object_id; None when unregistered."""
        registration = self.callbacks.get((self.customer_id, callback_type))
        if registration is None:
            return None
        if self.http is None:
            raise RuntimeError("the sandbox app is not running (no callback session)")
        url = registration.url + object_id
        authorization = registration.authorization_header_value or None
        headers = {hdrs.AUTHORIZATION: authorization} if authorization else {}
        status: int | None = None
        error: str | None = None
        try:
            async with self.http.post(
                url,
                data=b"",
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.settings.callback_timeout_s),
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        sent = SentCallback(callback_type, object_id, url, authorization, status, error, source)
        self.callbacks_sent.append(sent)
        return sent

    def configuration_json(self, configuration: SandboxConfiguration) -> JSON:
        product = self.products.get(configuration.product_id)
        return {
            "productId": configuration.product_id,
            "name": configuration.name,
            "sku": configuration.sku,
            "createdAt": configuration.created_at,
            "modifiedAt": configuration.modified_at,
            "stateId": configuration.state_id,
            "productTypeId": product.type_id if product else None,
            "customerId": product.customer_id if product else self.customer_id,
            "url": None,
            "results": [r.to_json() for r in configuration.results],
            "metadata": {},
            "id": configuration.id,
        }

    def summary(self) -> JSON:
        now = time.monotonic()
        return {
            "customerId": self.customer_id,
            "products": {
                p.id: {"name": p.name, "typeId": p.type_id} for p in self.products.values()
            },
            "configurations": {
                c.id: {"productId": c.product_id, "stateId": c.state_id}
                for c in self.configurations.values()
            },
            "files": len(self.files),
            "callbacks": {name: reg.url for (_, name), reg in self.callbacks.items()},
            "callbacksSent": [c.to_json() for c in self.callbacks_sent],
            "requests": len(self.requests),
            "liveTokens": sum(1 for t in self.tokens.values() if t.expires_at > now),
            "pendingTasks": len(self.tasks),
            "faults": attrs.asdict(self.faults),
        }


SANDBOX_STATE: Final = web.AppKey("pictofit_sandbox_state", PictofitSandboxState)


class _Problem(Exception):
    """An error answer, raised anywhere below the error middleware."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers


def _error_response(
    status: int,
    message: str,
    errors: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body: JSON = {"message": message}
    if errors:
        body["errors"] = dict(errors)
    return web.json_response(body, status=status, headers=headers)


def _canonical_uuid(value: object, *, version: int | None = None) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    if version is not None and parsed.version != version:
        return None
    return str(parsed)


def _is_control(request: web.Request) -> bool:
    return _CONTROL_SEGMENT in request.path.split("/")


def _ci(path: str) -> str:
    """Make each literal segment of a route match case-insensitively."""
    parts = []
    for index, segment in enumerate(path.split("/")):
        if segment and not segment.startswith("{"):
            segment = f"{{_seg{index}:(?i:{segment})}}"
        parts.append(segment)
    return "/".join(parts)


async def _json_object(request: web.Request) -> JSON:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        raise _Problem(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _Problem(400, "the body must be a JSON object")
    return body


def _optional_str(body: JSON, key: str, errors: dict[str, list[str]]) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        errors.setdefault(key, []).append(f"{key} must be a string or null")
        return None
    return value


def _required_name(body: JSON, errors: dict[str, list[str]]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.setdefault("name", []).append("name must be a non-empty string")
        return ""
    return name


async def _read_part(part: aiohttp.BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > limit:
            raise _Problem(413, f"part {part.name!r} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class _Sandbox:
    """The handlers and middlewares, bound to one state."""

    def __init__(self, app: web.Application, state: PictofitSandboxState) -> None:
        self.app = app
        self.state = state
        self.settings = state.settings

    # --- middlewares (outermost first) ---------------------------------------------------------

    @web.middleware
    async def record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _is_control(request):
            self.state.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=dict(request.headers),
                )
            )
        return await handler(request)

    @web.middleware
    async def faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if _is_control(request):
            return await handler(request)
        faults, rng = self.state.faults, self.state.rng
        if faults.latency_s > 0:
            await asyncio.sleep(faults.latency_s)
        if faults.drop_rate > 0 and rng.random() < faults.drop_rate:
            if request.transport is not None:
                request.transport.close()
            # Never reaches the client: writing to the closed transport is a no-op.
            return web.Response(status=500)
        if faults.throttle_remaining > 0:
            faults.throttle_remaining -= 1
            return _error_response(
                429,
                "too many requests (sandbox fault)",
                headers={hdrs.RETRY_AFTER: str(faults.throttle_retry_after)},
            )
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return _error_response(503, "service unavailable (sandbox fault)")
        if faults.error_rate > 0 and rng.random() < faults.error_rate:
            return _error_response(500, "internal server error (sandbox fault)")
        return await handler(request)

    @web.middleware
    async def errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        unmatched = request.match_info.http_exception
        if unmatched is not None:
            headers: dict[str, str] = {}
            if isinstance(unmatched, web.HTTPMethodNotAllowed):
                headers[hdrs.ALLOW] = ",".join(sorted(unmatched.allowed_methods))
            return _error_response(unmatched.status, unmatched.reason, headers=headers)
        try:
            return await handler(request)
        except _Problem as problem:
            return _error_response(problem.status, problem.message, problem.errors, problem.headers)
        except web.HTTPClientError as exc:
            # aiohttp's own refusals (e.g. a body over client_max_size) also answer JSON.
            return _error_response(exc.status, exc.reason)

    @web.middleware
    async def auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route.name in _PUBLIC_ROUTES or _is_control(request):
            return await handler(request)
        scheme, _, credential = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        challenge: dict[str, str] = {hdrs.WWW_AUTHENTICATE: "Bearer"}
        if scheme.lower() != "bearer" or not credential.strip():
            raise _Problem(401, "missing Bearer credentials", headers=challenge)
        if not self.state.is_authorized(credential.strip()):
            raise _Problem(401, "invalid or expired credentials", headers=challenge)
        return await handler(request)

    # --- auth ---------------------------------------------------------------------------------

    async def connect_token(self, request: web.Request) -> web.Response:
        form = await request.post()

        def field(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        def oauth_error(error: str) -> web.Response:
            return web.json_response({"error": error}, status=400)

        if field("client_id") != _CLIENT_ID or not secrets.compare_digest(
            field("client_secret"), self.settings.client_secret
        ):
            return oauth_error("invalid_client")
        if field("grant_type") != "password":
            return oauth_error("invalid_grant")
        expected = self.settings.token_users.get(field("username"))
        if expected is None or not secrets.compare_digest(field("password"), expected):
            return oauth_error("invalid_grant")
        if frozenset(field("scope").split()) != _SCOPES:
            return oauth_error("invalid_scope")
        access_token = secrets.token_urlsafe(32)
        lifetime = self.settings.token_lifetime_s
        self.state.tokens[access_token] = IssuedToken(
            access_token, field("username"), time.monotonic() + lifetime
        )
        return web.json_response(
            {"access_token": access_token, "expires_in": lifetime, "token_type": "Bearer"}
        )

    # --- types --------------------------------------------------------------------------------

    async def product_types(self, request: web.Request) -> web.Response:
        return web.json_response([{"id": k, "name": v} for k, v in PRODUCT_TYPES.items()])

    async def file_types(self, request: web.Request) -> web.Response:
        return web.json_response([{"id": k, "name": v} for k, v in FILE_TYPES.items()])

    async def callback_types(self, request: web.Request) -> web.Response:
        return web.json_response([{"id": k, "name": v} for k, v in CALLBACK_TYPES.items()])

    # --- products and configurations ----------------------------------------------------------

    async def put_product(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        errors: dict[str, list[str]] = {}
        product_id = _canonical_uuid(request.match_info["product_id"], version=4)
        if product_id is None:
            errors["id"] = ["the product id must be a UUID version 4"]
        customer = _canonical_uuid(body.get("customerId"))
        if customer != self.state.customer_id:
            errors["customerId"] = ["customerId must be the caller's customer id"]
        name = _required_name(body, errors)
        type_id = body.get("typeId")
        if (
            isinstance(type_id, bool)
            or not isinstance(type_id, int)
            or type_id not in PRODUCT_TYPES
        ):
            errors["typeId"] = [f"typeId must be one of {sorted(PRODUCT_TYPES)}"]
        sku = _optional_str(body, "sku", errors)
        if errors or product_id is None or customer is None or not isinstance(type_id, int):
            raise _Problem(400, "the product is invalid", errors)
        now = time.time()
        existing = self.state.products.get(product_id)
        product = SandboxProduct(
            id=product_id,
            customer_id=customer,
            name=name,
            type_id=type_id,
            sku=sku,
            created_at=existing.created_at if existing else now,
            modified_at=now,
        )
        self.state.products[product_id] = product
        return web.json_response(product.to_json(), status=200 if existing else 201)

    async def put_configuration(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        errors: dict[str, list[str]] = {}
        configuration_id = _canonical_uuid(request.match_info["configuration_id"], version=4)
        if configuration_id is None:
            errors["id"] = ["the configuration id must be a UUID version 4"]
        product_id = _canonical_uuid(body.get("productId"))
        if product_id is None or product_id not in self.state.products:
            errors["productId"] = ["productId must name an existing product"]
        name = _required_name(body, errors)
        sku = _optional_str(body, "sku", errors)
        if errors or configuration_id is None or product_id is None:
            raise _Problem(400, "the configuration is invalid", errors)
        now = time.time()
        existing = self.state.configurations.get(configuration_id)
        if existing is None:
            configuration = SandboxConfiguration(configuration_id, product_id, name, sku, now, now)
            self.state.transitions.append(StateTransition(configuration_id, STATE_CREATED, now))
        else:
            configuration = attrs.evolve(
                existing, product_id=product_id, name=name, sku=sku, modified_at=now
            )
        self.state.configurations[configuration_id] = configuration
        return web.json_response(
            self.state.configuration_json(configuration), status=200 if existing else 201
        )

    async def product_configurations(self, request: web.Request) -> web.Response:
        product_id = _canonical_uuid(request.match_info["product_id"])
        if product_id is None or product_id not in self.state.products:
            raise _Problem(404, "no such product")
        return web.json_response(
            [self.state.configuration_json(c) for c in self.state.configurations_of(product_id)]
        )

    # --- files --------------------------------------------------------------------------------

    async def post_file(self, request: web.Request) -> web.Response:
        if request.content_type != "multipart/form-data":
            raise _Problem(415, "the body must be multipart/form-data")
        fields: dict[str, str] = {}
        data: bytes | None = None
        declared_type = ""
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, aiohttp.BodyPartReader):
                raise _Problem(400, "nested multipart bodies are not supported")
            if part.name == "file":
                declared_type = part.headers.get(hdrs.CONTENT_TYPE, "").split(";")[0]
                declared_type = declared_type.strip().lower()
                if declared_type not in _ALLOWED_IMAGE_TYPES:
                    raise _Problem(415, "the file must be image/png or image/jpeg")
                data = await _read_part(part, _MAX_FILE_BYTES)
            elif part.name:
                raw = await _read_part(part, _MAX_FIELD_BYTES)
                fields[part.name] = raw.decode("utf-8", errors="replace")
        errors: dict[str, list[str]] = {}
        if data is None:
            errors["file"] = ["a file part is required"]
        elif not data.startswith(_ALLOWED_IMAGE_TYPES[declared_type]):
            errors["file"] = [f"the content is not {declared_type}"]
        file_id = _canonical_uuid(fields.get("id"))
        if file_id is None:
            errors["id"] = ["id must be a UUID"]
        name = fields.get("name", "")
        if not name.strip():
            errors["name"] = ["name must be non-empty"]
        configuration_id = _canonical_uuid(fields.get("configurationId"))
        if configuration_id is None or configuration_id not in self.state.configurations:
            errors["configurationId"] = ["configurationId must name an existing configuration"]
        type_text = fields.get("typeId", "").strip()
        type_id = int(type_text) if type_text.isdigit() else None
        if type_id not in FILE_TYPES:
            errors["typeId"] = [f"typeId must be one of {sorted(FILE_TYPES)}"]
        if errors or data is None or file_id is None or configuration_id is None or not type_id:
            raise _Problem(400, "the file is invalid", errors)
        existing = file_id in self.state.files
        stored = StoredFile(file_id, name, configuration_id, type_id, declared_type, data)
        self.state.files[file_id] = stored
        return web.json_response(stored.to_json(), status=200 if existing else 201)

    # --- processing ---------------------------------------------------------------------------

    async def ready(self, request: web.Request) -> web.Response:
        configuration_id = _canonical_uuid(request.match_info["configuration_id"])
        configuration = self.state.configurations.get(configuration_id or "")
        if configuration is None:
            raise _Problem(404, "no such configuration")
        if configuration.state_id in (STATE_CREATED, STATE_REJECTED):
            configuration = self.state.set_state(
                attrs.evolve(configuration, results=()), STATE_READY
            )
            configuration = self.state.set_state(configuration, STATE_IN_PROGRESS)
            self.state.spawn(self._process(configuration.id, request.url.origin()))
        return web.json_response(self.state.configuration_json(configuration))

    async def _process(self, configuration_id: str, origin: URL) -> None:
        await asyncio.sleep(self.settings.processing_delay_s)
        state = self.state
        configuration = state.configurations.get(configuration_id)
        if configuration is None or configuration.state_id != STATE_IN_PROGRESS:
            return
        has_frontal = any(
            f.configuration_id == configuration_id and f.type_id == _FRONTAL_ID
            for f in state.files.values()
        )
        if has_frontal:
            configuration = attrs.evolve(
                configuration, results=self._make_results(configuration, origin)
            )
            state.set_state(configuration, STATE_FINISHED)
        else:
            state.set_state(configuration, STATE_REJECTED)
        siblings = state.configurations_of(configuration.product_id)
        if all(c.state_id in (STATE_FINISHED, STATE_REJECTED) for c in siblings):
            finished = any(c.state_id == STATE_FINISHED for c in siblings)
            callback = "PRODUCT_COMPLETED" if finished else "PRODUCT_REJECTED"
            await state.deliver_callback(callback, configuration.product_id, "processing")

    def _make_results(
        self, configuration: SandboxConfiguration, origin: URL
    ) -> tuple[ResultEntry, ...]:
        product = self.state.products.get(configuration.product_id)
        extension = _RESULT_EXTENSIONS.get(product.type_id if product else 1, ".garment")
        entries = []
        for fmt in RESULT_FORMATS:
            for compressed in (True, False):
                token = secrets.token_urlsafe(24)
                suffix = "_compressed" if compressed else ""
                file_name = f"{configuration.id}_{fmt.lower()}{suffix}{extension}"
                self.state.result_files[token] = ResultFile(
                    token, configuration.id, fmt, compressed, file_name
                )
                path = self.app.router["result-file"].url_for(token=token)
                entries.append(ResultEntry(fmt, compressed, str(origin.join(path)), file_name))
        return tuple(entries)

    async def result_file(self, request: web.Request) -> web.StreamResponse:
        result = self.state.result_files.get(request.match_info["token"])
        if result is None:
            raise _Problem(404, "no such result file (it may have expired)")
        content = sandbox_result_bytes(result.configuration_id, result.format, result.compressed)
        response = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: "application/octet-stream",
                hdrs.CONTENT_DISPOSITION: f'attachment; filename="{result.file_name}"',
            }
        )
        response.content_length = len(content)
        await response.prepare(request)
        if request.method != hdrs.METH_HEAD:
            view = memoryview(content)
            for offset in range(0, len(content), _DOWNLOAD_CHUNK):
                await response.write(view[offset : offset + _DOWNLOAD_CHUNK])
        await response.write_eof()
        return response

    # --- callbacks ----------------------------------------------------------------------------

    def _own_customer(self, request: web.Request) -> str:
        customer = _canonical_uuid(request.match_info["customer_id"])
        if customer != self.state.customer_id:
            raise _Problem(403, "the customer id is not the caller's")
        return customer

    @staticmethod
    def _callback_name(raw: str) -> tuple[int, str]:
        for type_id, name in CALLBACK_TYPES.items():
            if raw == str(type_id) or raw.upper() == name:
                return type_id, name
        raise _Problem(404, f"unknown callback type {raw!r}")

    async def put_callback(self, request: web.Request) -> web.Response:
        customer = self._own_customer(request)
        type_id, name = self._callback_name(request.match_info["callback_type"])
        body = await _json_object(request)
        errors: dict[str, list[str]] = {}
        url = body.get("url")
        if url is None:
            url = ""
        if not isinstance(url, str):
            errors["url"] = ["url must be a string"]
        elif url and (URL(url).scheme not in ("http", "https") or not URL(url).host):
            errors["url"] = ["url must be an absolute http(s) URL or empty"]
        authorization = _optional_str(body, "authorizationHeaderValue", errors) or ""
        if errors or not isinstance(url, str):
            raise _Problem(400, "the callback is invalid", errors)
        if url:
            self.state.callbacks[(customer, name)] = CallbackRegistration(url, authorization)
        else:
            self.state.callbacks.pop((customer, name), None)
        return web.json_response(
            {
                "customerId": customer,
                "callbackTypeId": type_id,
                "name": name,
                "url": url,
                "registered": bool(url),
            }
        )

    async def trigger_callback(self, request: web.Request) -> web.Response:
        self._own_customer(request)
        _, name = self._callback_name(request.match_info["callback_type"])
        object_id = request.match_info["object_id"]
        sent = await self.state.deliver_callback(name, object_id, "trigger")
        return web.json_response(
            {"callbackType": name, "objectId": object_id, "sent": sent.to_json() if sent else None}
        )

    # --- sandbox control ----------------------------------------------------------------------

    async def post_faults(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        errors: dict[str, list[str]] = {}
        for key, value in body.items():
            types = _FAULT_FIELD_TYPES.get(key)
            if types is None:
                errors[key] = ["unknown fault knob"]
            elif isinstance(value, bool) or not isinstance(value, types):
                errors[key] = [f"must be of type {' or '.join(t.__name__ for t in types)}"]
        if errors:
            raise _Problem(400, "invalid faults", errors)
        try:
            updated = attrs.evolve(self.state.faults, **body)
        except ValueError as exc:
            raise _Problem(400, str(exc)) from None
        # Update in place: tests may hold a reference to state.faults.
        for key in body:
            setattr(self.state.faults, key, getattr(updated, key))
        return web.json_response(attrs.asdict(self.state.faults))

    async def get_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.summary())

    # --- wiring -------------------------------------------------------------------------------

    def add_routes(self) -> None:
        router = self.app.router
        router.add_post("/connect/token", self.connect_token, name="connect-token")
        router.add_get(_ci("/products/types"), self.product_types)
        router.add_get(_ci("/files/types"), self.file_types)
        # The doc prints /Customer/callbacks/types; accept customer and customers in any case.
        callback_types = "/{_seg1:(?i:customers?)}/{_seg2:(?i:callbacks)}/{_seg3:(?i:types)}"
        router.add_get(callback_types, self.callback_types)
        router.add_put(_ci("/products/{product_id}"), self.put_product)
        router.add_get(_ci("/products/{product_id}/configurations"), self.product_configurations)
        router.add_put(_ci("/configurations/{configuration_id}"), self.put_configuration)
        router.add_post(_ci("/configurations/{configuration_id}/ready"), self.ready)
        router.add_post(_ci("/files"), self.post_file)
        router.add_put(_ci("/customers/{customer_id}/callbacks/{callback_type}"), self.put_callback)
        router.add_post(
            _ci("/customers/{customer_id}/callbacks/{callback_type}/trigger/{object_id}"),
            self.trigger_callback,
        )
        router.add_get("/_files/results/{token}", self.result_file, name="result-file")
        router.add_post("/_sandbox/faults", self.post_faults, name="sandbox-faults")
        router.add_get("/_sandbox/state", self.get_state, name="sandbox-state")


def create_sandbox_app(settings: PictofitSandboxSettings | None = None) -> web.Application:
    """Build the simulator; its state is ``app[SANDBOX_STATE]``."""
    state = PictofitSandboxState(settings or PictofitSandboxSettings())
    app = web.Application()
    sandbox = _Sandbox(app, state)
    app.middlewares.extend([sandbox.record, sandbox.faults, sandbox.errors, sandbox.auth])
    app[SANDBOX_STATE] = state
    sandbox.add_routes()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # One session for every callback delivery; background jobs end with the app.
        state.http = aiohttp.ClientSession(headers={hdrs.USER_AGENT: "pictofit-sandbox"})
        try:
            yield
        finally:
            tasks = list(state.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await state.http.close()
            state.http = None

    app.cleanup_ctx.append(lifecycle)
    return app
