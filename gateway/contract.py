"""The OpenAPI contract, loaded once: the operations it defines and their compiled validators.

Routes are made from this table and requests are checked against it before any handler runs, so
the contract stays the single source of truth. Schemas are compiled once at start-up with
jsonschema-rs (Draft 2020-12, the dialect of OpenAPI 3.1); the per-request cost is a dict lookup.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import jsonschema_rs
import orjson
import yaml

from gateway.problems import FieldError

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# The package's folder, not `__file__`: compiled (gateway.compiled), a module's `__file__` is not
# its source's path.
_SOURCE_CONTRACT = Path(str(resources.files("gateway"))).parent / "openapi" / "gateway.yaml"


def contract_path() -> Path:
    """The contract beside the sources (a checkout) or packaged with the wheel."""
    if _SOURCE_CONTRACT.is_file():
        return _SOURCE_CONTRACT
    return Path(str(resources.files("gateway") / "contract" / "gateway.yaml"))


@attrs.frozen
class ResourceRef:
    """`x-gateway-resources`: a path parameter naming a resource the tenant must own (or create)."""

    kind: str
    param: str
    create: bool = False


def _canonical_uuid(value: str) -> str:
    if _CANONICAL_UUID.fullmatch(value):
        return value  # already as `str(uuid.UUID(value))` writes it: spared parsing it
    return str(uuid.UUID(value))


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# A schema `format` whose values have several spellings -> the one spelling every id is compared,
# stored, sent upstream and answered in. UUIDs: an upstream treats them case-blind, so an id
# compared as written would let another spelling reach another tenant's resource.
CANONICAL_FORMATS: Mapping[str, Callable[[str], str]] = {"uuid": _canonical_uuid}


VALID_KEPT = 4096  # raw values a parameter remembers as valid


@attrs.frozen
class Parameter:
    name: str
    location: str  # path, query or header
    required: bool
    schema: Mapping[str, Any]
    validator: Any  # a compiled jsonschema-rs validator
    greedy: bool = False  # a path parameter that may contain slashes
    canonical: Callable[[str], str] | None = None  # from the schema's `format`
    # Raw values found valid -> their value: checking is a pure function of the raw string, and
    # the same ids come back (a product polled for its configurations). A path id cost 10 k
    # instructions to check again (jsonschema-rs 6.9 k, the canonical spelling 3.3 k).
    _valid: MutableMapping[str, Any] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    def coerce(self, raw: str) -> Any:
        """The raw string as the schema's type; a value that does not convert stays a string."""
        kind = self.schema.get("type")
        try:
            if kind == "integer":
                return int(raw)
            if kind == "number":
                return float(raw)
        except ValueError:
            return raw
        if kind == "boolean":
            # Only the spellings OpenAPI serialises booleans to; "1" or "yes" is a type error.
            return {"true": True, "false": False}.get(raw.lower(), raw)
        return raw

    def check(self, raw: str) -> tuple[Any, list[FieldError]]:
        known = self._valid.get(raw)
        if known is not None:
            return known, []
        value = self.coerce(raw)
        if not self.validator.is_valid(value):  # one call for the usual answer, valid
            return value, [
                FieldError(self.name, e.message) for e in self.validator.iter_errors(value)
            ]
        if self.canonical is not None:
            value = self.canonical(value)
        if len(self._valid) >= VALID_KEPT:
            self._valid.clear()  # a bound, not a cache policy: the hot ids come back at once
        self._valid[raw] = value
        return value, []


@attrs.frozen
class Operation:
    operation_id: str
    method: str  # upper case
    path: str  # as in the contract, e.g. /v1/products/{productId}
    tag: str
    public: bool  # no caller key needed
    parameters: tuple[Parameter, ...]
    body_required: bool
    body_validators: Mapping[str, Any]  # content type -> compiled validator
    resources: tuple[ResourceRef, ...]
    form_properties: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    # `x-gateway-raw-body`: any content type is taken unread (upstream callbacks).
    raw_body: bool = False
    # `x-gateway-backend`: a backend serves it (the one that owns the resource, the caller's
    # choice, or the tenant's); every other operation is the core's own.
    backend: bool = False
    # The parameters by location, grouped once: every request walks them.
    by_location: Mapping[str, tuple[Parameter, ...]] = attrs.field(init=False)
    # The resources it may create (`create` in `x-gateway-resources`), found once.
    creates: tuple[ResourceRef, ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        grouped = {
            location: tuple(p for p in self.parameters if p.location == location)
            for location in ("path", "query", "header")
        }
        object.__setattr__(self, "by_location", grouped)
        object.__setattr__(self, "creates", tuple(r for r in self.resources if r.create))

    @property
    def route_path(self) -> str:
        """The aiohttp path: greedy parameters match slashes too; the others one segment, as
        aiohttp's default `[^{}/]+` does, but possessively. Routes sharing a prefix are tried in
        turn, and `/v1/products/{productId}` tried on `/v1/products/ID/configurations` then fails
        where the segment ends, instead of giving it back a character at a time (~2.7 k
        instructions a route tried): nothing after a segment can match a character of it."""
        path = self.path
        for param in self.params_in("path"):
            pattern = ".+" if param.greedy else "[^{}/]++"
            path = path.replace("{" + param.name + "}", "{" + param.name + ":" + pattern + "}")
        return path

    def params_in(self, location: str) -> tuple[Parameter, ...]:
        return self.by_location.get(location, ())


class ContractError(Exception):
    """The contract cannot be built: a backend's fragment clashes with it or breaks it."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("the OpenAPI contract cannot be built:\n  " + "\n  ".join(problems))
        self.problems = tuple(problems)


@attrs.frozen
class Contract:
    document: Mapping[str, Any]
    operations: Mapping[str, Operation]
    json_bytes: bytes
    yaml_bytes: bytes
    # What backends' fragments brought (gateway.fragments), by the backend that brought it:
    # operationId -> backend, and webhook (event type) -> backend. Empty for the core contract.
    origins: Mapping[str, str] = attrs.field(factory=dict)
    webhook_origins: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def backend_operations(self) -> frozenset[str]:
        """The operations backends serve (`x-gateway-backend`)."""
        return frozenset(o.operation_id for o in self.operations.values() if o.backend)

    @property
    def webhook_event_types(self) -> tuple[str, ...]:
        return tuple(self.document.get("webhooks", {}))


def resolve_ref(document: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """`node`, or what its `$ref` (a local JSON pointer, followed to the end) points at."""
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def compile_schema(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Any:
    """`schema`, a part of `document`, compiled into a jsonschema-rs validator (formats checked)."""
    # Carrying the components along lets `#/components/schemas/...` references resolve.
    rooted = {**schema, "components": document.get("components", {})}
    return jsonschema_rs.validator_for(rooted, validate_formats=True)


def _operation(
    document: Mapping[str, Any],
    path: str,
    method: str,
    node: Mapping[str, Any],
    shared: Sequence[Any],
) -> Operation:
    parameters: dict[tuple[str, str], Parameter] = {}
    for raw in (*shared, *node.get("parameters", ())):
        spec = resolve_ref(document, raw)
        schema = resolve_ref(document, spec.get("schema", {}))
        name = spec["name"]
        location = spec["in"]
        if location == "header":
            name = name.lower()
        parameters[(location, name)] = Parameter(
            name=name,
            location=location,
            required=bool(spec.get("required", location == "path")),
            schema=schema,
            validator=compile_schema(document, schema),
            greedy=bool(spec.get("x-gateway-greedy", False)),
            canonical=CANONICAL_FORMATS.get(schema.get("format", "")),
        )
    body = resolve_ref(document, node.get("requestBody", {}))
    validators = {
        content_type: compile_schema(document, media.get("schema", {}))
        for content_type, media in body.get("content", {}).items()
    }
    form = resolve_ref(
        document, body.get("content", {}).get("multipart/form-data", {}).get("schema", {})
    )
    form_properties = {
        name: resolve_ref(document, prop) for name, prop in form.get("properties", {}).items()
    }
    global_security = document.get("security", [])
    security = node.get("security", global_security)
    tags = node.get("tags", [])
    return Operation(
        operation_id=node["operationId"],
        method=method.upper(),
        path=path,
        tag=tags[0] if tags else "",
        public=not security,
        parameters=tuple(parameters.values()),
        body_required=bool(body.get("required", False)),
        body_validators=validators,
        resources=tuple(ResourceRef(**r) for r in node.get("x-gateway-resources", ())),
        form_properties=form_properties,
        raw_body=bool(node.get("x-gateway-raw-body", False)),
        backend=bool(node.get("x-gateway-backend", False)),
    )


def load_contract(path: Path | None = None) -> Contract:
    """Read and compile the contract; raises if an operation lacks an operationId."""
    raw = (path or contract_path()).read_bytes()
    return build_contract(yaml.safe_load(raw), raw)


def build_contract(
    document: Mapping[str, Any],
    yaml_bytes: bytes,
    *,
    origins: Mapping[str, str] | None = None,
    webhook_origins: Mapping[str, str] | None = None,
) -> Contract:
    """Compile a whole document. An operation a fragment brought that does not compile is a
    ContractError naming it and its backend (the core's own would be a bug: it raises as is)."""
    origins = origins or {}
    operations: dict[str, Operation] = {}
    for route, item in document.get("paths", {}).items():
        shared = item.get("parameters", ())
        for method in HTTP_METHODS:
            if method not in item:
                continue
            backend = origins.get(item[method].get("operationId"))
            try:
                operation = _operation(document, route, method, item[method], shared)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                if backend is None:
                    raise
                # jsonschema-rs's messages go on with the whole schema: the first line says it.
                why = type(exc).__name__ + ": " + (str(exc).strip().splitlines() or [""])[0]
                where = f"{method.upper()} {route}"
                raise ContractError([f"backend {backend}'s fragment: {where}: {why}"]) from exc
            operations[operation.operation_id] = operation
    return Contract(
        document=document,
        operations=operations,
        json_bytes=orjson.dumps(document),
        yaml_bytes=yaml_bytes,
        origins=origins,
        webhook_origins=webhook_origins or {},
    )


@functools.cache
def default_contract() -> Contract:
    return load_contract()
