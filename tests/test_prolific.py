"""Prolific (issue 17): the connector against the local Prolific server and its task server, over HTTP.

What the contract tests cannot say for Prolific: every request validates against Prolific's OpenAPI
document, every page of submissions is read, the bonus pay call (which Prolific does not make
idempotent) is sent once however a run is cut short, sessions cannot be forged, completion survives
an unreachable Prolific, and bad input is one line with nothing published.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from decimal import Decimal

import httpx
import pytest
from sqlmodel import select
from test_connector_contract import FAST_RETRY, batch_spec, fetch_all, make_pages
from test_costs_support import STEP_S, launch_spec, market_record, oracle_for, write_campaign
from test_payouts_engine_kill import crowd_poll, expire_leases
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.engine.poll import poll
from campaigns.money.reconcile import reconcile
from campaigns.store.database import open_store
from campaigns.store.models import Assignment, LedgerEntry
from connectors.base import ConnectorError
from connectors.local import start_local
from connectors.local.faults import FaultConfig
from connectors.local.prolific import openapi
from connectors.prolific import ProlificConnector
from connectors.prolific import connector as prolific_connector
from connectors.prolific.money import from_cents, to_cents, units_text

PAY = "POST /api/v1/bulk-bonus-payments/{id}/pay/"
COMPLETE = "POST /api/v1/submissions/{id}/transition/"
needs_document = pytest.mark.skipif(openapi.document_path() is None,
                                    reason="Prolific's OpenAPI document (../shared/data/prolific) is absent")


@pytest.fixture
def market():
    with start_local("prolific", workers=12, seed=3) as mp:
        yield mp, ProlificConnector("local", mp.url, taskserver_url=mp.server.taskserver_url, retry=FAST_RETRY)


def work_one_page(conn, mp, assignments: int = 2, prefix: str = "q"):
    spec = batch_spec(f"b-{prefix}", assignments=assignments)
    batch = conn.create_batch(spec)
    conn.publish(batch, spec, make_pages(["a text to judge"], prefix=prefix, per_page=1))
    got, cursor = fetch_all(conn, batch, mp, want=assignments)
    assert len(got) == assignments
    return batch, got, cursor


# ----------------------------------------------------------------- money
def test_one_conversion_between_currency_units_and_cents_refuses_what_cannot_be_paid():
    assert to_cents(Decimal("1.50")) == 150 and to_cents(Decimal("0.01")) == 1 and to_cents(Decimal("0")) == 0
    assert to_cents(Decimal("123456.78")) == 12345678
    for bad in (Decimal("0.005"), Decimal("1.001"), Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises(ValueError):
            to_cents(bad)
    assert from_cents(25) == from_cents(25.0) == Decimal("0.25") and from_cents("1") == Decimal("0.01")
    for bad in (2.5, "x", "inf"):
        with pytest.raises(ValueError):
            from_cents(bad)
    assert units_text(Decimal("4.2")) == "4.20" and units_text(Decimal("0.01")) == "0.01"
    with pytest.raises(ValueError):
        units_text(Decimal("0.015"))


# ----------------------------------------------------------------- the wire
@needs_document
def test_every_request_the_connector_sends_validates_against_the_openapi_document(market):
    mp, conn = market
    batch, got, _ = work_one_page(conn, mp, assignments=3)
    conn.approve_many([got[0].assignment_id])
    conn.reject(got[1].assignment_id, "wrong")
    conn.pay_bonus(got[0].worker_id, got[0].assignment_id, Decimal("0.30"), "thanks", "k1")
    conn.block(got[1].worker_id, "spam")
    conn.unblock(got[1].worker_id)
    conn.fee_rates(), conn.balance(), conn.minimum_hourly_reward()
    conn.close(batch)
    api = mp.server.api
    seen = Counter(op for op in (api.operation(m, p) for m, p in api.requests))
    for op in ("POST /api/v1/studies/", "PATCH /api/v1/studies/{id}/", "GET /api/v1/submissions/",
               "POST /api/v1/submissions/bulk-approve/", "POST /api/v1/submissions/bonus-payments/", PAY,
               COMPLETE, "POST /api/v1/participant-groups/", "DELETE /api/v1/participant-groups/{id}/participants/",
               "POST /api/v1/study-cost-calculator/", "GET /api/v1/reward-recommendations/"):
        assert seen[op] >= 1, (op, seen)
    assert api.mismatches == []

    # ...and the check can fail: a study the document does not allow is refused and recorded
    r = httpx.post(mp.url + "/api/v1/studies/", headers={"Authorization": "Token local"},
                   json={"name": "x", "reward": "a lot"})
    assert r.status_code == 400 and r.json()["error"]["title"] == "Invalid request"
    assert [m["operation"] for m in api.mismatches] == ["POST /api/v1/studies/"]


def test_the_token_is_sent_as_prolific_wants_and_never_shown(market):
    mp, _ = market
    conn = ProlificConnector("local", mp.url, token="s3cret-token", taskserver_url=mp.server.taskserver_url,
                             retry=FAST_RETRY)
    with pytest.raises(ConnectorError) as err:
        conn.balance()
    assert err.value.code == "Unauthorized" and "refused the API token" in str(err.value)
    assert "s3cret" not in str(err.value) + repr(conn) + repr(conn.api)
    assert mp.server.api.mismatches == []


def test_fetch_reads_every_page_of_submissions(market, monkeypatch):
    mp, conn = market
    monkeypatch.setattr(prolific_connector, "PAGE_SIZE", 20)  # Prolific's default page size
    spec = batch_spec("many", assignments=3)
    batch = conn.create_batch(spec)
    conn.publish(batch, spec, make_pages([f"text {n}" for n in range(16)], prefix="m", per_page=1))
    got, _ = fetch_all(conn, batch, mp, want=48, rounds=30)
    assert len(got) == 48 and len({a.assignment_id for a in got}) == 48
    calls = conn.calls["ListSubmissions"]
    conn.fetch(batch, json.dumps({"h": [json.dumps({"session": "s", "page": "p"})]}))  # one full read
    study = next(v for k, v in batch.extra.items() if k.startswith("study:"))
    listed = sum(s.study_id == study for s in mp.server.state.submissions.values())  # returned ones too
    assert listed >= 48
    assert conn.calls["ListSubmissions"] - calls == listed // 20 + 1  # 20 a page, read to the end


# ----------------------------------------------------------------- bonuses
def test_the_local_server_pays_a_bulk_bonus_again_when_pay_is_called_again(market):
    mp, conn = market
    _, got, _ = work_one_page(conn, mp, assignments=1)
    sub = got[0].assignment_id
    study = conn._submission(sub)["study_id"]
    before = conn.balance()
    bulk = conn._call("SetUpBonus", "POST", "/submissions/bonus-payments/",
                      body={"study_id": study, "csv_bonuses": f"{sub},0.50\n"})
    for _ in range(2):
        conn._call("PayBonus", "POST", f"/bulk-bonus-payments/{bulk['id']}/pay/", once=True)
    assert [b["amount"] for b in conn.list_bonuses(assignment_id=sub)] == [Decimal("0.50")] * 2
    rate = conn.fee_rates()["bonus_rate"]
    assert before - conn.balance() == (2 * Decimal("0.50") * (1 + rate)).quantize(Decimal("0.01"))


def test_a_pay_whose_answer_is_lost_is_not_sent_again(market):
    mp, conn = market
    _, got, _ = work_one_page(conn, mp, assignments=1)
    mp.server.faults.lose_next(PAY)
    with pytest.raises(ConnectorError) as err:
        conn.pay_bonus(got[0].worker_id, got[0].assignment_id, Decimal("0.40"), "thanks", "k-lost")
    assert err.value.retryable and err.value.code == "OutcomeUnknown"
    assert conn.calls["PayBonus"] == 1  # one attempt, never retried by the client
    assert [b["amount"] for b in conn.list_bonuses(assignment_id=got[0].assignment_id)] == [Decimal("0.40")]


def test_a_rejection_message_is_long_enough_for_prolific(market):
    mp, conn = market
    _, got, _ = work_one_page(conn, mp, assignments=1)
    with pytest.raises(ConnectorError, match="100"):  # what Prolific does with a short message
        conn._call("RejectSubmission", "POST", f"/submissions/{got[0].assignment_id}/transition/",
                   body={"action": "REJECT", "message": "wrong", "rejection_category": "LOW_EFFORT"})
    conn.reject(got[0].assignment_id, "wrong")
    assert mp.server.state.submissions[got[0].assignment_id].status == "REJECTED"


# ----------------------------------------------------------------- sessions and completion
def test_a_forged_or_borrowed_session_is_refused(market):
    mp, conn = market
    spec = batch_spec("forge", assignments=2)
    batch = conn.create_batch(spec)
    conn.publish(batch, spec, make_pages(["judge me"], prefix="f", per_page=1))
    lane, study = next((k.removeprefix("study:"), v) for k, v in batch.extra.items() if k.startswith("study:"))
    sub = mp.server.state.start(study, "participant-a", mp.clock.now())
    url = mp.server.taskserver_url + f"/prolific/{lane}"
    real = {"PROLIFIC_PID": "participant-a", "STUDY_ID": study, "SESSION_ID": sub.id}
    assert httpx.get(url, params=real, follow_redirects=True).status_code == 200
    for forged in ({**real, "SESSION_ID": "made-up"}, {**real, "PROLIFIC_PID": "participant-b"},
                   {**real, "STUDY_ID": "another-study"}):
        r = httpx.get(url, params=forged, follow_redirects=True)
        assert r.status_code in (403, 404) and "<form" not in r.text, forged
    mp.server.state.leave(sub.id)  # a returned session no longer opens pages
    assert httpx.get(url, params=real, follow_redirects=True).status_code == 403


def test_completion_waits_out_an_unreachable_prolific_and_no_answer_is_lost(market):
    mp, conn = market
    spec = batch_spec("down", assignments=2)
    batch = conn.create_batch(spec)
    conn.publish(batch, spec, make_pages(["judge me too"], prefix="d", per_page=1))
    others = frozenset(f"{m} {p}" for m, _, p, _ in mp.server.api.routes) - {COMPLETE}
    mp.server.faults.config = mp.server.faults.config.model_copy(update={"error_rate": 1.0, "exempt": others})
    cursor = None
    for _ in range(4):
        mp.advance(120)  # well within the study's maximum allowed time: nobody times out meanwhile
        result = conn.fetch(batch, cursor)
        assert result.assignments == []  # the answers are in, Prolific has not been told: held
        cursor = result.cursor
    held = json.loads(cursor)["h"]
    assert len(held) == 2
    assert {s.status for s in mp.server.state.submissions.values() if s.study_id in batch.extra.values()} == {"ACTIVE"}
    mp.server.faults.config = mp.server.faults.config.model_copy(update={"error_rate": 0.0})
    result = conn.fetch(batch, cursor)  # the task server completes what was pending, then answers
    assert len(result.assignments) == 2 and {a.status for a in result.assignments} == {"submitted"}
    assert json.loads(result.cursor)["h"] == []



# ----------------------------------------------------------------- whole campaigns
def prolific_campaign(tmp_path, name: str, **pricing):
    """A pairwise spec that pays above Prolific's hourly minimum (pages of about a minute)."""
    return write_campaign(tmp_path, name, "prolific", overlap=3,
                          extra={"assignment_duration_s": 300,
                                 "pricing": {"reward": "0.50", **pricing}})


@pytest.fixture
def campaign_market(monkeypatch):
    """A local Prolific marketplace, with the settings a `crowd` run needs to find its task server."""
    def start(**kw):
        mp = start_local("prolific", workers=12, seed=5, oracle=oracle_for(2), **kw)
        monkeypatch.setenv("CROWD_INHOUSE_ENDPOINT", mp.server.taskserver_url)
        return mp
    return start


def bonuses_per_submission(mp) -> Counter:
    return Counter(aid for aid, _ in market_record(mp).bonuses)


@pytest.mark.parametrize("kill_at", ["bonus.after_call:2", "bonus.before_call:2"])
def test_a_kill_between_pay_sent_and_its_answer_pays_once(kill_at, tmp_path, campaign_market):
    url = f"sqlite:///{tmp_path / 'crowd.db'}"
    store = open_store(url)
    with campaign_market() as mp:
        spec, _ = prolific_campaign(tmp_path, "topup", hourly_wage="60.00", wage_topup=True, topup_after=1)
        launch_spec(store, spec, mp.url)
        mp.advance(STEP_S)
        killed = crowd_poll(url, mp.url, kill_at)
        assert killed.returncode == 137, killed.stderr
        paid_before_kill = int(kill_at.rsplit(":", 1)[1]) - (0 if "after" in kill_at else 1)
        assert sum(bonuses_per_submission(mp).values()) == paid_before_kill
        expire_leases(store)
        with store.session() as s:  # the ledger says sent: paid or not, it cannot know
            assert s.exec(select(LedgerEntry).where(LedgerEntry.kind == "bonus",
                                                    LedgerEntry.state == "sent")).all()
        for _ in range(2):
            poll(store, "topup", endpoint=mp.url)
        per = bonuses_per_submission(mp)
        approved = {aid for aid, _, _ in market_record(mp).approved}
        check = reconcile(store, "topup", endpoint=mp.url)
    assert len(approved) > paid_before_kill and set(per) == approved and set(per.values()) == {1}
    assert check.ok, check.summary_line()


def test_a_campaign_under_faults_loses_nothing_and_doubles_nothing(db_url, tmp_path, campaign_market):
    """20% faults on every Prolific call (5xx, 429, dropped connections, lost responses): the
    campaign completes with one study, every answer once, each bonus once, and a clean reconcile."""
    store = open_store(db_url)
    faults = FaultConfig(error_rate=0.05, throttle_rate=0.05, drop_rate=0.05, lose_rate=0.05, seed=11,
                         exempt=frozenset({PAY}))  # a lost pay is the kill test's; it is never retried
    with campaign_market(faults=faults) as mp:
        spec, _ = prolific_campaign(tmp_path, "faulty", hourly_wage="60.00", wage_topup=True, topup_after=1)
        for attempt in range(20):  # a launch that gave up part way is simply run again
            try:
                launch_spec(store, spec, mp.url)
                break
            except Exception as exc:  # noqa: BLE001 - retried below; the last one is raised
                if attempt == 19:
                    raise
                assert "unreachable" in str(exc) or "Prolific" in str(exc), exc
        polls = 0
        while True:
            mp.advance(STEP_S)
            polls += 1
            try:
                if poll(store, "faulty", endpoint=mp.url).all_done:
                    break
            except Exception as exc:  # noqa: BLE001 - a poll that gave up is run again on schedule
                assert "unreachable" in str(exc), exc
            assert polls < 60
        mp.server.faults.config = FaultConfig()
        check = reconcile(store, "faulty", endpoint=mp.url)
        st = mp.server.state
        studies = [s["internal_name"] for s in st.studies.values()]
        with store.session() as s:
            stored = s.exec(select(Assignment.assignment_id)).all()
        per = bonuses_per_submission(mp)
        approved = {aid for aid, _, _ in market_record(mp).approved}
        places = sum(int(s["total_available_places"]) for s in st.studies.values())
    assert len(studies) == len(set(studies)) == 1
    assert len(stored) == len(set(stored)) == len(approved) == places  # every place one answer, once
    assert set(per) <= approved and set(per.values()) <= {1}
    assert check.ok, check.summary_line()


# ----------------------------------------------------------------- bad input
def cli(*args: str, **env: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False, env={"CROWD_RETRY_DEADLINE_S": "2", **env})


def one_line(result, pattern: str) -> str:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.exit_code not in (0, None), result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), result.stderr
    return lines[0]


@pytest.mark.parametrize("case", ["sandbox", "production without token", "token refused", "below minimum",
                                  "over budget"])
def test_bad_input_is_one_line_and_publishes_nothing(case, tmp_path):
    with start_local("prolific", workers=3, seed=1) as mp:
        env = {"CROWD_INHOUSE_ENDPOINT": mp.server.taskserver_url}
        extra: dict = {"assignment_duration_s": 300, "pricing": {"reward": "0.50"}}
        pattern = ""
        if case == "sandbox":
            extra["environment"], pattern = "sandbox", r"no sandbox.*test participants"
        elif case == "production without token":
            extra["environment"], pattern = "production", r"needs an API token.*PROLIFIC_API_TOKEN"
            env |= {"PROLIFIC_API_TOKEN": "", "CROWD_PROLIFIC_API_TOKEN": ""}
        elif case == "token refused":
            env["CROWD_PROLIFIC_API_TOKEN"], pattern = "not-the-token", r"Prolific refused the API token"
        elif case == "below minimum":
            extra = {"pricing": {"reward": "0.10"}}  # a page of 6 minutes (30 allowed) for 0.10
            pattern = r"below Prolific's minimum of 8.00/hour"
        else:
            extra["budget"], pattern = {"cap": "1.00"}, r"forecast exceeds the budget"
        spec, _ = write_campaign(tmp_path, "bad", "prolific", extra=extra)
        before = (len(mp.server.state.studies), mp.server.balance())
        db = tmp_path / "new.db"
        line = one_line(cli("launch", str(spec), "--db", f"sqlite:///{db}", "--endpoint", mp.url, **env), pattern)
        assert "not-the-token" not in line
        assert (len(mp.server.state.studies), mp.server.balance()) == before
    assert not list(tmp_path.glob("new.db*"))
