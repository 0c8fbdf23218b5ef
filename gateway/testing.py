"""The kit a backend's tests are built with: plain async context managers, no pytest needed.

- `sandbox_gateway(backend)`: the backend's simulator (its `gateway_sandbox()` hook's `Sandbox`)
  served on a local port, and a real gateway server in front of it with one tenant configured
  against it (the sandbox's `tenant_config`) and a fresh caller key. Every answer the gateway
  sends is checked against the contract it serves; a drift fails the block when it ends.
- `ContractCheck`: that check, for apps a test builds itself.
- `webhook_subscriber()`: a real local HTTP server that records each delivery and verifies its
  Standard Webhooks signature with the secrets of the subscriptions made for it (a delivery that
  does not verify is refused with a 401, and fails the block when it ends).

`gateway.plugin_api` re-exports all of it, so a plugin's tests import the plugin API only;
`gateway.pytest_plugin` offers the same as pytest fixtures (`start_gateway`, `subscriber`,
`contract_check`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import jsonschema_rs
import orjson
from aiohttp import hdrs, web
from aiohttp.test_utils import TestClient, TestServer, unused_port
from aiohttp.typedefs import Handler

from gateway.app import create_app
from gateway.backend import Sandbox
from gateway.contract import (
    Contract,
    ResponseTable,
    compile_responses,
    default_contract,
    response_problems,
)
from gateway.plugins import PluginHost
from gateway.problems import PROBLEM_CONTENT_TYPE
from gateway.settings import load_settings
from gateway.state import CALLBACKS, CONTRACT
from gateway.tenants import digest_key, new_key

__all__ = [
    "SANDBOX_TENANT",
    "ContractCheck",
    "Delivery",
    "SandboxGateway",
    "StartGateway",
    "WebhookSubscriber",
    "eventually",
    "problem_validator",
    "sandbox_gateway",
    "verify_webhook",
    "webhook_subscriber",
]

SANDBOX_TENANT = "sandbox"
# Standard Webhooks: a delivery whose timestamp is further off than this is refused.
WEBHOOK_TOLERANCE_S = 300.0

Client = TestClient[web.Request, web.Application]


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `condition()` holds (background work settles), failing after `within` s."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - polling state owned by the app under test
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"condition still false after {within} s") from None


# --- the contract check ------------------------------------------------------------------------


def problem_validator(contract: Contract | None = None) -> Any:
    """The contract's `Problem` schema, compiled (formats checked)."""
    components = (contract or default_contract()).document["components"]
    schema = {"$ref": "#/components/schemas/Problem", "components": components}
    return jsonschema_rs.validator_for(schema, validate_formats=True)


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


# --- webhook subscriber ------------------------------------------------------------------------


def verify_webhook(
    secrets: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> bool:
    """Whether a delivery carries a Standard Webhooks signature by one of `secrets` (`whsec_…`)
    and a timestamp within 5 minutes of `now`.

    Written from the specification rather than with the gateway's signing code, so that it checks
    that code instead of agreeing with it.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    if not message_id or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > WEBHOOK_TOLERANCE_S:
        return False
    signed = f"{message_id}.{timestamp}.".encode() + body
    given = [
        part.removeprefix("v1,")
        for part in lowered.get("webhook-signature", "").split()
        if part.startswith("v1,")
    ]
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, signature) for signature in given):
            return True
    return False


@attrs.frozen
class Delivery:
    """One request the subscriber received: headers (names lower-cased), body, and whether its
    signature verified."""

    headers: Mapping[str, str]
    body: bytes
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        """The event it carries, `{id, type, tenant, backend, occurredAt, data}`."""
        event: dict[str, Any] = orjson.loads(self.body)
        return event


@attrs.define
class WebhookSubscriber:
    """A subscriber endpoint: `url` to subscribe, `secrets` it verifies with (add each
    subscription's, as `SandboxGateway.subscribe` does), and every delivery it received."""

    url: str
    secrets: list[str] = attrs.field(factory=list, repr=False)
    deliveries: list[Delivery] = attrs.field(factory=list)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The events of the verified deliveries (of one type if given), in arrival order."""
        found = [d.event for d in self.deliveries if d.verified]
        return [e for e in found if event_type is None or e["type"] == event_type]

    async def wait_for(
        self, event_type: str | None = None, *, count: int = 1, within: float = 5.0
    ) -> list[dict[str, Any]]:
        """The verified events (of `event_type` if given), once at least `count` arrived."""
        await eventually(lambda: len(self.events(event_type)) >= count, within)
        return self.events(event_type)

    def assert_clean(self) -> None:
        refused = [d.headers.get("webhook-id") for d in self.deliveries if not d.verified]
        assert not refused, f"deliveries whose signature did not verify: {refused}"


@contextlib.asynccontextmanager
async def webhook_subscriber(*, host: str = "127.0.0.1") -> AsyncIterator[WebhookSubscriber]:
    """A subscriber served on a free local port: 204 to a verified delivery, 401 to any other.
    Fails when it stops if any delivery did not verify."""
    subscriber = WebhookSubscriber(url="")

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        verified = verify_webhook(subscriber.secrets, headers, body)
        subscriber.deliveries.append(Delivery(headers, body, verified))
        return web.Response(status=204 if verified else 401)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    server = TestServer(app, host=host)
    await server.start_server()
    try:
        subscriber.url = str(server.make_url("/hooks"))
        yield subscriber
    finally:
        await server.close()
    subscriber.assert_clean()


# --- a gateway in front of a backend's sandbox --------------------------------------------------


@attrs.frozen
class SandboxGateway:
    """A running gateway whose tenant `tenant` uses backend `backend`, upstream its simulator.

    `client` calls the gateway (paths relative, e.g. `/v1/backends`) over a real socket; `auth()`
    gives the tenant's caller key as headers. `sandbox_app` is the simulator's application, its
    state under the plugin's own `AppKey`; `contract` holds what the contract check saw.
    """

    backend: str
    tenant: str
    caller_key: str = attrs.field(repr=False)
    client: Client
    sandbox_url: str
    sandbox_app: web.Application
    contract: ContractCheck

    @property
    def url(self) -> str:
        """The gateway's base URL (also its `server.public_url`: callbacks come here)."""
        return str(self.client.make_url("")).rstrip("/")

    def auth(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.caller_key}", **extra}

    async def listing(self) -> dict[str, Any]:
        """This backend's entry in `GET /v1/backends`, as the tenant sees it."""
        response = await self.client.get("/v1/backends", headers=self.auth())
        assert response.status == 200, await response.text()
        items = (await response.json())["items"]
        found = [item for item in items if item["name"] == self.backend]
        assert found, f"{self.backend} is not in /v1/backends: {[i['name'] for i in items]}"
        entry: dict[str, Any] = found[0]
        return entry

    async def subscribe(
        self, subscriber: WebhookSubscriber, event_types: Sequence[str] = ("*",)
    ) -> dict[str, Any]:
        """Subscribe `subscriber` to `event_types` for the tenant; it verifies with the secret."""
        response = await self.client.post(
            "/v1/subscriptions",
            json={"url": subscriber.url, "eventTypes": list(event_types)},
            headers=self.auth(),
        )
        assert response.status == 201, await response.text()
        subscription: dict[str, Any] = await response.json()
        subscriber.secrets.append(subscription["secret"])
        return subscription


def find_sandbox(backend: str, plugins: Iterable[object] = ()) -> Sandbox:
    """The `Sandbox` backend `backend` offers, among the installed plugins and `plugins`."""
    host = PluginHost.build(extra=plugins)
    if backend not in host.backends:
        installed = ", ".join(sorted(host.backends)) or "none"
        raise LookupError(f"no backend is called {backend!r} (installed: {installed})")
    for sandbox in host.sandboxes():
        if sandbox.backend == backend:
            return sandbox
    raise LookupError(f"backend {backend!r} offers no sandbox (its gateway_sandbox hook)")


def _merged(base: dict[str, Any], sections: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    if "tenants" in sections:
        raise ValueError("the kit configures the tenant: pass tenant_config instead")
    return {**base, **{name: {**base.get(name, {}), **values} for name, values in sections.items()}}


@contextlib.asynccontextmanager
async def sandbox_gateway(
    backend: str,
    *,
    plugins: Iterable[object] = (),
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    tenant_config: Mapping[str, Any] | None = None,
    contract: ContractCheck | None = None,
) -> AsyncIterator[SandboxGateway]:
    """A gateway in front of `backend`'s sandbox, both served on free local ports.

    The backend comes from the installed plugins (entry points), or from `plugins` (plugin
    objects, as `create_app(extra_plugins=...)` takes them). `settings` overrides sections of the
    gateway's configuration (`{"upstream": {"max_attempts": 1}}`); `tenant_config` keys of the
    tenant's backend table (the sandbox's `tenant_config` gives the rest). The store is SQLite in
    a temporary folder. Start-up waits for callback registration to settle. Every answer is
    checked against the contract by `contract`, or by the gateway's own check, which fails the
    block when it ends; a `contract` passed in is the caller's to assert.
    """
    plugins = tuple(plugins)
    sandbox = find_sandbox(backend, plugins)
    check = contract if contract is not None else ContractCheck()
    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-kit-")))
        simulator = TestServer(sandbox.make_app(), host="127.0.0.1")
        await simulator.start_server()
        stack.push_async_callback(simulator.close)
        sandbox_url = str(simulator.make_url("")).rstrip("/")
        # The gateway's own port is chosen first: its public URL (for callbacks) names it.
        port = unused_port()
        key = new_key()
        base = {
            "store": {"url": f"sqlite:///{folder}/gateway.db"},
            "server": {"public_url": f"http://127.0.0.1:{port}"},
            "upstream": {"backoff_base": 0.001, "backoff_cap": 0.01},
            "tenants": [
                {
                    "id": SANDBOX_TENANT,
                    "keys": [digest_key(key)],
                    "backends": {
                        backend: {**sandbox.tenant_config(sandbox_url), **(tenant_config or {})}
                    },
                }
            ],
        }
        raw = _merged(base, settings or {})
        app = check.install(create_app(load_settings(raw), extra_plugins=plugins))
        client: Client = TestClient(TestServer(app, host="127.0.0.1", port=port))
        await client.start_server()
        stack.push_async_callback(client.close)
        registrar = app[CALLBACKS]
        await eventually(lambda: all(s.state != "pending" for s in registrar.states.values()))
        yield SandboxGateway(
            backend=backend,
            tenant=SANDBOX_TENANT,
            caller_key=key,
            client=client,
            sandbox_url=sandbox_url,
            sandbox_app=simulator.app,
            contract=check,
        )
    if contract is None:
        check.assert_clean()


class StartGateway(Protocol):
    """The `start_gateway` fixture: `sandbox_gateway`'s arguments, the gateway stopped (and the
    contract check asserted) when the test ends."""

    async def __call__(
        self,
        backend: str,
        *,
        plugins: Iterable[object] = (),
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        tenant_config: Mapping[str, Any] | None = None,
    ) -> SandboxGateway: ...
