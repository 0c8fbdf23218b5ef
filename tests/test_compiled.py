"""The hot modules compiled with mypyc (`make compile`), and the guard against stale ones."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gateway import compiled
from gateway.compiled import StaleCompiledModule, check, digest

ROOT = Path(__file__).resolve().parent.parent


def _build_tool() -> Any:
    """tools/compile.py, the build itself (a script, not a package): what it reads is tested."""
    spec = importlib.util.spec_from_file_location("compile_tool", ROOT / "tools" / "compile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _build_tool()
SUFFIX = BUILD.SUFFIX


def _manifest(tmp_path: Path, sources: dict[str, str]) -> Path:
    for relative, text in sources.items():
        source = tmp_path / relative
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(text)
        source.with_suffix(SUFFIX).write_bytes(b"built from the text above")
    manifest = tmp_path / "pkg" / "compiled.json"
    built = {relative: digest(tmp_path / relative) for relative in sources}
    manifest.write_text(json.dumps({"sources": built, "extensions": []}))
    return manifest


def test_unchanged_sources_pass_and_a_tree_never_compiled_has_nothing_to_check(
    tmp_path: Path,
) -> None:
    """The sources an extension was built from pass the guard; without a manifest (never
    compiled, or cleaned) there is nothing to check."""
    manifest = _manifest(tmp_path, {"pkg/hot.py": "X = 1\n", "pkg/sub/warm.py": "Y = 2\n"})
    assert set(check(tmp_path, manifest)) == {"pkg/hot.py", "pkg/sub/warm.py"}
    assert check(tmp_path, tmp_path / "absent.json") == {}


@pytest.mark.parametrize("change", ["edited", "deleted"])
def test_a_source_changed_since_it_was_compiled_is_refused_with_the_remedy(
    tmp_path: Path, change: str
) -> None:
    """Python would import the old extension instead of the edited source: the guard refuses,
    naming the source and `make compile`."""
    manifest = _manifest(tmp_path, {"pkg/hot.py": "X = 1\n", "pkg/cold.py": "Z = 3\n"})
    source = tmp_path / "pkg" / "hot.py"
    if change == "edited":
        source.write_text("X = 2\n")
    else:
        source.unlink()
    with pytest.raises(StaleCompiledModule, match=r"pkg/hot\.py changed .*`make compile`"):
        check(tmp_path, manifest)


def test_every_listed_module_runs_compiled_when_the_tree_is_compiled() -> None:
    """After `make compile` (as `make test` runs it), each module listed in a pyproject's
    `[tool.gateway] compiled` is imported from its extension, and the manifest covers exactly
    them. CI always compiles; a tree never compiled skips (it runs its sources)."""
    if not compiled.MANIFEST.exists():
        if os.environ.get("CI"):
            pytest.fail("CI runs `make test`, which compiles: gateway/compiled.json is missing")
        pytest.skip("not compiled here (`make compile`)")
    folders = [ROOT, *(p.parent for p in sorted(ROOT.glob("plugins/*/pyproject.toml")))]
    listed = [
        source.relative_to(ROOT).as_posix() for folder in folders for source in BUILD.listed(folder)
    ]
    assert "gateway/middleware.py" in listed
    assert sorted(check()) == sorted(listed)
    for path in listed:
        parts = Path(path).with_suffix("").parts
        name = ".".join(parts[2:] if parts[0] == "plugins" else parts)
        module = importlib.import_module(name)
        assert str(module.__file__).endswith(SUFFIX), f"{name} runs from {module.__file__}"
