"""The Prolific connector: Prolific recruits, filters and pays; crowdbridge's task server serves the
pages. Two clients: ``ProlificClient`` (Prolific's API) and an ``InhouseConnector`` (the task
server's requester API), one ``calls`` counter for both.

Mapping (the README has it too):

- a batch is a task-server batch; each of its lanes is one Prolific **study** whose
  ``external_study_url`` is ``<task server>/prolific/<lane>?PROLIFIC_PID={{%PROLIFIC_PID%}}&…``.
  A participant may take the study many times (``max_submissions_per_participant: -1``): one
  submission is one page. The study is found again by its ``internal_name`` (which holds the batch's
  idempotency key), so a resumed ``create_batch`` never makes a second one;
- a study's places are the lane's page assignments on the task server. After every publish or
  extend they are raised to that figure (places only go up, so a retried raise is harmless), and a
  draft study is published once it has places;
- an assignment is a Prolific submission: ``assignment_id`` is the submission id (``SESSION_ID``).
  The task server completes the submission itself when the page is in; ``fetch`` reads the answers
  from the task server and each submission's state from every page of ``GET /submissions/?study=``.
  An answer whose submission Prolific does not yet show as completed is held in the cursor and
  reported once it is. Returned and timed-out submissions hold no answer we may pay for;
- approve: ``bulk-approve`` (``approve_many``, 1,000 ids a call) or one transition; reject: a
  transition with a ``rejection_category`` and a message of at least 100 characters;
- pools and blocks are **participant groups**, used as allow-list and block-list filters on each
  study (every study block-lists the ``crowdbridge:blocked`` group); screening tests are not mapped;
- bonuses are two calls: set up (``POST /submissions/bonus-payments/``, retried freely: an unpaid
  set-up costs nothing) and pay (``POST /bulk-bonus-payments/{id}/pay/``, **not idempotent**: sent
  once, never retried here). A pay whose answer was lost is settled by the ledger from the
  submission's ``bonus_payments``, after ``bonus_settle_s`` (Prolific pays asynchronously);
- fees: ``fee_rates`` reads the rate (service fee and VAT) from the study cost calculator;
  ``check_launch`` reads the minimum hourly reward from Prolific's reward recommendations.

Environments: ``local`` (the local Prolific server, token ``local``) and ``production``
(https://api.prolific.com; a token is required). Prolific has no sandbox.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connectors.base import (
    BatchRef,
    BatchSpec,
    BonusReceipt,
    ConnectorError,
    FetchResult,
    Page,
    PoolRef,
    PoolSpec,
    PublishedPage,
    RawAssignment,
    ScreeningTest,
)
from connectors.inhouse import InhouseConnector
from connectors.prolific.client import PROVIDER, ProlificClient
from connectors.prolific.money import from_cents, to_cents, units_text
from connectors.retry import RetryPolicy, call_with_retry

log = logging.getLogger(__name__)
PRODUCTION_URL = "https://api.prolific.com"
DEFAULT_LOCAL_URL = "http://127.0.0.1:8768"
DEFAULT_LOCAL_TASKSERVER = "http://127.0.0.1:8769"
LOCAL_TOKEN = "local"
SANDBOX_REFUSED = ("Prolific has no sandbox: use environment local, or production with test participants "
                   "(POST /api/v1/researchers/participants/, then /api/v1/studies/{id}/test-study)")
STATUS = {"AWAITING REVIEW": "submitted", "APPROVED": "approved", "PARTIALLY APPROVED": "approved",
          "REJECTED": "rejected"}
STUDY_MOVED = {"PUBLISH": {"ACTIVE", "SCHEDULED", "PAUSED", "AWAITING REVIEW", "COMPLETED"},
               "STOP": {"AWAITING REVIEW", "COMPLETED"}}
WAITING = {"ACTIVE", "RESERVED", "UNKNOWN"}  # the answer may be in, Prolific not yet told
BULK_APPROVE = 1000
PAGE_SIZE = 100
BLOCKED_GROUP = "crowdbridge:blocked"
MIN_REJECT_MESSAGE = 100
REJECT_TAIL = (" This decision was made by the study's quality checks, which compare answers with questions "
               "whose answer is known and with other participants' answers.")


class ProlificConnector:
    provider = PROVIDER

    def __init__(self, environment: str = "local", endpoint_url: str | None = None, *, token: str | None = None,
                 taskserver_url: str | None = None, taskserver_token: str | None = None,
                 public_url: str | None = None, workspace_id: str | None = None,
                 retry: RetryPolicy | None = None, timeout: float | None = None,
                 bonus_settle_s: float | None = None):
        if environment == "sandbox":
            raise ValueError(SANDBOX_REFUSED)
        if environment not in ("local", "production"):
            raise ValueError(f"unknown environment {environment!r} for prolific (local or production)")
        if environment == "production" and not token:
            raise ValueError("Prolific production needs an API token: set PROLIFIC_API_TOKEN or "
                             "CROWD_PROLIFIC_API_TOKEN")
        if environment == "production" and not taskserver_url:
            raise ValueError("Prolific production needs the task server participants are sent to: "
                             "set CROWD_INHOUSE_ENDPOINT (and CROWD_INHOUSE_TOKEN)")
        self.environment = environment
        local = environment == "local"
        self.retry = retry or RetryPolicy()
        self.calls: Counter = Counter()
        self.api = ProlificClient(endpoint_url or (DEFAULT_LOCAL_URL if local else PRODUCTION_URL),
                                  token or LOCAL_TOKEN, self.retry, timeout)
        self.api.calls = self.calls
        self.tasks = InhouseConnector("local" if local and not taskserver_token else "production",
                                      taskserver_url or DEFAULT_LOCAL_TASKSERVER, token=taskserver_token,
                                      retry=self.retry, timeout=timeout)
        self.tasks.calls = self.calls
        self.public_url = (public_url or self.tasks.endpoint).rstrip("/")
        self._workspace = workspace_id
        # Prolific pays bonuses asynchronously: a pay whose answer was lost shows in the submission's
        # bonus_payments only minutes later. The local server pays at once.
        self.bonus_settle_s = bonus_settle_s if bonus_settle_s is not None else (0.0 if local else 900.0)
        self._blocked: str | None = None
        self._fees: dict | None = None

    def __repr__(self) -> str:
        return f"ProlificConnector({self.environment!r}, {self.api.base_url!r})"

    def _call(self, operation: str, method: str, path: str, **kw) -> Any:
        return self.api.call(operation, method, path, **kw)

    def _find_or_create(self, operation: str, find: Callable[[], str | None], path: str, body: dict) -> str:
        """The one way this connector makes a study or a participant group, which Prolific takes no
        idempotency key for: look it up by its stable name, create it only if absent (one POST, not
        retried on its own), and retry the two together. A create whose answer was lost is then
        found by the next attempt's look-up instead of being made twice."""
        def attempt() -> str:
            found = find()
            return found if found is not None else self._call(operation, "POST", path, body=body, once=True)["id"]

        def classify(exc: BaseException) -> tuple[bool, float | None]:
            return isinstance(exc, ConnectorError) and exc.retryable, None

        return call_with_retry(attempt, classify=classify, policy=self.api.retry, provider=PROVIDER,
                               operation=operation)

    # ----------------------------------------------------------------- account
    def workspace(self) -> str:
        if self._workspace is None:
            rows = self._call("ListWorkspaces", "GET", "/workspaces/")["results"]
            if not rows:
                raise ConnectorError(PROVIDER, "ListWorkspaces", "NoWorkspace",
                                     "this Prolific account has no workspace")
            self._workspace = rows[0]["id"]
        return self._workspace

    def balance(self) -> Decimal:
        out = self._call("GetBalance", "GET", f"/workspaces/{self.workspace()}/balance/")
        return from_cents(out["available_balance"])

    def fee_rates(self) -> dict[str, Decimal]:
        """Prolific's fee on rewards and bonuses (service fee plus VAT, as a fraction of the amount
        paid), from its cost calculator: the cost of one place at a large reward, less the reward."""
        if self._fees is None:
            probe = 1_000_000
            out = self._call("CalculateCost", "POST", "/study-cost-calculator/",
                             body={"reward": probe, "total_available_places": 1})
            rate = ((Decimal(str(out["total_cost"])) - probe) / probe).quantize(Decimal("0.000001"))
            self._fees = {"reward_rate": rate, "bonus_rate": rate}
        return self._fees

    def minimum_hourly_reward(self, currency: str = "USD") -> Decimal:
        rows = self._call("RewardRecommendations", "GET", "/reward-recommendations/",
                          params={"workspace_id": self.workspace(), "currency": currency})
        mins = [r["min_reward_per_hour"] for r in rows if r.get("currency", currency) == currency]
        return from_cents(max(mins)) if mins else Decimal("0")

    def check_reward(self, stage: str, reward: Decimal, estimated_s: int | None, assignment_duration_s: int) -> None:
        """Refuse a stage paying below Prolific's minimum hourly reward (one line; nothing is published)."""
        minutes = _estimated_minutes(estimated_s, assignment_duration_s)
        hourly = (reward * 60 / minutes).quantize(Decimal("0.01"), ROUND_HALF_UP)
        floor = self.minimum_hourly_reward()
        if hourly < floor:
            raise ConnectorError(PROVIDER, "check_reward", "RewardBelowMinimum",
                                 f"stage {stage} pays {reward} a page of about {minutes} min, {hourly}/hour: below "
                                 f"Prolific's minimum of {floor}/hour; raise the reward or hourly_wage")

    # ----------------------------------------------------------------- pools and blocks
    def _group(self, name: str, description: str = "") -> str:
        ws = self.workspace()

        def find() -> str | None:
            rows = self._call("ListGroups", "GET", "/participant-groups/", params={"workspace_id": ws})["results"]
            return next((g["id"] for g in rows if g["name"] == name and not g.get("is_deleted")), None)

        return self._find_or_create("CreateGroup", find, "/participant-groups/",
                                    {"workspace_id": ws, "name": name, "description": description})

    def ensure_pool(self, spec: PoolSpec) -> PoolRef:
        return PoolRef(provider=PROVIDER, ref=self._group(f"crowdbridge:{spec.name}", spec.description), name=spec.name)

    def ensure_screening(self, test: ScreeningTest) -> PoolRef:
        raise ConnectorError(PROVIDER, "ensure_screening", "NotSupported",
                             "screening tests are not mapped to Prolific yet: use Prolific's prescreeners, or a "
                             "pool you grant yourself (crowd workers grant)")

    def grant(self, pool: PoolRef, worker_id: str, score: int = 1) -> None:
        self._call("AddToGroup", "POST", f"/participant-groups/{pool.ref}/participants/",
                   body={"participant_ids": [worker_id]})

    def revoke(self, pool: PoolRef, worker_id: str, reason: str = "") -> None:
        self._call("RemoveFromGroup", "DELETE", f"/participant-groups/{pool.ref}/participants/",
                   body={"participant_ids": [worker_id]})

    def members(self, pool: PoolRef) -> dict[str, int]:
        out = self._call("ListGroupMembers", "GET", f"/participant-groups/{pool.ref}/participants/")
        return {m["participant_id"]: 1 for m in out["results"]}

    def _blocked_group(self) -> str:
        if self._blocked is None:
            self._blocked = self._group(BLOCKED_GROUP, "Participants crowdbridge no longer sends work to")
        return self._blocked

    def block(self, worker_id: str, reason: str) -> None:
        self._call("AddToGroup", "POST", f"/participant-groups/{self._blocked_group()}/participants/",
                   body={"participant_ids": [worker_id]})
        self.tasks.block(worker_id, reason)

    def unblock(self, worker_id: str, reason: str = "") -> None:
        self._call("RemoveFromGroup", "DELETE", f"/participant-groups/{self._blocked_group()}/participants/",
                   body={"participant_ids": [worker_id]})
        self.tasks.unblock(worker_id, reason)

    # ----------------------------------------------------------------- batches and studies
    def create_batch(self, spec: BatchSpec) -> BatchRef:
        # Who may take part is Prolific's to enforce (each study's filters): the lanes carry no pools.
        ref = self.tasks.create_batch(spec.model_copy(update={"requirements": [],
                                                              "lanes": {n: [] for n in spec.lanes}}))
        extra = dict(ref.extra)
        lanes = {"": ref.ref} | {k.removeprefix("lane:"): v for k, v in ref.extra.items() if k.startswith("lane:")}
        for name, lane in lanes.items():
            reqs = spec.requirements + spec.lanes.get(name, []) if name else spec.requirements
            internal = _internal_name(spec, name)
            code = _completion_code(spec.idempotency_key, name)
            study = self._find_or_create("CreateStudy", lambda n=internal: self._studies_by_name().get(n),
                                         "/studies/", self._study_body(spec, lane, internal, code, reqs))
            self.tasks._call("ServeAsStudy", "PUT", f"/lanes/{lane}/study",
                             body={"study_id": study, "completion_code": code})
            extra[f"study:{lane}"] = study
        return BatchRef(provider=PROVIDER, batch_id=ref.batch_id, ref=ref.ref, extra=extra)

    def _studies_by_name(self) -> dict[str, str]:
        rows = self._call("ListStudies", "GET", "/studies/")["results"]
        return {r["internal_name"]: r["id"] for r in rows if r.get("internal_name")}

    def _study_body(self, spec: BatchSpec, lane: str, internal: str, code: str, reqs) -> dict:
        # One block-list of every group kept out (in any: out); an allow-list per pool required (in each).
        blocked = sorted({self._blocked_group()} | {r.pool.ref for r in reqs if r.exclude})
        filters = [{"filter_id": "participant_group_allowlist", "selected_values": [ref]}
                   for ref in dict.fromkeys(r.pool.ref for r in reqs if not r.exclude)]
        filters.append({"filter_id": "participant_group_blocklist", "selected_values": blocked})
        url = (f"{self.public_url}/prolific/{lane}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
               f"&STUDY_ID={{{{%STUDY_ID%}}}}&SESSION_ID={{{{%SESSION_ID%}}}}")
        text = html.escape(spec.description) + ("<br><br>" + html.escape(spec.instructions).replace("\n", "<br>")
                                                if spec.instructions else "")
        return {"name": spec.title, "internal_name": internal, "description": text, "external_study_url": url,
                "prolific_id_option": "url_parameters",
                "completion_codes": [{"code": code, "code_type": "COMPLETED", "actor": "researcher",
                                      "actions": [{"action": "MANUALLY_REVIEW"}]}],
                "total_available_places": 1,
                "estimated_completion_time": _estimated_minutes(spec.estimated_duration_s, spec.assignment_duration_s),
                "maximum_allowed_time": max(1, math.ceil(spec.assignment_duration_s / 60)),
                "reward": to_cents(spec.reward), "device_compatibility": ["desktop", "tablet", "mobile"],
                "filters": filters,
                "submissions_config": {"max_submissions_per_participant": -1, "max_concurrent_submissions": -1},
                "metadata": json.dumps({"crowdbridge": spec.idempotency_key, "lane": lane})}

    def _study_lanes(self, batch: BatchRef) -> dict[str, str]:
        return {k.removeprefix("study:"): v for k, v in batch.extra.items() if k.startswith("study:")}

    def _sync_places(self, lane: str, study: str) -> None:
        """Raise the study's places to the lane's assignments, and publish a draft that has pages."""
        want = self.tasks._call("GetLane", "GET", f"/lanes/{lane}")["places"]
        have = self._call("GetStudy", "GET", f"/studies/{study}/")
        if want > int(have["total_available_places"]):
            have = self._call("UpdateStudy", "PATCH", f"/studies/{study}/", body={"total_available_places": want})
        if have["status"] == "UNPUBLISHED" and want > 0:
            self._transition_study(study, "PUBLISH")

    def _transition_study(self, study: str, action: str) -> None:
        """PUBLISH or STOP a study. Prolific refuses a move the study already made, which is what a
        retry after a lost answer sends: the study's state then says whether it was done."""
        try:
            self._call("TransitionStudy", "POST", f"/studies/{study}/transition/", body={"action": action})
        except ConnectorError:
            now = self._call("GetStudy", "GET", f"/studies/{study}/")["status"]
            if now not in STUDY_MOVED[action]:
                raise

    def publish(self, batch: BatchRef, spec: BatchSpec, pages: Sequence[Page]) -> list[PublishedPage]:
        out = self.tasks.publish(batch, spec, pages)
        studies = self._study_lanes(batch)
        for lane in {batch.lane(p) for p in pages}:
            self._sync_places(lane, studies[lane])
        return out

    def published(self, batch: BatchRef, pages: Sequence[Page]) -> list[PublishedPage]:
        out = self.tasks.published(batch, pages)
        for lane, study in self._study_lanes(batch).items():
            self._sync_places(lane, study)  # a publish killed before its places were raised
        return out

    def close(self, batch: BatchRef, pages: Sequence[str] | None = None) -> None:
        self.tasks.close(batch, pages)
        if pages is not None:
            return  # places cannot go down: participants who still arrive are told no page is left
        for study in self._study_lanes(batch).values():
            if self._call("GetStudy", "GET", f"/studies/{study}/")["status"] in ("ACTIVE", "PAUSED"):
                self._transition_study(study, "STOP")

    # ----------------------------------------------------------------- answers
    def fetch(self, batch: BatchRef, cursor: str | None, pages: Sequence[str] | None = None) -> FetchResult:
        state = _cursor(cursor)
        inner = self.tasks.fetch(batch, state.get("t"), pages)
        waiting = [json.loads(r) for r in state.get("h", [])] + [json.loads(a.raw) for a in inner.assignments]
        held, got = [], []
        if waiting:
            subs: dict[str, dict] = {}
            for study in self._study_lanes(batch).values():
                for row in self.api.pages("ListSubmissions", "/submissions/", {"study": study}, PAGE_SIZE):
                    subs[row["id"]] = row
            for a in waiting:
                sub = subs.get(a.get("session") or "")
                status = sub["status"] if sub else "UNKNOWN"
                if status in STATUS:
                    got.append(self._assignment(a, sub))
                elif status in WAITING:
                    held.append(json.dumps(a, sort_keys=True))
                else:
                    log.warning("prolific: the answer to submission %s is kept on the task server but not paid: "
                                "Prolific has it %s", a.get("session"), status)
        new = {"t": inner.cursor, "h": held}
        return FetchResult(assignments=got, cursor=json.dumps(new), finished_pages=inner.finished_pages)

    def _assignment(self, a: dict, sub: dict) -> RawAssignment:
        return RawAssignment(provider=PROVIDER, assignment_id=sub["id"], page_ref=a["page"], page_id=a["page_id"],
                             worker_id=sub["participant_id"], status=STATUS[sub["status"]],
                             accepted_at=a["accepted_at"], submitted_at=a["submitted_at"],
                             raw=json.dumps({"submission": sub, "answer": a}, ensure_ascii=False, sort_keys=True),
                             answers=a["answers"])

    def watch(self, cursor: str | None, page_refs: Sequence[str]) -> str | None:
        state = _cursor(cursor)
        if cursor is None:
            return None
        state["t"] = self.tasks.watch(state.get("t"), page_refs)
        return json.dumps(state)

    # ----------------------------------------------------------------- reviews
    def approve(self, assignment_id: str, message: str | None = None) -> None:
        self._call("ApproveSubmission", "POST", f"/submissions/{assignment_id}/transition/",
                   body={"action": "APPROVE"})

    def approve_many(self, assignment_ids: Sequence[str]) -> None:
        ids = list(assignment_ids)
        for n in range(0, len(ids), BULK_APPROVE):
            self._call("BulkApprove", "POST", "/submissions/bulk-approve/",
                       body={"submission_ids": ids[n:n + BULK_APPROVE]})

    def reject(self, assignment_id: str, message: str) -> None:
        text = message.strip() or "Your submission did not meet the study's quality requirements."
        if len(text) < MIN_REJECT_MESSAGE:  # Prolific refuses shorter ones; the tail alone is longer
            text += REJECT_TAIL
        category = "FAILED_CHECK" if "known answer" in text.lower() else "LOW_EFFORT"
        self._call("RejectSubmission", "POST", f"/submissions/{assignment_id}/transition/",
                   body={"action": "REJECT", "message": text, "rejection_category": category})

    def assignment_status(self, assignment_id: str) -> str:
        status = self._submission(assignment_id)["status"]
        return STATUS.get(status, status.lower())

    def _submission(self, assignment_id: str) -> dict:
        return self._call("GetSubmission", "GET", f"/submissions/{assignment_id}/")

    # ----------------------------------------------------------------- bonuses
    def pay_bonus(self, worker_id: str, assignment_id: str, amount: Decimal, reason: str,
                  idempotency_key: str) -> BonusReceipt:
        """Set up, then pay once. The set-up may be repeated (unpaid set-ups cost nothing); the pay
        call never is: if its answer is lost, the error is retryable and the ledger, which marked
        the bonus ``sent`` before this call, looks at the submission's bonus_payments before paying
        again (``campaigns.money.bonuses``)."""
        study = self._submission(assignment_id)["study_id"]
        bulk = self._call("SetUpBonus", "POST", "/submissions/bonus-payments/",
                          body={"study_id": study, "csv_bonuses": f"{assignment_id},{units_text(amount)}\n"})
        self._call("PayBonus", "POST", f"/bulk-bonus-payments/{bulk['id']}/pay/", once=True)
        return BonusReceipt(worker_id=worker_id, assignment_id=assignment_id, amount=from_cents(bulk["amount"]),
                            idempotency_key=idempotency_key, provider_ref=bulk["id"], created=True)

    def list_bonuses(self, *, assignment_id: str | None = None) -> list[dict]:
        """Bonuses paid on one submission (Prolific lists them per submission only)."""
        if assignment_id is None:
            raise ConnectorError(PROVIDER, "list_bonuses", "NeedsSubmission",
                                 "Prolific lists bonuses per submission: pass assignment_id")
        sub = self._submission(assignment_id)
        return [{"worker_id": sub.get("participant"), "assignment_id": assignment_id, "amount": from_cents(c),
                 "reason": ""} for c in sub.get("bonus_payments") or []]

    # ----------------------------------------------------------------- single pages
    def extend(self, page_ref: str, extra_assignments: int) -> None:
        self.tasks.extend(page_ref, extra_assignments)
        lane = self.tasks._call("GetPage", "GET", f"/pages/{page_ref}")["lane"]
        study = self.tasks._call("GetLane", "GET", f"/lanes/{lane}")["study_id"]
        if study:
            self._sync_places(lane, study)

    def page_assignments(self, page_ref: str) -> int:
        return self.tasks.page_assignments(page_ref)

    def stop(self, page_ref: str) -> None:
        self.tasks.stop(page_ref)


def _estimated_minutes(estimated_s: int | None, assignment_duration_s: int) -> int:
    """Minutes a page takes: the spec's estimate, else a fifth of the time allowed."""
    seconds = estimated_s or assignment_duration_s / 5
    return max(1, math.ceil(seconds / 60))


def _internal_name(spec: BatchSpec, lane: str) -> str:
    return f"crowdbridge {spec.idempotency_key}" + (f" lane {lane}" if lane else "")


def _completion_code(key: str, lane: str) -> str:
    """Stable per study (a resumed create sends the same one); only the server uses it (actor researcher)."""
    return "CB" + hashlib.sha256(f"{key}|{lane}".encode()).hexdigest()[:10].upper()


def _cursor(cursor: str | None) -> dict:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        raise ConnectorError(PROVIDER, "fetch", "BadCursor", "not a cursor this connector made")
    return state
