"""``crowd launch``: plan a campaign's first stage, price it, check budget and balance, publish.

Planning happens in memory first; nothing is written until every check passed. Re-running
``launch`` on the same spec resumes: the campaign and its pages already exist, and only pages
without a publication go out (each with its idempotency key, so the marketplace never makes a
second HIT or task for a page whose publication record was lost in a crash).
"""

from __future__ import annotations

import hashlib
import random
from decimal import Decimal

from sqlmodel import select

from campaigns.engine.replan import discard_plan, untouched
from campaigns.errors import CrowdError
from campaigns.money.fees import adopt_fee_rates
from campaigns.quality.pools import screening_test
from campaigns.spec.loading import load_items
from campaigns.spec.model import CampaignSpec
from campaigns.stages.pages import add_stage
from campaigns.stages.plan import StagePlan, first_stage, graph_of, page_seconds_estimate, price_stage
from campaigns.stages.publish import (
    Progress,
    PublishReport,
    publish_stage,
)
from campaigns.store.connect import connector_for
from campaigns.store.database import Store
from campaigns.store.models import Campaign, Item
from connectors.base import Connector, ConnectorError
from payouts.budget import check_budget
from payouts.pricing import forecast


def spec_fingerprint(spec_text: str, items_text: str) -> str:
    return hashlib.sha256((spec_text + "\x00" + items_text).encode()).hexdigest()[:16]


def check_inputs(spec: CampaignSpec) -> list[dict]:
    """Read and validate every file the spec names (items, golden items, screening test) and the
    golden settings that depend on the items; returns the items. The CLI calls this before it
    opens the store, so a bad input line leaves no database behind."""
    stage = first_stage(spec)
    items = load_items(spec.path(spec.items), validate=stage.validate_item)
    if not items:
        raise CrowdError(f"{spec.path(spec.items)}: no items: the file has no JSON lines")
    stage.check_golden(items)
    screening_test(spec)
    return items


def launch(spec: CampaignSpec, store: Store, *, spec_text: str, endpoint: str | None = None,
           connector: Connector | None = None, progress: Progress | None = None) -> PublishReport:
    items_path = spec.path(spec.items)
    plan_items = check_inputs(spec)
    fingerprint = spec_fingerprint(spec_text, items_path.read_text(encoding="utf-8"))

    with store.session() as s:
        existing = s.exec(select(Campaign).where(Campaign.name == spec.name)).first()
    if existing is not None and existing.spec_hash != fingerprint:
        if not untouched(store, existing.id):
            raise CrowdError(f"campaign {spec.name!r} already exists with a different spec or items, and "
                             "some of its work is on the marketplace; give the campaign a new name")
        discard_plan(store, existing.id)  # nothing of it reached a worker: plan the corrected spec
        existing = None
    conn = connector or connector_for(spec.provider, spec.environment, endpoint or spec.endpoint_url)
    adopt_fee_rates(conn)

    if existing is None:
        stage_plan = first_stage(spec).plan(plan_items, random.Random(spec.seed))
        reward = price_stage(spec, stage_plan)
        check_reward = getattr(conn, "check_reward", None)  # a marketplace's own floor (Prolific's hourly minimum)
        if check_reward is not None:
            check_reward(stage_plan.name, reward, page_seconds_estimate(spec, stage_plan.name),
                         spec.assignment_duration_s)
        cost = forecast(len(stage_plan.pages), stage_plan.assignments, reward, spec.provider)
        if spec.budget is not None:
            verdict = check_budget(cap=spec.budget.cap, spent=Decimal(0), committed=Decimal(0),
                                   proposed=cost.total)
            if not verdict.allowed:
                raise CrowdError(f"launch refused: the forecast exceeds the budget: {verdict.reason}")
        balance = conn.balance()
        if balance < cost.total:
            raise CrowdError(f"launch refused: the {spec.provider} account balance {balance} cannot cover "
                             f"the forecast {cost.total}")
        campaign_id = _write_plan(store, spec, spec_text, fingerprint, plan_items, stage_plan, reward)
        resumed = False
    else:
        campaign_id = existing.id
        resumed = True

    try:
        report = publish_stage(store, conn, campaign_id, stage_name=first_stage(spec).name, progress=progress,
                               until=spec.wave if graph_of(spec).waves else None)
    except ConnectorError as exc:
        # The marketplace refused the first pages outright: nothing is out, so keep nothing either.
        if not exc.retryable and not resumed and untouched(store, campaign_id):
            discard_plan(store, campaign_id)
        raise
    report.resumed = resumed
    return report


def _write_plan(store: Store, spec: CampaignSpec, spec_text: str, fingerprint: str, items: list[dict],
                plan: StagePlan, reward: Decimal) -> int:
    with store.write() as s:
        campaign = Campaign(name=spec.name, provider=spec.provider, environment=spec.environment,
                            endpoint_url=spec.endpoint_url, kind=spec.kind, spec_yaml=spec_text,
                            spec_hash=fingerprint, budget_cap=spec.budget.cap if spec.budget else None)
        s.add(campaign)
        s.flush()
        item_rows = {it["id"]: Item(campaign_id=campaign.id, external_id=str(it["id"]), payload=it)
                     for it in items}
        s.add_all(item_rows.values())
        s.flush()
        add_stage(s, campaign, plan, reward, {k: v.id for k, v in item_rows.items()})
        return campaign.id


