"""Webhook subscriptions (``PUT/GET/DELETE /webhook-subscriptions``) and their delivery.

Toloka POSTs ``{"events": [...]}`` to a subscription's ``webhook_url`` when one of its pool's
events happens (pool closed, assignment created / submitted / skipped / expired / approved /
rejected), signed with ``Toloka-Signature`` (HMAC-SHA256 of the body) when the subscription has a
``secret_key``. The local server delivers the same way from a background thread, but only to
loopback URLs: a simulated crowd must never call out to the internet.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlparse

from .errors import field_error, not_found
from .state import TolokaState
from .times import iso

log = logging.getLogger(__name__)
EVENT_TYPES = {
    "POOL_CLOSED",
    "DYNAMIC_OVERLAP_COMPLETED",
    "ASSIGNMENT_CREATED",
    "ASSIGNMENT_SUBMITTED",
    "ASSIGNMENT_SKIPPED",
    "ASSIGNMENT_EXPIRED",
    "ASSIGNMENT_APPROVED",
    "ASSIGNMENT_REJECTED",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Webhooks:
    def __init__(self, state: TolokaState):
        self.state = state
        self._queue: queue.Queue[tuple[str, bytes, dict[str, str]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.delivered: list[tuple[str, dict[str, Any]]] = []  # (url, body) as sent, for inspection

    @property
    def subs(self) -> dict[str, dict[str, Any]]:
        return self.state.store["webhook-subscriptions"]

    # ----------------------------------------------------------------- REST
    def upsert(self, body: Any) -> dict[str, Any]:
        """One subscription per (url, event type, pool): upserting the same triple keeps its id."""
        items, errors = {}, {}
        for i, raw in enumerate(body if isinstance(body, list) else [body]):
            bad = {
                f: field_error("VALUE_REQUIRED", "Value must be present")
                for f in ("webhook_url", "event_type", "pool_id")
                if not raw.get(f)
            }
            if raw.get("event_type") and raw["event_type"] not in EVENT_TYPES:
                bad["event_type"] = field_error("VALUE_NOT_ALLOWED", "Unknown event type")
            if raw.get("pool_id") and self.state.pool(str(raw["pool_id"])) is None:
                bad["pool_id"] = field_error("DOES_NOT_EXIST", "Pool does not exist")
            if bad:
                errors[str(i)] = bad
                continue
            key = (raw["webhook_url"], raw["event_type"], str(raw["pool_id"]))
            sub = next(
                (s for s in self.subs.values() if (s["webhook_url"], s["event_type"], s["pool_id"]) == key), None
            )
            if sub is None:
                sub = {"id": uuid.uuid4().hex[:24], "created": iso(self.state.now())}
                self.subs[sub["id"]] = sub
            sub.update(webhook_url=key[0], event_type=key[1], pool_id=key[2])
            if raw.get("secret_key"):
                sub["_secret"] = raw["secret_key"]
            items[str(i)] = self.public(sub)
        return {"items": items, "validation_errors": errors}

    def delete(self, sub_id: str) -> None:
        if sub_id not in self.subs:
            raise not_found("webhook-subscription", sub_id)
        del self.subs[sub_id]

    @staticmethod
    def public(sub: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in sub.items() if not k.startswith("_")}  # the secret is never shown

    # ----------------------------------------------------------------- delivery
    def notify(self, event_type: str, facts: dict[str, Any]) -> None:
        """Called by the state (under its lock) when something happens; queues the POSTs."""
        pool = self.state.pool(facts["pool_id"]) or {}
        for sub in list(self.subs.values()):
            if sub["event_type"] != event_type or sub["pool_id"] != facts["pool_id"]:
                continue
            event = {
                "uuid": str(uuid.uuid4()),
                "webhook_subscription_id": sub["id"],
                "event_time": iso(self.state.now()),
                "type": event_type,
                "project_id": pool.get("project_id"),
                **facts,
            }
            if event_type == "POOL_CLOSED":
                event["close_reason"] = pool.get("last_close_reason")
            if "assignment_id" in facts:
                event["task_suite_id"] = self.state.store["assignments"][facts["assignment_id"]]["task_suite_id"]
            body = json.dumps({"events": [event]}).encode()
            headers = {"Content-Type": "application/json"}
            if sub.get("_secret"):
                headers["Toloka-Signature"] = hmac.new(sub["_secret"].encode(), body, hashlib.sha256).hexdigest()
            if urlparse(sub["webhook_url"]).hostname in LOOPBACK:
                self._send(sub["webhook_url"], body, headers)

    def _send(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._deliver, name="toloka-webhooks", daemon=True)
            self._thread.start()
        self._queue.put((url, body, headers))

    def _deliver(self) -> None:
        while (item := self._queue.get()) is not None:
            url, body, headers = item
            try:
                urllib.request.urlopen(urllib.request.Request(url, body, headers, method="POST"), timeout=5).close()
                self.delivered.append((url, json.loads(body)))
            except OSError as exc:  # the receiver is down: Toloka would retry; we log and go on
                log.warning("webhook to %s failed: %s", url, exc)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None
