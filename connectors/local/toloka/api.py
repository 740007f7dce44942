"""The ``/api/v1/...`` REST surface that toloka-kit 1.2.3 calls, over :class:`TolokaState`.

One route table maps (method, path pattern) to a handler; one generic search serves every
``GET`` listing (filters ``field``, ``field_gt/gte/lt/lte``, comma lists, ``sort``, ``limit``,
``{"items", "has_more"}``), so per-route code holds only what the service does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from .errors import ApiError, field_error, not_found, validation
from .state import TolokaState, id_key, parse_ts

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
            if name == "task_id":  # assignments and suites: does it hold this task?
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

    def __init__(self, state: TolokaState):
        self.state = state
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
            self._add("POST", kind, f"/{kind}", lambda p, b, k=kind: (201, s.create_pool(b, k)))
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

    def _add(self, method: str, op: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(f"^/api/v1{pattern}$"), f"{method} {op}", handler))

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
        return status, {"Content-Type": "application/json"}, dumps(result)

    # ------------------------------------------------------------------ generic handlers
    def one(self, kind: str, obj_id: str) -> dict[str, Any]:
        return self.state.public(kind, self.state.get(kind, obj_id))

    def search(self, kind: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        limit = int(params.get("limit") or 50)
        if not 0 < limit <= 100_000:
            raise validation({"limit": field_error("VALUE_OUT_OF_RANGE", "1..100000")})
        sort = [f for f in (params.get("sort") or "id").split(",") if f]
        found = [o for o in self.state.store[kind].values() if _matches(o, params)]
        for field in reversed(sort):
            found.sort(key=_sort_key([field.lstrip("-")]), reverse=field.startswith("-"))
        items = [self.state.public(kind, o) for o in found[:limit]]
        return 200, {"items": items, "has_more": len(found) > limit}

    def replace(self, kind: str, obj_id: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = self.state.get(kind, obj_id)
        keep = {k: obj[k] for k in ("id", "status", "created", "project_id", "last_close_reason") if k in obj}
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
