"""`ServingLoop`: asyncio's loop, its clock and debug flag read through builtins, same answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway import cli
from gateway.server import ServingLoop
from gateway.tenants import digest_key


def test_the_clock_is_the_monotonic_one() -> None:
    """`time()` reads what asyncio's own reads: `time.monotonic` itself, without a frame."""
    loop = ServingLoop()
    try:
        before = time.monotonic()
        assert before <= loop.time() <= time.monotonic()
        assert loop.time is time.monotonic
    finally:
        loop.close()


def test_the_debug_flag_follows_set_debug() -> None:
    """A Future made after `set_debug(True)` records where it was made, as asyncio's debug mode
    does, and stops doing so after `set_debug(False)`: the C Future asks `get_debug()`."""
    loop = ServingLoop()
    try:
        assert loop.get_debug() is False
        assert loop.create_future()._source_traceback is None
        loop.set_debug(True)
        assert loop.get_debug() is True
        assert loop.create_future()._source_traceback
        handle = loop.call_soon(print)
        assert handle._source_traceback
        handle.cancel()
        loop.set_debug(False)
        assert loop.get_debug() is False
        assert loop.create_future()._source_traceback is None
    finally:
        loop.close()


def test_asyncio_debug_from_the_environment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """`PYTHONASYNCIODEBUG=1` turns debug mode on for a new loop, as for asyncio's own."""
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")
    loop = ServingLoop()
    try:
        assert loop.get_debug() is True
    finally:
        loop.close()


def test_serve_runs_on_the_serving_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gateway serve` runs the app on a `ServingLoop` (its `_run` replaced by one that notes the
    loop it runs on, its logging left as the session configured it)."""
    seen: list[type[asyncio.AbstractEventLoop]] = []

    async def note_loop(*args: object, **kwargs: object) -> None:
        seen.append(type(asyncio.get_running_loop()))

    monkeypatch.setattr(cli, "_run", note_loop)
    monkeypatch.setattr(cli, "configure_logging", lambda *args: None)  # the session's stays
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/g.db"\n'
        f'[[tenants]]\nid = "t"\nkeys = ["{digest_key("gwk_x")}"]\n'
    )
    assert cli.main(["serve", "--config", str(config)]) == 0
    assert seen == [ServingLoop]
