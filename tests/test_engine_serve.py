"""A campaign from the outside, as a user runs it: ``crowd local serve`` in one process (the crowd
working continuously on a running clock), ``crowd launch``, ``crowd poll --watch`` until done and
``crowd export --format trl`` in others. The export must be a TRL preference dataset: string
``prompt``, ``chosen`` and ``rejected`` per line, with numeric ``margin`` and ``agreement``."""

from __future__ import annotations

import json
import signal

import pytest
from engine_helpers import crowd, write_campaign
from engine_helpers import served as serve_local


@pytest.fixture
def served(tmp_path):
    with serve_local("mturk", cwd=tmp_path) as running:
        yield running


def test_launch_poll_watch_and_export_trl_against_crowd_local_serve(served, tmp_path):
    proc, url = served
    spec = write_campaign(tmp_path / "c", strict=False)  # this test is about processes, not blocking
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
