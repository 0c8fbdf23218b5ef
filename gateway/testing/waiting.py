"""Waiting in tests for what an app does in the background."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `condition()` holds (background work settles), failing after `within` s."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - polling state owned by the app under test
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"condition still false after {within} s") from None
