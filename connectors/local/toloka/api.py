"""The ``/api/v1/...`` REST surface that toloka-kit 1.2.3 calls, over :class:`TolokaState`.

One route table maps (method, path pattern) to a handler; one generic search serves every
``GET`` listing (filters ``field``, ``field_gt/gte/lt/lte``, comma lists, ``sort``, ``limit``,
``{"items", "has_more"}``), so per-route code holds only what the service does. A few routes
live outside ``/api/v1`` as on Toloka (``/api/new/.../assignments.tsv``, ``/api/staging/analytics-2``);
what they compute is in ``reports``, messages and attachments in ``threads``, webhooks in ``webhooks``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from . import reports, threads
from .errors import ApiError, field_error, not_found, validation
from .profiles import user_metadata
from .state import TolokaState, id_key
from .times import parse_ts
from .webhooks import Webhooks

Handler = Callable[..., tuple[int, Any]]
_DATES = {
    "created",
    "submitted",
    "accepted",
    "rejected",
    "skipped",
    "expired",
    "modified",
    "finished",
    "started",
    "last_started",
}
_OPS = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
_NOT_FILTERS = {
    "sort",
    "limit",
    "operation_id",
    "async_mode",
    "allow_defaults",
    "open_pool",
    "skip_invalid_items",
    "storage_key",
    "lang",
}


@dataclass
class Raw:
    """A response that is not JSON (the results TSV, an attachment's bytes)."""

    content_type: str
    body: bytes


def _key(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field in _DATES:
        return parse_ts(value) if isinstance(value, str) else value
    if field == "id" or field.endswith("_id"):
        return id_key(str(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _matches(obj: dict[str, Any], params: dict[str, str]) -> bool:
    for name, raw in params.items():
        if name in _NOT_FILTERS:
            continue
        field, _, op = name.rpartition("_")
        if op in _OPS and field:
            have = _key(field, obj.get(field))
            if have is None or not _OPS[op](have, _key(field, raw)):
                return False
        else:
            have = obj.get(name)
            if name == "task_id" and "tasks" in obj:  # assignments and suites: does it hold this task?
                if raw not in {t.get("id") for t in obj.get("tasks", [])}:
                    return False
            elif _key(name, have) not in {_key(name, v) for v in raw.split(",")}:
                return False
    return True


def _sort_key(fields: list[str]) -> Callable[[dict[str, Any]], tuple]:
    def key(obj: dict[str, Any]) -> tuple:
        out = []
        for f in fields:
            k = _key(f, obj.get(f))
            out.append((k is None, k if k is not None else 0))
        return tuple(out)

    return key


class TolokaApi:
    """Routes requests to the state. ``handle`` is transport-free so any HTTP server can host it."""

    def __init__(
        self,
        state: TolokaState,
        profiles: dict[str, dict[str, Any]] | None = None,
        webhooks: Webhooks | None = None,
    ):
        self.state = state
        self.profiles = profiles or {}  # worker id -> Toloker profile (profiles.worker_profile)
        self.webhooks = webhooks or Webhooks(state)
        self.base_url = ""  # the server's own URL, for links in reports
        s = state
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        collections = [
            "projects",
            "pools",
            "trainings",
            "skills",
            "tasks",
            "task-suites",
            "assignments",
            "operations",
            "user-bonuses",
            "user-skills",
            "user-restrictions",
        ]
        for kind in collections:
            self._add("GET", kind, f"/{kind}", lambda p, b, k=kind: self.search(k, p))
            self._add("GET", kind, f"/{kind}/(?P<id>[^/]+)", lambda p, b, id, k=kind: (200, self.one(k, id)))
        self._add("POST", "projects", "/projects", lambda p, b: (201, s.create_project(b)))
        self._add(
            "PUT",
            "projects",
            "/projects/(?P<id>[^/]+)",
            lambda p, b, id: (200, self.replace("projects", id, b)),
        )
        self._add("POST", "projects", "/projects/(?P<id>[^/]+)/archive", self.archive_project)
        for kind in ("pools", "trainings"):
            self._add("POST", kind, f"/{kind}", lambda p, b, k=kind: (201, s.public(k, s.create_pool(b, k))))
            self._add(
                "PUT", kind, f"/{kind}/(?P<id>[^/]+)", lambda p, b, id, k=kind: (200, self.replace(k, id, b))
            )
            self._add(
                "PATCH", kind, f"/{kind}/(?P<id>[^/]+)", lambda p, b, id, k=kind: (200, self.patch(k, id, b))
            )
            self._add(
                "POST",
                kind,
                f"/{kind}/(?P<id>[^/]+)/(?P<action>open|close|close-for-update|archive)",
                lambda p, b, id, action, k=kind: self.pool_action(k, id, action),
            )
        self._add("POST", "skills", "/skills", lambda p, b: (201, s.create_skill(b)))
        self._add(
            "PUT", "skills", "/skills/(?P<id>[^/]+)", lambda p, b, id: (200, self.replace("skills", id, b))
        )
        for kind in ("tasks", "task-suites"):
            self._add("POST", kind, f"/{kind}", lambda p, b, k=kind: s.create_objects(k, b, p))
            self._add(
                "PATCH",
                kind,
                f"/{kind}/(?P<id>[^/]+)/set-overlap-or-min",
                lambda p, b, id, k=kind: self.overlap(k, id, b, p),
            )
            self._add(
                "PATCH", kind, f"/{kind}/(?P<id>[^/]+)", lambda p, b, id, k=kind: self.overlap(k, id, b, p)
            )
        self._add(
            "GET", "operations", "/operations/(?P<id>[^/]+)/log", lambda p, b, id: (200, self._op_log(id))
        )
        self._add(
            "PATCH",
            "assignments",
            "/assignments/(?P<id>[^/]+)",
            lambda p, b, id: (
                200,
                s.public("assignments", s.patch_assignment(id, b.get("status"), b.get("public_comment"))),
            ),
        )
        self._add("POST", "user-bonuses", "/user-bonuses", lambda p, b: s.create_bonuses(b, p))
        self._add("PUT", "user-skills", "/user-skills", self.put_user_skill)
        self._add(
            "DELETE",
            "user-skills",
            "/user-skills/(?P<id>[^/]+)",
            lambda p, b, id: self.delete("user-skills", id),
        )
        self._add(
            "PUT",
            "user-restrictions",
            "/user-restrictions",
            lambda p, b: (201, s.public("user-restrictions", s.set_restriction(b))),
        )
        self._add(
            "DELETE",
            "user-restrictions",
            "/user-restrictions/(?P<id>[^/]+)",
            lambda p, b, id: self.delete("user-restrictions", id),
        )
        self._add("GET", "requester", "/requester", lambda p, b: (200, s.requester()))
        self._extra_routes()

    def _extra_routes(self) -> None:
        """Reports, aggregation, cloning, Toloker data, messages, attachments, webhooks."""
        s = self.state
        self._add_raw(
            "GET",
            "assignments.tsv",
            "/api/new/requester/pools/(?P<id>[^/]+)/assignments.tsv",
            lambda p, b, id: (
                200,
                Raw("text/tab-separated-values; charset=utf-8",
                    reports.assignments_tsv(s, id, p, self.base_url).encode()),
            ),
        )
        self._add_raw(
            "POST", "analytics", "/api/staging/analytics-2",
            lambda p, b: (202, reports.analytics(s, b, self.active_workers)),
        )
        self._add(
            "POST", "aggregated-solutions", "/aggregated-solutions/aggregate-by-pool",
            lambda p, b: (202, reports.aggregate(s, b)),
        )
        self._add(
            "POST", "aggregated-solutions", "/aggregated-solutions/aggregate-by-task",
            lambda p, b: (200, reports.aggregate_task(s, b)),
        )
        self._add(
            "GET", "aggregated-solutions", "/aggregated-solutions/(?P<id>[^/]+)",
            lambda p, b, id: self.search(f"aggregated-solutions:{self._op(id)}", p, default_sort="task_id"),
        )
        for kind in ("pools", "trainings"):
            self._add(
                "POST", kind, f"/{kind}/(?P<id>[^/]+)/clone",
                lambda p, b, id, k=kind: (202, self.clone(k, id)),
            )
        self._add(
            "GET", "user-metadata", "/user-metadata/(?P<id>[^/]+)",
            lambda p, b, id: (200, self.user_metadata(id)),
        )
        self._add("POST", "message-threads", "/message-threads/compose",
                  lambda p, b: (201, threads.compose(s, b, self.select_workers)))
        self._add("GET", "message-threads", "/message-threads",
                  lambda p, b: self.search("message-threads", p, keep=lambda t: threads.thread_matches(t, p)))
        self._add("POST", "message-threads", "/message-threads/(?P<id>[^/]+)/reply",
                  lambda p, b, id: (200, threads.reply(s, id, b)))
        for action in ("add-to-folders", "remove-from-folders"):
            self._add(
                "POST", "message-threads", f"/message-threads/(?P<id>[^/]+)/{action}",
                lambda p, b, id, add=action.startswith("add"): (200, threads.refile(s, id, b, add)),
            )
        self._add("GET", "attachments", "/attachments",
                  lambda p, b: self.search("attachments", p, keep=lambda a: threads.attachment_matches(a, p)))
        self._add("GET", "attachments", "/attachments/(?P<id>[^/]+)",
                  lambda p, b, id: (200, self.one("attachments", id)))
        self._add("GET", "attachments", "/attachments/(?P<id>[^/]+)/download",
                  lambda p, b, id: (200, Raw(*threads.download(s, id))))
        w = self.webhooks
        self._add("PUT", "webhook-subscriptions", "/webhook-subscriptions", lambda p, b: (201, w.upsert(b)))
        self._add("GET", "webhook-subscriptions", "/webhook-subscriptions",
                  lambda p, b: self.search("webhook-subscriptions", p))
        self._add("GET", "webhook-subscriptions", "/webhook-subscriptions/(?P<id>[^/]+)",
                  lambda p, b, id: (200, w.public(self.state.get("webhook-subscriptions", id))))
        self._add("DELETE", "webhook-subscriptions", "/webhook-subscriptions/(?P<id>[^/]+)",
                  lambda p, b, id: (204, w.delete(id)))

    def _add(self, method: str, op: str, pattern: str, handler: Handler) -> None:
        self._add_raw(method, op, f"/api/v1{pattern}", handler)

    def _add_raw(self, method: str, op: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), f"{method} {op}", handler))

    # ------------------------------------------------------------------ dispatch
    def route(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        """(operation name, handler, path arguments) for a request, or None."""
        for m, pattern, op, handler in self.routes:
            match = pattern.match(path)
            if m == method and match:
                return op, handler, match.groupdict()
        return None

    def handle(
        self, method: str, path: str, params: dict[str, str], body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: (status, headers, body bytes)."""
        try:
            auth = headers.get("authorization") or headers.get("Authorization") or ""
            if (
                not (auth.startswith("OAuth ") or auth.startswith("ApiKey "))
                or len(auth.split(" ", 1)[1]) == 0
            ):
                raise ApiError(401, "AUTHENTICATION_ERROR", "Missing or malformed Authorization header")
            found = self.route(method, path)
            if found is None:
                raise ApiError(404, "DOES_NOT_EXIST", f"No such resource: {method} {path}")
            _, handler, args = found
            try:
                data = json.loads(body, parse_float=Decimal) if body else {}
            except ValueError:
                raise validation({"body": field_error("INVALID_JSON", "Body is not JSON")}) from None
            with self.state.lock:
                self.state.tick()
                status, result = handler(params, data, **args)
        except ApiError as exc:
            return exc.status, {"Content-Type": "application/json", **exc.headers}, dumps(exc.body())
        if result is None:
            return 204, {}, b""
        if isinstance(result, Raw):
            return status, {"Content-Type": result.content_type}, result.body
        return status, {"Content-Type": "application/json"}, dumps(result)

    # ------------------------------------------------------------------ generic handlers
    def one(self, kind: str, obj_id: str) -> dict[str, Any]:
        return self.state.public(kind, self.state.get(kind, obj_id))

    def search(
        self,
        kind: str,
        params: dict[str, str],
        *,
        default_sort: str = "id",
        keep: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """``keep`` applies filters on nested fields; the params it reads are not matched again."""
        limit = int(params.get("limit") or 50)
        if not 0 < limit <= 100_000:
            raise validation({"limit": field_error("VALUE_OUT_OF_RANGE", "1..100000")})
        sort = [f for f in (params.get("sort") or default_sort).split(",") if f]
        if keep is not None:
            nested = ("folder", "folder_ne", "user_id", "assignment_id", "pool_id", "type")
            params = {k: v for k, v in params.items() if k not in nested}
        found = [o for o in self.state.store[kind].values() if _matches(o, params) and (keep is None or keep(o))]
        for field in reversed(sort):
            found.sort(key=_sort_key([field.lstrip("-")]), reverse=field.startswith("-"))
        items = [self.state.public(kind, o) for o in found[:limit]]
        return 200, {"items": items, "has_more": len(found) > limit}

    def replace(self, kind: str, obj_id: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = self.state.get(kind, obj_id)
        fixed = ("id", "status", "created", "project_id", "last_close_reason", "last_started", "last_stopped",
                 "type", "owner")
        keep = {k: v for k, v in obj.items() if k in fixed or k.startswith("_")}
        obj.clear()
        obj.update({**body, **keep})
        return self.state.public(kind, obj)

    def patch(self, kind: str, obj_id: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = self.state.get(kind, obj_id)
        obj.update(body)
        return self.state.public(kind, obj)

    def delete(self, kind: str, obj_id: str) -> tuple[int, None]:
        self.state.get(kind, obj_id)
        del self.state.store[kind][obj_id]
        return 204, None

    def pool_action(self, kind: str, obj_id: str, action: str) -> tuple[int, Any]:
        op = self.state.set_pool_status(obj_id, action, kind)
        return (202, op) if op else (204, None)

    def archive_project(self, params: dict[str, str], body: Any, id: str) -> tuple[int, Any]:
        project = self.state.get("projects", id)
        if any(p["status"] == "OPEN" for p in self.state.store["pools"].values() if p["project_id"] == id):
            raise ApiError(409, "INAPPROPRIATE_STATUS", "Close the project's pools first")
        project["status"] = "ARCHIVED"
        return 202, self.state.operation("PROJECT.ARCHIVE", {"project_id": id})

    def overlap(
        self, kind: str, obj_id: str, body: dict[str, Any], params: dict[str, str]
    ) -> tuple[int, Any]:
        obj = self.state.set_overlap_or_min(kind, obj_id, body.get("overlap"), body.get("infinite_overlap"))
        for field in ("known_solutions", "message_on_unknown_solution", "issuing_order_override"):
            if field in body:
                obj[field] = body[field]
        pool = self.state.get("pools", obj["pool_id"])
        if params.get("open_pool") == "true" and pool["status"] == "CLOSED":
            self.state.set_pool_status(pool["id"], "open")
        return 200, self.state.public(kind, obj)

    def put_user_skill(self, params: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        missing = {
            f: field_error("VALUE_REQUIRED", "Value must be present")
            for f in ("skill_id", "user_id", "value")
            if body.get(f) is None
        }
        if missing:
            raise validation(missing)
        return 201, self.state.public(
            "user-skills",
            self.state.set_user_skill(
                str(body["user_id"]), str(body["skill_id"]), Decimal(str(body["value"]))
            ),
        )

    def _op(self, op_id: str) -> str:
        if f"aggregated-solutions:{op_id}" not in self.state.store:
            raise not_found("operation", op_id)
        return op_id

    def clone(self, kind: str, obj_id: str) -> dict[str, Any]:
        """An empty copy of a pool or training (same settings, no tasks), closed."""
        original = self.state.get(kind, obj_id)
        copy = self.state.create_pool(json.loads(dumps(self.state.public(kind, original))), kind)
        field = f"{kind[:-1]}_id"
        name = "POOL.CLONE" if kind == "pools" else "TRAINING.CLONE"
        return self.state.operation(name, {field: obj_id}, details={field: copy["id"]})

    def user_metadata(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.profiles:
            raise not_found("user", user_id)
        return user_metadata(user_id, self.profiles[user_id])

    def select_workers(self, node: dict[str, Any] | None) -> list[str]:
        return [w for w, prof in self.profiles.items() if self.state.passes_filter(w, node, prof)]

    def active_workers(self, pool: dict[str, Any]) -> int:
        """Simulated workers who may take the pool's tasks now (Toloka: active Tolokers by filter)."""
        return sum(
            self.state.eligible(pool, w, prof) if pool["status"] == "OPEN"
            else self.state.passes_filter(w, pool.get("filter"), prof)
            for w, prof in self.profiles.items()
        )

    def _op_log(self, op_id: str) -> list[dict[str, Any]]:
        if op_id not in self.state.op_logs:
            raise not_found("operation", op_id)
        return self.state.op_logs[op_id]


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # JSON has one number type; toloka-kit parses it back as Decimal
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, default=_default, ensure_ascii=False).encode()
