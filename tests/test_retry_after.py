"""`Retry-After` as the gateway reads it, from upstreams and subscribers alike: delta-seconds and
GMT dates only, in bounds, never an error."""

from __future__ import annotations

import email.utils
import time

from hypothesis import example, given, strategies as st

from gateway import wire


def test_retry_after_reads_seconds_and_gmt_dates_only() -> None:
    """Delta-seconds and HTTP-dates are read; a date with no zone, or garbage, is not (the same
    reading for upstream answers and for subscribers')."""
    assert wire.retry_after_seconds(" 7 ") == 7.0
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (wire.retry_after_seconds(soon) or 0) <= 30
    assert wire.retry_after_seconds("Mon, 23 Nov 2026 10:00:00 -0000") is None
    assert wire.retry_after_seconds("soon") is None
    assert wire.retry_after_seconds(None) is None


@given(
    st.one_of(
        st.none(),
        st.text(),
        st.from_regex(r"\s*[0-9]{1,400}\s*", fullmatch=True),
        st.text(st.characters(categories=["Nd", "No", "Zs"])),
        st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
        st.from_regex(r"\w{3}, [0-9]{1,3} \w{3} -?[0-9]{1,6} [0-9:]{0,9} [A-Z+0-9-]{0,6}"),
    )
)
@example("²")  # a 429 from a subscriber said this, and the attempt crashed
@example("9" * 5000)  # past int()'s digit limit
@example("0" * 30 + "5")
@example("Fri, 31 Dec 9999 23:59:59 GMT")
@example("Mon, 01 Jan 0000 00:00:00 GMT")
@example("Mon, 01 Jan 1 00:00:00 +9999")
def test_retry_after_never_raises_and_stays_in_bounds(value: str | None) -> None:
    """Any header text reads as None or a delay between 0 and RETRY_AFTER_MAX; never an error."""
    seconds = wire.retry_after_seconds(value)
    assert seconds is None or 0 <= seconds <= wire.RETRY_AFTER_MAX


def test_retry_after_reads_ascii_digits_only_and_caps_huge_ones() -> None:
    """Unicode digits are not delta-seconds; leading zeros are; a huge value is the cap."""
    assert wire.retry_after_seconds("²") is None
    assert wire.retry_after_seconds("٣") is None
    assert wire.retry_after_seconds("0005") == 5.0
    assert wire.retry_after_seconds("9" * 5000) == wire.RETRY_AFTER_MAX
    assert wire.retry_after_seconds("Fri, 31 Dec 9999 23:59:59 GMT") == wire.RETRY_AFTER_MAX
