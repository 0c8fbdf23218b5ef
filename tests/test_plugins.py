"""The plugin host: load order, backends as objects, and every hook and method tested and
documented."""

from __future__ import annotations

import inspect
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from gateway import hookspecs
from gateway.app import create_app
from gateway.config_loading import load_settings
from gateway.plugin_api import Backend, CredentialsRequest, Event, SendOutcome, Sink, hookimpl
from gateway.plugins import PluginError, PluginHost
from gateway.state import BACKENDS, STORE, TENANTS
from tests.acme_backend import AcmeBackend, AcmeConfig, AcmePlugin
from tests.conftest import CALLBACK_SECRET_A, Gateway, eventually

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("gateway_"))
# What the core calls on a backend object.
METHODS = ("credentials", "operation", "callback", "register_callbacks", "aclose")


def test_hooks_are_prefixed_typed_and_documented() -> None:
    """Every hookspec is `gateway_`-prefixed, fully annotated and has a docstring."""
    assert HOOKS
    for name in HOOKS:
        spec = getattr(hookspecs, name)
        signature = inspect.signature(spec)
        assert spec.__doc__, name
        assert len(spec.__doc__.strip()) > 40, name
        assert signature.return_annotation is not inspect.Signature.empty, name
        for param in signature.parameters.values():
            assert param.annotation is not inspect.Parameter.empty, f"{name}.{param.name}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    """As datasette does: a test named after each hook exists somewhere in the suite."""
    pattern = re.compile(rf"def test_hook_{hook}")
    assert any(pattern.search(p.read_text()) for p in Path(__file__).parent.rglob("test_*.py"))


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_in_the_readme(hook: str) -> None:
    """The README's plugin guide names every hook."""
    assert f"`{hook}`" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("method", METHODS)
def test_every_backend_method_is_documented_and_tested(method: str) -> None:
    """Each method the core calls on a backend has a docstring, a test named after it, and a
    place in the README's plugin guide."""
    assert (getattr(Backend, method).__doc__ or "").strip(), method
    pattern = re.compile(rf"def test_backend_{method}")
    assert any(pattern.search(p.read_text()) for p in Path(__file__).parent.rglob("test_*.py"))
    assert f"`{method}`" in (ROOT / "README.md").read_text()


def test_hook_gateway_register_backends_collects_each_plugin() -> None:
    """Installed backends come from entry points; a backend passed in is registered beside them."""
    host = PluginHost.build(extra=[AcmePlugin()])
    assert {"pictofit", "artifi", "acme"} <= set(host.backends)
    assert host.backends["acme"] is AcmeBackend
    assert host.config_types["acme"] is AcmeConfig


class _Declared(Sink):
    """A sink declaration for the loader's checks; it is never built."""

    name = "declared"
    schemes = frozenset({"declared"})

    async def send(self, target: URL, event_id: str, body: bytes, headers: Any) -> SendOutcome:
        raise AssertionError("never built")


def _registering(*sinks: object) -> object:
    class Plugin:
        @hookimpl
        def gateway_register_sinks(self, register: Any) -> None:
            for sink in sinks:
                register(sink)

    return Plugin()


def test_hook_gateway_register_sinks_collects_each_plugin() -> None:
    """Installed sinks come from the `gateway.sinks` entry points (the nats and rabbitmq
    distributions), each by name with the schemes it serves; one passed in is registered beside
    them."""
    host = PluginHost.build(extra=[_registering(_Declared)])
    assert host.sinks["declared"] is _Declared
    assert host.sinks["nats"].schemes == frozenset({"nats"})
    assert host.sinks["rabbitmq"].schemes == frozenset({"amqp", "amqps"})
    assert "rabbitmq" not in PluginHost.build(blocked=["rabbitmq"]).sinks


@pytest.mark.parametrize(
    ("sinks", "message"),
    [
        ((_Declared, _Declared), "two plugins register the sink 'declared'"),
        ((object,), "not a Sink subclass"),
        ((type("Nameless", (Sink,), {}),), "lacks a name or schemes"),
        ((type("Web", (_Declared,), {"name": "web", "schemes": frozenset({"https"})}),), "http(s)"),
        (
            (type("Nats2", (_Declared,), {"name": "nats2", "schemes": frozenset({"nats"})}),),
            "sinks nats and nats2 both serve nats:",
        ),
    ],
)
def test_sink_declarations_are_checked_at_start(sinks: tuple[object, ...], message: str) -> None:
    """A sink that is no Sink, lacks its declaration, claims the core's http(s), or serves a
    scheme another sink serves stops the start-up, saying which."""
    with pytest.raises(PluginError, match=re.escape(message)):
        PluginHost.build(extra=[_registering(*sinks)])


def test_blocked_plugins_are_not_loaded() -> None:
    """A name blocked in the configuration is never loaded, even though it is installed."""
    host = PluginHost.build(blocked=["pictofit"])
    assert "pictofit" not in host.backends
    assert "artifi" in host.backends


def test_misspelled_hook_fails_at_start() -> None:
    """check_pending(): a hook implementation that matches no spec stops the start-up."""

    class Typo:
        @hookimpl
        def gateway_register_backend(self, register: Any) -> None: ...

    with pytest.raises(Exception, match="unknown hook"):
        PluginHost.build(extra=[Typo()])


def test_two_plugins_cannot_register_one_backend() -> None:
    """Backend names are unique across plugins."""
    with pytest.raises(PluginError, match="two plugins register"):
        PluginHost.build(extra=[AcmePlugin(), AcmePlugin()])


def test_registering_something_else_fails() -> None:
    """What a plugin registers must be a Backend subclass with its whole declaration."""

    class Wrong:
        @hookimpl
        def gateway_register_backends(self, register: Any) -> None:
            register({"name": "wrong"})

    with pytest.raises(PluginError, match="not a Backend subclass"):
        PluginHost.build(extra=[Wrong()])

    class Undeclared(Backend[AcmeConfig]):
        name = "undeclared"

    class Incomplete:
        @hookimpl
        def gateway_register_backends(self, register: Any) -> None:
            register(Undeclared)

    with pytest.raises(PluginError, match="lacks"):
        PluginHost.build(extra=[Incomplete()])


async def test_backend_credentials_are_asked_per_request(gateway: Gateway) -> None:
    """The app's one AcmeBackend is asked with the request the credentials are for, and what it
    answers goes upstream; a request to another origin than the tenant's Acme gets no key."""
    backend = gateway.client.app[BACKENDS]["acme"]
    assert isinstance(backend, AcmeBackend)
    tenant = gateway.client.app[TENANTS].get("tenant-a")
    assert tenant is not None
    config = tenant.configs["acme"]
    upstream = backend.context.upstream.bind(
        tenant="tenant-a", config=config, request_id="r", operation="x"
    )
    request = CredentialsRequest(
        "tenant-a", config, "GET", URL(gateway.upstream_url) / "types", upstream
    )
    creds = await backend.credentials(request)
    assert creds.headers["Authorization"].startswith("Bearer acme-upstream-key-A")
    for foreign in ("http://x/types", gateway.upstream_url.replace("http:", "https:") + "/types"):
        elsewhere = await backend.credentials(
            CredentialsRequest("tenant-a", config, "GET", URL(foreign), upstream)
        )
        assert elsewhere.headers == {}, foreign
        assert not elsewhere.secrets
    await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert (
        gateway.upstream.requests[-1]["headers"]["Authorization"] == creds.headers["Authorization"]
    )


async def test_backend_aclose_runs_when_the_app_stops(
    aiohttp_client: Any, tmp_path: Path, secrets_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each app builds its own backend objects and closes them when it stops."""
    closed: list[Backend[Any]] = []

    async def aclose(self: Backend[Any]) -> None:
        closed.append(self)

    monkeypatch.setattr(AcmeBackend, "aclose", aclose)
    from tests.conftest import gateway_config

    settings = load_settings(gateway_config(tmp_path, "http://127.0.0.1:9"))
    first = await aiohttp_client(create_app(settings, extra_plugins=[AcmePlugin()]))
    second = await aiohttp_client(create_app(settings, extra_plugins=[AcmePlugin()]))
    built = [first.app[BACKENDS]["acme"], second.app[BACKENDS]["acme"]]
    assert built[0] is not built[1]
    await first.close()
    await second.close()
    assert closed == built


async def test_backend_operation_only_for_declared_capabilities(
    gateway: Gateway,
) -> None:
    """An operation the tenant's backend does not declare answers 501, not a crash."""
    response = await gateway.client.get("/v1/image-types", headers=gateway.auth())
    assert response.status == 501
    assert response.content_type == "application/problem+json"
    assert "listImageTypes" in (await response.json())["detail"]


async def test_backend_callback_authenticates_and_records(gateway: Gateway) -> None:
    """A callback with the tenant's secret becomes a stored event, once; a forged one is 401."""
    url = "/callbacks/acme/tenant-a/done/42"
    forged = await gateway.client.post(url, headers={"Authorization": "guess"})
    assert forged.status == 401
    ok = await gateway.client.post(url, headers={"Authorization": CALLBACK_SECRET_A})
    assert ok.status == 204
    again = await gateway.client.post(url, headers={"Authorization": CALLBACK_SECRET_A})
    assert again.status == 204  # taken again; the store below shows it was recognised
    page = await gateway.client.app[STORE].list_events(
        "tenant-a", event_type=None, after=None, limit=10
    )
    assert [e.data for e in page.items] == [{"path": "done/42"}]
    unknown = await gateway.client.post(
        "/callbacks/nobody/tenant-a/x", headers={"Authorization": "x"}
    )
    assert unknown.status == 404


def test_hook_gateway_sandbox_offers_each_simulator() -> None:
    """Every installed backend offers a sandbox, with a tenant configuration its class accepts."""
    host = PluginHost.build(extra=[AcmePlugin()])
    sandboxes = {s.backend: s for s in host.sandboxes()}
    assert {"pictofit", "artifi", "acme"} <= set(sandboxes)
    for name, sandbox in sandboxes.items():
        settings = load_settings({"tenants": [{"id": "demo", "keys": [], "backends": {name: {}}}]})
        raw = sandbox.tenant_config("http://127.0.0.1:1")
        from gateway.config_converter import structure_section

        config = structure_section(raw, host.config_types[name], f"sandbox.{name}")
        assert config is not None
        assert settings.tenants


async def test_hook_gateway_publish_event_runs_plugins_before_the_store(
    aiohttp_client: Any, tmp_path: Path, secrets_env: None
) -> None:
    """A plugin may observe events first; the core's own implementation still stores them."""
    seen: list[Event] = []

    class Observer:
        @hookimpl(tryfirst=True)
        def gateway_publish_event(self, event: Event) -> None:
            seen.append(event)

    from tests.conftest import gateway_config

    settings = load_settings(gateway_config(tmp_path, "http://127.0.0.1:9"))
    app = create_app(settings, extra_plugins=[AcmePlugin(), Observer()])
    client = await aiohttp_client(app)
    response = await client.post(
        f"/callbacks/acme/tenant-a/{uuid.uuid4()}", headers={"Authorization": CALLBACK_SECRET_A}
    )
    assert response.status == 204
    assert len(seen) == 1
    stored = await app[STORE].get_event("tenant-a", seen[0].id)
    assert stored == seen[0]


async def test_backend_register_callbacks_retries_until_synced(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registration runs at start-up, is retried after a failure, and is reported until synced."""

    from gateway import callbacks
    from gateway.state import CALLBACKS

    monkeypatch.setattr(callbacks, "FIRST_RETRY", 0.01)
    gateway: Gateway = await make_gateway(max_attempts=1)
    registrar = gateway.client.app[CALLBACKS]
    # tenant-b has no callback secret: its registration is a no-op that still counts as synced.
    await eventually(lambda: all(s.state == "synced" for s in registrar.states.values()))
    url = "http://gateway.test/callbacks/acme/tenant-a/done/"
    assert gateway.upstream.callbacks == {url: CALLBACK_SECRET_A}
    backends = await (await gateway.client.get("/v1/backends", headers=gateway.auth())).json()
    [acme] = [b for b in backends["items"] if b["name"] == "acme"]
    assert acme["health"]["callbacks"] == {"state": "synced"}
    ready = await gateway.client.get("/readyz")
    assert ready.status == 200


async def test_failed_callback_registration_shows_in_readiness(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the upstream refuses the registration, /readyz is 503 and counts the failure."""
    from gateway import callbacks

    monkeypatch.setattr(callbacks, "FIRST_RETRY", 3600)

    from gateway.state import CALLBACKS, TENANTS

    gateway: Gateway = await make_gateway(max_attempts=1)
    registrar = gateway.client.app[CALLBACKS]
    await eventually(lambda: registrar.states[("tenant-a", "acme")].state != "pending")
    gateway.upstream.fail_next = 1
    tenant = gateway.client.app[TENANTS].get("tenant-a")
    assert tenant is not None
    state = await registrar.sync_one("tenant-a", "acme", tenant.configs["acme"])
    assert state.state == "failed"
    ready = await gateway.client.get("/readyz")
    assert ready.status == 503
    body = await ready.json()
    assert body["checks"]["callbacks:acme"]["ok"] is False
