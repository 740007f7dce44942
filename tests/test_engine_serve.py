"""A campaign from the outside, as a user runs it: ``crowd local serve`` in one process (the crowd
working continuously on a running clock), ``crowd launch``, ``crowd poll --watch`` until done and
``crowd export --format trl`` in others. The export must be a TRL preference dataset: string
``prompt``, ``chosen`` and ``rejected`` per line, with numeric ``margin`` and ``agreement``. With
``--truth`` the served crowd answers the example like careful readers, not at random."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml
from engine_helpers import crowd, write_campaign
from engine_helpers import served as serve_local

from campaigns.demo.oracles import example_oracle
from campaigns.reports.accuracy import pairwise_accuracy
from campaigns.store.database import open_store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pairwise"


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


def test_served_crowd_answers_from_the_examples_truth(tmp_path):
    rows = [json.loads(x) for x in (EXAMPLE / "items.jsonl").read_text().splitlines() if x.strip()][:5]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    spec.update(name="truth", items="items.jsonl", overlap={"min": 3}, budget=None,
                exports={"dir": str(tmp_path / "exports")})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    with serve_local("mturk", workers=12, clock_speed=600, cwd=tmp_path, truth=EXAMPLE) as (proc, url):
        assert crowd("launch", "spec.yaml", "--endpoint", url, db=db, cwd=tmp_path).returncode == 0
        r = crowd("poll", "--endpoint", url, "--watch", "1", "--json", db=db, cwd=tmp_path, timeout=150)
        assert r.returncode == 0, r.stderr
    accuracy = pairwise_accuracy(open_store(db), "truth", example_oracle(EXAMPLE, rows)[0])
    # 30 pairs: at random the vote would be right on about half (0.75 is 2.7 standard deviations up).
    # Majority vote, not Dawid-Skene: on 30 pairs from a crowd that works in real time (so its course
    # differs run to run) Dawid-Skene's fit of a dozen workers' confusion is what varies, not the answers.
    assert accuracy["pairs"] >= 25 and accuracy["majority_vote"] >= 0.75, accuracy


def test_serve_refuses_a_truth_directory_without_truth(tmp_path):
    r = crowd("local", "serve", "--truth", str(tmp_path), cwd=tmp_path, timeout=30)
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "no spec.yaml" in r.stderr
