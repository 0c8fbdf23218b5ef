"""The serving process's event loop: asyncio's selector loop, with two of its hottest methods
answered by builtins."""

from __future__ import annotations

import asyncio
from time import monotonic

__all__ = ["ServingLoop"]

# A builtin answering the flag: `(False).__bool__()` is False, without a Python frame.
_FLAG = {True: True.__bool__, False: False.__bool__}


class ServingLoop(asyncio.SelectorEventLoop):
    """asyncio's own loop, reading its clock and its debug flag without a Python method call.

    asyncio asks for both many times a request: `time()` at every turn and every timer (~8 times a
    proxied read), `get_debug()` at every Future, Task and Handle it makes (~15). Its own methods
    are a Python frame around one value (~0.9 k and ~0.3 k instructions a call); builtins answer
    the same: `time.monotonic` is what `BaseEventLoop.time` returns, and the debug flag's answer is
    replaced whenever `set_debug` changes it (`PYTHONASYNCIODEBUG` sets it in `__init__`).
    """

    time = staticmethod(monotonic)

    def set_debug(self, enabled: bool) -> None:
        super().set_debug(enabled)
        # An instance attribute: asyncio's C Future looks the method up on every Future it makes.
        self.get_debug = _FLAG[bool(enabled)]  # type: ignore[method-assign]
