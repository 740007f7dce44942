"""How a simulated worker sees a Toloka task: inputs it may read and fields it must fill.

A worker sees the visible (non-hidden) input values and answers the project's output fields.
The Template Builder view tells what a field looks like: ``options`` of a radio group, the
``data.input`` a text annotation marks (``content``), and the ``default`` a text field starts
from. The output spec's ``allowed_values`` fill in where the view says nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from connectors.local.crowd import SimField, SimTask

from .specs import sim_field_kind


@dataclass
class FieldForm:
    name: str
    kind: str
    options: list[str]
    text_from: str | None = None  # input field holding the text to mark (spans)
    default_from: str | None = None  # input field pre-filling a text answer


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _input_path(ref: Any) -> str | None:
    return ref.get("path") if isinstance(ref, dict) and ref.get("type") == "data.input" else None


def project_form(project: dict[str, Any]) -> list[FieldForm]:
    spec = project["task_spec"]
    view = spec.get("view_spec") or {}
    try:
        config = json.loads(view.get("config") or "{}")
    except ValueError:
        config = {}
    seen: dict[str, dict[str, Any]] = {}
    for node in _walk(config):
        data = node.get("data")
        if isinstance(data, dict) and data.get("type") == "data.output" and data.get("path"):
            seen.setdefault(data["path"].split(".")[0], {"node": node, "data": data})
    forms = []
    for name, out in spec["output_spec"].items():
        found = seen.get(name)
        node, data = (found["node"], found["data"]) if found else ({}, {})
        options = [str(o.get("value")) for o in node.get("options") or [] if isinstance(o, dict)]
        if node.get("labels"):
            options = [
                str(lab.get("value", lab.get("label"))) for lab in node["labels"] if isinstance(lab, dict)
            ]
        forms.append(
            FieldForm(
                name,
                sim_field_kind(out),
                options or [str(v) for v in out.get("allowed_values") or []],
                _input_path(node.get("content")),
                _input_path(data.get("default")),
            )
        )
    return forms


def sim_task(project: dict[str, Any], task: dict[str, Any], truth: dict[str, Any] | None = None) -> SimTask:
    """The task as a worker sees it (hidden inputs stay hidden)."""
    inputs_spec = project["task_spec"]["input_spec"]
    values = task.get("input_values") or {}
    visible = {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in values.items()
        if not (inputs_spec.get(k) or {}).get("hidden")
    }
    fields = [
        SimField(
            f.name,
            f.kind,
            f.options,
            default=str(values.get(f.default_from) or ""),
            text=str(values.get(f.text_from) or ""),
        )
        for f in project_form(project)
    ]
    return SimTask(item=task["id"], inputs=visible, fields=fields, truth=truth)
