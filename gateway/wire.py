"""The wire format: attrs values to camelCase JSON, through one converter, encoded by orjson;
and the one reading of `Retry-After`, for upstream answers and subscribers' alike."""

from __future__ import annotations

import email.utils
import time
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
import orjson
from aiohttp import web
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

T = TypeVar("T")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_OMIT_IF_NONE = "gateway.wire.omit_if_none"


def omit_if_none() -> Any:
    """An attrs field that defaults to None and is left out of the wire form while None: a
    property the contract makes optional (not required), where null would break its schema."""
    return attrs.field(default=None, metadata={_OMIT_IF_NONE: True})


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)

    def unstructure_factory(cls: type[Any]) -> Any:
        renames = {
            a.name: override(
                rename=camel(a.name), omit_if_default=a.metadata.get(_OMIT_IF_NONE, False)
            )
            for a in attrs.fields(cls)
        }
        return make_dict_unstructure_fn(cls, converter, **renames)  # type: ignore[arg-type]

    def structure_factory(cls: type[Any]) -> Any:
        renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_structure_fn(cls, converter, **renames)  # type: ignore[arg-type]

    converter.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    converter.register_structure_hook_factory(attrs.has, structure_factory)
    # `str | None` and the like are written as they are: the generated functions then read such
    # a field inline instead of dispatching on its value's class (the hot path's mapping).
    converter.register_unstructure_hook_factory(_plain_union, lambda _: identity)

    def attrs_tuple_factory(type_: Any) -> Any:
        # `tuple[Value, ...]`: a list, each item by its class's function, found once.
        item = converter.get_unstructure_hook(typing.get_args(type_)[0])
        # An empty one (a configuration's images, mostly) is not worth a map and its iteration.
        return lambda values: list(map(item, values)) if values else []

    converter.register_unstructure_hook_factory(_attrs_tuple, attrs_tuple_factory)
    return converter


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _attrs_tuple(type_: Any) -> bool:
    args = typing.get_args(type_)
    return (
        typing.get_origin(type_) is tuple
        and len(args) == 2
        and args[1] is Ellipsis
        and attrs.has(args[0])
    )


def _plain_union(type_: Any) -> bool:
    origin = typing.get_origin(type_)
    return origin in (typing.Union, types.UnionType) and all(
        arg in _PLAIN for arg in typing.get_args(type_)
    )


_converter = _make_converter()


class _Hooks(dict[type, Callable[[Any], Any]]):
    """Each class's unstructure function, asked of the converter once: its dispatch on every
    value (several lookups through its strategies) cost as much as a small value's function."""

    def __missing__(self, cls: type) -> Callable[[Any], Any]:
        hook: Callable[[Any], Any] = _converter.get_unstructure_hook(cls)
        self[cls] = hook
        return hook


_hooks = _Hooks()


def unstructure(value: Any) -> Any:
    """Plain data of `value` as `dumps` writes it (attrs values as dicts with camelCase keys),
    for what is kept as JSON before it is sent: an event's `data`."""
    return _hooks[value.__class__](value)


def structure(data: Any, cls: type[T]) -> T:
    """A `cls` read from wire-format data (camelCase keys), such as a request body the contract
    already validated."""
    return _converter.structure(data, cls)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An `application/json` answer in the wire format."""
    return web.Response(
        body=dumps(body), status=status, content_type="application/json", headers=headers
    )


def dumps(value: Any) -> bytes:
    """JSON bytes of plain data or attrs values (field names in camelCase).

    orjson encodes dicts and lists itself and asks the converter only for what it does not know.
    """
    return orjson.dumps(value, default=unstructure)


# Longer asks are read as this (a year): callers cap lower still, and no date or digit string
# can overflow what they compute with it.
RETRY_AFTER_MAX = 365 * 86400.0


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a `Retry-After` asks to wait, from delta-seconds (ASCII digits) or an HTTP-date
    (GMT: a date with no zone is unreadable), at most `RETRY_AFTER_MAX`; None if absent or
    unreadable. Never raises: the value comes from whoever answered."""
    if not value:
        return None
    value = value.strip()
    if not value.isascii():  # "²".isdigit() is true, and float("²") raises
        return None
    if value.isdigit():
        digits = value.lstrip("0") or "0"
        return RETRY_AFTER_MAX if len(digits) > 10 else min(float(digits), RETRY_AFTER_MAX)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    except Exception:  # email.utils does not document what it raises: unreadable is unreadable
        return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX)
