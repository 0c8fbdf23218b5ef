"""`loop_clock`: asyncio's own clock read without its method, any other clock kept."""

from __future__ import annotations

import asyncio
import time

from gateway.clock import loop_clock


def test_asyncios_own_loop_reads_the_monotonic_clock_directly() -> None:
    """asyncio's `time()` is `time.monotonic()`: the same function, without the method."""
    loop = asyncio.new_event_loop()
    try:
        assert loop_clock(loop) is time.monotonic
        assert abs(loop_clock(loop)() - loop.time()) < 1.0
    finally:
        loop.close()


def test_a_loop_with_a_clock_of_its_own_keeps_it() -> None:
    """A loop class that overrides `time()` (uvloop, a test's fake) is read through it."""

    class Behind(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return 42.0

    loop = Behind()
    try:
        assert loop_clock(loop)() == 42.0
    finally:
        loop.close()


def test_a_loop_whose_time_was_replaced_on_the_instance_keeps_the_replacement() -> None:
    """`loop.time` patched on one loop (as a test may) is what is read."""
    loop = asyncio.new_event_loop()
    try:
        loop.time = lambda: 7.0  # type: ignore[method-assign]
        assert loop_clock(loop)() == 7.0
    finally:
        loop.close()
