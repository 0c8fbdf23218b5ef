"""`/docs`: the contract as a web page, served from the gateway's own files, read in a real browser.

The browser test runs Debian's Chromium headless against the live test gateway and reads the DOM
it rendered. In CI (CI=true) a missing Chromium fails the test; elsewhere it skips.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from gateway.contract import HTTP_METHODS
from tests.conftest import Gateway, gateway_contract


def documented_operations() -> list[dict[str, Any]]:
    """The operations and webhooks of the contract the tests' gateways serve (fragments too)."""
    document = gateway_contract().document
    operations = [
        item[method]
        for item in document["paths"].values()
        for method in HTTP_METHODS
        if method in item
    ]
    return operations + [item["post"] for item in document["webhooks"].values()]


class Page(HTMLParser):
    """What a page shows and what it points at."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.operation_ids: list[str] = []
        self.text: list[str] = []
        self._in_operation_id = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.references += [v for k, v in attrs if k in {"src", "href", "action"} and v]
        if tag in {"script", "iframe", "object", "embed"}:
            self.references.append(f"<{tag}>")
        self._in_operation_id = "operation-id" in (values.get("class") or "").split()

    def handle_endtag(self, tag: str) -> None:
        self._in_operation_id = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_operation_id:
            self.operation_ids.append(data)


def read(markup: str) -> Page:
    page = Page()
    page.feed(markup)
    return page


async def test_docs_list_every_operation_from_packaged_assets(gateway: Gateway) -> None:
    """GET /docs, without a key, is one HTML page naming every operation and webhook; it loads
    nothing from anywhere (no script, no link off the gateway)."""
    response = await gateway.client.get("/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    markup = await response.text()
    page = read(markup)
    operations = documented_operations()
    assert sorted(page.operation_ids) == sorted(op["operationId"] for op in operations)
    text = " ".join(" ".join(page.text).split())
    for op in operations:
        assert " ".join(op["summary"].split()) in text, op["operationId"]
    external = [r for r in page.references if not r.startswith(("#", "/"))]
    assert external == [], f"the page must be self-contained: {external}"
    style = markup.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "@import" not in style
    assert "url(" not in style


def chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing in CI: `make chromium` installs Debian's package")
        pytest.skip("Chromium is not installed (make chromium)")
    return found


async def test_docs_render_in_headless_chromium(gateway: Gateway, tmp_path: Path) -> None:
    """Chromium renders /docs from the live gateway, and the DOM it built lists every operation
    by operationId and summary."""
    browser = chromium()
    assert browser is not None
    url = str(gateway.client.make_url("/docs"))
    process = await asyncio.create_subprocess_exec(
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(90):
        dom, errors = await process.communicate()
    assert process.returncode == 0, errors.decode(errors="replace")[-2000:]
    page = read(dom.decode())
    operations = documented_operations()
    assert sorted(page.operation_ids) == sorted(op["operationId"] for op in operations)
    rendered = " ".join(" ".join(page.text).split())
    for op in operations:
        assert " ".join(op["summary"].split()) in rendered, op["operationId"]
