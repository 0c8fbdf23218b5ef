"""Paging cursors: opaque to callers, made and checked here and nowhere else.

A cursor is the unpadded base64url text of `<list>:<seq>`: the list it pages, so that one list's
cursor is refused by another, and the store's `Position` of the previous page's last item. Only
the exact text `encode` makes decodes; anything else (garbage, a number past the stores' 64-bit
sequences, a digit `str.isdigit` accepts but `int` does not, another list's cursor) is a 400
naming `cursor`, never a 5xx or a silently empty page.
"""

from __future__ import annotations

import base64
import binascii
import re

import attrs

from gateway import problems
from gateway.problems import FieldError
from gateway.store import Position

# Both stores number rows with signed 64-bit integers from 1.
MAX_POSITION = 2**63 - 1
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{4,64}")
_TEXT = re.compile(r"([a-z]+):([1-9][0-9]{0,18})")


@attrs.frozen
class Cursors:
    """The cursor codec of one paged list."""

    list_name: str

    def encode(self, position: Position | None) -> str | None:
        if position is None:
            return None
        text = f"{self.list_name}:{position.seq}".encode("ascii")
        return base64.urlsafe_b64encode(text).rstrip(b"=").decode("ascii")

    def decode(self, raw: str | None) -> Position | None:
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

    def _parse(self, raw: str) -> Position | None:
        if not _BASE64URL.fullmatch(raw):
            return None
        try:
            text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            return None
        match = _TEXT.fullmatch(text)
        if match is None or match[1] != self.list_name:
            return None
        seq = int(match[2])
        return Position(seq) if seq <= MAX_POSITION else None


EVENTS = Cursors("events")
SUBSCRIPTIONS = Cursors("subscriptions")
