"""Internal teams' view: a client generated from the contract drives a sandbox gateway, end to end.

The client is generated once per session by openapi/generate_client.py (what `make client` runs,
failing on any generator warning) into a temporary directory and imported from there, from the
contract the tests' gateways serve: the installed backends' fragments and Acme's merged in (a
superset of what the sandbox serves, so that Acme's own operations are in it too). The gateway
runs as `gateway serve --sandbox` in a process of its own. Every call below goes through the
generated client only: the whole PICTOFiT flow, the Artifi photo flow, a subscription whose test
delivery reaches a local receiver and verifies with the standardwebhooks library, and Acme's
widgets against a test gateway with Acme plugged in. The generated models parse every answer, so
an answer that breaks the contract fails here too.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import io
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, unused_port
from PIL import Image
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.plugins import PluginHost
from gateway_pictofit.sandbox import sandbox_result_bytes
from tests.conftest import CALLER_KEY_A, Gateway, gateway_contract

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_KEY = "gwk_generated-client-e2e-key"
PACKAGE = "gateway_client"


def generator() -> ModuleType:
    """openapi/generate_client.py, what `make client` runs."""
    sys.path.insert(0, str(ROOT / "openapi"))
    try:
        return importlib.import_module("generate_client")
    finally:
        sys.path.remove(str(ROOT / "openapi"))


@pytest.fixture(scope="session")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, imported from where the generator wrote it."""
    output = tmp_path_factory.mktemp("client")
    spec = output / "openapi.yaml"
    spec.write_bytes(gateway_contract().yaml_bytes)
    generator().generate(output, spec)  # raises, with the generator's output, on any warning
    sys.path.insert(0, str(output))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(output))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`gateway serve --sandbox` as its own process, in a fresh directory (its SQLite file)."""
    workdir = tmp_path_factory.mktemp("sandbox")
    port = unused_port()
    env = {**os.environ, "GATEWAY_SANDBOX_KEY": SANDBOX_KEY}
    env.pop("GATEWAY_CONFIG", None)
    with (workdir / "gateway.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--sandbox", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process)
        yield url
    finally:
        process.terminate()
        assert process.wait(10) == 0


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sandbox gateway exited during start-up"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the sandbox gateway did not answer within {within} s")


class Generated:
    """The generated package as teams use it: `g.op("products", "put_product")`, `g.models`."""

    def __init__(self, package: ModuleType) -> None:
        self.models = importlib.import_module(f"{package.__name__}.models")
        self.types = importlib.import_module(f"{package.__name__}.types")
        self.name = package.__name__

    def op(self, tag: str, operation: str) -> Any:
        return importlib.import_module(f"{self.name}.api.{tag}.{operation}")


@pytest.fixture
async def api(client_package: ModuleType, sandbox_url: str) -> AsyncIterator[Any]:
    """An authenticated generated client (one per test: it binds to the test's event loop)."""
    client = client_package.AuthenticatedClient(base_url=sandbox_url, token=SANDBOX_KEY)
    async with client as session:
        yield session


async def until(probe: Callable[[], Awaitable[Any]], within: float = 15.0) -> Any:
    """Poll `probe` (through the client) until it returns something truthy."""
    async with asyncio.timeout(within):
        while not (found := await probe()):  # noqa: ASYNC110 - polling the gateway's own API
            await asyncio.sleep(0.05)
    return found


def picture(fmt: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


async def test_pictofit_flow_through_the_generated_client(
    client_package: ModuleType, api: Any
) -> None:
    """Product, configuration, FRONTAL image, submit, finished, download: all typed calls."""
    g = Generated(client_package)
    product_id, configuration_id = uuid.uuid4(), uuid.uuid4()
    types = await g.op("catalog", "list_product_types").asyncio(client=api)
    assert "GARMENT_2D" in {t.name for t in types.items}

    created = await g.op("products", "put_product").asyncio_detailed(
        product_id, client=api, body=g.models.ProductInput(name="Silk shirt", type_="GARMENT_2D")
    )
    assert created.status_code == 201
    assert created.parsed.id == product_id
    assert created.parsed.backend == "pictofit"

    configuration = await g.op("products", "put_configuration").asyncio_detailed(
        product_id,
        configuration_id,
        client=api,
        body=g.models.ConfigurationInput(name="Blue, M", sku="shirt-blue-m"),
    )
    assert configuration.status_code == 201
    assert configuration.parsed.state == g.models.ConfigurationState.DRAFT

    upload = g.models.ProductImageUpload(
        file=g.types.File(
            payload=io.BytesIO(picture("PNG", (1200, 900))),
            file_name="front.png",
            mime_type="image/png",
        ),
        kind="FRONTAL",
    )
    image = await g.op("products", "upload_product_image").asyncio_detailed(
        product_id, configuration_id, client=api, body=upload
    )
    assert image.status_code == 201, image.content
    assert (image.parsed.kind, image.parsed.width, image.parsed.height) == ("FRONTAL", 1200, 900)

    submitted = await g.op("products", "submit_configuration").asyncio_detailed(
        product_id, configuration_id, client=api
    )
    assert submitted.status_code == 202
    assert submitted.parsed.state in {
        g.models.ConfigurationState.SUBMITTED,
        g.models.ConfigurationState.PROCESSING,
    }

    async def finished() -> Any:
        product = await g.op("products", "get_product").asyncio(product_id, client=api)
        [only] = product.configurations
        return only if only.state == g.models.ConfigurationState.FINISHED else None

    done = await until(finished)
    assert done.results, "a finished configuration has results"
    result = done.results[0]
    download = await g.op("products", "download_result").asyncio_detailed(
        product_id, configuration_id, result.format_, client=api, compressed=result.compressed
    )
    assert download.status_code == 200
    expected = sandbox_result_bytes(str(configuration_id), result.format_, result.compressed)
    assert download.content == expected

    async def completed() -> Any:
        page = await g.op("events", "list_events").asyncio(client=api, type_="product.completed")
        return [e for e in page.items if e.data["productId"] == str(product_id)]

    [event] = await until(completed)
    assert event.backend == "pictofit"


async def test_artifi_photo_flow_through_the_generated_client(
    client_package: ModuleType, api: Any
) -> None:
    """A guest's upload is listed, merged into a registered user, then deleted."""
    g = Generated(client_package)
    guest, user = f"guest-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    settings = await g.op("photos", "get_photo_settings").asyncio(client=api)
    assert "JPEG" in settings.allowed_types

    upload = g.models.UserPhotoUpload(
        file=g.types.File(
            payload=io.BytesIO(picture("JPEG", (640, 480))),
            file_name="holiday.jpg",
            mime_type="image/jpeg",
        ),
        guest=True,
    )
    stored = await g.op("photos", "upload_user_photo").asyncio_detailed(
        guest, client=api, body=upload, idempotency_key=str(uuid.uuid4())
    )
    assert stored.status_code == 201, stored.content
    photo = stored.parsed
    assert (photo.width, photo.height) == (640, 480)

    listed = await g.op("photos", "list_user_photos").asyncio(guest, client=api)
    assert [p.id for p in listed.items] == [photo.id]

    merged = await g.op("photos", "merge_user").asyncio_detailed(
        user, client=api, body=g.models.MergeUserInput(guest_user_id=guest)
    )
    assert merged.status_code == 200
    assert (merged.parsed.user_id, merged.parsed.guest_user_id) == (user, guest)
    moved = await g.op("photos", "list_user_photos").asyncio(user, client=api)
    assert [p.id for p in moved.items] == [photo.id]

    deleted = await g.op("photos", "delete_user_photo").asyncio_detailed(user, photo.id, client=api)
    assert deleted.status_code == 204
    after = await g.op("photos", "list_user_photos").asyncio(user, client=api)
    assert after.items == []
    assert after.total == 0


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[TestServer, list[tuple[bytes, dict[str, str]]]]:
    """A subscriber endpoint recording each delivery's raw body and headers."""
    got: list[tuple[bytes, dict[str, str]]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((await request.read(), {k.lower(): v for k, v in request.headers.items()}))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", handle)
    server: TestServer = await aiohttp_server(app)
    return server, got


async def test_subscription_test_event_is_delivered_and_verifies(
    client_package: ModuleType,
    api: Any,
    receiver: tuple[TestServer, list[tuple[bytes, dict[str, str]]]],
) -> None:
    """Create a subscription, send a test event, receive it signed, verify it, see it succeed."""
    g = Generated(client_package)
    server, got = receiver
    body = g.models.SubscriptionInput(
        url=str(server.make_url("/hooks")), event_types=["gateway.test"], description="e2e"
    )
    created = await g.op("subscriptions", "create_subscription").asyncio_detailed(
        client=api, body=body
    )
    assert created.status_code == 201
    subscription = created.parsed
    assert subscription.secret.startswith("whsec_")

    sent = await g.op("subscriptions", "send_test_event").asyncio_detailed(
        subscription.id, client=api
    )
    assert sent.status_code == 202
    event = sent.parsed

    async def received() -> bool:
        return bool(got)

    await until(received)
    raw, headers = got[0]
    payload = Webhook(subscription.secret).verify(raw, headers)
    assert payload["id"] == event.id == headers["webhook-id"]
    assert payload["type"] == "gateway.test"
    assert payload["data"]["subscriptionId"] == subscription.id
    with pytest.raises(WebhookVerificationError):
        Webhook(subscription.secret).verify(raw + b" ", headers)

    async def succeeded() -> Any:
        deliveries = await g.op("events", "list_event_deliveries").asyncio(event.id, client=api)
        return [d for d in deliveries.items if d.status == g.models.DeliveryStatus.SUCCEEDED]

    [delivery] = await until(succeeded)
    assert delivery.subscription_id == subscription.id
    assert delivery.attempts[0].status == 204


async def test_filtered_subscription_through_the_generated_client(
    client_package: ModuleType,
    api: Any,
    receiver: tuple[TestServer, list[tuple[bytes, dict[str, str]]]],
) -> None:
    """A subscription created with a filter shows it; its test event arrives whatever the
    filter; a bad filter is a 422 on /filter; null removes the filter."""
    g = Generated(client_package)
    server, got = receiver
    expression = "data.productType == 'GARMENT_2D'"
    body = g.models.SubscriptionInput(
        url=str(server.make_url("/hooks")), event_types=["*"], filter_=expression
    )
    created = await g.op("subscriptions", "create_subscription").asyncio_detailed(
        client=api, body=body
    )
    assert created.status_code == 201
    subscription = created.parsed
    assert subscription.filter_ == expression
    shown = await g.op("subscriptions", "get_subscription").asyncio(subscription.id, client=api)
    assert shown.filter_ == expression
    await g.op("subscriptions", "send_test_event").asyncio_detailed(subscription.id, client=api)

    async def received() -> bool:
        return bool(got)

    await until(received)
    update = g.op("subscriptions", "update_subscription")
    bad = await update.asyncio_detailed(
        subscription.id, client=api, body=g.models.SubscriptionPatch(filter_="data.sku ==")
    )
    assert bad.status_code == 422
    assert bad.parsed.errors[0].location == "/filter"
    removed = await update.asyncio_detailed(
        subscription.id, client=api, body=g.models.SubscriptionPatch(filter_=None)
    )
    assert removed.status_code == 200
    assert removed.parsed.filter_ is None


async def test_a_subscription_is_throttled_and_ordered_through_the_generated_client(
    client_package: ModuleType,
    api: Any,
    receiver: tuple[TestServer, list[tuple[bytes, dict[str, str]]]],
) -> None:
    """maxPerSecond and orderBy through the generated models: set on create, shown (with
    throttledUntil null: no subscriber asked to slow down), kept by a patch without them,
    removed by null."""
    g = Generated(client_package)
    server, _ = receiver
    body = g.models.SubscriptionInput(
        url=str(server.make_url("/hooks")),
        event_types=["*"],
        max_per_second=2.5,
        order_by=g.models.DeliveryOrder.RESOURCE,
    )
    created = await g.op("subscriptions", "create_subscription").asyncio_detailed(
        client=api, body=body
    )
    assert created.status_code == 201
    subscription = created.parsed
    assert subscription.max_per_second == 2.5
    assert subscription.throttled_until is None
    assert subscription.order_by == "resource"
    update = g.op("subscriptions", "update_subscription")
    kept = await update.asyncio(
        subscription.id, client=api, body=g.models.SubscriptionPatch(description="slow")
    )
    assert kept.max_per_second == 2.5
    assert kept.order_by == "resource"
    removed = await update.asyncio(
        subscription.id,
        client=api,
        body=g.models.SubscriptionPatch(max_per_second=None, order_by=None),
    )
    assert removed.max_per_second is None
    assert removed.order_by is None
    assert removed.description == "slow"


@pytest.fixture
async def gone_then_back(aiohttp_server: Any) -> tuple[TestServer, list[int]]:
    """A subscriber that answers 410 Gone to its first delivery (the gateway gives up and
    disables the subscription), then 204: the statuses it answered, in order."""
    answered: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        answered.append(410 if not answered else 204)
        return web.Response(status=answered[-1])

    app = web.Application()
    app.router.add_post("/hooks", handle)
    server: TestServer = await aiohttp_server(app)
    return server, answered


async def test_failed_deliveries_are_listed_and_recovered_through_the_generated_client(
    client_package: ModuleType, api: Any, gone_then_back: tuple[TestServer, list[int]]
) -> None:
    """A subscriber gone (410) during a test event: its failed delivery is listed by status and
    time, a recovery of the disabled subscription is refused (409), and once it is enabled again
    the recovery queues the delivery again, shows its progress to done, and the event arrives."""
    g = Generated(client_package)
    server, answered = gone_then_back
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    body = g.models.SubscriptionInput(url=str(server.make_url("/hooks")), event_types=["*"])
    subscription = (
        await g.op("subscriptions", "create_subscription").asyncio_detailed(client=api, body=body)
    ).parsed
    await g.op("subscriptions", "send_test_event").asyncio_detailed(subscription.id, client=api)

    async def failed() -> Any:
        page = await g.op("subscriptions", "list_subscription_deliveries").asyncio(
            subscription.id, client=api, status=g.models.DeliveryStatus.FAILED, since=since
        )
        return page.items

    [delivery] = await until(failed)
    assert delivery.attempts[0].status == 410
    recover = g.op("subscriptions", "recover_subscription")
    refused = await recover.asyncio_detailed(
        subscription.id, client=api, body=g.models.RecoveryInput(since=since)
    )
    assert refused.status_code == 409
    await g.op("subscriptions", "update_subscription").asyncio_detailed(
        subscription.id, client=api, body=g.models.SubscriptionPatch(enabled=True)
    )
    started = await recover.asyncio_detailed(
        subscription.id, client=api, body=g.models.RecoveryInput(since=since)
    )
    assert started.status_code == 202
    recovery = started.parsed

    async def done() -> Any:
        now = await g.op("subscriptions", "get_recovery").asyncio(
            subscription.id, recovery.id, client=api
        )
        return now if now.status == g.models.RecoveryStatus.DONE else None

    finished = await until(done)
    assert (finished.requeued, finished.total) == (1, 1)

    async def delivered() -> bool:
        return answered == [410, 204]

    await until(delivered)
    [again] = await failed()
    assert again.requeued_as


def test_make_client_generates_from_gateway_spec(tmp_path: Path) -> None:
    """Without a spec, the generator takes `gateway spec`'s: the contract the installed backends
    are served with, fragments merged in."""
    spec = generator().merged_spec(tmp_path)
    assert spec.read_bytes() == PluginHost.build().contract().yaml_bytes


# Run by the fresh virtualenv's own Python, from a folder outside the repository.
USE_INSTALLED_CLIENT = """
import sys
from importlib import metadata

import gateway_client
from gateway_client.api.backends import list_backends

base_url, key, site = sys.argv[1:]
assert gateway_client.__file__.startswith(site), gateway_client.__file__
with gateway_client.AuthenticatedClient(base_url=base_url, token=key) as api:
    answer = list_backends.sync_detailed(client=api)
assert answer.status_code == 200, answer.content
print(metadata.version("gateway-client"), *sorted(b.name for b in answer.parsed.items))
"""


def test_client_is_a_package_installed_into_a_fresh_virtualenv(
    client_package: ModuleType, sandbox_url: str, tmp_path: Path
) -> None:
    """The generated client is a project pip builds (hatchling, offline) and installs: a fresh
    virtualenv gets its wheel, `pip check` finds its declared dependencies met, and a script
    there, outside the repository, imports it from its site-packages and lists the sandbox's
    backends through it, the version being the contract's."""
    project = Path(client_package.__file__ or "").parent.parent
    assert (project / "pyproject.toml").is_file()
    wheel = generator().build_wheel(project, tmp_path / "dist")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Offline: the client's dependencies (httpx, attrs and theirs) are seen from this
    # environment's site-packages through a .pth file; the client itself is installed for real.
    ours = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "_dependencies.pth").write_text("\n".join(ours) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run([*pip, "install", "--quiet", "--no-index", "--no-deps", wheel], check=True)
    checked = subprocess.run([*pip, "check"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    used = subprocess.run(
        [python, "-c", USE_INSTALLED_CLIENT, sandbox_url, SANDBOX_KEY, site],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert used.returncode == 0, used.stderr
    version = gateway_contract().document["info"]["version"]
    assert used.stdout.split() == [version, "artifi", "pictofit"]


async def test_fragment_operations_through_the_generated_client(
    client_package: ModuleType, gateway: Gateway
) -> None:
    """Acme's own operations, from its fragment, are generated under its tag with its schemas:
    a typed put and get through a test gateway with Acme plugged in, and a body the fragment's
    schema refuses answered 422 before Acme sees it."""
    g = Generated(client_package)
    base_url = str(gateway.client.make_url("")).rstrip("/")
    async with client_package.AuthenticatedClient(base_url=base_url, token=CALLER_KEY_A) as api:
        widget_id = uuid.uuid4()
        body = g.models.AcmeWidgetInput(name="Sprocket", size_mm=12)
        put = await g.op("acme", "put_acme_widget").asyncio_detailed(
            widget_id, client=api, body=body
        )
        assert put.status_code == 201, put.content
        assert isinstance(put.parsed, g.models.AcmeWidget)
        got = await g.op("acme", "get_acme_widget").asyncio(widget_id, client=api)
        assert (got.id, got.name, got.size_mm) == (widget_id, "Sprocket", 12)

        seen = len(gateway.upstream.requests)
        refused = await g.op("acme", "put_acme_widget").asyncio_detailed(
            widget_id, client=api, body=g.models.AcmeWidgetInput(name="Sprocket", size_mm=0)
        )
        assert refused.status_code == 422
        assert [e.location for e in refused.parsed.errors] == ["/sizeMm"]
        assert len(gateway.upstream.requests) == seen

        # The event the put emitted, read through the client, parses as its webhook's model.
        page = await g.op("events", "list_events").asyncio(client=api, type_="acme.widget_ready")
        [event] = page.items
        ready = g.models.AcmeWidgetReadyEvent.from_dict(event.to_dict())
        assert ready.data.id == widget_id
