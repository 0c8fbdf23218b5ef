"""The core's values: what a backend, the store and the upstream client exchange.

Frozen, with no behaviour beyond reading themselves, and importing nothing of the gateway, so
every other module may use them without an import circle.
"""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

__all__ = ["Credentials", "Event", "Reply", "Secret", "SecretUnavailable"]


class SecretUnavailable(LookupError):
    """A secret reference that cannot be read now (an unset variable, a file rotated away).

    The message names the reference and why, never a value. A LookupError, as an unset
    variable always was, so code that tolerated one tolerates a missing file too.
    """

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(f"{ref}: {reason}")
        self.ref = ref
        self.reason = reason


@attrs.frozen(repr=False)
class Secret:
    """A secret read from where the configuration points, each time it is needed.

    Configuration names secrets as references (`env:NAME` or `file:PATH`), never as values, and they
    are resolved per call so that a rotated key is picked up without a restart. `repr()` shows the
    reference, never the value.
    """

    ref: str
    _literal: str | None = attrs.field(default=None, alias="_literal")

    def __attrs_post_init__(self) -> None:
        if self._literal is None and not self.ref.startswith(("env:", "file:")):
            raise ValueError('a secret must be a reference: "env:NAME" or "file:PATH"')

    @classmethod
    def literal(cls, value: str, label: str = "literal") -> Secret:
        """A secret held in memory, for sandbox mode and tests; never read from configuration."""
        return cls(ref=label, _literal=value)

    def reveal(self) -> str:
        if self._literal is not None:
            return self._literal
        kind, _, where = self.ref.partition(":")
        if kind == "env":
            value = _environment_variable(where)
            if value is None:
                raise SecretUnavailable(self.ref, "environment variable is not set")
            return value
        try:
            return Path(where).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise SecretUnavailable(self.ref, f"cannot be read ({reason.lower()})") from None

    def __repr__(self) -> str:
        return f"Secret({self.ref!r})"


# Variable name -> (its key in os.environ's table, the value read last, that value decoded).
_ENVIRONMENT_READ: dict[str, tuple[Any, Any, str]] = {}


def _environment_variable(name: str) -> str | None:
    """`os.environ.get(name)`, decoding the value only when it changed since the last read.

    An env secret is read before every upstream attempt, and `os.environ[name]` is interpreted
    code (encode the name, look up, decode the value: 6.9 k instructions). Its table (`_data`) is
    what every change through `os.environ` or `os.environb` updates, so reading it sees a rotated
    value at once; the value read last is kept referenced, so the same object means the same
    value. A Python without that table reads `os.environ` itself.
    """
    environ: Any = os.environ  # typeshed has its keys as str: they are bytes in the table
    table = getattr(environ, "_data", None)
    if not isinstance(table, dict):
        return os.environ.get(name)
    known = _ENVIRONMENT_READ.get(name)
    key = known[0] if known is not None else environ.encodekey(name)
    raw = table.get(key)
    if raw is None:
        _ENVIRONMENT_READ.pop(name, None)
        return None
    if known is not None and known[1] is raw:
        return known[2]
    value: str = environ.decodevalue(raw)
    _ENVIRONMENT_READ[name] = (key, raw, value)
    return value


@attrs.frozen
class Credentials:
    """What a backend adds to an upstream request so that the upstream knows the tenant.

    Returned by `gateway_upstream_credentials` for every attempt. `secrets` lists the values the
    core must redact wherever they could appear (URLs in log lines, error details, metric labels);
    header values given here are never logged at all.
    """

    headers: Mapping[str, str] = attrs.field(factory=dict)
    query: Mapping[str, str] = attrs.field(factory=dict)
    secrets: frozenset[str] = frozenset()


def value_repr(value: object, names: tuple[str, ...]) -> str:
    """`Name(field=value, ...)`, as attrs writes it: for the per-request values below."""
    fields = ", ".join(f"{name}={getattr(value, name)!r}" for name in names)
    return f"{type(value).__name__}({fields})"


# Per-request values (this `Reply`, `OperationCall`, `UpstreamCall`, `CredentialsRequest`, ...)
# are plain classes with `Final` fields, not attrs classes: compiled (gateway.compiled) and made
# by compiled code, one costs about 0.3 k instructions against 17 k for a frozen attrs class of
# the same fields (attrs sets each field through `object.__setattr__`). Compiled, their fields
# cannot be assigned; run from source, mypy --strict still refuses it.
class Reply:
    """A JSON answer from a backend's operation; the core encodes it. `body=None` sends no body."""

    def __init__(
        self, status: int, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status: Final = status
        self.body: Final[Any] = body
        self.headers: Final[Mapping[str, str]] = {} if headers is None else headers

    def __repr__(self) -> str:
        return value_repr(self, ("status", "body", "headers"))


@attrs.frozen
class Event:
    """A unified event; `gateway.payloads.Event` is its wire form (the contract's `Event`)."""

    id: str
    type: str
    tenant: str
    backend: str | None
    occurred_at: str
    data: Mapping[str, Any]
    dedupe_key: str | None = None
    # The store's retention removed `data` (empty then) before the event itself: it still lists,
    # and can no longer be delivered.
    payload_purged: bool = False

    @classmethod
    def new(
        cls,
        event_type: str,
        data: Mapping[str, Any],
        *,
        tenant: str,
        backend: str | None,
        dedupe_key: str | None = None,
    ) -> Event:
        """A fresh event happening now, with a new `evt_` id."""
        return cls(
            id=f"evt_{uuid.uuid4().hex}",
            type=event_type,
            tenant=tenant,
            backend=backend,
            occurred_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            data=data,
            dedupe_key=dedupe_key,
        )
