"""Multipart uploads: strict form values, one part per name, and no spooled file outliving its
request, however the request ends."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import FormData, web

from gateway.app import create_app
from gateway.config_loading import load_settings
from gateway.state import UPLOADS
from gateway.testing import ContractCheck, GatewayLogs
from tests import raw_http
from tests.acme_backend import (
    ACME_STATE,
    AcmePlugin,
    AcmeUpstreamState,
    make_acme_upstream,
)
from tests.conftest import (
    ACME_KEY_A,
    ACME_KEY_B,
    CALLER_KEY_A,
    Gateway,
    MakeGateway,
    eventually,
    gateway_config,
)

PROBLEM = "application/problem+json"
PHOTOS = "/v1/users/u1/photos"
BOUNDARY = "gw-raw-boundary"


def spooled(app: web.Application) -> list[Path]:
    return sorted(app[UPLOADS].iterdir())


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json()
    return body


def photo_form(*fields: tuple[str, str], file: bytes = b"\xff\xd8photo") -> FormData:
    form = FormData()
    for name, value in fields:
        form.add_field(name, value)
    form.add_field("file", file, filename="p.jpg", content_type="image/jpeg")
    return form


@pytest.mark.parametrize(
    "dpi",
    ["--5", "٣", "+5", " 5", "5.0", "1_0", "0x10", "9" * 5000],
    ids=["double-minus", "arabic-digit", "plus", "space", "decimal", "underscore", "hex", "huge"],
)
async def test_a_form_integer_that_is_not_plain_base_10_is_422_naming_it(
    gateway: Gateway, dpi: str
) -> None:
    """Only `-?[0-9]+` becomes an integer; anything else stays text and the schema check names
    the field (before: `--5` and 5000 digits were 500s, an Arabic-Indic digit was taken as 3)."""
    response = await gateway.client.post(
        PHOTOS, data=photo_form(("dpi", dpi)), headers=gateway.auth()
    )
    body = await problem(response, 422)
    assert [e["location"] for e in body["errors"]] == ["/dpi"]
    assert spooled(gateway.client.app) == []


async def test_a_plain_form_integer_is_taken(gateway: Gateway) -> None:
    """Leading zeros are still base 10."""
    response = await gateway.client.post(
        PHOTOS, data=photo_form(("dpi", "0300")), headers=gateway.auth()
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["dpi"] == 300


@pytest.mark.parametrize(
    ("name", "count", "filename"),
    [("file", 40, "p.jpg"), ("dpi", 2, None), ("guest", 3, None)],
    ids=["40-files", "two-fields", "three-fields"],
)
async def test_a_part_name_given_twice_is_400_naming_it(
    gateway: Gateway, name: str, count: int, filename: str | None
) -> None:
    """A form has one part per name: a repeat is refused, not silently overwritten (before: 40
    parts named `file` answered 201 and left 39 files on disk)."""
    form = FormData()
    if name != "file":
        form.add_field("file", b"photo", filename="p.jpg")
    for _ in range(count):
        form.add_field(
            name, b"photo" if filename else {"dpi": "300", "guest": "true"}[name], filename=filename
        )
    response = await gateway.client.post(PHOTOS, data=form, headers=gateway.auth())
    body = await problem(response, 400)
    assert [e["location"] for e in body["errors"]] == [f"/{name}"]
    assert spooled(gateway.client.app) == []
    assert not [r for r in gateway.upstream.requests if r["path"] == "/photos"]


@pytest.mark.parametrize(
    ("parts", "location"),
    [
        ([("file", b"not a file", None)], "/file"),
        ([("file", b"photo", "p.jpg"), ("previousUserId", b"u0", "id.txt")], "/previousUserId"),
    ],
    ids=["text-for-file", "file-for-text"],
)
async def test_a_part_of_the_wrong_kind_is_422_naming_it(
    gateway: Gateway, parts: list[tuple[str, bytes, str | None]], location: str
) -> None:
    """A text field where the contract wants a file, or a file where it wants text, is named
    (before: text named `file` reached the plugin without a file, a 500 in the Acme backend; a file
    named `previousUserId` was taken as the text "<binary>")."""
    body = raw_http.multipart(parts, BOUNDARY)
    answer = await raw_http.exchange(
        gateway.client.server.host, gateway.client.server.port, _upload_head(len(body)) + body
    )
    assert answer.status == 422, answer.body
    problem = answer.json()
    assert isinstance(problem, dict)
    assert [e["location"] for e in problem["errors"]] == [location]
    assert spooled(gateway.client.app) == []


def _raw(parts: list[tuple[str, bytes, str | None]], tail: bytes) -> bytes:
    return raw_http.open_multipart(parts, BOUNDARY) + tail


HOSTILE_BODIES = {
    # name: (body, status)
    "unknown-file-part": (raw_http.multipart([("file", b"a", "a"), ("x", b"b", "b")]), 422),
    "oversized": (
        raw_http.multipart([("x", b"a" * 1_500_000, "a"), ("file", b"b" * 1_000_000, "b")]),
        413,
    ),
    "nameless-part": (
        _raw(
            [("file", b"a", "a")],
            f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx".encode(),
        ),
        400,
    ),
    "no-closing-boundary": (_raw([("file", b"a", "a"), ("x", b"b", "b")], b"garbage"), 400),
    "bad-part-headers": (
        _raw([("file", b"a", "a")], f"--{BOUNDARY}\r\nno colon here\r\n\r\nx\r\n".encode()),
        400,
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
async def test_a_refused_form_leaves_no_file(gateway: Gateway, case: str) -> None:
    """Each way a form is refused after a file was spooled removes every spooled file."""
    body, status = HOSTILE_BODIES[case]
    request = raw_http.head(
        "POST",
        PHOTOS,
        {
            "Authorization": f"Bearer {CALLER_KEY_A}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
        body_length=len(body),
    )
    server = gateway.client.server
    answer = await raw_http.exchange(server.host, server.port, request + body)
    assert answer.status == status, answer.body
    assert answer.media_type == PROBLEM
    assert spooled(gateway.client.app) == []


async def test_answered_and_failed_uploads_leave_no_file(gateway: Gateway) -> None:
    """A 201 and an upstream failure (502) both remove the request's files."""
    created = await gateway.client.post(PHOTOS, data=photo_form(), headers=gateway.auth())
    assert created.status == 201, await created.text()
    assert spooled(gateway.client.app) == []
    gateway.upstream.fail_next, gateway.upstream.fail_status = 1, 500
    failed = await gateway.client.post(PHOTOS, data=photo_form(), headers=gateway.auth())
    await problem(failed, 502)
    assert spooled(gateway.client.app) == []


async def test_a_handler_that_crashes_leaves_no_file(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin raising while it holds the upload: 500, and the file is gone all the same."""
    from tests import acme_backend

    seen: list[bool] = []

    async def explode(self: Any, call: Any) -> None:
        seen.append(call.form.files["file"].path.exists())
        raise RuntimeError("plugin bug")

    monkeypatch.setattr(acme_backend.AcmeBackend, "operation", explode)
    gateway: Gateway = await make_gateway()
    response = await gateway.client.post(PHOTOS, data=photo_form(), headers=gateway.auth())
    await problem(response, 500)
    assert seen == [True]
    assert spooled(gateway.client.app) == []


@attrs.frozen
class Served:
    app: web.Application
    host: str
    port: int
    upstream: AcmeUpstreamState


@pytest.fixture(params=[False, True], ids=["handler-runs-on", "handler-cancelled"])
async def served(
    request: pytest.FixtureRequest,
    aiohttp_server: Any,
    tmp_path: Path,
    secrets_env: None,
    contract_check: ContractCheck,
) -> AsyncIterator[Served]:
    """A gateway served as `gateway serve` serves it (its handler runs on when the client goes
    away), or with aiohttp's handler cancellation (the handler is cancelled)."""
    upstream = await aiohttp_server(make_acme_upstream(ACME_KEY_A, ACME_KEY_B))
    settings = load_settings(gateway_config(tmp_path, str(upstream.make_url("")).rstrip("/")))
    app = contract_check.install(create_app(settings, extra_plugins=[AcmePlugin()]))
    runner = web.AppRunner(app, handler_cancellation=request.param)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield Served(app, host, port, upstream.app[ACME_STATE])
    await runner.cleanup()


def _upload_head(length: int) -> bytes:
    headers = {
        "Authorization": f"Bearer {CALLER_KEY_A}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    return raw_http.head("POST", PHOTOS, headers, body_length=length)


async def test_clients_that_go_away_leave_no_file(served: Served, logs: GatewayLogs) -> None:
    """A burst of clients that disconnect mid-body (one file spooled, the next half-sent), then
    clients that disconnect while the upstream call holds their upload: every file goes, and no
    request is logged as an internal error."""
    clients = 20
    whole = raw_http.multipart([("file", b"a" * 200_000, "a"), ("x", b"b" * 600_000, "b")])
    # aiohttp hands a part over only once it has read past it, up to 256 KiB at a time: 300 kB
    # of the second part are sent, so that every request has begun spooling it.
    cut = whole[: len(whole) - 300_000]
    writers = []
    for _ in range(clients):
        _, writer = await asyncio.open_connection(served.host, served.port)
        writer.write(_upload_head(len(whole)) + cut)
        writers.append(writer)
    await eventually(lambda: len(spooled(served.app)) == 2 * clients)
    for writer in writers:
        writer.transport.abort()
    await eventually(lambda: spooled(served.app) == [])

    served.upstream.photo_delay = 0.5
    body = raw_http.multipart([("file", b"a" * 1000, "a.jpg")])
    writers = []
    for _ in range(3):
        _, writer = await asyncio.open_connection(served.host, served.port)
        writer.write(_upload_head(len(body)) + body)
        writers.append(writer)

    def upstream_holds_all() -> bool:
        return len([r for r in served.upstream.requests if r["path"] == "/photos"]) == 3

    await eventually(upstream_holds_all)
    assert len(spooled(served.app)) == 3
    for writer in writers:
        writer.transport.abort()
    await eventually(lambda: spooled(served.app) == [])
    assert not logs.events("http.unhandled_error")


async def test_the_upload_folder_is_private_and_goes_with_the_app(
    tmp_path: Path, aiohttp_server: Any, secrets_env: None
) -> None:
    """Each app spools into a folder of its own, made 0700 at start-up and removed (with anything
    left in it) at clean-up."""
    upstream = await aiohttp_server(make_acme_upstream(ACME_KEY_A, ACME_KEY_B))
    settings = load_settings(gateway_config(tmp_path, str(upstream.make_url("")).rstrip("/")))
    runners = [web.AppRunner(create_app(settings, extra_plugins=[AcmePlugin()])) for _ in "ab"]
    for runner in runners:
        await runner.setup()
    first, second = (runner.app[UPLOADS] for runner in runners)
    assert first != second
    assert stat.S_IMODE(first.stat().st_mode) == 0o700
    (first / "left-behind").write_bytes(b"x")
    for runner in runners:
        await runner.cleanup()
    assert not first.exists()
    assert not second.exists()


async def test_folders_of_dead_processes_go_at_the_next_start(
    tmp_path: Path, aiohttp_server: Any, secrets_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process killed before its clean-up (SIGKILL) leaves its folder; the next app to start
    removes it, and only it: a live process's folder and anything else stay."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))  # where mkdtemp makes folders
    exited = await asyncio.create_subprocess_exec(sys.executable, "-c", "")
    await exited.wait()
    dead = root / f"gateway-uploads-{exited.pid}-x1"
    dead.mkdir()
    (dead / "upload-left").write_bytes(b"x")
    alive = root / f"gateway-uploads-{os.getpid()}-x2"
    alive.mkdir()
    other = root / "gateway-uploads-²-x3"
    other.mkdir()
    upstream = await aiohttp_server(make_acme_upstream(ACME_KEY_A, ACME_KEY_B))
    settings = load_settings(gateway_config(tmp_path, str(upstream.make_url("")).rstrip("/")))
    runner = web.AppRunner(create_app(settings, extra_plugins=[AcmePlugin()]))
    await runner.setup()
    assert runner.app[UPLOADS].parent == root
    assert not dead.exists()
    assert alive.exists()
    assert other.exists()
    await runner.cleanup()
