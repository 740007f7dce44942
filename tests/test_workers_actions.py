"""``crowd workers``: grant/revoke/block/unblock go to the marketplace and into the store, an
unblock undoes a block the way it was made, and the listing shows pools, trust and actions."""

from __future__ import annotations

import json

from sqlmodel import select
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.quality.workers import act, list_workers
from campaigns.store.database import open_store
from campaigns.store.models import PoolMember, Worker, WorkerAction
from connectors.base import PoolSpec
from connectors.factory import make_connector
from connectors.local import start_local


def _blocks(conn) -> set[str]:
    return {b["WorkerId"] for b in conn.client.list_worker_blocks()["WorkerBlocks"]}


def test_grant_revoke_block_unblock_mirror_store_and_marketplace(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'crowd.db'}")
    with start_local("mturk", workers=1) as mp:
        conn = make_connector("mturk", "local", mp.url)
        pool = conn.ensure_pool(PoolSpec(name="experts"))
        assert act(store, "grant", "AW1", pool="experts", endpoint=mp.url, unseen=True)["state"] == "done"
        assert conn.pool_scores(pool) == {"AW1": 1}
        assert act(store, "block", "AW1", reason="copy-paste answers", endpoint=mp.url)["state"] == "done"
        assert _blocks(conn) == {"AW1"}
        rows = {r["worker_id"]: r for r in list_workers(store)}
        assert rows["AW1"]["blocked"] and rows["AW1"]["pools"] == ["experts"]
        assert [a["action"] for a in rows["AW1"]["actions"]] == ["grant", "block"]

        assert act(store, "unblock", "AW1", endpoint=mp.url)["state"] == "done"
        assert act(store, "revoke", "AW1", pool="experts", endpoint=mp.url)["state"] == "done"
        assert _blocks(conn) == set() and conn.pool_scores(pool) == {}
    with store.session() as s:
        assert s.exec(select(Worker.blocked).where(Worker.worker_id == "AW1")).one() is False
        assert s.exec(select(PoolMember.active).where(PoolMember.pool == "experts")).one() is False
        assert [a.state for a in s.exec(select(WorkerAction).order_by(WorkerAction.id))] == ["done"] * 4


def test_unblock_undoes_a_pool_block(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'crowd.db'}")
    with start_local("mturk", workers=1) as mp:
        conn = make_connector("mturk", "local", mp.url)
        blocked = conn.ensure_pool(PoolSpec(name="blocked"))
        # a block the trust policy made through the blocked pool (review.block_via: pool)
        from campaigns.quality.actions import carry_out_actions, plan_action

        with store.write() as s:
            plan_action(s, store, key="auto", provider="mturk", worker_id="AW9", action="block", pool="blocked",
                        reason="trust too low", evidence={"golden_total": 9, "golden_correct": 2})
        assert carry_out_actions(store, conn, "mturk") == 1
        assert conn.pool_scores(blocked) == {"AW9": 1} and _blocks(conn) == set()
        result = act(store, "unblock", "AW9", endpoint=mp.url)
        assert result["pool"] == "blocked" and result["state"] == "done"
        assert conn.pool_scores(blocked) == {}


def test_cli_lists_workers_as_json(tmp_path):
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    open_store(db).close()
    with start_local("mturk", workers=1) as mp:
        runner = CliRunner()
        r = runner.invoke(app, ["workers", "block", "AW5", "--unseen", "--db", db, "--endpoint", mp.url, "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["state"] == "done"
        r = runner.invoke(app, ["workers", "--db", db, "--json"])
    rows = json.loads(r.output)["workers"]
    assert [(w["worker_id"], w["blocked"], w["actions"][0]["action"]) for w in rows] == [("AW5", True, "block")]
    r = runner.invoke(app, ["workers", "grant", "AW5", "--db", db])
    assert r.exit_code == 1 and "POOL" in r.output
