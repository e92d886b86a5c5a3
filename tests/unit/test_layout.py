"""The layout shows the architecture: imports run one way (core <- producers <- worker <- ops
<- web <- cli; the dev kit uses core and producers), and nothing but `eventfwd`, `producers`
and `worker` is installed at the top level."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# room -> the rooms it may import (its own included)
ALLOWED = {
    "eventfwd.core": {"eventfwd.core"},
    "producers": {"eventfwd.core", "producers"},
    "worker": {"eventfwd.core", "producers", "worker"},
    "eventfwd.devkit": {"eventfwd.core", "producers", "eventfwd.devkit"},
    # operator read/act models, shared by the CLI and the web console
    "eventfwd.ops": {"eventfwd.core", "producers", "worker", "eventfwd.ops"},
    "eventfwd.web": {"eventfwd.core", "producers", "worker", "eventfwd.ops", "eventfwd.web"},
    "eventfwd.cli": {
        "eventfwd.core",
        "producers",
        "worker",
        "eventfwd.devkit",
        "eventfwd.ops",
        "eventfwd.web",
        "eventfwd.cli",
    },
}
ROOMS = sorted(ALLOWED, key=len, reverse=True)


def room_of(module: str) -> str | None:
    for room in ROOMS:
        if module == room or module.startswith(room + "."):
            return room
    if module == "eventfwd":
        return "eventfwd"
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement in `path` names (top-level and inside functions)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from eventfwd.cli import dead` names the module eventfwd.cli.dead
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def package_files() -> list[Path]:
    files = []
    for top in ("eventfwd", "producers", "worker"):
        files += sorted((ROOT / top).rglob("*.py"))
    return files


@pytest.mark.parametrize("path", package_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_one_way(path: Path) -> None:
    own = room_of(module_name(path))
    if own == "eventfwd":  # the package docstring, nothing else
        assert imports_of(path) == []
        return
    assert own is not None, f"{path} belongs to no room"
    wrong = []
    for line, name in imports_of(path):
        target = room_of(name)
        if target is not None and target != "eventfwd" and target not in ALLOWED[own]:
            wrong.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {name} ({target})")
    assert not wrong, "\n".join(wrong)


def test_the_rules_catch_a_wrong_way_import(tmp_path: Path) -> None:
    # the check itself: a core module that imported the worker would be caught
    assert room_of("worker.delivery") not in ALLOWED["eventfwd.core"]
    assert room_of("eventfwd.cli.main") not in ALLOWED["eventfwd.devkit"]
    assert room_of("eventfwd.core.ledger") in ALLOWED["producers"]
    assert room_of("eventfwd.cli.dead") not in ALLOWED["eventfwd.ops"]
    assert room_of("eventfwd.web.app") not in ALLOWED["eventfwd.ops"]


def test_only_the_project_names_are_installed_at_the_top_level() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(include) == ["eventfwd*", "producers*", "worker*"]
    tops = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    # tests, bench and examples are not packaged (find's include leaves them out)
    assert tops - {"tests", "bench"} == {"eventfwd", "producers", "worker"}
