"""A campaign reads, reviews and pays only for the HITs it published (issue 14, defect 1).

MTurk hands back the same HITTypeId for identical HIT-type fields, so two campaigns whose specs
differ only in ``name`` share one HIT type. Before fetches were scoped to a campaign's own
publications, the first to poll ingested, approved and booked every assignment of the type.
Real boto3 against the local MTurk server, which keeps MTurk's HIT-type reuse.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from sqlmodel import select
from test_costs_support import launch_spec, market_record, oracle_for, run_to_done, write_campaign

from campaigns.money.reconcile import reconcile
from campaigns.store.database import open_store
from campaigns.store.models import Assignment, Campaign, LedgerEntry, Page, Publication, Stage
from connectors.local import start_local

NAMES = ["twin-a", "twin-b"]


def own_counts(store, name: str) -> tuple[int, int, Decimal]:
    """(assignments stored, of which on the campaign's own publications, money booked)."""
    with store.session() as s:
        c = s.exec(select(Campaign).where(Campaign.name == name)).one()
        stage_ids = s.exec(select(Stage.id).where(Stage.campaign_id == c.id)).all()
        refs = set(s.exec(select(Publication.provider_ref).join(Page).where(Page.stage_id.in_(stage_ids))).all())
        rows = s.exec(select(Assignment).where(Assignment.stage_id.in_(stage_ids))).all()
        money = sum((e.amount for e in s.exec(select(LedgerEntry).where(LedgerEntry.campaign_id == c.id,
                                                                         LedgerEntry.state == "confirmed"))),
                    Decimal("0"))
    return len(rows), sum(a.page_ref in refs for a in rows), money


def test_two_campaigns_sharing_a_hit_type_each_keep_only_their_own_work(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'crowd.db'}")
    with start_local("mturk", workers=10, seed=5, oracle=oracle_for(2)) as mp:
        before = mp.balance()
        for name in NAMES:
            spec, _ = write_campaign(tmp_path, name, "mturk", overlap=3)
            launch_spec(store, spec, mp.url)
        types = {h.hit_type.hit_type_id for h in mp.server.hits.values()}
        assert len(types) == 1, "the local server must reuse one HIT type for identical fields, as MTurk does"
        run_to_done(store, mp, NAMES)
        record = market_record(mp)
        approved_on_market = Counter()
        with store.session() as s:
            owner = {ref: c for ref, c in s.exec(
                select(Publication.provider_ref, Campaign.name).join(Page).join(Stage, Stage.id == Page.stage_id)
                .join(Campaign, Campaign.id == Stage.campaign_id)).all()}
        hit_of = {aid: hit.hit_id for hit in mp.server.hits.values() for aid in hit.assignment_ids}
        for aid, _, _ in record.approved:
            approved_on_market[owner[hit_of[aid]]] += 1
        for name in NAMES:
            stored, own, money = own_counts(store, name)
            assert stored == own == approved_on_market[name] > 0, (name, stored, own, approved_on_market)
            report = reconcile(store, name, endpoint=mp.url)
            assert report.ok and not report.differences, report.summary_line()
            assert report.ledger_total == money
        assert sum(own_counts(store, n)[2] for n in NAMES) == before - mp.balance()


def test_a_campaign_in_another_store_never_ingests_the_first_ones_work(tmp_path):
    """A second store (another team, the same account) whose campaign shares the HIT type."""
    first = open_store(f"sqlite:///{tmp_path / 'one.db'}")
    second = open_store(f"sqlite:///{tmp_path / 'two.db'}")
    with start_local("mturk", workers=10, seed=6, oracle=oracle_for(2)) as mp:
        spec_a, _ = write_campaign(tmp_path, "twin-a", "mturk", overlap=3)
        launch_spec(first, spec_a, mp.url)
        run_to_done(first, mp, ["twin-a"])
        spec_b, _ = write_campaign(tmp_path, "twin-b", "mturk", overlap=3)
        launch_spec(second, spec_b, mp.url)
        run_to_done(second, mp, ["twin-b"])
        for store, name in ((first, "twin-a"), (second, "twin-b")):
            stored, own, _ = own_counts(store, name)
            assert stored == own > 0, (name, stored, own)
            assert reconcile(store, name, endpoint=mp.url).ok


def test_reconcile_reports_foreign_assignments_already_in_a_store(tmp_path):
    """A store written before the fix holds another campaign's assignment: reconcile says so
    and exits by it (not ok), and --repair does not pretend to have mended it."""
    store = open_store(f"sqlite:///{tmp_path / 'crowd.db'}")
    with start_local("mturk", workers=10, seed=5, oracle=oracle_for(2)) as mp:
        spec, _ = write_campaign(tmp_path, "twin-a", "mturk", overlap=3)
        launch_spec(store, spec, mp.url)
        run_to_done(store, mp, ["twin-a"])
        with store.write() as s:
            a = s.exec(select(Assignment)).first()
            s.add(Assignment(provider="mturk", assignment_id="FOREIGN1", stage_id=a.stage_id, page_id=None,
                             page_ref="HIT-OF-ANOTHER-CAMPAIGN", worker_id=a.worker_id, provider_status="approved",
                             review="approved", raw="", answers={}))
        found = reconcile(store, "twin-a", endpoint=mp.url)
        assert [d.kind for d in found.differences] == ["foreign_assignment"]
        assert not found.ok and "1 difference(s) left" in found.summary_line()
        repaired = reconcile(store, "twin-a", endpoint=mp.url, repair=True)
        assert not repaired.ok and not any(d.repaired for d in repaired.differences)


def test_reconcile_command_says_what_is_true_and_exits_by_it(tmp_path):
    """Defect 7: the line counts what is left and what was repaired, and the exit code follows."""
    from typer.testing import CliRunner

    from campaigns.cli import app

    url = f"sqlite:///{tmp_path / 'crowd.db'}"
    store = open_store(url)
    with start_local("mturk", workers=10, seed=5, oracle=oracle_for(2)) as mp:
        spec, _ = write_campaign(tmp_path, "twin-a", "mturk", overlap=3)
        launch_spec(store, spec, mp.url)
        run_to_done(store, mp, ["twin-a"])
        with store.write() as s:  # a reward booked but lost: repairable
            s.delete(s.exec(select(LedgerEntry).where(LedgerEntry.kind == "reward")).first())
        run = CliRunner().invoke
        found = run(app, ["reconcile", "twin-a", "--db", url, "--endpoint", mp.url], catch_exceptions=False)
        assert found.exit_code == 3 and "1 difference(s) left; 0 repaired" in found.stdout, found.stdout
        fixed = run(app, ["reconcile", "twin-a", "--repair", "--db", url, "--endpoint", mp.url],
                    catch_exceptions=False)
        assert fixed.exit_code == 0 and "in agreement; 1 repaired" in fixed.stdout, fixed.stdout
        clean = run(app, ["reconcile", "twin-a", "--db", url, "--endpoint", mp.url], catch_exceptions=False)
        assert clean.exit_code == 0 and "in agreement; 0 repaired" in clean.stdout, clean.stdout
