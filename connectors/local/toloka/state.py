"""The local Toloka's objects and their semantics, independent of HTTP.

Objects are kept as the JSON dicts Toloka returns, so the REST layer only routes and
serialises. What lives here is what the service *does*: pool and assignment state machines,
the mixer that groups loose tasks into task suites (real and golden per the pool's
``mixer_config``), overlap accounting, grading of control tasks against ``known_solutions``,
quality-control rules that set skills or restrict workers, idempotent operations, and the
balance charged on acceptance (reward + 30% fee, at least $0.001) and on bonuses.

Trainings live beside pools in one id space (a task's ``pool_id`` may name either): workers
take a training's pages first, their share of right answers becomes their training score, and
a pool's ``quality_control.training_requirement`` admits only those who scored enough. Pools
close by hand, when complete (after ``auto_close_after_complete_delay_seconds``) or at
``will_expire``, and record ``last_stopped`` / ``last_close_reason``.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .errors import ApiError, bad_status, field_error, not_found, validation
from .profiles import compare, condition_holds
from .specs import check_values, solved
from .times import iso, parse_ts
from .trainings import Trainings

FEE_RATE = Decimal("0.3")
MIN_FEE = Decimal("0.001")
TERMINAL_OPS = ("SUCCESS", "FAIL")


def fee(amount: Decimal) -> Decimal:
    """Toloka's requester fee: 30% of what the worker gets, rounded half-up to $0.001 (the billing
    precision, as in ``payouts/fee_schedules.yaml``), at least $0.001 (none on nothing)."""
    return max(MIN_FEE, (amount * FEE_RATE).quantize(MIN_FEE, ROUND_HALF_UP)) if amount > 0 else Decimal(0)


def id_key(value: str) -> tuple[int, str]:
    """Our ids are decimal strings: compare by length, then text, so "10" > "9"."""
    return (len(value), value)


@dataclass
class Answered:
    """One submitted assignment as the quality-control collectors see it."""

    golden_total: int
    golden_correct: int
    fast: bool


class TolokaState(Trainings):
    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        balance: Decimal = Decimal("1000"),
        seed: int = 0,
        fast_submit_s: float | None = None,
        id_seed: int | None = None,
    ):
        self.now = now
        self.id_seed = id_seed  # None: fresh ids every start; an int: the same ids every run
        self.balance = Decimal(balance)
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self._ids: dict[str, int] = {}
        self._salts: dict[str, str] = {}
        self.store: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # kind -> id -> object
        self.op_logs: dict[str, list[dict[str, Any]]] = {}
        # ("task-suites" | "tasks", id) -> workers who got it
        self.done_by: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.history: dict[tuple[str, str], list[Answered]] = defaultdict(list)  # (pool, user)
        self.charged: list[tuple[str, Decimal]] = []  # (what, amount) for the balance report
        self.suites_by_pool: dict[str, list[dict[str, Any]]] = defaultdict(list)  # explicit suites, in order
        self.loose_by_pool: dict[str, list[dict[str, Any]]] = defaultdict(
            list
        )  # tasks for the mixer, in order
        self.live: dict[str, dict[str, Any]] = {}  # ACTIVE or SUBMITTED assignments (time acts on these)
        self.version = 0  # bumped whenever work may have appeared (the crowd looks again)
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None  # webhook delivery
        # (training id, user) -> percent correct once the worker finished the training
        self.training_scores: dict[tuple[str, str], Decimal] = {}
        self.training_since: dict[tuple[str, str], datetime] = {}

    # ------------------------------------------------------------------ basics
    def new_id(self, kind: str) -> str:
        """Ids unique to this server start (or repeatable for an explicit ``id_seed``) that still
        increase in creation order, as Toloka's do, so paging by ``id_gt`` and toloka-kit's string
        min/max work. Projects, pools and skills get numbers from a random base; trainings share
        the pools' counter (one id space, as on Toloka); bulk objects Toloka's
        ``<counter>--<24 hex>`` form. Nothing else may depend on the values: order comes from
        creation order."""
        space = "pools" if kind == "trainings" else kind
        if space not in self._ids:
            rng = random.Random(f"ids:{self.id_seed}:{space}") if self.id_seed is not None else random.SystemRandom()
            self._ids[space] = rng.randrange(10**7, 9 * 10**7)
            self._salts[space] = f"{rng.getrandbits(96):024x}"
        self._ids[space] += 1
        n = self._ids[space]
        return str(n) if space in ("projects", "pools", "skills") else f"{n:010x}--{self._salts[space]}"

    def get(self, kind: str, obj_id: str) -> dict[str, Any]:
        obj = self.store[kind].get(obj_id)
        if obj is None:
            raise not_found(kind, obj_id)
        return obj

    def pool(self, pool_id: str) -> dict[str, Any] | None:
        """A pool or a training: they share one id space, and tasks name either as ``pool_id``."""
        return self.store["pools"].get(pool_id) or self.store["trainings"].get(pool_id)

    def charge(self, what: str, amount: Decimal) -> None:
        self.balance -= amount
        self.charged.append((what, amount))

    def operation(
        self,
        op_type: str,
        parameters: dict[str, Any],
        *,
        op_id: str | None = None,
        log: list[dict[str, Any]] | None = None,
        details: dict[str, Any] | None = None,
        failed: bool = False,
    ) -> dict[str, Any]:
        """A finished async operation. Work is done at once, so toloka-kit's ``wait_operation``
        sees it complete on the first look and never sleeps."""
        op_id = op_id or str(uuid.uuid4())
        now = iso(self.now())
        op = {
            "id": op_id,
            "type": op_type,
            "status": "FAIL" if failed else "SUCCESS",
            "submitted": now,
            "started": now,
            "finished": now,
            "progress": 100,
            "parameters": parameters,
            "details": details or {},
        }
        self.store["operations"][op_id] = op
        self.op_logs[op_id] = log or []
        return op

    def claim_operation_id(self, op_id: str | None) -> None:
        if op_id and op_id in self.store["operations"]:
            raise ApiError(409, "OPERATION_ALREADY_EXISTS", f"Operation {op_id} already exists")

    # ------------------------------------------------------------------ projects, pools, skills
    def create_project(self, body: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, dict[str, str]] = {}
        if not body.get("public_name"):
            errors["public_name"] = field_error("VALUE_REQUIRED", "Value must be present")
        spec = body.get("task_spec") or {}
        for part in ("input_spec", "output_spec", "view_spec"):
            if not isinstance(spec.get(part), dict):
                errors[f"task_spec.{part}"] = field_error("VALUE_REQUIRED", "Value must be present")
        if errors:
            raise validation(errors)
        project = {**body, "id": self.new_id("projects"), "status": "ACTIVE", "created": iso(self.now())}
        self.store["projects"][project["id"]] = project
        return project

    def create_pool(self, body: dict[str, Any], kind: str = "pools") -> dict[str, Any]:
        required = [
            "project_id",
            "private_name",
            "may_contain_adult_content",
            "assignment_max_duration_seconds",
        ]
        if kind == "pools":
            required += ["reward_per_assignment", "will_expire"]
        errors = {
            f: field_error("VALUE_REQUIRED", "Value must be present") for f in required if body.get(f) is None
        }
        if (
            kind == "pools"
            and (body.get("defaults") or {}).get("default_overlap_for_new_task_suites") is None
        ):
            errors["defaults.default_overlap_for_new_task_suites"] = field_error("VALUE_REQUIRED", "Required")
        if body.get("project_id") is not None and str(body["project_id"]) not in self.store["projects"]:
            errors["project_id"] = field_error("DOES_NOT_EXIST", "Project does not exist")
        if body.get("reward_per_assignment") is not None and Decimal(str(body["reward_per_assignment"])) < 0:
            errors["reward_per_assignment"] = field_error("VALUE_TOO_SMALL", "Must be >= 0")
        if errors:
            raise validation(errors)
        readonly = ("id", "status", "created", "last_started", "last_stopped", "last_close_reason", "type", "owner")
        pool = {
            **{k: v for k, v in body.items() if k not in readonly},
            "id": self.new_id(kind),
            "project_id": str(body["project_id"]),
            "status": "CLOSED",
            "created": iso(self.now()),
            "owner": self.owner(),
            "_kind": kind,
            "_seq": len(self.store["pools"]) + len(self.store["trainings"]),
        }
        if kind == "pools":
            pool["type"] = "REGULAR"
        self.store[kind][pool["id"]] = pool
        return pool

    def owner(self) -> dict[str, Any]:
        return {"id": "requester-1", "myself": True, "company_id": "local"}

    def set_pool_status(self, pool_id: str, action: str, kind: str = "pools") -> dict[str, Any] | None:
        """open / close / archive. ``None`` when the pool is already there (HTTP 204)."""
        pool = self.get(kind, pool_id)
        target = {"open": "OPEN", "close": "CLOSED", "close-for-update": "CLOSED", "archive": "ARCHIVED"}[
            action
        ]
        if pool["status"] == target:
            return None
        if pool["status"] == "ARCHIVED" or (action == "archive" and pool["status"] == "OPEN"):
            raise bad_status(f"Pool {pool_id} is {pool['status']}; cannot {action} it")
        if target == "CLOSED" and pool["status"] == "OPEN":
            self.close_pool(pool, "FOR_UPDATE" if action == "close-for-update" else "MANUAL")
        pool["status"] = target
        if target == "OPEN":
            pool["last_started"] = iso(self.now())
        op_name = {"pools": "POOL", "trainings": "TRAINING"}[kind] + "." + action.split("-")[0].upper()
        return self.operation(op_name, {f"{kind[:-1]}_id": pool_id})

    def close_pool(self, pool: dict[str, Any], reason: str) -> None:
        """Every way a pool closes (by hand, completed, expired) records when and why, and tells
        webhook subscribers."""
        pool.update(status="CLOSED", last_close_reason=reason, last_stopped=iso(self.now()))
        pool.pop("_completed_at", None)
        if self.on_event:
            self.on_event("POOL_CLOSED", {"pool_id": pool["id"]})

    def create_skill(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("name"):
            raise validation({"name": field_error("VALUE_REQUIRED", "Value must be present")})
        skill = {**body, "id": self.new_id("skills"), "created": iso(self.now())}
        self.store["skills"][skill["id"]] = skill
        return skill

    def set_user_skill(self, user_id: str, skill_id: str, value: Decimal) -> dict[str, Any]:
        self.get("skills", skill_id)
        key = f"{skill_id}:{user_id}"
        now = iso(self.now())
        existing = next((s for s in self.store["user-skills"].values() if s["_key"] == key), None)
        if existing is None:
            existing = {
                "id": self.new_id("user-skills"),
                "_key": key,
                "skill_id": skill_id,
                "user_id": user_id,
                "created": now,
            }
            self.store["user-skills"][existing["id"]] = existing
        existing.update(value=int(round(value)), exact_value=value, modified=now)
        return existing

    def skill_value(self, user_id: str, skill_id: str) -> Decimal | None:
        for s in self.store["user-skills"].values():
            if s["_key"] == f"{skill_id}:{user_id}":
                return Decimal(str(s["exact_value"]))
        return None

    # ------------------------------------------------------------------ tasks and task suites
    def _project_of(self, pool_id: str) -> dict[str, Any]:
        pool = self.pool(pool_id)
        if pool is None:
            raise not_found("pools", pool_id)
        return self.get("projects", pool["project_id"])

    def _check_task(self, task: dict[str, Any], pool_id: str) -> dict[str, dict[str, str]]:
        spec = self._project_of(pool_id)["task_spec"]
        errors = check_values(task.get("input_values"), spec["input_spec"], "input_values")
        for i, known in enumerate(task.get("known_solutions") or []):
            errors.update(
                check_values(
                    known.get("output_values"),
                    spec["output_spec"],
                    f"known_solutions.{i}.output_values",
                    require=False,
                )
            )
        return errors

    def _check_pool_ref(self, obj: dict[str, Any]) -> tuple[str | None, dict[str, dict[str, str]]]:
        pool_id = obj.get("pool_id")
        if pool_id is None:
            return None, {"pool_id": field_error("VALUE_REQUIRED", "Value must be present")}
        pool_id = str(pool_id)
        if self.pool(pool_id) is None:
            return None, {"pool_id": field_error("DOES_NOT_EXIST", f"Pool {pool_id} does not exist")}
        if self.pool(pool_id)["status"] == "ARCHIVED":
            return None, {"pool_id": field_error("INAPPROPRIATE_STATUS", "Pool is archived")}
        return pool_id, {}

    def _overlap(
        self, obj: dict[str, Any], pool: dict[str, Any], field: str, allow_defaults: bool, golden: bool
    ) -> tuple[int, bool]:
        if obj.get("infinite_overlap") or (golden and obj.get("overlap") is None):
            return 0, True
        if obj.get("overlap") is not None and not allow_defaults:
            return int(obj["overlap"]), False
        if obj.get("overlap") is not None:
            return int(obj["overlap"]), False
        return int((pool.get("defaults") or {}).get(field) or 1), False

    def _store_task(
        self, raw: dict[str, Any], pool_id: str, allow_defaults: bool, loose: bool
    ) -> dict[str, Any]:
        pool = self.pool(pool_id)
        golden = bool(raw.get("known_solutions"))
        overlap, infinite = self._overlap(raw, pool, "default_overlap_for_new_tasks", allow_defaults, golden)
        task = {k: v for k, v in raw.items() if not k.startswith("__")}
        task.update(
            id=self.new_id("tasks"),
            pool_id=pool_id,
            created=iso(self.now()),
            overlap=overlap,
            infinite_overlap=infinite,
            remaining_overlap=overlap,
            _loose=loose,
        )
        task["input_values"] = {
            k: v for k, v in (raw.get("input_values") or {}).items() if not k.startswith("__")
        }
        self.store["tasks"][task["id"]] = task
        if loose:
            self.loose_by_pool[pool_id].append(task)
        return task

    def create_objects(self, kind: str, body: Any, params: dict[str, str]) -> tuple[int, Any]:
        """POST /tasks and /task-suites, single or list, sync or async (with ``operation_id``)."""
        is_list = isinstance(body, list)
        objects = body if is_list else [body]
        async_mode = params.get("async_mode", "true") == "true"
        allow_defaults = params.get("allow_defaults", "false") == "true"
        skip_invalid = params.get("skip_invalid_items", "false") == "true"
        op_id = params.get("operation_id")
        if async_mode:
            self.claim_operation_id(op_id)
        errors: dict[str, dict[str, dict[str, str]]] = {}
        for i, obj in enumerate(objects):
            pool_id, errs = self._check_pool_ref(obj)
            if pool_id is not None:
                if kind == "tasks":
                    errs = self._check_task(obj, pool_id)
                    pool = self.pool(pool_id)
                    if pool["_kind"] == "pools" and not pool.get("mixer_config"):
                        errs["pool_id"] = field_error("MIXER_CONFIG_REQUIRED", "Pool has no mixer_config")
                else:
                    for j, task in enumerate(obj.get("tasks") or []):
                        errs.update({f"tasks.{j}.{k}": v for k, v in self._check_task(task, pool_id).items()})
                    if not obj.get("tasks"):
                        errs["tasks"] = field_error("VALUE_REQUIRED", "A task suite needs tasks")
            if errs:
                errors[str(i)] = errs
        if errors and not async_mode and not is_list:
            raise validation(errors["0"])
        if errors and not skip_invalid and not async_mode:
            raise validation(errors)
        create_all = not errors or skip_invalid
        created: dict[str, dict[str, Any]] = {}
        log: list[dict[str, Any]] = []
        log_type, out_field = (
            ("TASK_CREATE", "task_id") if kind == "tasks" else ("TASK_SUITE_CREATE", "task_suite_id")
        )
        for i, obj in enumerate(objects):
            if str(i) in errors:
                log.append({"type": log_type, "success": False, "input": obj, "output": errors[str(i)]})
                continue
            if not create_all:
                continue
            new = (
                self._store_task(obj, str(obj["pool_id"]), allow_defaults, True)
                if kind == "tasks"
                else self._store_suite(obj, allow_defaults)
            )
            created[str(i)] = new
            log.append({"type": log_type, "success": True, "input": obj, "output": {out_field: new["id"]}})
        pools = {str(o["pool_id"]) for o in created.values()}
        if params.get("open_pool") == "true":
            for pool_id in pools:
                if self.pool(pool_id)["status"] == "CLOSED":
                    self.set_pool_status(pool_id, "open", self.pool(pool_id)["_kind"])
        if async_mode:
            op_type = "TASK.BATCH_CREATE" if kind == "tasks" else "TASK_SUITE.BATCH_CREATE"
            details = {
                "success_count": len(created),
                "failed_count": len(errors),
                "total_count": len(objects),
                "pool_ids": sorted(pools, key=id_key),
            }
            op = self.operation(
                op_type,
                {k: params.get(k, "false") == "true" for k in ("skip_invalid_items", "allow_defaults", "open_pool")},
                op_id=op_id,
                log=log,
                details=details,
                failed=bool(errors) and not created,
            )
            return 202, op
        if not is_list:
            return 201, self.public(kind, created["0"])
        return 201, {
            "items": {i: self.public(kind, o) for i, o in created.items()},
            "validation_errors": errors,
        }

    def _store_suite(self, raw: dict[str, Any], allow_defaults: bool) -> dict[str, Any]:
        pool_id = str(raw["pool_id"])
        pool = self.pool(pool_id)
        tasks = [
            self._store_task({**t, "infinite_overlap": True}, pool_id, False, False) for t in raw["tasks"]
        ]
        overlap, infinite = self._overlap(
            raw, pool, "default_overlap_for_new_task_suites", allow_defaults, False
        )
        suite = {k: v for k, v in raw.items() if not k.startswith("__") and k != "tasks"}
        suite.update(
            id=self.new_id("task-suites"),
            pool_id=pool_id,
            created=iso(self.now()),
            overlap=overlap,
            infinite_overlap=infinite,
            remaining_overlap=overlap,
            mixed=False,
            automerged=False,
            tasks=[self._suite_task(t) for t in tasks],
        )
        self.store["task-suites"][suite["id"]] = suite
        self.suites_by_pool[pool_id].append(suite)
        return suite

    @staticmethod
    def _suite_task(task: dict[str, Any]) -> dict[str, Any]:
        out = {"id": task["id"], "input_values": task["input_values"]}
        if task.get("known_solutions"):
            out["known_solutions"] = task["known_solutions"]
        return out

    def set_overlap_or_min(self, kind: str, obj_id: str, overlap: int | None, infinite: bool | None) -> dict:
        """Set the overlap, but never below what is already issued ("or min")."""
        obj = self.get(kind, obj_id)
        used = (
            obj["overlap"] - obj["remaining_overlap"]
            if not obj.get("infinite_overlap")
            else len(self.done_by[(kind, obj_id)])
        )
        if infinite:
            obj.update(infinite_overlap=True, overlap=0, remaining_overlap=0)
        elif overlap is not None:
            obj.update(infinite_overlap=False, overlap=max(int(overlap), used))
            obj["remaining_overlap"] = obj["overlap"] - used
        return obj

    # ------------------------------------------------------------------ assignments, review, billing
    def patch_assignment(self, assignment_id: str, status: str, comment: str | None) -> dict[str, Any]:
        a = self.get("assignments", assignment_id)
        if status not in ("ACCEPTED", "REJECTED"):
            raise validation({"status": field_error("VALUE_NOT_ALLOWED", "ACCEPTED or REJECTED")})
        allowed = {"ACCEPTED": ("SUBMITTED", "REJECTED"), "REJECTED": ("SUBMITTED",)}[status]
        if a["status"] not in allowed:
            raise bad_status(f"Assignment {assignment_id} is {a['status']}; cannot set {status}")
        if status == "REJECTED" and not comment:
            raise validation({"public_comment": field_error("VALUE_REQUIRED", "A rejection needs a comment")})
        if status == "ACCEPTED":
            self._accept(a)
        else:
            a.update(status="REJECTED", rejected=iso(self.now()))
            self._release(a)
            self._event("ASSIGNMENT_REJECTED", a)
        if comment is not None:
            a["public_comment"] = comment
        return a

    def _accept(self, a: dict[str, Any]) -> None:
        reward = Decimal(str(a["reward"]))
        if reward:
            self.charge(f"assignment {a['id']}", reward + fee(reward))
        a.update(status="ACCEPTED", accepted=iso(self.now()))
        self._event("ASSIGNMENT_APPROVED", a)

    def _release(self, a: dict[str, Any]) -> None:
        """Give the work back to the pool (rejected, expired or skipped assignments)."""
        self.version += 1
        suite = self.store["task-suites"].get(a["task_suite_id"])
        kind = "task-suites" if suite and not suite.get("mixed") else "tasks"
        targets = [suite] if kind == "task-suites" else [self.store["tasks"][t["id"]] for t in a["tasks"]]
        for obj in targets:
            if not obj.get("infinite_overlap"):
                obj["remaining_overlap"] += 1
        if a["status"] != "REJECTED":  # a rejected worker keeps having done it
            for obj in targets:
                self.done_by[(kind, obj["id"])].discard(a["user_id"])

    def create_bonus(self, body: dict[str, Any]) -> dict[str, Any]:
        errors = {
            f: field_error("VALUE_REQUIRED", "Value must be present")
            for f in ("user_id", "amount")
            if body.get(f) is None
        }
        if errors:
            raise validation(errors)
        amount = Decimal(str(body["amount"]))
        if amount <= 0 or amount > 100:
            raise validation({"amount": field_error("VALUE_OUT_OF_RANGE", "0 < amount <= 100")})
        if self.balance < amount + fee(amount):
            raise ApiError(409, "NOT_ENOUGH_BALANCE", "Not enough money on the balance")
        bonus = {k: v for k, v in body.items() if not k.startswith("__")}
        bonus.update(id=self.new_id("user-bonuses"), created=iso(self.now()), amount=amount)
        self.store["user-bonuses"][bonus["id"]] = bonus
        self.charge(f"bonus {bonus['id']}", amount + fee(amount))
        if body.get("assignment_id") in self.store["assignments"]:
            self.store["assignments"][body["assignment_id"]].setdefault("bonus_ids", []).append(bonus["id"])
        return bonus

    def create_bonuses(self, body: Any, params: dict[str, str]) -> tuple[int, Any]:
        is_list = isinstance(body, list)
        async_mode = params.get("async_mode", "true") == "true"
        op_id = params.get("operation_id")
        if async_mode:
            self.claim_operation_id(op_id)
        log, created, errors = [], {}, {}
        for i, raw in enumerate(body if is_list else [body]):
            try:
                bonus = self.create_bonus(raw)
            except ApiError as exc:
                if not async_mode and not is_list:
                    raise
                errors[str(i)] = (
                    exc.payload
                    if isinstance(exc.payload, dict)
                    else {"amount": field_error(exc.code, exc.message)}
                )
                log.append(
                    {"type": "USER_BONUS_CREATE", "success": False, "input": raw, "output": errors[str(i)]}
                )
                continue
            created[str(i)] = bonus
            log.append(
                {
                    "type": "USER_BONUS_CREATE",
                    "success": True,
                    "input": raw,
                    "output": {"user_bonus_id": bonus["id"]},
                }
            )
        if async_mode:
            return 202, self.operation(
                "USER_BONUS.BATCH_CREATE",
                {"skip_invalid_items": params.get("skip_invalid_items", "false") == "true"},
                op_id=op_id,
                log=log,
                details={
                    "total_count": len(created) + len(errors),
                    "valid_count": len(created),
                    "not_valid_count": len(errors),
                    "success_count": len(created),
                    "failed_count": len(errors),
                },
                failed=bool(errors) and not created,
            )
        if not is_list:
            return 201, self.public("user-bonuses", created["0"])
        return 201, {
            "items": {i: self.public("user-bonuses", b) for i, b in created.items()},
            "validation_errors": errors,
        }

    def set_restriction(self, body: dict[str, Any]) -> dict[str, Any]:
        scope = body.get("scope")
        errors: dict[str, dict[str, str]] = {}
        if not body.get("user_id"):
            errors["user_id"] = field_error("VALUE_REQUIRED", "Value must be present")
        if scope not in ("ALL_PROJECTS", "PROJECT", "POOL", "SYSTEM"):
            errors["scope"] = field_error("VALUE_NOT_ALLOWED", "ALL_PROJECTS, PROJECT, POOL or SYSTEM")
        if errors:
            raise validation(errors)
        r = {**body, "id": self.new_id("user-restrictions"), "created": iso(self.now())}
        self.store["user-restrictions"][r["id"]] = r
        return r

    # ------------------------------------------------------------------ who may work where
    def restricted(self, user_id: str, pool: dict[str, Any]) -> bool:
        now = self.now()
        for r in self.store["user-restrictions"].values():
            if r["user_id"] != user_id or (r.get("will_expire") and parse_ts(r["will_expire"]) <= now):
                continue
            scope = r["scope"]
            if (
                scope in ("ALL_PROJECTS", "SYSTEM")
                or (scope == "PROJECT" and str(r.get("project_id")) == pool["project_id"])
                or (scope == "POOL" and str(r.get("pool_id")) == pool["id"])
            ):
                return True
        return False

    def passes_filter(self, user_id: str, node: dict[str, Any] | None, profile: dict[str, Any]) -> bool:
        if not node:
            return True
        if "and" in node:
            return all(self.passes_filter(user_id, n, profile) for n in node["and"])
        if "or" in node:
            return any(self.passes_filter(user_id, n, profile) for n in node["or"])
        skill = None
        if node.get("category") == "skill":
            key = str(node["key"])
            skill = self.skill_value(user_id, key)
            if skill is None:
                skill = (profile.get("_skills") or {}).get(key)
        return condition_holds(node, profile, skill)

    # ------------------------------------------------------------------ the crowd's side
    def eligible(self, pool: dict[str, Any], user_id: str, profile: dict[str, Any]) -> bool:
        if pool["status"] != "OPEN" or self.restricted(user_id, pool):
            return False
        if pool["_kind"] == "trainings":
            return self._may_train(pool, user_id, profile)
        required = (pool.get("quality_control") or {}).get("training_requirement") or {}
        if required.get("training_pool_id") is not None:
            score = self.training_scores.get((str(required["training_pool_id"]), user_id))
            if score is None or score < Decimal(str(required.get("training_passing_skill_value") or 0)):
                return False
        return self.passes_filter(user_id, pool.get("filter"), profile)

    def open_pools(self) -> list[dict[str, Any]]:
        """Open pools and trainings in creation order (never by id value)."""
        found = [p for kind in ("pools", "trainings") for p in self.store[kind].values() if p["status"] == "OPEN"]
        return sorted(found, key=lambda p: p["_seq"])

    def has_work(self, pool: dict[str, Any], user_id: str) -> bool:
        return self._next_suite(pool, user_id, dry=True) is not None

    def take(
        self, user_id: str, pool_id: str, profile: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Issue the next task suite of this pool to the worker as an ACTIVE assignment, or None."""
        pool = self.pool(pool_id)
        if pool is None or not self.eligible(pool, user_id, profile or {}):
            return None
        suite = self._next_suite(pool, user_id)
        if suite is None:
            return None
        now = self.now()
        a = {
            "id": self.new_id("assignments"),
            "task_suite_id": suite["id"],
            "pool_id": pool["id"],
            "user_id": user_id,
            "status": "ACTIVE",
            "reward": Decimal(str(pool.get("reward_per_assignment") or 0)),
            "tasks": [{**t, "pool_id": pool["id"]} for t in suite["tasks"]],
            "automerged": False,
            "created": iso(now),
            "mixed": suite.get("mixed", False),
            "owner": self.owner(),
            "_deadline": now + timedelta(seconds=int(pool["assignment_max_duration_seconds"])),
        }
        self.store["assignments"][a["id"]] = a
        self.live[a["id"]] = a
        self._event("ASSIGNMENT_CREATED", a)
        return a

    def _event(self, kind: str, a: dict[str, Any]) -> None:
        if self.on_event:
            self.on_event(kind, {"pool_id": a["pool_id"], "assignment_id": a["id"], "new_status": a["status"]})

    def _next_suite(self, pool: dict[str, Any], user_id: str, dry: bool = False) -> Any:
        if pool["_kind"] == "trainings":
            return self._training_suite(pool, user_id, dry)
        for suite in self.suites_by_pool[pool["id"]]:
            if user_id in self.done_by[("task-suites", suite["id"])]:
                continue
            if suite.get("infinite_overlap") or suite["remaining_overlap"] > 0:
                if dry:
                    return suite
                self.done_by[("task-suites", suite["id"])].add(user_id)
                if not suite.get("infinite_overlap"):
                    suite["remaining_overlap"] -= 1
                return suite
        return self._mix(pool, user_id, dry)

    def _new_suite(self, pool: dict[str, Any], chosen: list[dict[str, Any]]) -> dict[str, Any]:
        suite = {
            "id": self.new_id("task-suites"),
            "pool_id": pool["id"],
            "mixed": True,
            "automerged": False,
            "overlap": 1,
            "remaining_overlap": 0,
            "infinite_overlap": False,
            "created": iso(self.now()),
            "tasks": [self._suite_task(t) for t in chosen],
        }
        self.store["task-suites"][suite["id"]] = suite
        return suite

    def _mix(self, pool: dict[str, Any], user_id: str, dry: bool = False) -> Any:
        """Group loose tasks into a suite for this worker per the pool's mixer config."""
        mixer = pool.get("mixer_config") or {}
        loose = [t for t in self.loose_by_pool[pool["id"]] if user_id not in self.done_by[("tasks", t["id"])]]
        real = [t for t in loose if not t.get("known_solutions") and t["remaining_overlap"] > 0]
        golden = [t for t in loose if t.get("known_solutions")]
        real = real[: int(mixer.get("real_tasks_count") or 0)]
        if not real and (mixer.get("real_tasks_count") or not golden):
            return None
        if dry:
            return True
        golden = self.rng.sample(golden, min(len(golden), int(mixer.get("golden_tasks_count") or 0)))
        chosen = real + golden
        self.rng.shuffle(chosen)
        for t in chosen:
            self.done_by[("tasks", t["id"])].add(user_id)
            if not t.get("infinite_overlap"):
                t["remaining_overlap"] -= 1
        return self._new_suite(pool, chosen)

    def submit(
        self, assignment_id: str, outputs: list[dict[str, Any]], *, duration_s: float | None = None
    ) -> dict:
        """A worker submits one output dict per task of the suite, in order."""
        a = self.get("assignments", assignment_id)
        if a["status"] != "ACTIVE":
            raise bad_status(f"Assignment {assignment_id} is {a['status']}")
        pool = self.pool(a["pool_id"])
        if len(outputs) != len(a["tasks"]):
            raise validation({"solutions": field_error("INVALID_LENGTH", "One solution per task")})
        now = self.now()
        a.update(status="SUBMITTED", submitted=iso(now), solutions=[{"output_values": o} for o in outputs])
        took = duration_s if duration_s is not None else (now - parse_ts(a["created"])).total_seconds()
        graded = [
            solved(o, self.store["tasks"][t["id"]]["known_solutions"])
            for t, o in zip(a["tasks"], outputs, strict=True)
            if self.store["tasks"][t["id"]].get("known_solutions")
        ]
        self.history[(pool["id"], a["user_id"])].append(
            Answered(len(graded), sum(graded), took < float(_fast_threshold(pool)))
        )
        self._event("ASSIGNMENT_SUBMITTED", a)
        if pool["_kind"] == "trainings":  # training pages are free and accepted at once
            self._accept(a)
            self._finish_training(pool, a["user_id"])
            return a
        self._quality_control(pool, a["user_id"])
        if pool.get("auto_accept_solutions"):
            self._accept(a)
        self._maybe_complete(pool)
        return a

    def skip(self, assignment_id: str) -> dict[str, Any]:
        a = self.get("assignments", assignment_id)
        if a["status"] != "ACTIVE":
            raise bad_status(f"Assignment {assignment_id} is {a['status']}")
        a.update(status="SKIPPED", skipped=iso(self.now()))
        self._release(a)
        self._event("ASSIGNMENT_SKIPPED", a)
        return a

    def tick(self) -> None:
        """Let time act: close pools whose ``will_expire`` has come, expire overdue assignments,
        auto-accept after the pool's review period."""
        now = self.now()
        for pool in self.store["pools"].values():
            if pool["status"] != "OPEN":
                continue
            if pool.get("will_expire") and parse_ts(str(pool["will_expire"])) <= now:
                self.close_pool(pool, "EXPIRED")
            elif "_completed_at" in pool:
                delay = timedelta(seconds=int(pool.get("auto_close_after_complete_delay_seconds") or 0))
                if not self._is_complete(pool):
                    del pool["_completed_at"]
                elif pool["_completed_at"] + delay <= now:
                    del pool["_completed_at"]
                    self.close_pool(pool, "COMPLETED")
        for a in list(self.live.values()):
            if a["status"] not in ("ACTIVE", "SUBMITTED"):
                del self.live[a["id"]]
            elif a["status"] == "ACTIVE" and a["_deadline"] <= now:
                a.update(status="EXPIRED", expired=iso(now))
                self._release(a)
                self._event("ASSIGNMENT_EXPIRED", a)
            elif a["status"] == "SUBMITTED":
                days = self.pool(a["pool_id"]).get("auto_accept_period_day")
                if days and parse_ts(a["submitted"]) + timedelta(days=int(days)) <= now:
                    self._accept(a)

    def _is_complete(self, pool: dict[str, Any]) -> bool:
        pid = pool["id"]
        suites = self.suites_by_pool[pid]
        loose = [t for t in self.loose_by_pool[pid] if not t.get("known_solutions")]
        return (
            bool(suites or loose)
            and all(not s.get("infinite_overlap") and s["remaining_overlap"] == 0 for s in suites)
            and all(t["remaining_overlap"] == 0 for t in loose)
            and not any(a["status"] == "ACTIVE" and a["pool_id"] == pid for a in self.live.values())
        )

    def _maybe_complete(self, pool: dict[str, Any]) -> None:
        """Toloka closes a pool by itself once every task is done, after the pool's
        ``auto_close_after_complete_delay_seconds`` (in which new tasks keep it open)."""
        if not self._is_complete(pool):
            return
        if int(pool.get("auto_close_after_complete_delay_seconds") or 0):
            pool.setdefault("_completed_at", self.now())
        else:
            self.close_pool(pool, "COMPLETED")

    def _quality_control(self, pool: dict[str, Any], user_id: str) -> None:
        for config in (pool.get("quality_control") or {}).get("configs", []):
            collector = config.get("collector_config", {})
            size = (collector.get("parameters") or {}).get("history_size")
            answered = self.history[(pool["id"], user_id)]
            if collector.get("type") == "GOLDEN_SET":
                golden = [
                    g
                    for a in answered
                    for g in [1] * a.golden_correct + [0] * (a.golden_total - a.golden_correct)
                ]
                golden = golden[-size:] if size else golden
                total = len(golden)
                rate = Decimal(100 * sum(golden)) / total if total else None
                facts = {
                    "golden_set_answers_count": total,
                    "golden_set_correct_answers_rate": rate,
                    "golden_set_incorrect_answers_rate": None if rate is None else 100 - rate,
                    "total_answers_count": len(answered),
                }
                outputs = {
                    "correct_answers_rate": rate,
                    "incorrect_answers_rate": facts["golden_set_incorrect_answers_rate"],
                }
            elif collector.get("type") == "ASSIGNMENT_SUBMIT_TIME":
                recent = answered[-size:] if size else answered
                facts = {
                    "fast_submitted_count": sum(a.fast for a in recent),
                    "total_submitted_count": len(recent),
                }
                outputs = {}
            else:
                continue
            for rule in config.get("rules", []):
                if all(
                    compare(facts.get(c["key"]), c["operator"], c["value"])
                    for c in rule.get("conditions", [])
                ):
                    self._act(rule["action"], pool, user_id, outputs)

    def _act(
        self, action: dict[str, Any], pool: dict[str, Any], user_id: str, outputs: dict[str, Any]
    ) -> None:
        p = action.get("parameters") or {}
        kind = action.get("type")
        if kind == "SET_SKILL_FROM_OUTPUT_FIELD" and outputs.get(p.get("from_field")) is not None:
            self.set_user_skill(user_id, str(p["skill_id"]), outputs[p["from_field"]])
        elif kind == "SET_SKILL":
            self.set_user_skill(user_id, str(p["skill_id"]), Decimal(str(p["skill_value"])))
        elif kind in ("RESTRICTION", "RESTRICTION_V2"):
            unit = {"MINUTES": 60, "HOURS": 3600, "DAYS": 86400}.get(p.get("duration_unit", "DAYS"))
            expire = (
                None
                if unit is None or p.get("duration") is None
                else iso(self.now() + timedelta(seconds=unit * int(p["duration"])))
            )
            scope = p.get("scope", "PROJECT")
            self.set_restriction(
                {
                    "user_id": user_id,
                    "scope": scope,
                    "private_comment": p.get("private_comment"),
                    "will_expire": expire,
                    "project_id": pool["project_id"] if scope == "PROJECT" else None,
                    "pool_id": pool["id"] if scope == "POOL" else None,
                }
            )

    # ------------------------------------------------------------------ output
    def public(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in obj.items() if not k.startswith("_")}
        if out.get("infinite_overlap"):  # Toloka shows no overlap numbers for these
            out.pop("overlap", None)
            out.pop("remaining_overlap", None)
        return out

    def requester(self) -> dict[str, Any]:
        return {
            "id": "requester-1",
            "balance": self.balance,
            "public_name": {"EN": "Local requester"},
            "company": {"id": "local", "superintendent_id": "requester-1"},
        }


def _fast_threshold(pool: dict[str, Any]) -> float:
    for config in (pool.get("quality_control") or {}).get("configs", []):
        c = config.get("collector_config", {})
        if c.get("type") == "ASSIGNMENT_SUBMIT_TIME":
            return float((c.get("parameters") or {}).get("fast_submit_threshold_seconds") or 0)
    return 0.0
