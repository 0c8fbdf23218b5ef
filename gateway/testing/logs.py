"""The gateway's log lines in tests: JSON lines written to one file, read back from a point on."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from gateway.logs import configure_logging

__all__ = ["GatewayLogs", "logging_to"]


@contextlib.contextmanager
def logging_to(path: Path) -> Iterator[Path]:
    """Every line the gateway logs while the block runs, at debug level, as JSON lines in `path`
    (secrets scrubbed as in production). Loggers stay re-configurable, so a later block may log
    elsewhere; the file is closed when the block ends."""
    with path.open("w", encoding="utf-8", buffering=1) as stream:
        configure_logging("json", "debug", stream=stream, cache=False)
        yield path


class GatewayLogs:
    """The JSON log lines written to `path` since this object was made (a test's own lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def all(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return [orjson.loads(line) for line in io.BytesIO(f.read()) if line.strip()]

    def events(self, name: str) -> list[dict[str, Any]]:
        """The lines whose `event` is `name` (e.g. `upstream.call`, one per upstream attempt)."""
        return [line for line in self.all() if line.get("event") == name]

    def text(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode()
