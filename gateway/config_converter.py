"""TOML tables into frozen attrs values, with every mistake worded by its path.

The configuration's own converter: TOML's types are taken as they are (a port written "8080" is a
mistake, never coerced), and cattrs' errors are rewritten in plain words (`log.format: must be
"json" or "console"`), never Python's (`typing.Literal[...]`). Values are never echoed: a
misplaced value may be a pasted secret.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs
import cattrs

from gateway.values import Secret


class ConfigError(Exception):
    """The configuration is wrong; `problems` lists each mistake as `path: message`."""

    def __init__(self, problems: Sequence[str], *, headline: str = "invalid configuration") -> None:
        super().__init__(f"{headline}:\n  " + "\n  ".join(problems) if headline else problems[0])
        self.problems = tuple(problems)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)

    # TOML has its own types: a port written "8080" or a flag written 1 is a mistake to report,
    # not a value to coerce (cattrs' default hooks call int(), str(), bool()).
    def strict(kind: type, accepts: tuple[type, ...]) -> Callable[[object, type], Any]:
        def structure(value: object, _: type) -> Any:
            if not isinstance(value, accepts) or (kind is not bool and isinstance(value, bool)):
                raise WrongType(value)
            return kind(value)

        return structure

    converter.register_structure_hook(int, strict(int, (int,)))
    converter.register_structure_hook(float, strict(float, (int, float)))
    converter.register_structure_hook(str, strict(str, (str,)))
    converter.register_structure_hook(bool, strict(bool, (bool,)))

    def structure_secret(value: object, _: type) -> Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise WrongType(value)
        return Secret(value)

    converter.register_structure_hook(Secret, structure_secret)

    def structure_mapping(value: object, _: type) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise WrongType(value)
        return dict(value)

    converter.register_structure_hook_func(lambda t: t == Mapping[str, Any], structure_mapping)

    # TOML keys are strings: a table keyed by integers (PICTOFiT's stateId map) reads "1" as 1.
    def int_keyed(t: Any) -> bool:
        return typing.get_origin(t) in {dict, Mapping} and typing.get_args(t)[:1] == (int,)

    def structure_int_keyed(value: object, t: Any) -> dict[int, Any]:
        if not isinstance(value, Mapping):
            raise WrongType(value)
        value_type = typing.get_args(t)[1]
        out = {}
        for key, item in value.items():
            if not (isinstance(key, int) or re.fullmatch(r"-?[0-9]+", str(key))):
                raise ValueError(f"keys must be whole numbers, not {key!r}")
            out[int(key)] = converter.structure(item, value_type)
        return out

    converter.register_structure_hook_func(int_keyed, structure_int_keyed)
    return converter


_converter = _make_converter()


class WrongType(ValueError):
    """A value of the wrong TOML type; the message names the expected type from the field's."""

    def __init__(self, value: object) -> None:
        super().__init__(f"a {toml_kind(value)}")
        self.found = toml_kind(value)


def toml_kind(value: object) -> str:
    """What a TOML value is called, never the value itself (it may be a pasted secret)."""
    kinds: tuple[tuple[type, str], ...] = ((bool, "boolean"), (int, "integer"), (float, "float"))
    kinds += ((str, "string"), (Mapping, "table"), (list, "array"), (tuple, "array"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "date or time")


def _expected(t: Any) -> str:
    """A field's type as an operator reads it: `"json" or "console"`, `a whole number`."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is Secret:
        return 'a secret reference, "env:NAME" or "file:PATH"'
    if origin is Literal:
        return " or ".join(json.dumps(a) for a in args)
    if origin in {types.UnionType, typing.Union}:
        return " or ".join(_expected(a) for a in args if a is not type(None))
    if origin in {tuple, list, Sequence} or t in {tuple, list}:
        return "an array" if not args else f"an array of {_plural(args[0])}"
    if origin in {dict, Mapping} or t in {dict, Mapping} or attrs.has(t):
        return "a table"
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    return names.get(t, getattr(t, "__name__", str(t)))


def _plural(t: Any) -> str:
    plurals = {int: "whole numbers", float: "numbers", str: "strings"}
    return plurals.get(t, "tables" if attrs.has(t) else "values")


# attrs' comparison validators say "'port' must be <= 65535: 99999"; operators read words, and
# the value is left out (it may be a pasted secret).
_VALIDATOR = re.compile(r"^'?(?P<name>\w+)'?(?:: | (?=must ))(?P<rule>.+)$", re.DOTALL)
_COMPARISONS = {"<=": "at most", ">=": "at least", "<": "less than", ">": "more than"}
_COMPARISON = re.compile(r"^must be (<=|>=|<|>) (\S+?)(?:: .*)?$", re.DOTALL)


def _validator_rule(message: str) -> tuple[str | None, str]:
    """(field, rule) from a validator's message that starts with the field's name."""
    match = _VALIDATOR.match(message)
    if match is None:
        return None, message
    rule = match["rule"]
    if comparison := _COMPARISON.match(rule):
        op, bound = comparison.groups()
        with contextlib.suppress(ValueError):
            bound = f"{float(bound):g}"
        rule = f"must be {_COMPARISONS[op]} {bound}"
    return match["name"], rule


def _format_exception(exc: BaseException, type_: Any) -> str:
    """One leaf of cattrs' detailed validation in plain words; `|field|` marks a validator's."""
    if isinstance(exc, KeyError):
        return "missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown keys: {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, WrongType) and type_ is not None:
        return f"must be {_expected(type_)}, not a {exc.found}"
    if type_ is not None:  # a hook refused the value: say what the field takes
        return f"must be {_expected(type_)}"
    field, rule = _validator_rule(str(exc) or type(exc).__name__)
    return f"|{field}|{rule}" if field else rule


def _describe(exc: Exception, prefix: str) -> list[str]:
    """cattrs' `msg @ $.a.b` becomes `a.b: msg`, the form operators read in `gateway check`."""
    lines = []
    for line in cattrs.transform_error(exc, path="$", format_exception=_format_exception):
        message, _, where = line.rpartition(" @ ")
        path = prefix + where.removeprefix("$").lstrip(".")
        if message.startswith("|"):  # a class's validator named its field
            field, _, message = message[1:].partition("|")
            path = f"{path.rstrip('.')}.{field}" if path.rstrip(".") else field
        lines.append(f"{path.rstrip('.')}: {message}")
    return lines


def _unknown_keys(raw: object, cls: type[Any], path: str, problems: list[str]) -> Any:
    """`raw` without the keys `cls` does not know, each reported with the nearest known one;
    and the validators of the fields that are right run even when others in the table are wrong
    (cattrs runs a class's validators only once every field of it has structured)."""
    if not isinstance(raw, Mapping):
        return raw
    fields = {f.alias or f.name: f for f in attrs.fields(attrs.resolve_types(cls))}
    kept = {}
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        field = fields.get(key)
        if field is None:
            kind = "table" if isinstance(value, Mapping) else "setting"
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(fields)}"
            problems.append(f"{where}: unknown {kind}{hint}")
            continue
        kept[key] = _nested(value, field.type, where, problems)
        if field.validator is not None and field.converter is None:
            try:
                checked = _converter.structure(value, field.type)
            except Exception:  # noqa: S112 - a wrong type: cattrs reports it with its path
                continue
            try:
                field.validator(None, field, checked)
            except (ValueError, TypeError) as exc:
                problems.append(f"{where}: {_validator_rule(str(exc))[1]}")
    return kept


def _nested(value: object, t: Any, path: str, problems: list[str]) -> Any:
    """Descend into the tables a field holds: an attrs class, an optional one, an array of them."""
    args = [a for a in typing.get_args(t) if a is not type(None) and a is not Ellipsis]
    if attrs.has(t):
        return _unknown_keys(value, t, path, problems)
    if typing.get_origin(t) in {types.UnionType, typing.Union} and len(args) == 1:
        return _nested(value, args[0], path, problems)
    if typing.get_origin(t) is tuple and len(args) == 1 and isinstance(value, list):
        return [_nested(v, args[0], f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def structure_into(raw: object, cls: type[Any], path: str, problems: list[str]) -> Any:
    """`raw` as `cls`, or None with every mistake in it appended to `problems`."""
    found: list[str] = []
    cleaned = _unknown_keys(raw, cls, path, found) if attrs.has(cls) else raw
    try:
        return _converter.structure(cleaned, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        found.extend(_describe(exc, path + "." if path else ""))
        return None
    finally:
        problems.extend(dict.fromkeys(found))  # a validator's rule may be found twice


def structure_section(raw: Mapping[str, Any], cls: type[Any], path: str) -> Any:
    """Structure one table with the configuration converter; errors are named below `path`."""
    problems: list[str] = []
    value = structure_into(raw, cls, path, problems)
    if problems:
        raise ConfigError(problems)
    return value
