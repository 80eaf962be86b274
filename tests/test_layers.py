"""The layers of the tree: imports only go down, and no library module or CLI imports a CLI.

Why a test: the layout (docs/architecture.md) is only true while every import keeps to it. Reading the imports of
every module (function-level ones included) catches an upward import the day it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("envs", "agents", "experiments")

#: layer of each module prefix, lowest first; the longest matching prefix wins
LAYERS = {
    "envs.core": 0,
    "envs.methods": 1,
    "envs.actions": 2,
    "envs.episode": 2,
    "envs.data_agent": 3,
    "envs.cover_select": 3,
    "envs": 4,  # the package itself: exports and the Gymnasium registrations
    "agents": 5,
    "experiments.run": 6,
    "experiments": 7,  # CLIs and the helpers they share
}
#: layers whose packages are siblings: neither may import the other
SIBLINGS = ("envs.data_agent", "envs.cover_select")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p))
            for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def first_party_imports(tree: ast.Module) -> set[str]:
    """Every first-party module a module imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from envs.core import signals`
    return {n for n in names if n.split(".")[0] in PACKAGES}


def prefix_of(name: str, table) -> str | None:
    matches = [p for p in table if name == p or name.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def layer(name: str) -> int:
    return LAYERS[prefix_of(name, LAYERS)]


def is_cli(tree: ast.Module) -> bool:
    """A CLI module defines the ``cli`` console-script entry point."""
    return any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "cli" for t in n.targets) for n in tree.body)


MODULES = modules()
CLIS = {name for name, tree in MODULES.items() if is_cli(tree)}


def known(imported: str) -> str | None:
    """The module (not attribute) an import names, if it is one of ours."""
    while imported and imported not in MODULES:
        imported = imported.rpartition(".")[0]
    return imported or None


def test_the_layer_table_covers_every_module():
    assert CLIS, "no CLI found: is_cli no longer recognises the console-script entry points"
    assert all(prefix_of(name, LAYERS) for name in MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_go_down(name):
    upward = sorted({
        target for target in filter(None, map(known, first_party_imports(MODULES[name])))
        if layer(target) > layer(name)
        or (prefix_of(name, SIBLINGS) and prefix_of(target, SIBLINGS) not in (None, prefix_of(name, SIBLINGS)))
    })
    assert not upward, f"{name} (layer {layer(name)}) imports from above or beside it: {upward}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_nothing_imports_a_cli(name):
    clis = sorted({t for t in filter(None, map(known, first_party_imports(MODULES[name]))) if t in CLIS and t != name})
    assert not clis, f"{name} imports the CLI module(s) {clis}: move what it needs into the library"


def test_the_checks_catch_an_upward_import():
    tree = ast.parse("from experiments.train import main\nfrom envs.data_agent.env import DataAgentEnv\n")
    targets = set(filter(None, map(known, first_party_imports(tree))))
    assert "experiments.train" in CLIS and "experiments.train" in targets
    assert layer("envs.data_agent.env") > layer("envs.methods.coreset")
