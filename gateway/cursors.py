"""Paging cursors: opaque to callers, made and checked here and nowhere else.

A cursor is the unpadded base64url text of `<list>:<seq>`: the list it pages, so that one list's
cursor is refused by another, and the store's `Position` of the previous page's last item (for a
subscription's deliveries, listed by creation time and id, `deliveries:<created_at>:<id>`). Only
the exact text `encode` makes decodes; anything else (garbage, a number past the stores' 64-bit
sequences, a digit `str.isdigit` accepts but `int` does not, another list's cursor) is a 400
naming `cursor`, never a 5xx or a silently empty page.
"""

from __future__ import annotations

import abc
import base64
import binascii
import re
from typing import Generic, TypeVar

import attrs

from gateway import problems
from gateway.problems import FieldError
from gateway.store.records import DeliveryPosition, Position

# Both stores number rows with signed 64-bit integers from 1.
MAX_POSITION = 2**63 - 1
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{4,128}")
_TEXT = re.compile(r"([a-z]+):(.+)")
_SEQ = re.compile(r"[1-9][0-9]{0,18}")
# A time as Python writes a float (`repr`, exactly the stored number), then an id.
_KEYSET = re.compile(r"([0-9]{1,17}(?:\.[0-9]{1,17})?(?:e[+-]?[0-9]{1,3})?):([A-Za-z0-9_]{1,64})")

P = TypeVar("P")


@attrs.frozen
class _Codec(abc.ABC, Generic[P]):
    """The cursors of one paged list: `<list>:<where its last page ended>`, base64url."""

    list_name: str

    @abc.abstractmethod
    def _text(self, position: P) -> str:
        """The position's part of the cursor's text."""

    @abc.abstractmethod
    def _position(self, text: str) -> P | None:
        """The position `_text` wrote as `text`; None for any other text."""

    def encode(self, position: P | None) -> str | None:
        if position is None:
            return None
        text = f"{self.list_name}:{self._text(position)}".encode("ascii")
        return base64.urlsafe_b64encode(text).rstrip(b"=").decode("ascii")

    def decode(self, raw: str | None) -> P | None:
        """The position a cursor names; 400 for anything `encode` did not make for this list."""
        if raw is None:
            return None
        position = self._parse(raw)
        # Only the canonical spelling: padding or stray low bits would make two texts one cursor.
        if position is None or self.encode(position) != raw:
            raise problems.bad_request(
                f"the cursor is not one that {self.list_name} gave out; start from the first page",
                [FieldError("cursor", "not a cursor of this list")],
            )
        return position

    def _parse(self, raw: str) -> P | None:
        if not _BASE64URL.fullmatch(raw):
            return None
        try:
            text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            return None
        match = _TEXT.fullmatch(text)
        if match is None or match[1] != self.list_name:
            return None
        return self._position(match[2])


@attrs.frozen
class Cursors(_Codec[Position]):
    """The cursor codec of a list paged by the store's sequence numbers."""

    def _text(self, position: Position) -> str:
        return str(position.seq)

    def _position(self, text: str) -> Position | None:
        if not _SEQ.fullmatch(text) or int(text) > MAX_POSITION:
            return None
        return Position(int(text))


@attrs.frozen
class DeliveryCursors(_Codec[DeliveryPosition]):
    """The cursor codec of a subscription's deliveries, listed by (creation time, id)."""

    def _text(self, position: DeliveryPosition) -> str:
        return f"{position.created_at!r}:{position.id}"

    def _position(self, text: str) -> DeliveryPosition | None:
        match = _KEYSET.fullmatch(text)
        return None if match is None else DeliveryPosition(float(match[1]), match[2])


EVENTS = Cursors("events")
SUBSCRIPTIONS = Cursors("subscriptions")
DELIVERIES = DeliveryCursors("deliveries")
