"""The package layout the README maps: small modules, rooms that import only downward (the
import-linter contracts in pyproject.toml, shown to break on a deliberate violation), and an
engine that names no task kind."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from decomposition.graph import graph_names
from decomposition.kinds import kind_names

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"
ENGINE_ROOMS = ("engine", "stages", "money", "quality", "adaptive")


def _modules(room: str = "") -> list[Path]:
    base = ROOT / "campaigns" / room
    return sorted(p for p in base.rglob("*.py") if "examples" not in p.parts and "versions" not in p.parts)


def test_no_module_of_campaigns_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 300}
    assert not long


def test_every_room_says_what_it_holds():
    rooms = [p for p in (ROOT / "campaigns").iterdir() if (p / "__init__.py").exists() and p.name != "examples"]
    assert {p.name for p in rooms} >= {"cli", "demo", "reports", "engine", "adaptive", "stages", "money", "quality",
                                       "spec", "store"}
    for room in rooms:
        doc = ast.get_docstring(ast.parse((room / "__init__.py").read_text()))
        assert doc and len(doc) > 150, room.name


def test_the_engine_names_no_kind():
    """No string in the engine's rooms is a task kind or campaign kind name (docstrings aside):
    kinds live in decomposition, reached through the stage graph."""
    names = set(kind_names()) | set(graph_names())
    found = []
    for room in ENGINE_ROOMS:
        for path in _modules(room):
            tree = ast.parse(path.read_text())
            docs = {id(n.body[0].value) for n in ast.walk(tree)
                    if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                    and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
            found += [f"{path.relative_to(ROOT)}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
                      if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names
                      and id(n) not in docs]
    assert not found


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in ("campaigns", "connectors", "decomposition", "payouts"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "examples"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize("module, line, broken", [
    ("campaigns/quality/pools.py", "campaigns.engine.poll",
     "campaigns.quality is not allowed to import campaigns.engine"),
    ("campaigns/store/keys.py", "campaigns.spec.model", "campaigns.store is not allowed to import campaigns.spec"),
    ("decomposition/pages.py", "connectors.mturk.connector", "decomposition is not allowed to import connectors.mturk"),
    ("payouts/money.py", "campaigns.errors", "payouts is not allowed to import campaigns"),
    ("connectors/base.py", "campaigns.errors", "connectors is not allowed to import campaigns"),
    ("campaigns/engine/advance.py", "campaigns.engine.poll", "No cycles are allowed in campaigns.engine"),
])
def test_the_contracts_hold_and_break_on_a_violation(tree: Path, module: str, line: str, broken: str):
    assert LINT.exists(), "import-linter is a dev dependency"
    ok = _lint(tree)
    assert ok.returncode == 0, ok.stdout[-2000:]
    with (tree / module).open("a") as f:
        f.write(f"\nimport {line}  # noqa\n")
    bad = _lint(tree)
    assert bad.returncode != 0 and broken in bad.stdout, bad.stdout[-2000:]
