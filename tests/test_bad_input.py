"""Bad input is one clear line and writes nothing (issue 14: "Done when": at least 60 cases).

Every case runs the ``crowd`` command in-process (Typer's runner, stdout and stderr apart, as the
console script runs it) and must: exit non-zero, print exactly one line on stderr, show no
traceback anywhere, name what is wrong (a pattern per case), and leave no store file where there
was none, or no new row in a store that was there. Cases are data: a spec edit, or a command line.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from engine_helpers import campaign_items
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.store.database import open_store

DEAD = "http://127.0.0.1:9"  # nothing listens there
GOOD = {
    "name": "good", "provider": "mturk", "kind": "pairwise", "items": "items.jsonl", "page_size": 2,
    "pricing": "{reward: 0.05}",
}

# name: (changes to the good spec (None drops a field), pattern the one line must match)
SPEC_CASES: dict[str, tuple[dict, str]] = {
    "page_size not a number": ({"page_size": "two"}, r"spec\.yaml:5: page_size: "),
    "page_size zero": ({"page_size": "0"}, r"spec\.yaml:5: page_size: .*greater than or equal to 1"),
    "page_size too big": ({"page_size": "51"}, r"spec\.yaml:5: page_size: .*less than or equal to 50"),
    "reward too precise": ({"pricing": "{reward: 0.0501}"}, r"pricing\.reward: more than 3 decimal places"),
    "reward negative": ({"pricing": "{reward: -1}"}, r"pricing\.reward: must not be negative"),
    "reward zero": ({"pricing": "{reward: 0}"}, r"reward \$0\.00 is below the mturk minimum"),
    "reward astronomical": ({"pricing": "{reward: 1e30}"}, r"pricing\.reward: must be below 1,000,000"),
    "reward a word": ({"pricing": "{reward: lots}"}, r"pricing\.reward: not a decimal amount"),
    "seconds_per_item infinite": ({"pricing": "{seconds_per_item: .inf, hourly_wage: 12}"},
                                  r"pricing\.seconds_per_item: "),
    "seconds_per_item zero": ({"pricing": "{seconds_per_item: 0, hourly_wage: 12}"}, r"pricing\.seconds_per_item: "),
    "wage without time": ({"pricing": "{hourly_wage: 12}"}, r"pricing: give either reward"),
    "pricing missing": ({"pricing": None}, r"pricing: field required"),
    "unknown field": ({"colour": "red"}, r"spec\.yaml:7: colour: unknown field"),
    "unknown stage": ({"stages": "{nosuch: {page_size: 2}}"}, r"spec\.yaml:7: stages: unknown stage 'nosuch'"),
    "unknown kind setting": ({"settings": "{colour: red}"}, r"spec\.yaml:7: settings\.colour: unknown field"),
    "kind setting wrong type": ({"settings": "{allow_tie: maybe}"}, r"spec\.yaml:7: settings\.allow_tie: "),
    "block_below_trust above 1": ({"review": "{block_below_trust: 5}"},
                                  r"spec\.yaml:7: review\.block_below_trust: .*less than or equal to 1"),
    "trust_prior not positive": ({"review": "{trust_prior: [-1, 0]}"},
                                 r"review\.trust_prior: both Beta prior counts must be positive"),
    "min_evidence negative": ({"review": "{min_evidence: -1}"}, r"review\.min_evidence: "),
    "reject_golden_below above 1": ({"review": "{reject_golden_below: 2}"}, r"review\.reject_golden_below: "),
    "trusted_above negative": ({"review": "{trusted_above: -0.1}"}, r"review\.trusted_above: "),
    "block_via unknown": ({"review": "{block_via: nowhere}"}, r"review\.block_via: "),
    "quality_bonus too precise": ({"review": "{quality_bonus: 0.0001}"}, r"review\.quality_bonus: more than 3"),
    "overlap zero": ({"overlap": "{min: 0}"}, r"overlap\.min: "),
    "overlap max below min": ({"overlap": "{min: 3, max: 2}"}, r"overlap: max must be at least min"),
    "target_agreement above 1": ({"overlap": "{min: 2, max: 3, target_agreement: 1.5}"},
                                 r"overlap\.target_agreement: "),
    "golden rate 1": ({"golden": "{synthetic: true, rate: 1}"}, r"golden\.rate: "),
    "golden mode unknown": ({"golden": "{synthetic: [bogus], rate: 0.2}"}, r"golden\.synthetic: unknown mode 'bogus'"),
    "budget negative": ({"budget": "{cap: -5}"}, r"budget\.cap: must not be negative"),
    "budget in tenths of a cent": ({"budget": "{cap: 1.001}"}, r"budget\.cap: more than 2 decimal places"),
    "budget refused at launch": ({"budget": "{cap: 0.01}"}, r"launch refused: the forecast exceeds the budget"),
    "provider unknown": ({"provider": "upwork"}, r"spec\.yaml:2: provider: "),
    "kind unknown": ({"kind": "classify"}, r"spec\.yaml:3: kind: "),
    "name with spaces": ({"name": "'bad name!'"}, r"spec\.yaml:1: name: "),
    "environment unknown": ({"environment": "staging"}, r"environment: "),
    "toloka sandbox": ({"provider": "toloka", "environment": "sandbox"}, r"[Ss]andbox"),
    "endpoint_url without scheme": ({"endpoint_url": "localhost:1"}, r"endpoint_url: must start with http"),
    "assignment too short": ({"assignment_duration_s": "5"}, r"assignment_duration_s: "),
    "lifetime too short": ({"lifetime_s": "1"}, r"lifetime_s: "),
    "wave zero": ({"wave": "0"}, r"wave: "),
    "export format unknown": ({"exports": "{formats: [pdf]}"}, r"exports\.formats\.0: "),
    "locales not a list": ({"locales": "US"}, r"locales: "),
    "items file missing": ({"items": "missing.jsonl"}, r"missing\.jsonl: no such file"),
    "screening test missing": ({"screening": "{test: nope.yaml}"}, r"nope\.yaml"),
}

# name: (how to break items.jsonl, pattern)
ITEM_CASES: dict[str, tuple[str, str]] = {
    "items file empty": ("empty", r"items\.jsonl: no items"),
    "items line not JSON": ("broken", r"items\.jsonl:3: "),
    "items not UTF-8": ("latin1", r"items\.jsonl:1: not UTF-8"),
    "item ids repeated": ("duplicate", r"items\.jsonl:2: "),
    "item without responses": ("no-responses", r"items\.jsonl:1: "),
    "golden from short responses": ("short", r"items\.jsonl: golden\.synthetic: no response has 6\+ words"),
}


def write_items(d: Path, how: str | None = None) -> None:
    rows = campaign_items(4)
    lines = [json.dumps(r) for r in rows]
    if how == "empty":
        lines = []
    elif how == "broken":
        lines[2] = lines[2][:-1]
    elif how == "duplicate":
        lines[1] = json.dumps({**rows[1], "id": rows[0]["id"]})
    elif how == "no-responses":
        lines[0] = json.dumps({"id": "x", "prompt": "p"})
    elif how == "short":
        lines = [json.dumps({**r, "responses": [{**x, "text": "too short"} for x in r["responses"]]}) for r in rows]
    data = "".join(x + "\n" for x in lines).encode("utf-8")
    if how == "latin1":
        data = "é".encode("latin-1") + data
    (d / "items.jsonl").write_bytes(data)


def write_spec(d: Path, changes: dict) -> Path:
    fields = {**GOOD, **changes}
    spec = d / "spec.yaml"
    spec.write_text("".join(f"{k}: {v}\n" for k, v in fields.items() if v is not None), encoding="utf-8")
    return spec


def refused(result, pattern: str) -> str:
    """The checks every case shares; returns the line."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.exit_code not in (0, None), (result.exit_code, result.stdout)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "internal error" not in lines[0], lines[0]
    return lines[0]


def invoke(*args: str):
    # A dead endpoint is given up on within 2 s here, before the retry notice (after 5 s of failing,
    # a second stderr line by design) could be printed.
    return CliRunner().invoke(app, list(args), catch_exceptions=False, env={"CROWD_RETRY_DEADLINE_S": "2"})


def row_counts(url: str) -> dict[str, int]:
    with open_store(url) as store, store.engine.connect() as c:
        return {t: c.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                for t in inspect(store.engine).get_table_names()}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_a_bad_spec_is_one_line_and_leaves_no_store(case, tmp_path):
    changes, pattern = SPEC_CASES[case]
    write_items(tmp_path)
    spec = write_spec(tmp_path, changes)
    refused(invoke("launch", str(spec), "--db", f"sqlite:///{tmp_path / 'new.db'}", "--endpoint", DEAD), pattern)
    assert not list(tmp_path.glob("new.db*"))


@pytest.mark.parametrize("case", sorted(ITEM_CASES))
def test_bad_items_are_one_line_and_leave_no_store(case, tmp_path):
    how, pattern = ITEM_CASES[case]
    write_items(tmp_path, how)
    spec = write_spec(tmp_path, {"golden": "{synthetic: true, rate: 0.2}"} if how == "short" else {})
    refused(invoke("launch", str(spec), "--db", f"sqlite:///{tmp_path / 'new.db'}", "--endpoint", DEAD), pattern)
    assert not list(tmp_path.glob("new.db*"))


def test_a_spec_that_is_not_a_mapping_or_not_yaml_or_absent_is_one_line(tmp_path):
    write_items(tmp_path)
    for body, pattern in (("- a\n- b\n", r"spec\.yaml:1: a campaign spec must be a YAML mapping"),
                          ("name: [unclosed\n", r"spec\.yaml:\d+: "), (None, r"spec\.yaml: no such file")):
        spec = tmp_path / "spec.yaml"
        spec.unlink(missing_ok=True)
        if body is not None:
            spec.write_text(body, encoding="utf-8")
        refused(invoke("launch", str(spec), "--db", f"sqlite:///{tmp_path / 'new.db'}", "--endpoint", DEAD),
                pattern)
        assert not list(tmp_path.glob("new.db*"))


def busy_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


# name: (command line with {db} (an existing empty store), {new} (a store that must not appear),
#        {dir} (the test's folder), {csv} (a one-row answers file); pattern)
COMMAND_CASES: dict[str, tuple[str, str]] = {
    "poll --watch negative": ("poll --watch -1 --db {db}", r"--watch"),
    "poll --watch zero": ("poll --watch 0 --db {db}", r"--watch"),
    "poll endpoint without scheme": ("poll --endpoint localhost:8790 --db {db}", r"--endpoint.*not an http"),
    "launch endpoint ftp": ("launch {dir}/spec.yaml --endpoint ftp://x --db {new}", r"--endpoint.*not an http"),
    "launch endpoint bad port": ("launch {dir}/spec.yaml --endpoint http://127.0.0.1:99999 --db {new}",
                                 r"port must be 0-65535"),
    "launch dead endpoint": ("launch {dir}/spec.yaml --endpoint " + DEAD + " --db {new}",
                             r"provider unreachable after retries"),
    "costs --plot in a missing folder": ("costs --plot {dir}/nodir/x.png --db {db}", r"folder .*nodir does not exist"),
    "costs --by unknown": ("costs --by week --db {db}", r"--by.*'week' is not one of"),
    "costs unknown campaign": ("costs nope --db {db}", r"nope"),
    "aggregate --out in a missing folder": ("aggregate {csv} --out {dir}/nodir/o.csv", r"folder .*nodir"),
    "aggregate missing file": ("aggregate {dir}/none.csv", r"none\.csv: no such file"),
    "aggregate glad on one row": ("aggregate {csv} --method glad", r"glad .*at least 2 workers"),
    "aggregate unknown method": ("aggregate {csv} --method xyz", r"--method.*'xyz'"),
    "aggregate missing column": ("aggregate {csv} --task-column item", r"item"),
    "export --out a folder": ("export good --out {dir} --db {db}", r"is a folder"),
    "export unknown format": ("export good --format pdf --db {db}", r"--format.*'pdf'"),
    "export unknown campaign": ("export nope --db {db}", r"nope"),
    "store is not a database": ("status --db sqlite:///{csv}", r"file is not a database"),
    "store url unknown dialect": ("status --db nosuch://x", r"nosuch"),
    "status on a missing store": ("status --db {new}", r"no store at"),
    "poll on a missing store": ("poll --db {new}", r"no store at"),
    "reconcile on a missing store": ("reconcile good --db {new}", r"no store at"),
    "reconcile unknown campaign": ("reconcile nope --db {db}", r"nope"),
    "workers block unknown worker": ("workers block NOSUCHWORKER --db {db} --endpoint " + DEAD,
                                     r"no mturk worker 'NOSUCHWORKER'"),
    "workers grant without pool": ("workers grant W1 --db {db}", r"POOL"),
    "local serve port too big": ("local serve --port 99999", r"--port"),
    "local serve unknown provider": ("local serve --provider upwork", r"--provider.*'upwork'"),
    "local serve clock stopped": ("local serve --clock-speed 0", r"--clock-speed.*positive"),
    "local serve clock backwards": ("local serve --clock-speed -5", r"--clock-speed.*positive"),
    "local serve no workers": ("local serve --workers 0", r"--workers"),
    "local serve spammers above 1": ("local serve --spammers 2", r"--spammers"),
    "local serve port in use": ("local serve --port {busy}", r"cannot listen on 127\.0\.0\.1:\d+"),
    "local serve proxy for toloka": ("local serve --provider toloka --proxy-port 0",
                                     r"--proxy-port.*only --provider mturk has a proxy, not toloka"),
    "local serve proxy port in use": ("local serve --proxy-port {busy}",
                                      r"cannot listen on 127\.0\.0\.1:\d+ for the proxy"),
    "demo unknown provider": ("demo --provider upwork --db {new}", r"--provider"),
    "demo unknown kind": ("demo --kind nope --db {new}", r"--kind"),
    "demo no items": ("demo --items 0 --db {new}", r"--items"),
    "unknown command": ("frobnicate", r"No such command"),
    "unknown option": ("status --colour --db {db}", r"No such option"),
}


@pytest.mark.parametrize("case", sorted(COMMAND_CASES))
def test_a_bad_flag_file_or_database_is_one_line_and_writes_nothing(case, tmp_path):
    line, pattern = COMMAND_CASES[case]
    write_items(tmp_path)
    write_spec(tmp_path, {})
    (tmp_path / "one.csv").write_text("task,worker,label\nt1,w1,a\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'old.db'}"
    open_store(db).close()
    before = row_counts(db)
    busy = busy_port()
    try:
        args = line.format(db=db, new=f"sqlite:///{tmp_path / 'new.db'}", dir=tmp_path, csv=tmp_path / "one.csv",
                           busy=busy.getsockname()[1]).split()
        refused(invoke(*args), pattern)
    finally:
        busy.close()
    assert not list(tmp_path.glob("new.db*"))
    assert row_counts(db) == before


def test_the_suite_has_at_least_sixty_cases():
    assert len(SPEC_CASES) + len(ITEM_CASES) + 3 + len(COMMAND_CASES) >= 60


def test_a_read_only_store_during_poll_is_one_line(tmp_path):
    """The store refuses writes (here: SQLite opened read-only; as root a chmod would not do)."""
    from engine_helpers import launch_in_process, market, write_campaign

    spec = write_campaign(tmp_path / "c")
    path = tmp_path / "crowd.db"
    with market("mturk") as mp:
        launch_in_process(spec, f"sqlite:///{path}", mp.url)
        before = row_counts(f"sqlite:///{path}")
        mp.advance(600)
        result = invoke("poll", "--db", f"sqlite:///file:{path}?mode=ro&uri=true", "--endpoint", mp.url)
    refused(result, r"the store refused the change: attempt to write a readonly database")
    assert row_counts(f"sqlite:///{path}") == before
