"""The ``crowd`` command's contract with people and scripts: ``--help`` everywhere; a bad spec or
items file is one line on stderr naming the field or line, exit 1, and nothing written; an unknown
campaign is exit 1 with one line; an unreachable marketplace is exit 2 after retries; read
commands with ``--json`` print one JSON object; ``crowd aggregate`` reproduces a published result.

Run in-process with Typer's runner (stdout and stderr kept apart), which is what the console
script calls; the subprocess behaviour (exit 137, signals) is covered by the engine tests.
"""

from __future__ import annotations

import csv
import json
import re
import socket
from pathlib import Path

import pytest
import typer.main
from engine_helpers import SHARED, STEP_S, launch_in_process, market, poll_in_process, write_campaign
from sqlmodel import select
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.store.database import open_store
from campaigns.store.models import Campaign

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def command_paths() -> list[list[str]]:
    """Every command and sub-command of the app, as argument lists."""
    def walk(cmd, path: list[str]) -> list[list[str]]:
        found = [path]
        if hasattr(cmd, "commands"):  # a group (Typer's own click core)
            for name, sub in cmd.commands.items():
                found += walk(sub, [*path, name])
        return found

    return walk(typer.main.get_command(app), [])


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "crowd")
def test_every_command_has_help(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage:" in result.stdout
    assert len(command_paths()) >= 10


# ------------------------------------------------------------------------------ bad input
GOOD = "name: good\nprovider: mturk\nkind: pairwise\nitems: items.jsonl\npage_size: 2\npricing: {reward: 0.05}\n"
BAD_SPECS = {
    "wrong type": (GOOD.replace("page_size: 2", "page_size: two"), r"spec\.yaml:5: page_size: "),
    "bad money": (GOOD.replace("reward: 0.05", "reward: 0.0501"), r"spec\.yaml:6: pricing\.reward: .*decimal"),
    "negative money": (GOOD.replace("reward: 0.05", "reward: -1"), r"spec\.yaml:6: pricing\.reward: "),
    "unknown field": (GOOD + "colour: red\n", r"spec\.yaml:7: colour: unknown field"),
    "bad items line": (GOOD, r"items\.jsonl:3: "),
    "unknown golden mode": (GOOD + "golden: {synthetic: [truncate, bogus], rate: 0.2}\n",
                            r"spec\.yaml:7: golden\.synthetic: unknown mode 'bogus'.*truncate, shuffle, swap_facts"),
    "absent weaker source": (GOOD + "golden: {weaker_source: model-z, rate: 0.2}\n",
                             r"^error: golden\.weaker_source: .*'model-z'.*sources there: model-"),
    "subjective golden item": (GOOD + "golden: {items: golden.jsonl, rate: 0.2}\n",
                               r"golden\.jsonl:2: objective: golden item 'g2' .*\"objective\": true"),
}


def write_bad(tmp_path: Path, case: str) -> Path:
    spec_text, _ = BAD_SPECS[case]
    write_campaign(tmp_path)  # items.jsonl with 4 good lines
    items = tmp_path / "items.jsonl"
    if case == "bad items line":
        lines = items.read_text().splitlines()
        lines[2] = lines[2][:-1]  # line 3 loses its closing brace
        items.write_text("\n".join(lines) + "\n")
    if case == "subjective golden item":  # line 1 is marked objective, line 2 is not
        first = json.loads(items.read_text().splitlines()[0])
        golden = [{**first, "id": f"g{n}", "answer": {"best": first["responses"][0]["id"]}} for n in (1, 2)]
        golden[0]["objective"] = True
        (tmp_path / "golden.jsonl").write_text("".join(json.dumps(g) + "\n" for g in golden))
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    return spec


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_is_one_line_exit_1_and_writes_no_database(case, tmp_path):
    spec = write_bad(tmp_path, case)
    db_file = tmp_path / "new.db"
    result = invoke("launch", str(spec), "--db", f"sqlite:///{db_file}", "--endpoint", "http://127.0.0.1:9")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(BAD_SPECS[case][1], lines[0]), lines[0]
    assert not db_file.exists() and not list(tmp_path.glob("new.db*"))


@pytest.mark.parametrize("case", ["bad money", "bad items line"])
def test_bad_spec_leaves_an_existing_database_unchanged(case, tmp_path):
    spec = write_bad(tmp_path, case)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_store(url).close()
    result = invoke("launch", str(spec), "--db", url, "--endpoint", "http://127.0.0.1:9")
    assert result.exit_code == 1
    with open_store(url) as store, store.session() as s:
        assert s.exec(select(Campaign)).all() == []


@pytest.mark.parametrize("args", [["status", "nope"], ["costs", "nope"], ["export", "nope"], ["poll", "nope"],
                                  ["workers", "nope"]])
def test_unknown_campaign_is_one_line_and_exit_1(args, tmp_path):
    url = f"sqlite:///{tmp_path / 'crowd.db'}"
    open_store(url).close()
    result = invoke(*args, "--db", url)
    assert result.exit_code == 1, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert "nope" in result.stderr


@pytest.mark.parametrize("args", [["status"], ["costs"], ["export", "x"], ["workers"]])
def test_read_commands_refuse_a_missing_store_without_creating_it(args, tmp_path):
    db = tmp_path / "missing.db"
    result = invoke(*args, "--db", f"sqlite:///{db}")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: no store at") and len(result.stderr.strip().splitlines()) == 1
    assert not db.exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_unreachable_marketplace_exits_2_after_retries(tmp_path):
    spec = write_campaign(tmp_path)
    result = invoke("launch", str(spec), "--db", f"sqlite:///{tmp_path / 'crowd.db'}",
                    "--endpoint", f"http://127.0.0.1:{closed_port()}")
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: provider unreachable after retries")
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------ --json
@pytest.fixture(scope="module")
def finished_campaign(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("cli-campaign")
    spec = write_campaign(d)
    db = f"sqlite:///{d / 'crowd.db'}"
    with market("mturk") as mp:
        launch_in_process(spec, db, mp.url)
        for _ in range(8):
            mp.advance(STEP_S)
            if poll_in_process(db, mp.url):
                break
    return db


@pytest.mark.parametrize("args", [["status"], ["status", "engine"], ["costs", "engine"], ["costs", "--by", "worker"],
                                  ["workers"], ["workers", "engine"]])
def test_read_commands_print_one_json_object(args, finished_campaign):
    result = invoke(*args, "--db", finished_campaign, "--json")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    assert isinstance(json.loads(result.stdout), dict)


def test_export_json_names_the_file_it_wrote(finished_campaign, tmp_path):
    out = tmp_path / "all.jsonl"
    result = invoke("export", "engine", "--format", "jsonl", "--out", str(out), "--db", finished_campaign, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert isinstance(summary, dict) and Path(summary["path"]) == out
    assert len(out.read_text().splitlines()) == summary["rows"] > 0


# ------------------------------------------------------------------------------ aggregate
DUCK = SHARED / "data/truth-inference/d_Duck_Identification"


@pytest.mark.skipif(not (DUCK / "answer.csv").is_file(), reason=f"shared data not found at {DUCK.resolve()}")
def test_aggregate_reproduces_the_published_dawid_skene_accuracy(tmp_path):
    table = (SHARED / "data/README.md").read_text()
    published = float(re.search(r"\| d_Duck_Identification \|.*\| (\.\d+) \|\s*$", table, re.M).group(1))
    out = tmp_path / "ds.csv"
    result = invoke("aggregate", str(DUCK / "answer.csv"), "--task-column", "question", "--label-column", "answer",
                    "--method", "ds", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    with out.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["question", "answer", "confidence"]  # task, label, confidence under the CSV's names
    labels = {r[0]: r[1] for r in rows[1:]}
    assert all(0 <= float(r[2]) <= 1 for r in rows[1:])
    with (DUCK / "truth.csv").open() as f:
        truth = {r["question"]: r["truth"] for r in csv.DictReader(f)}
    accuracy = sum(labels.get(q) == t for q, t in truth.items()) / len(truth)
    assert accuracy == pytest.approx(published, abs=0.0015)
