"""Schema violations reported as field errors, each located by a JSON pointer to its value."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jsonschema_rs

from gateway.problems import FieldError

_POINTER_ESCAPE = re.compile(r"[~/]")


def json_pointer(parts: Sequence[str | int]) -> str:
    return "".join(
        "/" + _POINTER_ESCAPE.sub(lambda m: "~0" if m.group() == "~" else "~1", str(p))
        for p in parts
    )


def body_errors(validator: Any, instance: Any) -> list[FieldError]:
    """Schema violations as field errors, each located by a JSON pointer to the offending value."""
    errors = []
    for error in validator.iter_errors(instance):
        kind = error.kind
        pointer = json_pointer(error.instance_path)
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
            errors.append(FieldError(f"{pointer}/{kind.property}", "is required"))
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
            errors.extend(
                FieldError(f"{pointer}/{name}", "is not allowed") for name in kind.unexpected
            )
        else:
            errors.append(FieldError(pointer or "/", error.message))
    return errors
