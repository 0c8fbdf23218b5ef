"""Time bounds as callers give them: RFC 3339 date-times (the contract checked their form) to unix
seconds, and problems naming the parameter or body member for what cannot be read."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from gateway import problems
from gateway.problems import FieldError

# RFC 3339's date-time (section 5.6), either case of T and Z, a space for T as its note allows.
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?"
    r"(?:([Zz])|([+-])(\d\d):(\d\d))"
)
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def moment(text: str, location: str, *, in_body: bool = False) -> float:
    """Unix seconds of an RFC 3339 date-time (any year from 0000, a leap second as the instant
    after 23:59:59); a problem naming `location` (400 for a parameter, 422 for a body member)
    for anything else, such as a time without its zone."""
    seconds = _seconds(text)
    if seconds is None:
        detail = f"{location} is not an RFC 3339 date-time with a time zone"
        error = [FieldError(location, "not an RFC 3339 date-time with a time zone")]
        raise (
            problems.invalid_input(detail, error)
            if in_body
            else problems.bad_request(detail, error)
        )
    return seconds


def _seconds(text: str) -> float | None:
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match[n]) for n in range(1, 7))
    leap_year = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= month <= 12 or not 1 <= day <= _MONTH_DAYS[month - 1]:
        return None
    if month == 2 and day == 29 and not leap_year:
        return None
    offset = 0
    if match[9]:
        offset_hours, offset_minutes = int(match[10]), int(match[11])
        if offset_hours > 23 or offset_minutes > 59:
            return None
        offset = (offset_hours * 60 + offset_minutes) * (1 if match[9] == "+" else -1)
    if hour > 23 or minute > 59 or second > 60:
        return None
    # Days from 1970-01-01 in the proleptic Gregorian calendar (datetime's own count, which
    # starts at year 1), so that year 0000 reads too.
    like = 2000 if leap_year else 2001  # a year of the same kind that datetime can count in
    days = datetime.date(like, month, day).toordinal() - datetime.date(like, 1, 1).toordinal()
    days += _days_before_year(year) - _days_before_year(1970)
    fraction = float(match[7]) if match[7] else 0.0
    return days * 86400 + hour * 3600 + (minute - offset) * 60 + second + fraction


def _days_before_year(year: int) -> int:
    """Days from 0000-01-01 to the first of January of `year`."""
    if year == 0:
        return 0
    previous = year - 1
    return 366 + previous * 365 + previous // 4 - previous // 100 + previous // 400


def ordered(
    since: float | None, until: float | None, names: tuple[str, str], *, in_body: bool
) -> None:
    """A problem naming `names[1]` unless `since` comes before `until` (when both are given)."""
    if since is not None and until is not None and since >= until:
        detail = f"{names[1]} must come after {names[0]}"
        error = [FieldError(names[1], f"not after {names[0]}")]
        raise (
            problems.invalid_input(detail, error)
            if in_body
            else problems.bad_request(detail, error)
        )


def time_bounds(query: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The `since` and `until` query parameters, as unix seconds."""
    since = moment(str(query["since"]), "since") if "since" in query else None
    until = moment(str(query["until"]), "until") if "until" in query else None
    ordered(since, until, ("since", "until"), in_body=False)
    return since, until
