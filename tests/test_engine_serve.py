"""A campaign from the outside, as a user runs it: ``crowd local serve`` in one process (the crowd
working continuously on a running clock), ``crowd launch``, ``crowd poll --watch`` until done and
``crowd export --format trl`` in others. The export must be a TRL preference dataset: string
``prompt``, ``chosen`` and ``rejected`` per line, with numeric ``margin`` and ``agreement``."""

from __future__ import annotations

import json
import re
import selectors
import signal
import subprocess

import pytest
from engine_helpers import CROWD, crowd, crowd_env, write_campaign


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise AssertionError(f"no line from {proc.args} within {timeout} s")
    return proc.stdout.readline()


@pytest.fixture
def served(tmp_path):
    """``crowd local serve`` on a free port; stopped with SIGTERM, which must end it cleanly."""
    proc = subprocess.Popen([str(CROWD), "local", "serve", "--provider", "mturk", "--port", "0", "--workers", "8",
                             "--clock-speed", "120", "--seed", "3"], env=crowd_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = read_line(proc, 60)
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, f"no URL in {line!r}"
        yield proc, url.group(0)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def test_launch_poll_watch_and_export_trl_against_crowd_local_serve(served, tmp_path):
    proc, url = served
    spec = write_campaign(tmp_path / "c")
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    r = crowd("launch", str(spec), "--endpoint", url, "--json", db=db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pages"] > 0
    r = crowd("poll", "--endpoint", url, "--watch", "1", "--json", db=db, cwd=tmp_path, timeout=150)
    assert r.returncode == 0, r.stderr
    polls = [json.loads(line) for line in r.stdout.splitlines()]
    assert polls[-1]["all_done"] and not any(p["all_done"] for p in polls[:-1])

    out = tmp_path / "prefs.jsonl"
    r = crowd("export", "engine", "--format", "trl", "--out", str(out), "--json", db=db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows and len(rows) == json.loads(r.stdout)["rows"]
    for row in rows:
        assert all(isinstance(row[k], str) and row[k] for k in ("prompt", "chosen", "rejected"))
        assert row["chosen"] != row["rejected"]
        assert all(isinstance(row[k], int | float) and not isinstance(row[k], bool) for k in ("margin", "agreement"))
        assert 0 <= row["agreement"] <= 1

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, proc.stderr.read()
