"""Two ``crowd poll`` processes on one database never ingest, approve or pay twice.

Each round the crowd works a little, then two pollers start at once against the same store and
marketplace. Whoever wins a stage's lease does the work; the other skips it. Afterwards every
assignment is stored once and counted as new by exactly one poller, the marketplace saw exactly
one approval call per approved assignment, and its balance moved by exactly the ledger total.
"""

from __future__ import annotations

import json
import subprocess

from engine_helpers import (
    CROWD,
    MAX_POLLS,
    STEP_S,
    check_consistent,
    crowd_env,
    launch_in_process,
    market,
    write_campaign,
)


def test_two_pollers_at_once_never_ingest_approve_or_pay_twice(db_url, tmp_path):
    spec = write_campaign(tmp_path / "c", "mturk")
    new = approved = 0
    with market("mturk") as mp:
        launch_in_process(spec, db_url, mp.url)
        for _ in range(MAX_POLLS):
            mp.advance(STEP_S)
            procs = [subprocess.Popen([str(CROWD), "poll", "--endpoint", mp.url, "--json"], env=crowd_env(db_url),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2)]
            outs = [p.communicate(timeout=120) for p in procs]
            assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
            reports = [json.loads(o.splitlines()[-1]) for o, _ in outs]
            for r in reports:
                for st in r["stages"]:
                    new += st["new"]
                    approved += st["approved"]
            if any(r["all_done"] for r in reports):
                break
        else:
            raise AssertionError(f"the campaign did not finish in {MAX_POLLS} rounds")
        state = check_consistent(db_url, mp)
        approvals_called = mp.calls["ApproveAssignment"]
    stored = state["store"]["assignments"]
    assert state["store"]["campaigns"] == [("engine", "done")]
    assert new == len(stored) > 0, "each assignment is new to exactly one poller"
    assert approved == sum(a[3] == "approved" for a in stored) == approvals_called
