"""The wire format: attrs values to camelCase JSON, through one converter, encoded by orjson;
and the one reading of `Retry-After`, for upstream answers and subscribers' alike."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs
import cattrs
import orjson
from aiohttp import web
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

T = TypeVar("T")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# The field metadata key of `omit_none`.
_OMIT_NONE = "gateway.wire.omit_none"


def omit_none() -> Any:
    """An attrs field, None by default, that the wire format leaves out while it is None.

    For the contract's optional properties, absent rather than null (`ReadinessCheck.detail`);
    every other field is always written, None as null.
    """
    return attrs.field(default=None, metadata={_OMIT_NONE: True})


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)

    def unstructure_factory(cls: type[Any]) -> Any:
        renames = {
            # The default of an `omit_none` field is None: omitted when default is omitted if None.
            a.name: override(rename=camel(a.name), omit_if_default=_OMIT_NONE in a.metadata)
            for a in attrs.fields(cls)
        }
        return make_dict_unstructure_fn(cls, converter, **renames)  # type: ignore[arg-type]

    def structure_factory(cls: type[Any]) -> Any:
        renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_structure_fn(cls, converter, **renames)  # type: ignore[arg-type]

    converter.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    converter.register_structure_hook_factory(attrs.has, structure_factory)
    return converter


_converter = _make_converter()


def unstructure(value: Any) -> Any:
    """Plain data of `value` in the wire format (attrs values as dicts with camelCase keys), for
    what is kept as JSON before it is sent: an event's `data`."""
    return _converter.unstructure(value)


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
    return orjson.dumps(value, default=_converter.unstructure)


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
