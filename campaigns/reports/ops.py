"""What the task server's ops view shows from crowdbridge's store: each inhouse campaign's spend
against its budget, and each worker's latest trust with the evidence behind it. ``crowd serve
--store URL`` hands this to the server (which imports nothing of campaigns)."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from campaigns.store.database import Store
from campaigns.store.models import Campaign, WorkerScore

PROVIDER = "inhouse"


class StoreOps:
    def __init__(self, store: Store):
        self.store = store

    def workers(self) -> dict[str, dict[str, Any]]:
        with self.store.session() as s:
            rows = s.exec(select(WorkerScore).where(WorkerScore.provider == PROVIDER)
                          .order_by(WorkerScore.computed_at, WorkerScore.id)).all()
        latest = {r.worker_id: r for r in rows}  # the newest score of each worker wins
        return {wid: {"trust": r.trust, "evidence": str(r.evidence.get("decision") or _brief(r.evidence))}
                for wid, r in latest.items()}

    def budgets(self) -> list[dict[str, Any]]:
        from campaigns.reports.status import costs

        with self.store.session() as s:
            names = s.exec(select(Campaign.name).where(Campaign.provider == PROVIDER).order_by(Campaign.id)).all()
        out = []
        for name in names:
            c = costs(self.store, name)["campaigns"][0]
            out.append({"campaign": name, "spent": c["spent"]["total"], "committed": c["committed"],
                        "budget": c["budget_cap"]})
        return out


def _brief(evidence: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(evidence.items()) if isinstance(v, int | float))
