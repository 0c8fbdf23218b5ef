"""Operations a backend brings: its OpenAPI fragment, merged into the contract at start-up.

A backend may ship a fragment (`Backend.openapi`): paths under tags of its own, components, and
the webhooks of its events. Merged into the core contract, its operations are routed, validated
and documented like the core's, and whatever lists operations (the route table, /openapi.json,
/docs, `gateway spec`, the generated client, schemathesis, the contract tests) reads the merged
document. A fragment only adds: anything it declares that the core contract or another fragment
already declares stops the start-up, and the message names both sides. Which backend serves what
a fragment brings is checked by the plugin host (`PluginHost.contract`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import orjson
import yaml

from gateway.contract import (
    HTTP_METHODS,
    Contract,
    ContractError,
    build_contract,
    default_contract,
)

FRAGMENT_KEYS = ("tags", "paths", "components", "webhooks")
# Not `securitySchemes`: the caller key is the one way in, and the core alone checks it.
COMPONENT_SECTIONS = (
    "schemas",
    "parameters",
    "responses",
    "headers",
    "requestBodies",
    "examples",
    "links",
)
PATH_ITEM_KEYS = frozenset({*HTTP_METHODS, "parameters", "summary", "description"})
# A backend's operations are for internal callers, behind the caller key like every /v1 one.
PATH_PREFIX = "/v1/"
CORE = "the core contract"

Fragments = Mapping[str, Mapping[str, Any]]


def merged_contract(fragments: Fragments) -> Contract:
    """The core contract with each backend's fragment (keyed by backend name) merged in.

    Built once per distinct set of fragments, so every app of a process (and `gateway spec`, and
    the tests) shares one; without fragments it is `default_contract()` itself. Raises a
    ContractError listing every clash and mistake.
    """
    if not fragments:
        return default_contract()
    key = []
    for name, fragment in sorted(fragments.items()):
        try:
            # As JSON: the cache key, and YAML's extras made plain (`200:` keys, dates: strings).
            key.append((name, orjson.dumps(fragment, option=orjson.OPT_NON_STR_KEYS)))
        except TypeError as exc:
            raise ContractError([f"backend {name}'s fragment: not JSON data: {exc}"]) from None
    return _merged(tuple(key))


@functools.lru_cache(maxsize=8)
def _merged(key: tuple[tuple[str, bytes], ...]) -> Contract:
    fragments = {name: orjson.loads(raw) for name, raw in key}
    merged = merge_fragments(default_contract().document, fragments)
    text = yaml.safe_dump(merged.document, sort_keys=False, allow_unicode=True, width=100)
    return build_contract(
        merged.document,
        text.encode(),
        origins=merged.origins,
        webhook_origins=merged.webhook_origins,
    )


@attrs.frozen
class Merged:
    document: Mapping[str, Any]
    origins: Mapping[str, str]  # operationId -> the backend whose fragment brought it
    webhook_origins: Mapping[str, str]  # event type -> the backend whose fragment documents it


def merge_fragments(core: Mapping[str, Any], fragments: Fragments) -> Merged:
    """The core document with the fragments added, in backend name order; a ContractError lists
    every clash (with the core or an earlier fragment) and every mistake of every fragment."""
    document: dict[str, Any] = orjson.loads(orjson.dumps(core))  # a copy to add to
    declared = _Declared.of(core)
    problems: list[str] = []
    origins: dict[str, str] = {}
    webhook_origins: dict[str, str] = {}
    for name, fragment in sorted(fragments.items()):
        side = f"backend {name}'s fragment"
        if not isinstance(fragment, Mapping):
            problems.append(f"{side}: not a mapping but {type(fragment).__name__}")
            continue
        found = _check(fragment, side, core.get("components", {}), declared)
        problems += found
        if found:
            continue
        document.setdefault("tags", []).extend(fragment.get("tags", []))
        document.setdefault("paths", {}).update(fragment.get("paths", {}))
        for section, named in fragment.get("components", {}).items():
            document.setdefault("components", {}).setdefault(section, {}).update(named)
        document.setdefault("webhooks", {}).update(fragment.get("webhooks", {}))
        for item in fragment.get("paths", {}).values():
            origins.update((op["operationId"], name) for op in _operations(item).values())
        webhook_origins.update(dict.fromkeys(fragment.get("webhooks", {}), name))
    if problems:
        raise ContractError(problems)
    return Merged(document, origins, webhook_origins)


@attrs.define
class _Declared:
    """What the core contract and the fragments checked so far declare, and who declared it."""

    tags: dict[str, str]
    components: dict[tuple[str, str], str]
    paths: dict[str, tuple[str, str]]  # template with nameless parameters -> (side, path)
    operations: list[tuple[str, str, str, str]]  # (method, path, operationId, side)
    operation_ids: dict[str, tuple[str, str]]  # operationId -> (side, where)
    webhooks: dict[str, str]

    @classmethod
    def of(cls, core: Mapping[str, Any]) -> _Declared:
        declared = cls(
            tags={tag["name"]: CORE for tag in core.get("tags", [])},
            components={
                (section, name): CORE
                for section, named in core.get("components", {}).items()
                for name in named
            },
            paths={},
            operations=[],
            operation_ids={},
            webhooks={},
        )
        for path, item in core.get("paths", {}).items():
            declared.paths[_shape(path)] = (CORE, path)
            for method, op in _operations(item).items():
                declared.operations.append((method, path, op["operationId"], CORE))
                declared.operation_ids[op["operationId"]] = (CORE, f"{method.upper()} {path}")
        for event_type, item in core.get("webhooks", {}).items():
            declared.webhooks[event_type] = CORE
            for op in _operations(item).values():
                declared.operation_ids[op["operationId"]] = (CORE, f"webhook {event_type}")
        return declared


def _check(
    fragment: Mapping[str, Any],
    side: str,
    core_components: Mapping[str, Any],
    declared: _Declared,
) -> list[str]:
    """What is wrong with one fragment; what it declares is added to `declared` as it goes, so a
    later fragment's clash with it names it."""
    problems = [
        f"{side}: {key!r}: a fragment holds {', '.join(FRAGMENT_KEYS)} only"
        for key in fragment
        if key not in FRAGMENT_KEYS
    ]
    own_tags: set[str] = set()
    for tag in _listed(fragment, "tags", side, problems):
        name = tag.get("name") if isinstance(tag, Mapping) else None
        if not isinstance(name, str):
            problems.append(f"{side}: tags: {tag!r} has no name")
        elif name in declared.tags:
            problems.append(f"{side}: tag {name!r} is already declared by {declared.tags[name]}")
        else:
            declared.tags[name] = side
            own_tags.add(name)
    components = _mapping(fragment, "components", side, problems)
    for section, named in components.items():
        if section not in COMPONENT_SECTIONS:
            problems.append(
                f"{side}: components.{section}: a fragment adds {', '.join(COMPONENT_SECTIONS)}"
                " only"
            )
            continue
        if not isinstance(named, Mapping):
            problems.append(f"{side}: components.{section}: not a mapping")
            continue
        for name in named:
            owner = declared.components.setdefault((section, name), side)
            if owner != side:
                problems.append(
                    f"{side}: components.{section}.{name} is already declared by {owner}"
                )
    for path, item in _mapping(fragment, "paths", side, problems).items():
        problems += _check_path(side, own_tags, declared, path, item)
    for event_type, item in _mapping(fragment, "webhooks", side, problems).items():
        owner = declared.webhooks.setdefault(event_type, side)
        if owner != side:
            problems.append(f"{side}: webhook {event_type} is already declared by {owner}")
        if not isinstance(item, Mapping):
            problems.append(f"{side}: webhook {event_type}: not a path item")
        for method, op in _operations(item).items():
            where = f"webhook {event_type} ({method})"
            problems += _check_operation(side, own_tags, declared, where, op, backend=False)
    problems += _check_refs(fragment, side, core_components, components, declared)
    return problems


def _check_path(
    side: str, own_tags: set[str], declared: _Declared, path: str, item: Any
) -> list[str]:
    if not isinstance(item, Mapping):
        return [f"{side}: {path}: not a path item"]
    problems = [
        f"{side}: {path}: {key!r} is not allowed in a fragment's path item"
        for key in item
        if key not in PATH_ITEM_KEYS
    ]
    if not path.startswith(PATH_PREFIX):
        problems.append(
            f"{side}: {path}: a backend's paths are under {PATH_PREFIX} (behind the caller key)"
        )
    owner, theirs = declared.paths.setdefault(_shape(path), (side, path))
    if (owner, theirs) != (side, path):
        # One side owns a path: its methods, parameters and description are its own.
        return [*problems, f"{side}: path {path} is already declared by {owner} ({theirs})"]
    for method, op in _operations(item).items():
        where = f"{method.upper()} {path}"
        problems += _check_operation(side, own_tags, declared, where, op, backend=True)
        for their_method, their_path, their_id, their_side in declared.operations:
            # aiohttp answers with the first route that matches: one of the two would be dead.
            if their_method == method and _overlap(path, their_path):
                problems.append(
                    f"{side}: {where} matches requests that {their_side}'s "
                    f"{method.upper()} {their_path} ({their_id}) matches too"
                )
        declared.operations.append((method, path, str(op.get("operationId")), side))
    return problems


def _check_operation(
    side: str,
    own_tags: set[str],
    declared: _Declared,
    where: str,
    op: Any,
    *,
    backend: bool,
) -> list[str]:
    if not isinstance(op, Mapping):
        return [f"{side}: {where}: not an operation"]
    problems = []
    operation_id = op.get("operationId")
    if not isinstance(operation_id, str) or not operation_id:
        problems.append(f"{side}: {where}: has no operationId")
    else:
        owner, theirs = declared.operation_ids.setdefault(operation_id, (side, where))
        if (owner, theirs) != (side, where):
            problems.append(
                f"{side}: {where}: operationId {operation_id} is already declared by {owner}"
                f" ({theirs})"
            )
    tags = op.get("tags")
    named = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    if not (len(named) == len(tags or ()) == 1 and named[0] in own_tags):
        owners = [f"{t!r} is declared by {declared.tags[t]}" for t in named if t in declared.tags]
        problems.append(
            f"{side}: {where}: tagged {tags!r}, not with one tag the fragment declares"
            + (f" ({'; '.join(owners)})" if owners else "")
        )
    if backend and op.get("x-gateway-backend") is not True:
        problems.append(
            f"{side}: {where}: not marked `x-gateway-backend: true` (a fragment's operations are"
            " its backend's to serve)"
        )
    if "security" in op:
        problems.append(
            f"{side}: {where}: sets `security` (a backend's operations take the caller key)"
        )
    return problems


def _check_refs(
    fragment: Mapping[str, Any],
    side: str,
    core_components: Mapping[str, Any],
    own_components: Mapping[str, Any],
    declared: _Declared,
) -> list[str]:
    """Every `$ref` names a component of the core contract or of this fragment: another
    fragment's may not be there (its backend may be blocked, or gone)."""
    visible = {
        "components": {
            section: {**core_components.get(section, {}), **own_components.get(section, {})}
            for section in {*core_components, *own_components}
            if isinstance(own_components.get(section, {}), Mapping)
        }
    }
    problems = []
    for where, ref in _refs(fragment, ""):
        if not isinstance(ref, str) or not ref.startswith("#/components/"):
            problems.append(
                f"{side}: {where}: $ref {ref!r} is not a reference to #/components/ (a fragment"
                " refers to the core contract's components and its own)"
            )
            continue
        parts = [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]
        target: Any = visible
        for part in parts:
            target = target.get(part) if isinstance(target, Mapping) else None
        if target is None:
            owner = declared.components.get((parts[1], parts[2])) if len(parts) > 2 else None
            elsewhere = f" ({owner} declares it)" if owner not in (None, side) else ""
            problems.append(
                f"{side}: {where}: $ref {ref} is neither in the core contract nor in the"
                f" fragment{elsewhere}"
            )
    return problems


def _refs(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "$ref":
                yield where or "/", value
            else:
                yield from _refs(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, f"{where}[{i}]")


def _operations(item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        return {}
    return {method: item[method] for method in HTTP_METHODS if method in item}


def _mapping(fragment: Mapping[str, Any], key: str, side: str, problems: list[str]) -> Any:
    value = fragment.get(key, {})
    if isinstance(value, Mapping):
        return value
    problems.append(f"{side}: {key}: not a mapping")
    return {}


def _listed(fragment: Mapping[str, Any], key: str, side: str, problems: list[str]) -> list[Any]:
    value = fragment.get(key, [])
    if isinstance(value, list):
        return value
    problems.append(f"{side}: {key}: not a list")
    return []


def _shape(path: str) -> str:
    """A path template with its parameters' names left out: `/a/{x}` and `/a/{y}` are one path."""
    return "/".join("{}" if "{" in segment else segment for segment in path.split("/"))


def _overlap(one: str, other: str) -> bool:
    """Some request path matches both templates (a parameter matches any one segment)."""
    a, b = one.split("/"), other.split("/")
    return len(a) == len(b) and all(
        x == y or "{" in x or "{" in y for x, y in zip(a, b, strict=True)
    )
