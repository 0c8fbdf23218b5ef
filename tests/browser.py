"""Headless Chromium driven over the DevTools protocol (a WebSocket, with aiohttp's client).

Enough of the protocol for a test to do what a person does on a page: open it, run script in it
(clicks, typing, reading the DOM), and see every request it made and every error it logged.
Debian's Chromium (`make chromium`); in CI (CI=true) its absence fails the test, elsewhere skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

# As the machine's notes advise: without the background-networking flags Chromium tries to
# reach Google's hosts at every start, which this machine's closed network refuses.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)


def chromium() -> str:
    """Chromium's executable; skips the test without one, except in CI where it fails."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing in CI: `make chromium` installs Debian's package")
        pytest.skip("Chromium is not installed (make chromium)")
    return found


class Tab:
    """One page of the browser: commands sent, answers and events read by one task."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._sent = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.requests: list[str] = []
        self.errors: list[str] = []

    async def read(self) -> None:
        async for message in self._socket:
            data = json.loads(message.data)
            if "id" in data:
                self._waiting.pop(data["id"]).set_result(data)
            else:
                self._event(data["method"], data.get("params", {}))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.errors.append(" ".join(str(a.get("value", "")) for a in params["args"]))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._sent += 1
        answer = self._waiting[self._sent] = asyncio.get_running_loop().create_future()
        await self._socket.send_json({"id": self._sent, "method": method, "params": params})
        reply = await answer
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a script run in the page (awaited when it is a promise)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float = 30.0) -> Any:
        """The first truthy value of `expression`, polled until `within` seconds have passed."""
        try:
            async with asyncio.timeout(within):
                while not (value := await self.evaluate(expression)):  # noqa: ASYNC110 - polling
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"not within {within} s: {expression}") from None
        return value

    async def type_text(self, text: str) -> None:
        """Types into the focused element, as a keyboard would."""
        await self.send("Input.insertText", text=text)


@contextlib.asynccontextmanager
async def open_page(url: str, profile: Path) -> AsyncIterator[Tab]:
    """A fresh headless Chromium (its own empty profile) showing `url`, once it has loaded."""
    process = await asyncio.create_subprocess_exec(
        chromium(),
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(60):
            endpoint = None
            while endpoint is None:
                line = await process.stderr.readline()
                if not line:
                    raise AssertionError("Chromium exited before its DevTools endpoint was up")
                found = re.search(rb"DevTools listening on (ws://\S+)", line)
                endpoint = found and found.group(1).decode()
        drain = asyncio.create_task(process.stderr.read())  # its log must not fill the pipe
        port = urlsplit(endpoint).port
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as listing:
                targets = await listing.json()
            [page] = [t for t in targets if t["type"] == "page"]
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tab = Tab(ws)
                reader = asyncio.create_task(tab.read())
                try:
                    for domain in ("Page", "Runtime", "Log", "Network"):
                        await tab.send(f"{domain}.enable")
                    await tab.send("Page.navigate", url=url)
                    await tab.wait_for("document.readyState === 'complete'")
                    yield tab
                finally:
                    reader.cancel()
        drain.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
