"""The connector for crowdbridge's own task server: an ``httpx`` client of its requester API.

Mapping: a batch is a server batch whose own lane is ``BatchRef.ref`` (named lanes in ``extra``
as for every provider); a page is a server page; a pool or screening test is a server pool. Every
write is idempotent on the server (batches, pages and bonuses by key; grants, blocks, stops and
closes by nature), so the shared retry policy may repeat any call. ``fetch`` follows the server's
opaque cursor (submission order) and reads every page of it.

Environments: ``local`` (the local marketplace at 127.0.0.1:8767, token ``local``) and
``production`` (your own ``crowd serve``: ``endpoint_url`` and the requester token are required).
There is no sandbox: run a second server for trials.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx

from connectors.base import (
    BatchRef,
    BatchSpec,
    BonusReceipt,
    ConnectorError,
    FetchResult,
    Page,
    PoolRef,
    PoolRequirement,
    PoolSpec,
    PublishedPage,
    RawAssignment,
    ScreeningTest,
)
from connectors.retry import RetryPolicy, call_with_retry

log = logging.getLogger(__name__)
DEFAULT_LOCAL_URL = "http://127.0.0.1:8767"
LOCAL_TOKEN = "local"  # the local marketplace's requester token (it listens on 127.0.0.1 only)
PUBLISH_CHUNK = 200
LOOKUP_CHUNK = 100
UNLIMITED = Decimal("Infinity")


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None, retry_after: float | None):
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.retry_after = status, code, message, field, retry_after


class InhouseConnector:
    provider = "inhouse"

    def __init__(self, environment: str = "local", endpoint_url: str | None = None, *, token: str | None = None,
                 retry: RetryPolicy | None = None, timeout: float | None = None):
        if environment == "sandbox":
            raise ValueError("the task server has no sandbox: run a second `crowd serve` for trials")
        if environment not in ("local", "production"):
            raise ValueError(f"unknown environment {environment!r} for inhouse (local or production)")
        if environment == "production" and not endpoint_url:
            raise ValueError("inhouse production needs the task server's URL (CROWD_INHOUSE_ENDPOINT)")
        if environment == "production" and not token:
            raise ValueError("inhouse production needs the requester token (CROWD_INHOUSE_TOKEN)")
        self.environment = environment
        self.endpoint = (endpoint_url or DEFAULT_LOCAL_URL).rstrip("/")
        self.retry = retry or RetryPolicy()
        self.retry = RetryPolicy(**{**self.retry.__dict__, "endpoint": self.endpoint})
        self.calls: Counter = Counter()
        read = timeout or self.retry.read_timeout_s
        self._http = httpx.Client(base_url=self.endpoint + "/api/v1",
                                  headers={"Authorization": f"Bearer {token or LOCAL_TOKEN}"},
                                  timeout=httpx.Timeout(read, connect=self.retry.connect_timeout_s))

    def __repr__(self) -> str:  # the token is in the client's headers: never print them
        return f"InhouseConnector({self.environment!r}, {self.endpoint!r})"

    # ----------------------------------------------------------------- plumbing
    @staticmethod
    def _classify(exc: BaseException) -> tuple[bool, float | None]:
        if isinstance(exc, _Refused):
            return exc.status == 429 or exc.status >= 500, exc.retry_after
        return isinstance(exc, httpx.TransportError), None

    def _call(self, operation: str, method: str, path: str, *, body: Any = None,
              params: Any = None) -> Any:
        def once() -> Any:
            self.calls[operation] += 1
            resp = self._http.request(method, path, json=body, params=params)
            if resp.status_code >= 400:
                raise _refusal(resp)
            return resp.json() if resp.content else None

        try:
            return call_with_retry(once, classify=self._classify, policy=self.retry, provider=self.provider,
                                   operation=operation)
        except _Refused as exc:
            raise ConnectorError(self.provider, operation, exc.code, exc.message, field=exc.field) from None

    def close_client(self) -> None:
        self._http.close()

    # ----------------------------------------------------------------- pools
    def _pool(self, row: dict) -> PoolRef:
        return PoolRef(provider=self.provider, ref=row["id"], name=row["name"])

    def ensure_pool(self, spec: PoolSpec) -> PoolRef:
        return self._pool(self._call("EnsurePool", "POST", "/pools", body=spec.model_dump(mode="json")))

    def ensure_screening(self, test: ScreeningTest) -> PoolRef:
        return self._pool(self._call("EnsureScreening", "POST", "/screenings", body=test.model_dump(mode="json")))

    def grant(self, pool: PoolRef, worker_id: str, score: int = 1) -> None:
        self._call("Grant", "PUT", f"/pools/{pool.ref}/members/{worker_id}", body={"score": score})

    def revoke(self, pool: PoolRef, worker_id: str, reason: str = "") -> None:
        self._call("Revoke", "DELETE", f"/pools/{pool.ref}/members/{worker_id}")

    def members(self, pool: PoolRef) -> dict[str, int]:
        return {m["worker_id"]: m["score"] for m in self._call("ListMembers", "GET", f"/pools/{pool.ref}/members")}

    def block(self, worker_id: str, reason: str) -> None:
        self._call("Block", "PUT", f"/blocks/{worker_id}", body={"reason": reason})

    def unblock(self, worker_id: str, reason: str = "") -> None:
        self._call("Unblock", "DELETE", f"/blocks/{worker_id}")

    # ----------------------------------------------------------------- batches and pages
    @staticmethod
    def _requirements(reqs: Sequence[PoolRequirement]) -> list[dict]:
        return [{"pool_id": r.pool.ref, "min_score": r.min_score, "exclude": r.exclude} for r in reqs]

    def create_batch(self, spec: BatchSpec) -> BatchRef:
        body = {"idempotency_key": spec.idempotency_key, "name": spec.batch_id, "title": spec.title,
                "description": spec.description, "instructions": spec.instructions, "kind": spec.kind,
                "reward": str(spec.reward), "assignments_per_page": spec.assignments_per_page,
                "assignment_duration_s": spec.assignment_duration_s, "lifetime_s": spec.lifetime_s,
                "auto_approval_delay_s": spec.auto_approval_delay_s,
                "requirements": self._requirements(spec.requirements),
                "lanes": {name: self._requirements(reqs) for name, reqs in spec.lanes.items()}}
        out = self._call("CreateBatch", "POST", "/batches", body=body)
        extra = {"batch": out["id"]} | {f"lane:{name}": lane for name, lane in out["lanes"].items()}
        return BatchRef(provider=self.provider, batch_id=spec.batch_id, ref=out["lane_id"], extra=extra)

    def publish(self, batch: BatchRef, spec: BatchSpec, pages: Sequence[Page]) -> list[PublishedPage]:
        by_lane: dict[str, list[Page]] = {}
        for p in pages:
            by_lane.setdefault(batch.lane(p), []).append(p)
        made: dict[str, PublishedPage] = {}
        for lane, group in by_lane.items():
            for n in range(0, len(group), PUBLISH_CHUNK):
                chunk = group[n:n + PUBLISH_CHUNK]
                body = {"pages": [p.model_dump(mode="json", include={"page_id", "idempotency_key", "items",
                                                                     "assignments"}) for p in chunk]}
                for row in self._call("PublishPages", "POST", f"/lanes/{lane}/pages", body=body):
                    made[row["page_id"]] = PublishedPage(page_id=row["page_id"], provider_ref=row["id"],
                                                         created=row["created"], assignments=row["assignments"])
        return [made[p.page_id] for p in pages]

    def published(self, batch: BatchRef, pages: Sequence[Page]) -> list[PublishedPage]:
        out = []
        ids = [p.page_id for p in pages]
        for n in range(0, len(ids), LOOKUP_CHUNK):
            rows = self._call("FindPages", "GET", f"/batches/{batch.extra['batch']}/pages",
                              params=[("page_id", i) for i in ids[n:n + LOOKUP_CHUNK]])
            out += [PublishedPage(page_id=r["page_id"], provider_ref=r["id"], created=False,
                                  assignments=r["assignments"]) for r in rows]
        return out

    def fetch(self, batch: BatchRef, cursor: str | None, pages: Sequence[str] | None = None) -> FetchResult:
        """Our cursor is the server's (submission order) plus the pages still watched: every page
        is reported finished once and then dropped, so the cursor shrinks as the batch completes."""
        state = _cursor(cursor)
        scope = list(pages) if pages is not None else state.get("w")
        server, got = state.get("s"), []
        while True:
            body = {"cursor": server, "pages": scope, "limit": 500}
            out = self._call("FetchAssignments", "POST", f"/batches/{batch.extra['batch']}/assignments/query",
                             body=body)
            got += [self._assignment(a) for a in out["assignments"]]
            server = out["cursor"]
            if not out["has_more"]:
                break
        return FetchResult(assignments=got, cursor=json.dumps({"s": server, "w": out["open_pages"]}),
                           finished_pages=out["finished_pages"])

    def _assignment(self, a: dict) -> RawAssignment:
        return RawAssignment(provider=self.provider, assignment_id=a["id"], page_ref=a["page"], page_id=a["page_id"],
                             worker_id=a["worker_id"], status=a["status"], accepted_at=a["accepted_at"],
                             submitted_at=a["submitted_at"], raw=json.dumps(a, ensure_ascii=False, sort_keys=True),
                             answers=a["answers"])

    def watch(self, cursor: str | None, page_refs: Sequence[str]) -> str | None:
        state = _cursor(cursor)
        if cursor is None or state.get("w") is None:
            return cursor  # not yet fetched: the first fetch covers every page of the batch
        state["w"] = state["w"] + [r for r in page_refs if r not in set(state["w"])]
        return json.dumps(state)

    def close(self, batch: BatchRef, pages: Sequence[str] | None = None) -> None:
        self._call("CloseBatch", "POST", f"/batches/{batch.extra['batch']}/close",
                   body={"pages": list(pages) if pages is not None else None})

    # ----------------------------------------------------------------- reviews and money
    def approve(self, assignment_id: str, message: str | None = None) -> None:
        self._call("Approve", "POST", f"/assignments/{assignment_id}/approve", body={"message": message})

    def reject(self, assignment_id: str, message: str) -> None:
        self._call("Reject", "POST", f"/assignments/{assignment_id}/reject", body={"message": message})

    def assignment_status(self, assignment_id: str) -> str:
        return self._call("GetAssignment", "GET", f"/assignments/{assignment_id}")["status"]

    def pay_bonus(self, worker_id: str, assignment_id: str, amount: Decimal, reason: str,
                  idempotency_key: str) -> BonusReceipt:
        out = self._call("PayBonus", "POST", "/bonuses", body={
            "idempotency_key": idempotency_key, "worker_id": worker_id, "assignment_id": assignment_id,
            "amount": str(amount), "reason": reason})
        return BonusReceipt(worker_id=worker_id, assignment_id=assignment_id, amount=Decimal(out["amount"]),
                            idempotency_key=idempotency_key, provider_ref=out["id"], created=out["created"])

    def list_bonuses(self, *, assignment_id: str | None = None) -> list[dict]:
        params = {"assignment_id": assignment_id} if assignment_id else None
        return [{"worker_id": b["worker_id"], "assignment_id": b["assignment_id"], "amount": Decimal(b["amount"]),
                 "reason": b["reason"], "idempotency_key": b["idempotency_key"]}
                for b in self._call("ListBonuses", "GET", "/bonuses", params=params)]

    def balance(self) -> Decimal:
        out = self._call("GetBalance", "GET", "/balance")
        return UNLIMITED if out["available"] is None else Decimal(out["available"])

    # ----------------------------------------------------------------- single pages
    def extend(self, page_ref: str, extra_assignments: int) -> None:
        """Read the page's allowance, then extend it from that figure: a retried call adds once."""
        now = self.page_assignments(page_ref)
        self._call("ExtendPage", "POST", f"/pages/{page_ref}/extend",
                   body={"extra_assignments": extra_assignments, "if_assignments": now})

    def page_assignments(self, page_ref: str) -> int:
        return self._call("GetPage", "GET", f"/pages/{page_ref}")["assignments"]

    def stop(self, page_ref: str) -> None:
        self._call("StopPage", "POST", f"/pages/{page_ref}/stop")


def _cursor(cursor: str | None) -> dict:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        raise ConnectorError("inhouse", "fetch", "BadCursor", "not a cursor this connector made")
    return state


def _refusal(resp: httpx.Response) -> _Refused:
    try:
        err = resp.json()["error"]
        code, message, field = err["code"], err["message"], err.get("field")
    except (ValueError, KeyError, TypeError):
        code, message, field = f"HTTP{resp.status_code}", resp.text[:200] or resp.reason_phrase, None
    hint = resp.headers.get("Retry-After")
    try:
        retry_after = float(hint) if hint else None
    except ValueError:
        retry_after = None
    return _Refused(resp.status_code, code, message, field, retry_after)
