"""`/docs`: the contract as interactive documentation, served by the gateway itself.

The page is Swagger UI (operations by tag with their examples, "try it out" against this gateway
with a caller key, a filter by tag) from the files of the Python package swagger-ui-bundle-v2,
started by `gateway/assets/docs.js` on the contract the gateway serves: nothing is loaded from
elsewhere (the gateway may run offline), which the page's Content-Security-Policy enforces. Its
files are served by `getDocsAsset` under `/docs/assets/`, linked with their digest (`?v=`), so a
browser keeps them for a year and a new version is a new URL.

Without script the page still reads, in a terminal browser too: a `<noscript>` holds the contract
as one static page made here, operations grouped by tag (method, path, summary, operationId,
parameters, request body, responses, links), the webhooks subscribers receive and every schema.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from string import Template
from typing import Any, Final

import attrs
import orjson
import swagger_ui_bundle

from gateway.contract import HTTP_METHODS, Contract, resolve_ref

_ASSETS = resources.files("gateway") / "assets"
_SWAGGER_UI: Traversable = swagger_ui_bundle.swagger_ui_path

# Where the page may load from and talk to: this gateway only. Swagger UI styles elements inline
# and draws its icons as data: URLs.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# A file linked with its current digest never changes; any other request revalidates (ETag).
CACHE_LINKED: Final = "public, max-age=31536000, immutable"
CACHE_REVALIDATE: Final = "no-cache"


@attrs.frozen
class Asset:
    """One file the page loads, as served from `/docs/assets/{name}`."""

    name: str
    body: bytes
    content_type: str
    digest: str  # of the body: the ETag, and the `v` of the page's link

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'

    @property
    def link(self) -> str:
        """The page's link to it: relative to /docs, with its digest."""
        return f"docs/assets/{self.name}?v={self.digest}"


# The names the contract's `getDocsAsset` enumerates, and where each comes from.
_ASSET_SOURCES: Final[Mapping[str, tuple[Traversable, str]]] = {
    "swagger-ui-bundle.js": (_SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (_SWAGGER_UI / "swagger-ui.css", "text/css"),
    "favicon-32x32.png": (_SWAGGER_UI / "favicon-32x32.png", "image/png"),
    "docs.js": (_ASSETS / "docs.js", "text/javascript"),
}
ASSET_NAMES: Final = tuple(_ASSET_SOURCES)


@functools.cache
def asset(name: str) -> Asset:
    """A file of the page by name (one of ASSET_NAMES), read once."""
    source, content_type = _ASSET_SOURCES[name]
    body = source.read_bytes()
    return Asset(name, body, content_type, hashlib.sha256(body).hexdigest()[:16])


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _text(raw: str | None) -> str:
    """Escaped description text, with the Markdown the contract uses: paragraphs, code, bold."""
    paragraphs = [p.strip() for p in (raw or "").split("\n\n") if p.strip()]
    rendered = []
    for paragraph in paragraphs:
        escaped = html.escape(" ".join(paragraph.split()), quote=False)
        escaped = _CODE.sub(r"<code>\1</code>", escaped)
        rendered.append("<p>" + _BOLD.sub(r"<strong>\1</strong>", escaped) + "</p>")
    return "".join(rendered)


def _e(value: object) -> str:
    return html.escape(str(value))


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(schema: Mapping[str, Any]) -> str:
    """A schema in one line: a link for a named schema, else type, format and constraints."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    for combinator, word in (("allOf", "all of"), ("oneOf", "one of"), ("anyOf", "any of")):
        if combinator in schema:
            return f"{word} (" + ", ".join(_type(s) for s in schema[combinator]) + ")"
    kind = schema.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    if "array" in kinds:
        text = "array of " + _type(schema.get("items", {}))
    else:
        text = _e(" | ".join(kinds))
    details = [f"format {schema['format']}"] if "format" in schema else []
    if "enum" in schema:
        details.append("one of " + ", ".join(str(v) for v in schema["enum"]))
    if "const" in schema:
        details.append(f"always {schema['const']}")
    for key in ("pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
        if key in schema:
            details.append(f"{key} {schema[key]}")
    if "default" in schema:
        details.append(f"default {schema['default']}")
    if details:
        text += ' <span class="constraints">(' + _e("; ".join(details)) + ")</span>"
    return text


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """Cells are HTML already; header names are plain text."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return ""
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _parameters(document: Mapping[str, Any], raw: Iterable[Mapping[str, Any]]) -> str:
    rows = []
    for ref in raw:
        spec = resolve_ref(document, ref)
        required = "required" if spec.get("required") else "optional"
        rows.append(
            [
                f"<code>{_e(spec['name'])}</code>",
                _e(spec["in"]),
                required,
                _type(spec.get("schema", {})),
                _text(spec.get("description")),
            ]
        )
    table = _table(["name", "in", "", "schema", "description"], rows)
    return f"<h4>Parameters</h4>{table}" if table else ""


def _content(content: Mapping[str, Any]) -> str:
    return "<br>".join(
        f"<code>{_e(media_type)}</code>: {_type(media.get('schema', {}))}"
        for media_type, media in content.items()
    )


def _request_body(document: Mapping[str, Any], node: Mapping[str, Any]) -> str:
    if "requestBody" not in node:
        return ""
    body = resolve_ref(document, node["requestBody"])
    required = "required" if body.get("required") else "optional"
    return f"<h4>Request body ({required})</h4><p>{_content(body.get('content', {}))}</p>"


def _responses(document: Mapping[str, Any], node: Mapping[str, Any]) -> str:
    rows = []
    for status, raw in node.get("responses", {}).items():
        response = resolve_ref(document, raw)
        links = ", ".join(
            f'<a href="#op-{_e(link["operationId"])}">{_e(name)}</a>'
            for name, ref in response.get("links", {}).items()
            for link in [resolve_ref(document, ref)]
        )
        rows.append(
            [
                f'<span class="status s{_e(status)[0]}">{_e(status)}</span>',
                _text(response.get("description")),
                _content(response.get("content", {})) or "no body",
                links,
            ]
        )
    return "<h4>Responses</h4>" + _table(["status", "description", "body", "links"], rows)


def _operation(document: Mapping[str, Any], path: str, method: str, node: Mapping[str, Any]) -> str:
    op_id = node["operationId"]
    security = node.get("security", document.get("security", []))
    auth = "caller key (Bearer)" if security else "no caller key"
    shared = document.get("paths", {}).get(path, {}).get("parameters", [])
    return (
        f'<article class="operation" id="op-{_e(op_id)}">'
        f'<h3><span class="method {_e(method)}">{_e(method.upper())}</span> '
        f"<code>{_e(path)}</code> {_e(node.get('summary', ''))}</h3>"
        f'<p class="meta">operationId <code class="operation-id">{_e(op_id)}</code> · {auth}</p>'
        f"{_text(node.get('description'))}"
        f"{_parameters(document, [*shared, *node.get('parameters', [])])}"
        f"{_request_body(document, node)}"
        f"{_responses(document, node)}"
        "</article>"
    )


def _operations_by_tag(
    document: Mapping[str, Any], items: Mapping[str, Any]
) -> dict[str, list[tuple[str, str, Mapping[str, Any]]]]:
    grouped: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {
        tag["name"]: [] for tag in document.get("tags", [])
    }
    for path, item in items.items():
        for method in HTTP_METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["other"])[0]
                grouped.setdefault(tag, []).append((path, method, item[method]))
    return grouped


def _schema(name: str, schema: Mapping[str, Any]) -> str:
    required = set(schema.get("required", []))
    rows = [
        [
            f"<code>{_e(prop)}</code>",
            "required" if prop in required else "optional",
            _type(spec),
            _text(spec.get("description")),
        ]
        for prop, spec in schema.get("properties", {}).items()
    ]
    shape = "" if rows else f"<p>{_type(schema)}</p>"
    return (
        f'<article class="schema" id="schema-{_e(name)}"><h3>{_e(name)}</h3>'
        f"{_text(schema.get('description'))}{shape}"
        f"{_table(['property', '', 'schema', 'description'], rows)}</article>"
    )


def render(document: Mapping[str, Any]) -> str:
    """The contract as static HTML (a style element, navigation and content) for an OpenAPI 3.1
    document: what the page shows without script."""
    info = document.get("info", {})
    grouped = _operations_by_tag(document, document.get("paths", {}))
    tags = {tag["name"]: tag.get("description", "") for tag in document.get("tags", [])}
    nav, sections = [], []
    for tag, operations in grouped.items():
        if not operations:
            continue
        entries = "".join(
            f'<li><a href="#op-{_e(node["operationId"])}"><span class="method {_e(method)}">'
            f"{_e(method.upper())}</span> {_e(node.get('summary', node['operationId']))}</a></li>"
            for _, method, node in operations
        )
        nav.append(f'<li><a href="#tag-{_e(tag)}">{_e(tag)}</a><ul>{entries}</ul></li>')
        articles = "".join(_operation(document, p, m, n) for p, m, n in operations)
        sections.append(
            f'<section class="tag" id="tag-{_e(tag)}"><h2>{_e(tag)}</h2>'
            f"{_text(tags.get(tag))}{articles}</section>"
        )
    webhooks = "".join(
        f'<article class="operation webhook" id="op-{_e(node["operationId"])}">'
        f"<h3><code>{_e(event_type)}</code> {_e(node.get('summary', ''))}</h3>"
        f'<p class="meta">operationId <code class="operation-id">{_e(node["operationId"])}</code>'
        f"</p>{_text(node.get('description'))}{_request_body(document, node)}</article>"
        for event_type, item in document.get("webhooks", {}).items()
        for node in [item["post"]]
    )
    schemas = "".join(
        _schema(name, schema)
        for name, schema in document.get("components", {}).get("schemas", {}).items()
    )
    return Template(_asset("docs-static.html")).substitute(
        title=_e(info.get("title", "API")),
        version=_e(info.get("version", "")),
        css=_asset("docs.css"),
        description=_text(info.get("description")),
        nav="".join(nav),
        operations="".join(sections),
        webhooks=webhooks,
        schemas=schemas,
    )


def page(contract: Contract) -> bytes:
    """The rendered page of a contract, made once per document."""
    return _page(contract.json_bytes)


@functools.lru_cache(maxsize=2)
def _page(json_bytes: bytes) -> bytes:
    document = orjson.loads(json_bytes)
    info = document.get("info", {})
    return (
        Template(_asset("docs.html"))
        .substitute(
            title=_e(info.get("title", "API")),
            version=_e(info.get("version", "")),
            favicon=_e(asset("favicon-32x32.png").link),
            stylesheet=_e(asset("swagger-ui.css").link),
            bundle=_e(asset("swagger-ui-bundle.js").link),
            starter=_e(asset("docs.js").link),
            static=render(document),
        )
        .encode()
    )
