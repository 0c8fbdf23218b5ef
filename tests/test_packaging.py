"""What an image build and an install rest on, checked without a Docker engine (none runs on the
project's machines): the Dockerfile's layers and ports, and the constraints file."""

from __future__ import annotations

import re
import shlex
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
DISTRIBUTIONS = ["integration-gateway", "gateway-artifi", "gateway-pictofit"]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dependencies_are_installed_in_a_layer_before_the_sources() -> None:
    """The dependency install copies only what names them (pyproject, constraints) and runs
    before any source is copied, so a code change reuses its layer; every install is
    constrained."""
    steps = instructions()
    copies = [(i, args) for i, (op, args) in enumerate(steps) if op == "COPY"]
    runs = [
        (i, args) for i, (op, args) in enumerate(steps) if op == "RUN" and "pip install" in args
    ]
    assert len(runs) == 2, runs
    deps_at, _ = runs[0]
    before = [args for i, args in copies if i < deps_at]
    assert before == ["constraints.txt pyproject.toml ./"], before
    assert any("gateway" in args.split() for i, args in copies if i > deps_at)
    for _, args in runs:
        assert "-c constraints.txt" in args


def test_the_healthcheck_asks_the_port_the_gateway_listens_on() -> None:
    """The port comes from GATEWAY_PORT, which `serve` takes as its --port default: the
    HEALTHCHECK follows it (it hard-coded 8080), and so does a `docker run` that changes it."""
    steps = dict(instructions())
    env = dict(pair.split("=", 1) for pair in shlex.split(steps["ENV"]))
    assert env["GATEWAY_PORT"] == "8080"
    assert env["GATEWAY_HOST"] == "0.0.0.0"
    assert "127.0.0.1:${GATEWAY_PORT}/healthz" in steps["HEALTHCHECK"]
    assert "8080" not in steps["HEALTHCHECK"]
    # No CMD: arguments given to `docker run` (--sandbox) no longer replace the host.
    assert "CMD" not in {op for op, _ in instructions()}
    assert steps["ENTRYPOINT"] == '["gateway", "serve"]'


def test_the_store_is_a_volume_the_user_can_write() -> None:
    """The working folder, where the default store and the sandbox's data are, is a VOLUME."""
    steps = instructions()
    workdirs = [args for op, args in steps if op == "WORKDIR"]
    assert workdirs[-1] == "/var/lib/gateway"
    assert ("VOLUME", '["/var/lib/gateway"]') in steps
    assert "Mount a named volume" in DOCKERFILE


def test_readme_docker_lines_match_the_image() -> None:
    """The README's `docker run` lines: the sandbox one passes only --sandbox (the host comes
    from the image), and the store's volume is mounted."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docker run -p 8080:8080 gateway --sandbox" in readme
    assert "-v gateway-data:/var/lib/gateway" in readme


def pins() -> dict[str, str]:
    text = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    found = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, re.MULTILINE)
    return {metadata.Distribution.from_name(n).name.lower().replace("_", "-"): v for n, v in found}


def test_constraints_pin_every_dependency_at_the_installed_version() -> None:
    """Every distribution the gateway and its plugins need at run time, however deep, is pinned
    in constraints.txt, at the version installed here (make installs with it: a stale pin fails
    here, not in the image)."""
    pinned = pins()
    seen: set[str] = set()
    todo = [r for d in DISTRIBUTIONS for r in metadata.requires(d) or []]
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name in seen or name in DISTRIBUTIONS:
            continue
        seen.add(name)
        assert name in pinned, f"{name} is not pinned in constraints.txt"
        assert pinned[name] == metadata.version(name), name
        todo += metadata.requires(name) or []
