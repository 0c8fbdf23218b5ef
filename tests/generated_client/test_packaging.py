"""The generated client as a package: generated from `gateway spec`'s contract when given no spec,
and a wheel that a fresh virtualenv installs and uses from outside the repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

from gateway.plugins import PluginHost
from tests.conftest import gateway_contract
from tests.generated_client.conftest import SANDBOX_KEY, generator


def test_make_client_generates_from_gateway_spec(tmp_path: Path) -> None:
    """Without a spec, the generator takes `gateway spec`'s: the contract the installed backends
    are served with, fragments merged in."""
    spec = generator().merged_spec(tmp_path)
    assert spec.read_bytes() == PluginHost.build().contract().yaml_bytes


# Run by the fresh virtualenv's own Python, from a folder outside the repository.
USE_INSTALLED_CLIENT = """
import sys
from importlib import metadata

import gateway_client
from gateway_client.api.backends import list_backends

base_url, key, site = sys.argv[1:]
assert gateway_client.__file__.startswith(site), gateway_client.__file__
with gateway_client.AuthenticatedClient(base_url=base_url, token=key) as api:
    answer = list_backends.sync_detailed(client=api)
assert answer.status_code == 200, answer.content
print(metadata.version("gateway-client"), *sorted(b.name for b in answer.parsed.items))
"""


def test_client_is_a_package_installed_into_a_fresh_virtualenv(
    client_package: ModuleType, sandbox_url: str, tmp_path: Path
) -> None:
    """The generated client is a project pip builds (hatchling, offline) and installs: a fresh
    virtualenv gets its wheel, `pip check` finds its declared dependencies met, and a script
    there, outside the repository, imports it from its site-packages and lists the sandbox's
    backends through it, the version being the contract's."""
    project = Path(client_package.__file__ or "").parent.parent
    assert (project / "pyproject.toml").is_file()
    wheel = generator().build_wheel(project, tmp_path / "dist")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Offline: the client's dependencies (httpx, attrs and theirs) are seen from this
    # environment's site-packages through a .pth file; the client itself is installed for real.
    ours = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "_dependencies.pth").write_text("\n".join(ours) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run([*pip, "install", "--quiet", "--no-index", "--no-deps", wheel], check=True)
    checked = subprocess.run([*pip, "check"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    used = subprocess.run(
        [python, "-c", USE_INSTALLED_CLIENT, sandbox_url, SANDBOX_KEY, site],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert used.returncode == 0, used.stderr
    version = gateway_contract().document["info"]["version"]
    assert used.stdout.split() == [version, "artifi", "pictofit"]
