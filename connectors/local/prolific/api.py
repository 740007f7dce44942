"""The ``/api/v1/...`` routes of the local Prolific server that crowdbridge (and a plain ``httpx`` or
``requests`` script written from Prolific's docs) calls, over :class:`ProlificState`.

One route table maps (method, path pattern) to a handler returning (status, JSON). Requests and
answers are checked against Prolific's OpenAPI document where it is present (``openapi``): a request
the document does not allow is refused with 400 as Prolific would, and both kinds of mismatch are
recorded (``Api.mismatches``) so tests can assert there were none.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from connectors.local.prolific import openapi
from connectors.local.prolific.state import MIN_REWARD_PER_HOUR, ProlificError, ProlificState

Handler = Callable[..., tuple[int, Any]]
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200


class Api:
    def __init__(self, state: ProlificState, clock: Callable[[], datetime], token: str = "local",
                 rate_limit: int = 200):
        self.state, self.clock, self.token = state, clock, token
        self.mismatches: list[dict] = []  # {"kind": "request"|"response", "operation", "reason"}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request checked
        self.rate_limit = rate_limit  # requests per second before 429 (Prolific throttles bursts)
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()
        g = r"(?P<{}>[A-Za-z0-9_-]+)"
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/api/v1/users/me/", self.me),
            ("GET", "/api/v1/workspaces/", self.workspaces),
            ("GET", "/api/v1/workspaces/{ws}/balance/", self.balance),
            ("GET", "/api/v1/studies/", self.list_studies),
            ("POST", "/api/v1/studies/", self.create_study),
            ("GET", "/api/v1/studies/{id}/", self.get_study),
            ("PATCH", "/api/v1/studies/{id}/", self.update_study),
            ("POST", "/api/v1/studies/{id}/transition/", self.transition_study),
            ("POST", "/api/v1/study-cost-calculator/", self.cost),
            ("GET", "/api/v1/reward-recommendations/", self.rewards),
            ("GET", "/api/v1/submissions/", self.list_submissions),
            ("POST", "/api/v1/submissions/bulk-approve/", self.bulk_approve),
            ("POST", "/api/v1/submissions/bonus-payments/", self.set_up_bonus),
            ("GET", "/api/v1/submissions/{id}/", self.get_submission),
            ("POST", "/api/v1/submissions/{id}/transition/", self.transition),
            ("POST", "/api/v1/bulk-bonus-payments/{id}/pay/", self.pay),
            ("GET", "/api/v1/participant-groups/", self.list_groups),
            ("POST", "/api/v1/participant-groups/", self.create_group),
            ("GET", "/api/v1/participant-groups/{id}/", self.get_group),
            ("GET", "/api/v1/participant-groups/{id}/participants/", self.members),
            ("POST", "/api/v1/participant-groups/{id}/participants/", self.add_members),
            ("DELETE", "/api/v1/participant-groups/{id}/participants/", self.remove_members),
        ]
        self.routes = [(m, re.compile("^" + re.sub(r"\{(\w+)\}", lambda x: g.format(x.group(1)), p) + "$"), p, h)
                       for m, p, h in table]

    # ----------------------------------------------------------------- dispatch
    def operation(self, method: str, path: str) -> str:
        for m, rx, pattern, _ in self.routes:
            if m == method and rx.match(path):
                return f"{method} {pattern}"
        return f"{method} {path}"

    def throttled(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0] < now - 1:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                return True
            self._recent.append(now)
            return False

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        op = self.operation(method, path)
        if headers.get("authorization") != f"Token {self.token}":
            return 401, ProlificError(401, "Authentication failed", "Invalid token.").body(), {}
        if self.throttled():
            return 429, ProlificError(429, "Request was throttled", "Expected available in 1 second.").body(), \
                {"Retry-After": "1"}
        route = next(((h, rx.match(path)) for m, rx, _, h in self.routes if m == method and rx.match(path)), None)
        if route is None:
            return 404, ProlificError(404, "Not found", f"The local Prolific server has no {method} {path}").body(), {}
        why = openapi.check_request(method, path, query, headers, body)
        self.requests.append((method, path))
        if why is not None:
            self.mismatches.append({"kind": "request", "operation": op, "reason": why})
            return 400, ProlificError(400, "Invalid request", why).body(), {}
        handler, match = route
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return 400, ProlificError(400, "Invalid request", "The body is not JSON.").body(), {}
        try:
            status, answer = handler(data=data, query={k: v[0] for k, v in query.items()}, **match.groupdict())
        except ProlificError as exc:
            status, answer = exc.status, exc.body()
        why = openapi.check_response(method, path, query, headers, body, status, answer)
        if why is not None:
            self.mismatches.append({"kind": "response", "operation": op, "reason": why})
        return status, answer, {}

    # ----------------------------------------------------------------- account
    def me(self, **_: Any) -> tuple[int, Any]:
        return 200, {"id": self.state.workspace["owner"], "email": "researcher@localhost", "name": "Local researcher",
                     "current_project_id": None, "available_balance": self.state.balance()["available_balance"]}

    def workspaces(self, **_: Any) -> tuple[int, Any]:
        return 200, {"results": [self.state.workspace]}

    def balance(self, ws: str, **_: Any) -> tuple[int, Any]:
        if ws != self.state.workspace["id"]:
            raise ProlificError(404, "Not found", "No workspace with this id.")
        return 200, self.state.balance()

    def cost(self, data: dict, **_: Any) -> tuple[int, Any]:
        return 200, {"total_cost": float(self.state.cost(int(data["reward"]), int(data["total_available_places"])))}

    def rewards(self, query: dict, **_: Any) -> tuple[int, Any]:
        currency = query.get("currency", "USD")
        return 200, [{"currency": currency, "min_reward_per_hour": MIN_REWARD_PER_HOUR.get(currency, 800),
                      "recommended_reward_per_hour": MIN_REWARD_PER_HOUR.get(currency, 800) * 3 // 2}]

    # ----------------------------------------------------------------- studies
    def list_studies(self, query: dict, **_: Any) -> tuple[int, Any]:
        rows = [self.state.study_short(s) for s in self.state.studies.values()]
        if query.get("state"):
            rows = [r for r in rows if r["status"] == query["state"]]
        return 200, {"results": rows}

    def create_study(self, data: dict, **_: Any) -> tuple[int, Any]:
        return 201, self.state.create_study(data, self.clock())

    def get_study(self, id: str, **_: Any) -> tuple[int, Any]:  # noqa: A002 - the path's name
        return 200, self.state.study_out(self.state.study(id))

    def update_study(self, id: str, data: dict, **_: Any) -> tuple[int, Any]:  # noqa: A002
        return 200, self.state.update_study(id, data)

    def transition_study(self, id: str, data: dict, **_: Any) -> tuple[int, Any]:  # noqa: A002
        return 200, self.state.transition_study(id, data["action"])

    # ----------------------------------------------------------------- submissions
    def list_submissions(self, query: dict, **_: Any) -> tuple[int, Any]:
        try:
            page = max(1, int(query.get("page", 1)))
            size = min(MAX_PAGE_SIZE, max(1, int(query.get("page_size", DEFAULT_PAGE_SIZE))))
        except ValueError:
            raise ProlificError(400, "Invalid request", "page and page_size are whole numbers.") from None
        subs = self.state.list_submissions(query.get("study", ""), query.get("status"))
        subs.sort(key=lambda s: (s.started_at, s.id))
        start = (page - 1) * size
        if start and start >= len(subs):
            raise ProlificError(404, "Not found", "Invalid page.")
        return 200, {"results": [s.short() for s in subs[start:start + size]]}

    def get_submission(self, id: str, **_: Any) -> tuple[int, Any]:  # noqa: A002
        return 200, self.state.submission(id).detail()

    def transition(self, id: str, data: dict, **_: Any) -> tuple[int, Any]:  # noqa: A002
        return 200, self.state.transition(id, data, self.clock()).plain()

    def bulk_approve(self, data: dict, **_: Any) -> tuple[int, Any]:
        self.state.bulk_approve(data, self.clock())
        return 200, "The request to bulk approve has been made successfully."

    def set_up_bonus(self, data: dict, **_: Any) -> tuple[int, Any]:
        return 201, self.state.set_up_bonus(data)

    def pay(self, id: str, **_: Any) -> tuple[int, Any]:  # noqa: A002
        self.state.pay(id)
        return 202, "The bonuses will be paid asynchronously."

    # ----------------------------------------------------------------- participant groups
    def list_groups(self, query: dict, **_: Any) -> tuple[int, Any]:
        ws = query.get("workspace_id")
        return 200, {"results": [self.state.group_out(g) for g, row in self.state.groups.items()
                                 if ws is None or row["workspace_id"] == ws]}

    def create_group(self, data: dict, **_: Any) -> tuple[int, Any]:
        return 201, self.state.create_group(data, self.clock())

    def get_group(self, id: str, **_: Any) -> tuple[int, Any]:  # noqa: A002
        return 200, self.state.group_out(id)

    def members(self, id: str, **_: Any) -> tuple[int, Any]:  # noqa: A002
        return 200, self.state.group_members(id)

    def add_members(self, id: str, data: dict, **_: Any) -> tuple[int, Any]:  # noqa: A002
        return 200, self.state.add_members(id, data.get("participant_ids") or [], self.clock())

    def remove_members(self, id: str, data: dict, **_: Any) -> tuple[int, Any]:  # noqa: A002
        return 200, self.state.remove_members(id, data.get("participant_ids") or [])
