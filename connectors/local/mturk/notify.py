"""MTurk's HIT-type event notifications, sent by the local server.

A message is MTurk's JSON event document (``EventDocVersion``, ``EventDocId``, ``CustomerId``,
``Events`` with ``EventType``, ``EventTimestamp``, ``HITTypeId``, ``HITId``, ``AssignmentId``).
Every message is kept in ``Notifier.sent`` (what a test inspects). A message whose SQS destination
is an http(s) URL on this machine (ElasticMQ, a LocalStack queue, any test receiver) is also POSTed
there as an SQS ``SendMessage`` request, from a background thread: delivery never runs under the
server's lock, and nothing is ever sent off this machine.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.parse
import urllib.request
import uuid
from datetime import datetime
from typing import Any

from connectors.local.mturk.wire import invalid

log = logging.getLogger(__name__)

VERSIONS = ("2014-08-15", "2006-05-05")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CUSTOMER_ID = "A1LOCALREQUESTER"


def check_spec(spec: dict[str, Any], test: bool = False) -> None:
    """Refuse a NotificationSpecification MTurk would refuse."""
    if spec["Version"] not in VERSIONS:
        raise invalid(f"Notification Version must be {VERSIONS[0]}")
    if not spec["EventTypes"]:
        raise invalid("Notification EventTypes must name at least one event")
    if "Ping" in spec["EventTypes"] and not test:
        raise invalid("The Ping event is only valid for SendTestEventNotification")
    dest, transport = spec["Destination"], spec["Transport"]
    if transport == "SQS" and not dest.startswith(("https://", "http://")):
        raise invalid("For the SQS transport, Destination must be the URL of an SQS queue")
    if transport == "SNS" and not dest.startswith("arn:"):
        raise invalid("For the SNS transport, Destination must be the ARN of an SNS topic")
    if transport == "Email" and "@" not in dest:
        raise invalid("For the Email transport, Destination must be an email address")


def event(kind: str, at: datetime, hit_type_id: str, hit_id: str | None = None,
          assignment_id: str | None = None) -> dict[str, Any]:
    out = {"EventType": kind, "EventTimestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "HITTypeId": hit_type_id}
    if hit_id:
        out["HITId"] = hit_id
    if assignment_id:
        out["AssignmentId"] = assignment_id
    return out


class Notifier:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []  # {"Destination", "Transport", "Message"}
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def send(self, spec: dict[str, Any], events: list[dict[str, Any]]) -> None:
        message = {
            "EventDocVersion": spec["Version"],
            "EventDocId": uuid.uuid4().hex,
            "SourceAccount": CUSTOMER_ID,
            "CustomerId": CUSTOMER_ID,
            "Events": events,
        }
        self.sent.append({"Destination": spec["Destination"], "Transport": spec["Transport"], "Message": message})
        dest = spec["Destination"]
        host = urllib.parse.urlsplit(dest).hostname if spec["Transport"] == "SQS" else None
        if host in LOOPBACK:
            self._queue.put((dest, json.dumps(message)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._deliver, name="mturk-notify", daemon=True)
                self._thread.start()

    def _deliver(self) -> None:
        while True:
            dest, body = self._queue.get()
            data = urllib.parse.urlencode(
                {"Action": "SendMessage", "MessageBody": body, "Version": "2012-11-05"}
            ).encode()
            req = urllib.request.Request(
                dest, data=data, headers={"Content-Type": "application/x-www-form-urlencoded"}
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback only
                    resp.read()
            except OSError as e:  # MTurk drops what it cannot deliver, too
                log.info("notification to %s not delivered: %s", dest, e)
