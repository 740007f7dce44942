"""Kill anywhere, re-run, same state (issue "Campaigns end to end").

For every checkpoint in launch and poll, the step that reaches it runs as a real ``crowd``
subprocess with ``CROWD_KILL_AT=<point>`` and must die there (status 137, as ``kill -9``); the
step is then re-run without the kill and the campaign carried on to the end. The result must
equal an uninterrupted run against a second marketplace started with the same seed: the same
assignment ids stored once each, the same reviews and ledger entries (keys and amounts), the
marketplace showing each page once and each assignment approved once, and the marketplace's
balance change equal to the ledger total to the cent.

The steps that are not killed run in-process through the same library calls the CLI makes, which
keeps this fast; the local servers' ids are deterministic for a seed, so states compare exactly.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from engine_helpers import (
    MAX_POLLS,
    REPO,
    STEP_S,
    campaign_done,
    check_consistent,
    crowd,
    crowd_forked,
    launch_in_process,
    market,
    poll_in_process,
    shape,
    write_campaign,
)

# Points a pairwise campaign must reach. Any other point found in the code is tried on the same
# campaign with bonuses and adaptive overlap switched on (``features``), and skipped, with its name,
# when this small campaign never gets there (e.g. Find-Fix-Verify's stage advancement).
REQUIRED = ["launch.batch_created", "launch.published_chunk", "poll.fetched", "ingest.before_cursor",
            "poll.ingested", "review.before_call", "review.after_call", "poll.reviewed", "poll.quality",
            "quality.before_action"]
LATER = ["review.after_call:3", "quality.before_action:2"]  # kills in the middle of a loop


def discovered_points() -> list[str]:
    found = set()
    for path in sorted((REPO / "campaigns").glob("*.py")):
        found |= set(re.findall(r"""\bcheckpoint\(\s*["']([\w.]+)["']""", path.read_text(encoding="utf-8")))
    return sorted(found - set(REQUIRED))


def run_campaign(spec: Path, db: str, mp, kill_at: str | None = None, executable: bool = False) -> bool:
    """Launch, then poll every STEP_S simulated seconds until done. With ``kill_at``, each step of
    the kind that can reach the point runs in a child process (forked, or the installed ``crowd``
    with ``executable``) until one dies there with 137; that step is then re-run in-process.
    Returns whether the kill happened."""
    fired = False

    def step(args: list[str], again) -> None:
        nonlocal fired
        if executable:
            r = crowd(*args, "--endpoint", mp.url, "--json", db=db, CROWD_KILL_AT=kill_at)
            status, detail = r.returncode, r.stderr
        else:
            status, detail = crowd_forked(*args, "--endpoint", mp.url, "--json", db=db, CROWD_KILL_AT=kill_at), ""
        if status == 137:
            fired = True
            again()
        else:
            assert status == 0, detail

    if kill_at and kill_at.startswith("launch."):
        step(["launch", str(spec)], lambda: launch_in_process(spec, db, mp.url))
    else:
        launch_in_process(spec, db, mp.url)
    for _ in range(MAX_POLLS):
        mp.advance(STEP_S)
        if kill_at and not fired and not kill_at.startswith("launch."):
            step(["poll"], lambda: poll_in_process(db, mp.url))
        else:
            poll_in_process(db, mp.url)
        if campaign_done(db):
            return fired
    raise AssertionError(f"the campaign did not finish in {MAX_POLLS} polls")


_reference: dict[tuple[str, bool], dict] = {}


def reference(provider: str, features: bool, tmp_path_factory) -> dict:
    """The uninterrupted run, once per campaign (the store's dialect does not change the state)."""
    if (provider, features) not in _reference:
        d = tmp_path_factory.mktemp(f"reference-{provider}")
        spec = write_campaign(d, provider, features=features)
        db = f"sqlite:///{d / 'crowd.db'}"
        with market(provider) as mp:
            run_campaign(spec, db, mp)
            state = check_consistent(db, mp)
        assert state["store"]["campaigns"] == [("engine", "done")]
        assert state["store"]["ledger"] and state["store"]["worker_actions"], "the campaign pays and blocks"
        _reference[provider, features] = state
    return _reference[provider, features]


def _kill_and_compare(provider: str, point: str, db_url: str, tmp_path: Path, tmp_path_factory,
                      executable: bool = False) -> None:
    features = point.split(":")[0] not in REQUIRED
    if point.startswith("ffv."):
        pytest.skip(f"checkpoint {point} belongs to Find-Fix-Verify stages, not reached by a pairwise campaign")
    expected = reference(provider, features, tmp_path_factory)
    spec = write_campaign(tmp_path / "c", provider, features=features)
    with market(provider) as mp:
        fired = run_campaign(spec, db_url, mp, kill_at=point, executable=executable)
        if not fired:
            if not features:
                pytest.fail(f"the campaign never reached checkpoint {point}")
            pytest.skip(f"checkpoint {point} is not reached by a small pairwise campaign")
        got = check_consistent(db_url, mp)
    assert shape(got) == shape(expected)
    if provider == "mturk" and point == "launch.published_chunk":
        return  # the killed `crowd launch` created its HITs concurrently: ids in arrival order
    assert got["store"] == expected["store"]
    assert got["market"] == expected["market"]


# Every point on MTurk; the required ones on Toloka. On PostgreSQL, the points where a lost
# transaction or a repeated marketplace call would show (the dialect does not change the others).
SQLITE_CASES = ([("mturk", p) for p in REQUIRED + LATER + discovered_points()]
                + [("toloka", p) for p in REQUIRED])
PG_POINTS = ["launch.published_chunk", "ingest.before_cursor", "review.after_call", "quality.before_action"]


@pytest.mark.parametrize(("provider", "point"), SQLITE_CASES)
def test_kill_at_checkpoint_then_rerun_matches_uninterrupted_run_sqlite(provider, point, tmp_path,
                                                                        tmp_path_factory):
    _kill_and_compare(provider, point, f"sqlite:///{tmp_path / 'crowd.db'}", tmp_path, tmp_path_factory)


@pytest.mark.parametrize("point", PG_POINTS)
def test_kill_at_checkpoint_then_rerun_matches_uninterrupted_run_postgresql(point, pg_url, tmp_path,
                                                                            tmp_path_factory):
    from pg import create_database, drop_database

    url = create_database(pg_url)
    try:
        _kill_and_compare("mturk", point, url, tmp_path, tmp_path_factory)
    finally:
        drop_database(url)


@pytest.mark.parametrize(("provider", "point"), [("mturk", "review.after_call"), ("toloka", "launch.batch_created")])
def test_the_installed_crowd_command_dies_at_a_checkpoint_and_resumes(provider, point, tmp_path,
                                                                       tmp_path_factory):
    """The same, with the killed step run by the real ``crowd`` executable rather than a fork."""
    _kill_and_compare(provider, point, f"sqlite:///{tmp_path / 'crowd.db'}", tmp_path, tmp_path_factory,
                      executable=True)
