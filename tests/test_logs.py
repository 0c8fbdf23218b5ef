"""The log pipeline itself: every rendered line is scrubbed of known secrets, whatever carried them;
timestamps are ISO 8601 UTC as structlog's own stamper writes them."""

from __future__ import annotations

import datetime
import logging
import re
from pathlib import Path

import orjson
import structlog

from gateway.logs import SECRETS, _UtcTimestamp, configure_logging, get_logger
from gateway.redaction import REDACTED
from gateway.testing import GatewayLogs

# Quote and backslash: the JSON line carries it escaped, and must be scrubbed in that form too.
ODD_SECRET = 'upstream-"key"\\-with-escapes-7f3a'
PLAIN_SECRET = "upstream-plain-key-0c9d2e"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_secrets_are_scrubbed_from_keys_nested_values_and_stdlib_records(logs: GatewayLogs) -> None:
    """A secret in a value, a nested list, a dict key or a stdlib record never reaches the file;
    lines stay valid JSON with the rest of their content."""
    SECRETS.add(ODD_SECRET, PLAIN_SECRET)
    log = structlog.get_logger("tests.logs")
    log.warning(
        "leaky",
        value=f"Bearer {ODD_SECRET}",
        nested={"list": [PLAIN_SECRET, 1], PLAIN_SECRET: "as a key"},
    )
    logging.getLogger("some.library").warning("sent token %s", ODD_SECRET)

    text = logs.text()
    assert ODD_SECRET not in text
    assert orjson.dumps(ODD_SECRET).decode()[1:-1] not in text  # the JSON-escaped form
    assert PLAIN_SECRET not in text
    (line,) = logs.events("leaky")
    assert line["value"] == f"Bearer {REDACTED}"
    assert line["nested"] == {"list": [REDACTED, 1], REDACTED: "as a key"}
    (record,) = logs.events(f"sent token {REDACTED}")
    assert record["logger"] == "some.library"


def test_timestamp_has_structlogs_iso_form_and_the_current_time() -> None:
    """The cached-second stamper writes what `TimeStamper(fmt="iso", utc=True)` writes, now."""
    ours = _UtcTimestamp()(None, "info", {})["timestamp"]
    theirs = structlog.processors.TimeStamper(fmt="iso", utc=True)(None, "info", {})["timestamp"]
    assert ISO_UTC.match(ours), ours
    assert ISO_UTC.match(theirs), theirs
    stamped = datetime.datetime.fromisoformat(ours)
    assert stamped.utcoffset() == datetime.timedelta(0)
    assert abs(stamped - datetime.datetime.fromisoformat(theirs)) < datetime.timedelta(seconds=1)


def test_timestamp_follows_the_clock_across_seconds() -> None:
    """The second formatted once is replaced when the clock moves on (no stale prefix)."""
    stamper = _UtcTimestamp()
    first = stamper(None, "info", {})["timestamp"]
    stamper._second = (stamper._second[0] - 5, "2000-01-01T00:00:00")  # as if 5 s ago
    second = stamper(None, "info", {})["timestamp"]
    assert not second.startswith("2000-")
    assert datetime.datetime.fromisoformat(second) >= datetime.datetime.fromisoformat(first)


def test_a_module_logger_follows_each_configuration(tmp_path: Path, log_file: Path) -> None:
    """A module's logger (`get_logger`), made before logging is configured again, writes where
    and at the level the latest configuration says."""
    log = get_logger("tests.module")
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    try:
        with first.open("w", encoding="utf-8") as stream:
            configure_logging("json", "info", stream=stream)
            log.info("one")
            log.debug("below the level")
        with second.open("w", encoding="utf-8") as stream:
            configure_logging("json", "debug", stream=stream)
            log.debug("two", n=2)
    finally:
        configure_logging(
            "json", "debug", stream=log_file.open("a", encoding="utf-8", buffering=1), cache=False
        )
    assert [orjson.loads(line)["event"] for line in first.read_text().splitlines()] == ["one"]
    [line] = [orjson.loads(line) for line in second.read_text().splitlines()]
    assert (line["event"], line["n"], line["logger"]) == ("two", 2, "tests.module")
    # structlog's own form: microseconds, left out (as isoformat does) when there are none
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", line["timestamp"])


def test_lines_and_stdlib_records_reach_a_file_in_the_order_logged(logs: GatewayLogs) -> None:
    """Our lines go straight to the file's descriptor, the stdlib's records through the stream:
    in the file they are in the order they were logged."""
    log = get_logger("tests.order")
    for n in range(3):
        log.info("ours", n=n)
        logging.getLogger("some.library").warning("theirs %s", n)
    events = [(line["event"], line.get("n")) for line in logs.all()]
    assert events[-6:] == [
        ("ours", 0),
        ("theirs 0", None),
        ("ours", 1),
        ("theirs 1", None),
        ("ours", 2),
        ("theirs 2", None),
    ]
