"""A plain ``pip install crowdbridge``, as a new user gets it: the wheel built from this tree,
installed without extras into a fresh virtualenv (one for the whole module), run from a folder
outside the repository. ``crowd demo`` must work for both providers and both kinds, and ``crowd
local serve --truth`` with a bundled example, with nothing but the wheel and its dependencies:
no ``[dev]`` packages (``lxml`` was one), no ``examples/`` beside the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from engine_helpers import crowd_env, read_line

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``bin`` directory of a fresh venv holding the wheel and its run-time dependencies only."""
    root = tmp_path_factory.mktemp("wheel")
    # built from a clean copy: an in-tree build leaves build/ behind, whose stale files a later wheel would ship
    src = shutil.copytree(REPO, root / "src", symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "*.db", "exports"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    wheel = next((root / "dist").glob("crowdbridge-*.whl"))
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=600)
    return bin_dir


def _outside(tmp_path: Path) -> Path:
    away = tmp_path / "elsewhere"
    away.mkdir()
    assert REPO not in away.parents
    return away


def test_the_wheel_has_no_dev_packages(installed):
    r = subprocess.run([str(installed / "python"), "-c", "import importlib.util as u; "
                        "print(u.find_spec('pytest') is None, u.find_spec('xmlschema') is None)"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["True", "True"], r.stderr  # extras really are absent: the test means something


@pytest.mark.parametrize("provider", ["mturk", "toloka", "prolific"])
@pytest.mark.parametrize("kind", ["pairwise", "ffv"])
def test_crowd_demo_runs_from_the_installed_wheel(installed, tmp_path, provider, kind):
    away = _outside(tmp_path)
    r = subprocess.run([str(installed / "crowd"), "demo", "--provider", provider, "--kind", kind, "--items", "3",
                        "--json", "--db", f"sqlite:///{away / 'demo.db'}"],
                       env=crowd_env(), cwd=away, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["items"] == 3 and summary["provider"] == provider and summary["kind"] == kind
    assert summary["assignments"] > 0 and summary["reconcile"]["ok"]
    assert all(Path(p).is_file() for p in summary["exports"].values())


def test_crowd_local_serve_with_a_bundled_truth_runs_from_the_installed_wheel(installed, tmp_path):
    away = _outside(tmp_path)
    proc = subprocess.Popen([str(installed / "crowd"), "local", "serve", "--port", "0", "--truth", "pairwise"],
                            env=crowd_env(), cwd=away, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = read_line(proc, 60)
        died = proc.stderr.read() if proc.poll() is not None else ""
        assert re.search(r"http://127\.0\.0\.1:\d+", line), (line, died)
    finally:
        proc.terminate()
        proc.wait(15)
