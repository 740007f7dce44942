"""The worker form's convention, and parsing a submission back into answers.

Field names: item ``k`` (its position on the page; item keys never reach the page, so golden items
look like any other) and widget field ``f`` give ``i{k}.{f}``. A ``SpanSelect`` is the text cut
into tokens (words, and runs of punctuation), each a checkbox whose value is its ``start-end``
character offsets in the text; marked tokens next to each other (only spaces between) become one
span. The offsets are computed here, on the text, never from markup; the page's script only ticks
the checkboxes a mouse selection covers, so the page works without it (one click per token).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

TOKEN = re.compile(r"\w+|[^\w\s]+")
MAX_TEXT = 100_000  # characters in one text answer


class FormError(ValueError):
    """A submission that cannot be taken as it is; ``field`` is the form field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def field_name(position: int, field: str) -> str:
    return f"i{position}.{field}"


def tokens(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in TOKEN.finditer(text)]


def spans_from_tokens(text: str, marked: Sequence[tuple[int, int]], label: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start, end in sorted(set(marked)):
        if out and not text[out[-1]["end"]:start].strip():
            out[-1]["end"] = end
        else:
            out.append({"start": start, "end": end, "label": label})
    return out


def parse(items: Sequence[dict], pairs: Sequence[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """``{item_key: {field: value}}`` from the submitted ``(name, value)`` pairs of a page whose
    items (as published) are ``items``; ``FormError`` for anything a worker must correct."""
    got: dict[str, list[str]] = {}
    for name, value in pairs:
        got.setdefault(name, []).append(value)
    out: dict[str, dict[str, Any]] = {}
    for k, item in enumerate(items):
        answer: dict[str, Any] = {}
        for w in item["widgets"]:
            if w["type"] == "display":
                continue
            name = field_name(k, w["name"])
            values = got.get(name, [])
            answer[w["name"]] = _value(w, name, values, got)
        out[item["item_key"]] = answer
    return out


def _value(w: dict, name: str, values: list[str], got: dict[str, list[str]]) -> Any:
    kind = w["type"]
    if kind == "choice":
        allowed = [o[0] for o in w["options"]]
        if not values or values[0] == "":
            if w.get("required", True):
                raise FormError(name, f"choose an answer to “{w['label']}”")
            return ""
        if len(values) > 1 or values[0] not in allowed:
            raise FormError(name, f"“{w['label']}”: not one of the options")
        return values[0]
    if kind == "multi_choice":
        allowed = [o[0] for o in w["options"]]
        if any(v not in allowed for v in values):
            raise FormError(name, f"“{w['label']}”: not one of the options")
        return [o for o in allowed if o in values]
    if kind == "text_input":
        text = values[0] if values else ""
        text = text.replace("\r\n", "\n")
        if len(values) > 1 or len(text) > MAX_TEXT:
            raise FormError(name, f"“{w['label']}”: one text of at most {MAX_TEXT} characters")
        if w.get("required", True) and not text.strip():
            raise FormError(name, f"write an answer to “{w['label']}”")
        return text
    if kind == "span_select":
        text = w["text"]
        bounds = {(s, e) for s, e, _ in tokens(text)}
        marked = []
        for v in values:
            start, sep, end = v.partition("-")
            try:
                span = (int(start), int(end))
            except ValueError:
                raise FormError(name, "a marked part is not a start-end pair") from None
            if not sep or span not in bounds:
                raise FormError(name, f"a marked part ({v}) lies outside the text")
            marked.append(span)
        labels = w.get("labels") or ["issue"]
        label = (got.get(name + ".label") or [labels[0]])[0]
        if label not in labels:
            raise FormError(name + ".label", "not one of the labels")
        return spans_from_tokens(text, marked, label)
    raise FormError(name, f"unknown widget type {kind!r}")
