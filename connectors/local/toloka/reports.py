"""What Toloka computes about a pool: the results TSV, pool analytics and aggregated answers.

- ``assignments_tsv``: ``GET /new/requester/pools/{id}/assignments.tsv`` as toloka-kit's
  ``get_assignments_df`` reads it: one row per task of each assignment, columns ``INPUT:<field>``,
  ``OUTPUT:<field>``, ``GOLDEN:<field>`` (when the pool has control tasks), ``HINT:text`` (when it
  has hints), then the requested ``ASSIGNMENT:<field>`` columns; statuses as the web UI names them
  (``APPROVED`` for accepted).
- ``analytics``: ``POST /staging/analytics-2`` (toloka.metrics' ``AssignmentsInPool``,
  ``PoolCompletedPercentage``, ...): an ``ANALYTICS`` operation whose ``details.value`` holds one
  ``{"request", "result", "finished"}`` per request.
- ``aggregate``: ``POST /aggregated-solutions/aggregate-by-pool`` (and ``aggregate_task``:
  ``aggregate-by-task``): crowd-kit's Dawid-Skene for ``DAWID_SKENE``, its (skill-weighted)
  majority vote for ``WEIGHTED_DYNAMIC_OVERLAP``, over submitted and accepted answers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .errors import field_error, not_found, validation
from .state import TolokaState, fee
from .times import iso, parse_ts

DONE = ("SUBMITTED", "ACCEPTED")
_TSV_STATUS = {"ACCEPTED": "APPROVED"}
_ASSIGNMENT_FIELDS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]] = {
    "task_id": lambda a, t: t["id"],
    "assignment_id": lambda a, t: a["id"],
    "task_suite_id": lambda a, t: a["task_suite_id"],
    "worker_id": lambda a, t: a["user_id"],
    "status": lambda a, t: _TSV_STATUS.get(a["status"], a["status"]),
    "started": lambda a, t: a["created"],
    "submitted": lambda a, t: a.get("submitted"),
    "accepted": lambda a, t: a.get("accepted"),
    "rejected": lambda a, t: a.get("rejected"),
    "skipped": lambda a, t: a.get("skipped"),
    "expired": lambda a, t: a.get("expired"),
    "reward": lambda a, t: a["reward"],
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def assignments_tsv(state: TolokaState, pool_id: str, params: dict[str, str], base_url: str) -> str:
    pool = state.pool(pool_id)
    if pool is None:
        raise not_found("pool", pool_id)
    spec = state.get("projects", pool["project_id"])["task_spec"]
    statuses = {s.strip() for s in (params.get("status") or "APPROVED").split(",") if s.strip()}
    wanted = [f for f in (params.get("field") or "").split(",") if f.startswith("ASSIGNMENT:")]
    wanted = wanted or ["ASSIGNMENT:link", "ASSIGNMENT:assignment_id", "ASSIGNMENT:worker_id",
                        "ASSIGNMENT:status", "ASSIGNMENT:started"]
    since, until = params.get("startTimeFrom"), params.get("startTimeTo")
    rows: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    for a in state.store["assignments"].values():
        if a["pool_id"] != pool_id or _TSV_STATUS.get(a["status"], a["status"]) not in statuses:
            continue
        started = parse_ts(a["created"])
        if (since and started < parse_ts(since)) or (until and started > parse_ts(until)):
            continue
        if params.get("excludeBanned") in ("true", "True") and state.restricted(a["user_id"], pool):
            continue
        for i, t in enumerate(a["tasks"]):
            solutions = a.get("solutions") or []
            rows.append((a, state.store["tasks"][t["id"]], solutions[i]["output_values"] if i < len(solutions) else {}))
    golden = any(task.get("known_solutions") for _, task, _ in rows)
    hints = any(task.get("message_on_unknown_solution") for _, task, _ in rows)
    header = [f"INPUT:{k}" for k in spec["input_spec"]] + [f"OUTPUT:{k}" for k in spec["output_spec"]]
    header += [f"GOLDEN:{k}" for k in spec["output_spec"]] if golden else []
    header += ["HINT:text"] if hints else []
    header += wanted
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(header)
    for a, task, answer in rows:
        known = ((task.get("known_solutions") or [{}])[0] or {}).get("output_values") or {}
        row = [_cell(task["input_values"].get(k)) for k in spec["input_spec"]]
        row += [_cell(answer.get(k)) for k in spec["output_spec"]]
        row += [_cell(known.get(k)) for k in spec["output_spec"]] if golden else []
        row += [_cell(task.get("message_on_unknown_solution"))] if hints else []
        for field in wanted:
            name = field.split(":", 1)[1]
            if name == "link":
                row.append(f"{base_url}/task/{pool_id}/{a['id']}")
            else:
                row.append(_cell(_ASSIGNMENT_FIELDS[name](a, task)) if name in _ASSIGNMENT_FIELDS else "")
        writer.writerow(row)
    return out.getvalue()


# ---------------------------------------------------------------------- analytics
def _pool_facts(state: TolokaState, pool: dict[str, Any]) -> dict[str, Any]:
    pid = pool["id"]
    mine = [a for a in state.store["assignments"].values() if a["pool_id"] == pid]
    by = {s: sum(a["status"] == s for a in mine) for s in ("SUBMITTED", "ACCEPTED", "REJECTED", "SKIPPED")}
    real = [t for t in state.loose_by_pool[pid] if not t.get("known_solutions")]
    needed = sum(t["overlap"] for t in real if not t.get("infinite_overlap"))
    needed += sum(s["overlap"] for s in state.suites_by_pool[pid] if not s.get("infinite_overlap"))
    real_ids = {t["id"] for t in real}
    done = sum(1 for a in mine if a["status"] in DONE for t in a["tasks"] if t["id"] in real_ids)
    done += sum(1 for a in mine if a["status"] in DONE and not a.get("mixed"))
    took = [(parse_ts(a["submitted"]) - parse_ts(a["created"])).total_seconds() for a in mine if a.get("submitted")]
    spent = sum((Decimal(str(a["reward"])) + fee(Decimal(str(a["reward"]))) for a in mine if a["status"] == "ACCEPTED"),
                Decimal(0))
    suite_tasks = sum(len(s["tasks"]) for s in state.suites_by_pool[pid])
    return {
        "real_tasks_count": len(real) + suite_tasks,
        "submitted_assignments_count": by["SUBMITTED"],
        "skipped_assignments_count": by["SKIPPED"],
        "rejected_assignments_count": by["REJECTED"],
        "approved_assignments_count": by["ACCEPTED"],
        "completion_percentage": {"value": min(100, round(100 * done / needed)) if needed else 0},
        "avg_submit_assignment_millis": round(1000 * sum(took) / len(took)) if took else 0,
        "spent_budget": spent,
        "unique_workers_count": len({a["user_id"] for a in mine}),
        "unique_submitters_count": len({a["user_id"] for a in mine if a.get("submitted")}),
        "estimated_assignments_count": max(0, needed - done),
    }


def analytics(state: TolokaState, body: Any, active_workers: Callable[[dict[str, Any]], int]) -> dict[str, Any]:
    requests = body if isinstance(body, list) else [body]
    values = []
    for i, req in enumerate(requests):
        if req.get("subject") != "POOL" or not req.get("name"):
            raise validation({f"{i}.subject": field_error("VALUE_NOT_ALLOWED", "POOL analytics with a name")})
        pool = state.pool(str(req.get("subject_id")))
        if pool is None:
            raise not_found("pool", str(req.get("subject_id")))
        facts = _pool_facts(state, pool)
        facts["active_workers_by_filter_count"] = active_workers(pool)
        if req["name"] not in facts:
            raise validation({f"{i}.name": field_error("VALUE_NOT_ALLOWED", f"Unknown analytics {req['name']}")})
        values.append({"result": facts[req["name"]], "request": req, "finished": iso(state.now())})
    return state.operation("ANALYTICS", {}, details={"value": values})


# ---------------------------------------------------------------------- aggregation
def aggregate(state: TolokaState, body: dict[str, Any]) -> dict[str, Any]:
    """``aggregate-by-pool``: an operation whose results ``GET /aggregated-solutions/{op}`` lists."""
    results = _solutions(state, body)
    op = state.operation("SOLUTION.AGGREGATE", {"pool_id": str(body["pool_id"])})
    state.store[f"aggregated-solutions:{op['id']}"] = results
    return op


def aggregate_task(state: TolokaState, body: dict[str, Any]) -> dict[str, Any]:
    """``aggregate-by-task``: one task's aggregated answer, at once."""
    task_id = str(body.get("task_id") or "")
    found = _solutions(state, {"type": "WEIGHTED_DYNAMIC_OVERLAP", **body}, task_id).get(task_id)
    if found is None:
        raise not_found("aggregated solution of task", task_id)
    return found


def _solutions(state: TolokaState, body: dict[str, Any], only_task: str | None = None) -> dict[str, dict[str, Any]]:
    import pandas as pd  # crowd-kit's input; loaded only when someone aggregates
    from crowdkit.aggregation import DawidSkene, MajorityVote

    pool_id = str(body.get("pool_id") or "")
    pool = state.pool(pool_id)
    if pool is None:
        raise validation({"pool_id": field_error("DOES_NOT_EXIST", "Pool does not exist")})
    names = [f.get("name") for f in body.get("fields") or [] if f.get("name")]
    kind = body.get("type")
    if kind not in ("DAWID_SKENE", "WEIGHTED_DYNAMIC_OVERLAP") or not names:
        raise validation({"type": field_error("VALUE_NOT_ALLOWED", "DAWID_SKENE or WEIGHTED_DYNAMIC_OVERLAP")})
    skill_id = body.get("answer_weight_skill_id")
    if kind == "WEIGHTED_DYNAMIC_OVERLAP" and not skill_id:
        raise validation({"answer_weight_skill_id": field_error("VALUE_REQUIRED", "Value must be present")})
    votes = []
    for a in state.store["assignments"].values():
        if a["pool_id"] != pool_id or a["status"] not in DONE:
            continue
        for t, sol in zip(a["tasks"], a.get("solutions") or [], strict=False):
            if only_task not in (None, t["id"]):
                continue
            if not state.store["tasks"][t["id"]].get("known_solutions"):
                votes.append((t["id"], a["user_id"], sol["output_values"]))
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        data = pd.DataFrame(
            [(task, worker, json.dumps(out.get(name), sort_keys=True)) for task, worker, out in votes],
            columns=["task", "worker", "label"],
        )
        if data.empty:
            continue
        if kind == "DAWID_SKENE":
            proba = DawidSkene(n_iter=50).fit_predict_proba(data)
        else:
            workers = data["worker"].unique()
            weights = [float(state.skill_value(w, str(skill_id)) or 0) + 1e-6 for w in workers]
            proba = MajorityVote().fit_predict_proba(data, skills=pd.Series(weights, index=workers))
        for task, row in proba.iterrows():
            blank = {"pool_id": pool_id, "task_id": task, "confidence": 1.0, "output_values": {}}
            entry = results.setdefault(task, blank)
            entry["output_values"][name] = json.loads(row.idxmax())
            entry["confidence"] = min(entry["confidence"], float(row.max()))
    return results
