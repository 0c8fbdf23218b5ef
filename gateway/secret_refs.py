"""Secret references in configuration values: where they are, and which cannot be read now."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from gateway.values import Secret, SecretUnavailable


def secret_settings(config: object, path: str = "") -> Iterator[tuple[str, Secret]]:
    """Every secret reference in a config object, with its path below it (`api_key`,
    `token.password`)."""
    if not attrs.has(type(config)):
        return
    for field in attrs.fields(typing.cast(type[attrs.AttrsInstance], type(config))):
        value = getattr(config, field.name)
        where = f"{path}.{field.name}" if path else field.name
        if isinstance(value, Secret):
            yield where, value
        else:
            yield from secret_settings(value, where)


def unreadable_refs(raw: object, cls: Any, path: str) -> list[str]:
    """Like `unreadable_secrets`, from a raw table along its class's fields, so that a table
    with another mistake still has its secrets checked."""
    args = [a for a in typing.get_args(cls) if a is not type(None)]
    if typing.get_origin(cls) in {types.UnionType, typing.Union} and len(args) == 1:
        cls = args[0]
    if cls is Secret and isinstance(raw, str) and raw.startswith(("env:", "file:")):
        problem = _unreadable(Secret(raw))
        return [f"{path}: {problem}"] if problem else []
    if not (attrs.has(cls) and isinstance(raw, Mapping)):
        return []
    fields = {f.alias or f.name: f for f in attrs.fields(attrs.resolve_types(cls))}
    problems = []
    for key, value in raw.items():
        if key in fields:
            problems += unreadable_refs(value, fields[key].type, f"{path}.{key}")
    return problems


def unreadable_secrets(config: object, path: str) -> list[str]:
    """`path.setting: reason` for each secret reference of `config` that cannot be read now
    (the reason names the reference, never a value)."""
    return [
        f"{where}: {problem}"
        for where, secret in secret_settings(config, path)
        if (problem := _unreadable(secret))
    ]


def unreadable_named(secrets: Mapping[str, Secret], path: str) -> list[str]:
    """`path.name: reason` for each of a table of secret references (headers by name) that
    cannot be read now."""
    return [
        f"{path}.{name}: {problem}"
        for name, secret in secrets.items()
        if (problem := _unreadable(secret))
    ]


def _unreadable(secret: Secret) -> str | None:
    try:
        return None if secret.reveal() else f"{secret.ref} is empty"
    except SecretUnavailable as exc:
        return str(exc)
