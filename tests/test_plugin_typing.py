"""The plugin API is typed in the backend's configuration, end to end: mypy (strict) sees a
backend's own config class wherever the core hands it a tenant's configuration, and refuses a
method typed in another one. No `Any` config at the boundary."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

BACKEND = """
    import attrs
    from aiohttp import web

    from gateway.plugin_api import (
        Backend, CallbackRegistration, Credentials, CredentialsRequest, OperationCall, Reply,
    )


    @attrs.frozen
    class AcmeConfig:
        base_url: str


    class AcmeBackend(Backend[AcmeConfig]):
        config_type = AcmeConfig
        capabilities = frozenset({"listProductTypes"})

        async def credentials(self, request: CredentialsRequest[AcmeConfig]) -> Credentials:
            reveal_type(request.config)
            reveal_type(request.upstream.config)
            return Credentials()

        async def operation(self, call: OperationCall[AcmeConfig]) -> Reply | web.StreamResponse:
            reveal_type(call.upstream.config)
            return Reply(204)

        async def register_callbacks(
            self, registration: CallbackRegistration[AcmeConfig]
        ) -> None:
            reveal_type(registration.upstream.config)
"""

WRONG = """
    @attrs.frozen
    class OtherConfig:
        token: str


    class Confused(Backend[AcmeConfig]):
        async def credentials(self, request: CredentialsRequest[OtherConfig]) -> Credentials:
            return Credentials()
"""


def mypy(tmp_path: Path, source: str) -> tuple[list[str], int]:
    # A process of its own: mypy raises the recursion limit of the process it runs in.
    module = tmp_path / "acme_typed.py"
    module.write_text(textwrap.dedent(source))
    options = ["--strict", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"]
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *options, str(module)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert not done.stderr, done.stderr
    return done.stdout.splitlines(), done.returncode


def test_a_backend_sees_its_own_config_type(tmp_path: Path) -> None:
    """Credentials requests, bound upstream clients, operation calls and callback registrations
    carry the backend's config class, so `request.config.base_url` is checked by mypy."""
    lines, status = mypy(tmp_path, BACKEND)
    revealed = [line.split("Revealed type is ")[1] for line in lines if "Revealed type" in line]
    assert revealed == ['"acme_typed.AcmeConfig"'] * 4, lines
    assert status == 0, lines


def test_a_method_typed_in_another_config_is_refused(tmp_path: Path) -> None:
    """A backend's `credentials` typed in a config class not its own is a type error."""
    lines, status = mypy(tmp_path, BACKEND + WRONG)
    assert status == 1
    assert any("Confused" in line or "credentials" in line for line in lines if "error" in line)
