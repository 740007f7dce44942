"""Widgets to what the templates draw: one view per item, each widget with its form field name,
a Choice's keyboard keys, a SpanSelect's tokens. The HTML itself is in ``templates/``, where
Jinja escapes every value (autoescape is on for all templates)."""

from __future__ import annotations

from typing import Any

from taskserver.forms import field_name, tokens

TIE_VALUES = {"tie", "same", "equal"}


def keys_for(options: list) -> list[str]:
    """Keyboard keys for a choice's options: 1, 2, ... in order, and 0 for a tie option."""
    out, n = [], 0
    for value, _ in options:
        if value in TIE_VALUES:
            out.append("0")
        else:
            n += 1
            out.append(str(n) if n <= 9 else "")
    return out


def item_views(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    views = []
    for k, item in enumerate(items):
        widgets = []
        for w in item["widgets"]:
            view = dict(w, field=field_name(k, w["name"]), id=f"i{k}-{w['name']}")
            if w["type"] == "choice":
                view["hotkeys"] = keys_for(w["options"])
            if w["type"] == "span_select":
                view["tokens"], prev = [], 0
                for start, end, word in tokens(w["text"]):
                    view["tokens"].append({"start": start, "end": end, "word": word, "gap": w["text"][prev:start]})
                    prev = end
                view["tail"] = w["text"][prev:]
            widgets.append(view)
        views.append({"position": k, "widgets": widgets,
                      "shortcuts": any(w["type"] == "choice" for w in widgets)})
    return views
