"""Message threads with Tolokers, and the files they attach to their answers.

Threads: ``POST /message-threads/compose`` writes to workers chosen directly, by a pool-style
``recipients_filter`` or all of them; ``reply`` adds a message (newest first, as Toloka lists
them); ``add-to-folders`` / ``remove-from-folders`` file a thread (``ARCHIVE`` archives it).
``GET /message-threads?folder=...&folder_ne=...`` lists them.

Attachments: an answer to a ``file`` output field is a file the worker uploaded. The simulated
worker's text becomes a small text file, stored as an ``ASSIGNMENT_ATTACHMENT`` whose id is the
answer's value, so ``/attachments`` and ``/attachments/{id}/download`` serve what a client
expects to download.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from .errors import field_error, not_found, validation
from .state import TolokaState
from .times import iso

FOLDERS = {"INBOX", "OUTBOX", "AUTOMATIC_NOTIFICATION", "IMPORTANT", "UNREAD", "ARCHIVE"}


def _me() -> dict[str, Any]:
    return {"id": "requester-1", "role": "REQUESTER", "myself": True}


def compose(state: TolokaState, body: dict[str, Any], select: Callable[[dict[str, Any] | None], list[str]]) -> dict:
    """``select(filter)`` names the workers a filter picks (``None``: everyone)."""
    how = body.get("recipients_select_type")
    errors = {
        f: field_error("VALUE_REQUIRED", "Value must be present")
        for f in ("recipients_select_type", "topic", "text")
        if not body.get(f)
    }
    if how == "DIRECT" and not body.get("recipients_ids"):
        errors["recipients_ids"] = field_error("VALUE_REQUIRED", "DIRECT needs recipients_ids")
    if how == "FILTER" and not body.get("recipients_filter"):
        errors["recipients_filter"] = field_error("VALUE_REQUIRED", "FILTER needs recipients_filter")
    if how and how not in ("DIRECT", "FILTER", "ALL"):
        errors["recipients_select_type"] = field_error("VALUE_NOT_ALLOWED", "DIRECT, FILTER or ALL")
    if errors:
        raise validation(errors)
    if how == "DIRECT":
        recipients = [str(r) for r in body["recipients_ids"]]
    else:
        recipients = select(body.get("recipients_filter") if how == "FILTER" else None)
    now = iso(state.now())
    details = {"recipients_select_type": how}
    for key in ("recipients_ids", "recipients_filter"):
        if body.get(key):
            details[key] = body[key]
    thread = {
        "id": state.new_id("message-threads"),
        "topic": body["topic"],
        "interlocutors_inlined": True,
        "interlocutors": [_me()] + [{"id": r, "role": "USER", "myself": False} for r in recipients],
        "messages_inlined": True,
        "messages": [{"text": body["text"], "from": _me(), "created": now}],
        "answerable": bool(body.get("answerable", True)),
        "folders": ["OUTBOX"],
        "compose_details": details,
        "created": now,
    }
    state.store["message-threads"][thread["id"]] = thread
    return thread


def reply(state: TolokaState, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
    thread = state.get("message-threads", thread_id)
    if not body.get("text"):
        raise validation({"text": field_error("VALUE_REQUIRED", "Value must be present")})
    thread["messages"].insert(0, {"text": body["text"], "from": _me(), "created": iso(state.now())})
    return thread


def refile(state: TolokaState, thread_id: str, body: dict[str, Any], add: bool) -> dict[str, Any]:
    thread = state.get("message-threads", thread_id)
    folders = body.get("folders") or []
    bad = [f for f in folders if f not in FOLDERS]
    if bad:
        raise validation({"folders": field_error("VALUE_NOT_ALLOWED", f"Unknown folders {bad}")})
    if add:
        thread["folders"] += [f for f in folders if f not in thread["folders"]]
    else:
        thread["folders"] = [f for f in thread["folders"] if f not in folders]
    return thread


def thread_matches(thread: dict[str, Any], params: dict[str, str]) -> bool:
    """The folder filters of ``GET /message-threads`` (a thread sits in several folders)."""
    if params.get("folder") and not set(params["folder"].split(",")) & set(thread["folders"]):
        return False
    return not (params.get("folder_ne") and set(params["folder_ne"].split(",")) & set(thread["folders"]))


# ---------------------------------------------------------------------- attachments
def attach_files(state: TolokaState, a: dict[str, Any], output_spec: dict[str, dict[str, Any]]) -> None:
    """Turn the worker's answers to ``file`` fields into uploaded attachments."""
    for sol in a.get("solutions") or []:
        out = sol["output_values"]
        for name, spec in output_spec.items():
            if spec.get("type") not in ("file", "array_file") or name not in out:
                continue
            values = out[name] if isinstance(out[name], list) else [out[name]]
            ids = [_upload(state, a, name, str(v)) for v in values]
            out[name] = ids if spec["type"] == "array_file" else ids[0]


def _upload(state: TolokaState, a: dict[str, Any], field: str, text: str) -> str:
    att = {
        "id": uuid.uuid4().hex,
        "attachment_type": "ASSIGNMENT_ATTACHMENT",
        "name": f"{field}.txt",
        "details": {"user_id": a["user_id"], "assignment_id": a["id"], "pool_id": a["pool_id"]},
        "created": iso(state.now()),
        "media_type": "text/plain",
        "owner": state.owner(),
        "_content": text.encode(),
    }
    state.store["attachments"][att["id"]] = att
    return att["id"]


def attachment_matches(att: dict[str, Any], params: dict[str, str]) -> bool:
    """The search filters on an attachment's ``details`` and ``type`` (``attachment_type``)."""
    if params.get("type") and params["type"] != att["attachment_type"]:
        return False
    return all(
        not params.get(k) or str(att["details"].get(k)) == params[k] for k in ("user_id", "assignment_id", "pool_id")
    )


def download(state: TolokaState, attachment_id: str) -> tuple[str, bytes]:
    att = state.store["attachments"].get(attachment_id)
    if att is None:
        raise not_found("attachment", attachment_id)
    return att["media_type"], att["_content"]
