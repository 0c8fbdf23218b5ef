"""`/docs`: Swagger UI on the served contract, from the gateway's own files, used in a real browser.

The page and its files are read over HTTP (what is linked, how it may be cached, that nothing
comes from elsewhere and no secret is on it); then Debian's Chromium, driven over the DevTools
protocol (tests/browser.py), opens it from the live test gateway as a person would: every
operation listed, an example shown, and "Try it out" of listBackends with a caller key typed
into "Authorize" answered 200. In CI (CI=true) a missing Chromium fails; elsewhere it skips.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from gateway import docs
from gateway.contract import HTTP_METHODS
from tests.browser import open_page
from tests.conftest import CALLER_KEY_A, SECRETS, Gateway, gateway_contract


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
    """What a page shows and what it points at; `<noscript>`'s content read as markup too."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.scripts: list[str] = []
        self.operation_ids: list[str] = []
        self.text: list[str] = []
        self._in_operation_id = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.references += [v for k, v in attrs if k in {"src", "href", "action"} and v]
        if tag == "script":
            self.scripts.append(values.get("src") or "<inline>")
        if tag in {"iframe", "object", "embed"}:
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


async def test_docs_page_is_swagger_ui_from_packaged_files(gateway: Gateway) -> None:
    """GET /docs, without a key, is Swagger UI's page: its scripts and stylesheet are the
    gateway's own files (linked relatively, with their digest), nothing is loaded from elsewhere
    (and the Content-Security-Policy says so to the browser), no secret is on it, and it is
    revalidated at every visit. Without script it still names every operation and webhook."""
    response = await gateway.client.get("/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Cache-Control"] == "no-cache"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self'" in policy
    markup = await response.text()
    page = read(markup)
    assert page.scripts == [
        docs.asset("swagger-ui-bundle.js").link,
        docs.asset("docs.js").link,
    ]
    assert docs.asset("swagger-ui.css").link in page.references
    external = [r for r in page.references if not r.startswith(("#", "/", "docs/assets/"))]
    assert external == [], f"the page must load only the gateway's files: {external}"
    assert not [secret for secret in SECRETS if secret in markup]

    # The <noscript> fallback: the whole contract as plain HTML, with no style from elsewhere.
    fallback = markup.split("<noscript>", 1)[1].split("</noscript>", 1)[0]
    static = read(fallback)
    operations = documented_operations()
    assert sorted(static.operation_ids) == sorted(op["operationId"] for op in operations)
    text = " ".join(" ".join(static.text).split())
    for op in operations:
        assert " ".join(op["summary"].split()) in text, op["operationId"]
    style = fallback.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "@import" not in style
    assert "url(" not in style


async def test_docs_assets_are_served_with_caching_headers(gateway: Gateway) -> None:
    """Every file the page links is served by the gateway from the installed packages: as
    linked (with its digest) it may be kept for a year; otherwise it is revalidated, and a
    copy the browser already has (If-None-Match) is a 304 without a body. None holds a secret."""
    for name in docs.ASSET_NAMES:
        asset = docs.asset(name)
        linked = await gateway.client.get(f"/{asset.link}")
        assert linked.status == 200, name
        assert linked.content_type == asset.content_type
        assert linked.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert linked.headers["ETag"] == asset.etag
        body = await linked.read()
        assert body == asset.body
        assert not [s for s in SECRETS if s.encode() in body], name

        bare = await gateway.client.get(f"/docs/assets/{name}")
        assert (bare.status, bare.headers["Cache-Control"]) == (200, "no-cache")
        again = await gateway.client.get(
            f"/docs/assets/{name}", headers={"If-None-Match": asset.etag}
        )
        assert (again.status, await again.read()) == (304, b"")
        assert again.headers["ETag"] == asset.etag
    unknown = await gateway.client.get("/docs/assets/swagger-ui.js.map")
    assert unknown.status == 400
    bundle = docs.asset("swagger-ui-bundle.js").body
    assert b"SwaggerUIBundle" in bundle


# Swagger UI's DOM, read in the page. Operation ids are shown (displayOperationId), in blocks
# with ids `operations-<tag>-<operationId>`; webhooks are listed in their own section.
SHOWN_OPERATION_IDS = """
[...document.querySelectorAll('.opblock .opblock-summary-operation-id')]
  .map((e) => e.textContent.trim())
"""
CLICK = "(() => {{ const e = document.querySelector({selector!r}); e.click(); return true; }})()"


def click(selector: str) -> str:
    return CLICK.format(selector=selector)


async def test_docs_in_headless_chromium_list_operations_and_try_one(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Chromium opens /docs from the live gateway: Swagger UI lists every operation and webhook
    by operationId, shows the contract's examples, filters by tag, and after the caller key is
    typed into "Authorize", "Try it out" then "Execute" on listBackends shows a 200 with the
    backends. Every request the page made went to the gateway, and nothing logged an error."""
    origin = str(gateway.client.make_url("")).rstrip("/")
    async with open_page(f"{origin}/docs", tmp_path / "profile") as tab:
        operations = documented_operations()
        expected = sorted(op["operationId"] for op in operations)
        await tab.wait_for(f"document.querySelectorAll('.opblock').length >= {len(expected)}")
        assert sorted(await tab.evaluate(SHOWN_OPERATION_IDS)) == expected

        # Examples: putProduct's request body from its schemas' examples, and its 400 answer's
        # example problem, as Swagger UI renders them once the operation is opened.
        put = "#operations-products-putProduct"
        await tab.evaluate(click(f"{put} .opblock-summary-control"))
        shown = await tab.wait_for(
            f"(document.querySelector('{put} .opblock-body') || {{}}).innerText"
        )
        assert "GARMENT_2D" in shown
        assert "urn:gateway:problem:bad-request" in shown

        # Search: the filter keeps the operations of the tags that match.
        await tab.evaluate("document.querySelector('.operation-filter-input').focus()")
        await tab.type_text("backends")
        await tab.wait_for(
            "document.querySelectorAll('.opblock-tag-section').length === 1"
            " && !!document.querySelector('#operations-backends-listBackends')"
        )

        # Authorize with the caller key, as typed by a person, then try listBackends.
        await tab.evaluate(click(".auth-wrapper .authorize"))
        await tab.wait_for("!!document.querySelector('.auth-container input')")
        await tab.evaluate("document.querySelector('.auth-container input').focus()")
        await tab.type_text(CALLER_KEY_A)
        await tab.evaluate(click(".auth-btn-wrapper .authorize"))
        await tab.wait_for("!!document.querySelector('.auth-btn-wrapper .btn-done')")
        await tab.evaluate(click(".auth-btn-wrapper .btn-done"))

        listed = "#operations-backends-listBackends"
        await tab.evaluate(click(f"{listed} .opblock-summary-control"))
        await tab.wait_for(f"!!document.querySelector('{listed} .try-out__btn')")
        await tab.evaluate(click(f"{listed} .try-out__btn"))
        await tab.wait_for(f"!!document.querySelector('{listed} .execute')")
        await tab.evaluate(click(f"{listed} .execute"))
        status = await tab.wait_for(
            f"(document.querySelector('{listed} .live-responses-table tbody .response-col_status')"
            " || {}).innerText"
        )
        assert status.strip() == "200"
        answer = await tab.evaluate(
            f"document.querySelector('{listed} .live-responses-table tbody .microlight').innerText"
        )
        assert {b["name"] for b in json.loads(answer)["items"]} >= {"acme"}
        # The curl line Swagger UI shows names the key the person typed, and this gateway.
        curl = await tab.evaluate(f"document.querySelector('{listed} .curl-command').innerText")
        assert f"{origin}/v1/backends" in curl
        assert f"Bearer {CALLER_KEY_A}" in curl
        # Nothing of the key was kept by the browser.
        stored = await tab.evaluate("JSON.stringify(Object.assign({}, localStorage))")
        assert CALLER_KEY_A not in stored

    elsewhere = [u for u in tab.requests if not re.match(rf"{re.escape(origin)}/|data:", u)]
    assert elsewhere == [], f"the page reached beyond the gateway: {elsewhere}"
    assert tab.errors == [], tab.errors


def test_static_page_follows_references_written_as_escaped_json_pointers() -> None:
    """A `$ref` may point into `paths`, whose keys hold slashes, written `~1` in the pointer
    (RFC 6901); the page follows it as the validators do (it once looked the escaped key up)."""
    document = {
        "openapi": "3.1.0",
        "info": {"title": "T", "version": "1"},
        "paths": {
            "/a": {
                "get": {
                    "operationId": "getA",
                    "responses": {"200": {"description": "the A answer"}},
                }
            },
            "/b": {
                "get": {
                    "operationId": "getB",
                    "responses": {"200": {"$ref": "#/paths/~1a/get/responses/200"}},
                }
            },
        },
    }
    page = read(docs.render(document))
    assert page.operation_ids == ["getA", "getB"]
    assert " ".join(page.text).count("the A answer") == 2
