"""Generate the Python client internal teams use, from the contract, failing on any warning.

    python openapi/generate_client.py [OUTPUT_DIR]      (default: build/client)

Writes the project `gateway-client` into OUTPUT_DIR: its pyproject.toml (hatchling, from
openapi/client-templates/), README.md and the package `gateway_client`, with openapi-python-client
and openapi/client-config.yaml, from the contract the gateway serves: `gateway spec`'s, the core
contract with the installed backends' fragments merged in (kept as OUTPUT_DIR/openapi.yaml). Then
builds its wheel into OUTPUT_DIR/dist: `pip install build/client/dist/gateway_client-*.whl` (or
`pip install build/client`). A warning means the generator dropped or degraded part of the
contract (an operation, a body, a response), so any warning, or any line of output other than the
one naming what it generates, is a failure. `make client` runs this; so do
tests/generated_client/ (into a temporary directory, and installs the wheel into a fresh
virtualenv) and .ci/new-backend.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "client-config.yaml"
TEMPLATES = HERE / "client-templates"
PACKAGE = "gateway_client"


class GenerationFailed(RuntimeError):
    pass


def merged_spec(output: Path) -> Path:
    """`gateway spec` written to OUTPUT_DIR/openapi.yaml: what the installed gateway serves."""
    spec = output / "openapi.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "spec", "--format", "yaml"],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise GenerationFailed(
            f"gateway spec (exit {result.returncode}):\n{result.stderr.decode()}"
        )
    spec.write_bytes(result.stdout)
    return spec


def generate(output: Path, spec: Path | None = None) -> Path:
    """The generated package's directory (in the project OUTPUT_DIR); raises GenerationFailed with
    the generator's output. `spec` is the contract to generate from (default: `gateway spec`'s)."""
    target = output / PACKAGE
    shutil.rmtree(target, ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)
    spec = spec or merged_spec(output)
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(spec),
            "--config",
            str(CONFIG),
            # A project pip installs (pyproject.toml and README.md beside the package); our own
            # pyproject template makes its build backend hatchling (see the template).
            "--meta",
            "uv",
            "--custom-template-path",
            str(TEMPLATES),
            "--output-path",
            str(output),
            "--overwrite",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    text = (result.stdout + result.stderr).strip()
    unexpected = [line for line in text.splitlines() if not line.startswith("Generating ")]
    if result.returncode != 0 or unexpected or not (target / "__init__.py").is_file():
        raise GenerationFailed(f"openapi-python-client (exit {result.returncode}):\n{text}")
    return target


def build_wheel(project: Path, dist: Path) -> Path:
    """The generated project's wheel, built into `dist` offline: hatchling comes from this
    environment (the gateway's dev dependencies), nothing from an index."""
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.glob("*.whl"):
        old.unlink()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index"),
            *("--no-build-isolation", "--wheel-dir", str(dist), str(project)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = list(dist.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise GenerationFailed(f"pip wheel (exit {result.returncode}):\n{result.stderr}")
    return wheels[0]


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build/client")
    try:
        package = generate(output)
        wheel = build_wheel(output, output / "dist")
    except GenerationFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"generated {package}, built {wheel} (pip install it, or {output})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
