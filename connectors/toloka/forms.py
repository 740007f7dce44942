"""Neutral widgets as a Toloka project: input spec, output spec and a Template Builder view.

Item text never enters the view config: every Display is an input field shown through a
``data.input`` reference in ``view.text`` (plain text; ``view.markdown``/HTML are never used),
so it is data rendered as text. Two hidden input fields carry our keys: ``cb_item`` (the item
key, so answers come back keyed by it without any lookup) and ``cb_page`` (the page id).
Hidden fields are not shown to workers, so golden items look like any other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import toloka.client.project.field_spec as fs
from toloka.client import unstructure
from toloka.client.project.task_spec import TaskSpec
from toloka.client.project.template_builder import (
    CheckboxGroupFieldV1,
    GroupFieldOption,
    InputData,
    ListViewV1,
    OutputData,
    RadioGroupFieldV1,
    RequiredConditionV1,
    TextAnnotationFieldV1,
    TextareaFieldV1,
    TextFieldV1,
    TextViewV1,
)
from toloka.client.project.view_spec import TemplateBuilderViewSpec

from connectors.base import Choice, Display, MultiChoice, PageItem, SpanSelect, TextInput, Widget

ITEM_KEY, PAGE_ID = "cb_item", "cb_page"


def _default_field(w: TextInput) -> str:
    return f"{w.name}__default"


def _text_field(w: SpanSelect) -> str:
    return f"{w.name}__text"


def shape(widgets: Sequence[Widget]) -> list[tuple[str, str]]:
    """What must be equal for items to share one project: widget names and kinds."""
    return [(w.type, w.name) for w in widgets]


def task_spec(widgets: Sequence[Widget]) -> TaskSpec:
    inputs: dict[str, Any] = {ITEM_KEY: fs.StringSpec(hidden=True), PAGE_ID: fs.StringSpec(hidden=True)}
    outputs: dict[str, Any] = {}
    views: list[Any] = []
    for w in widgets:
        if isinstance(w, Display):
            inputs[w.name] = fs.StringSpec(required=False)
            views.append(TextViewV1(InputData(w.name), label=w.label or None))
        elif isinstance(w, Choice):
            outputs[w.name] = fs.StringSpec(required=w.required, allowed_values=[v for v, _ in w.options])
            views.append(
                RadioGroupFieldV1(
                    OutputData(w.name),
                    [GroupFieldOption(v, lab) for v, lab in w.options],
                    label=w.label,
                    validation=RequiredConditionV1() if w.required else None,
                )
            )
        elif isinstance(w, MultiChoice):
            outputs[w.name] = fs.ArrayStringSpec(required=False, allowed_values=[v for v, _ in w.options])
            views.append(
                CheckboxGroupFieldV1(
                    OutputData(w.name), [GroupFieldOption(v, lab) for v, lab in w.options], label=w.label
                )
            )
        elif isinstance(w, TextInput):
            inputs[_default_field(w)] = fs.StringSpec(required=False)
            outputs[w.name] = fs.StringSpec(required=w.required)
            data = OutputData(w.name, default=InputData(_default_field(w)))
            field = TextareaFieldV1 if w.multiline else TextFieldV1
            views.append(field(data, label=w.label, validation=RequiredConditionV1() if w.required else None))
        elif isinstance(w, SpanSelect):
            inputs[_text_field(w)] = fs.StringSpec(required=False)
            outputs[w.name] = fs.JsonSpec(required=False)
            views.append(
                TextAnnotationFieldV1(
                    OutputData(w.name),
                    content=InputData(_text_field(w)),
                    label=w.label,
                    labels=[TextAnnotationFieldV1.Label(label=lab, value=lab) for lab in w.labels],
                )
            )
    view = TemplateBuilderViewSpec(view=ListViewV1(views))
    return TaskSpec(input_spec=inputs, output_spec=outputs, view_spec=view)


def spec_digest(spec: TaskSpec) -> str:
    """A short stable fingerprint of a task spec (to find a project that already has it)."""
    return hashlib.sha256(json.dumps(unstructure(spec), sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def input_values(item: PageItem, page_id: str) -> dict[str, str]:
    values = {ITEM_KEY: item.item_key, PAGE_ID: page_id}
    for w in item.widgets:
        if isinstance(w, Display):
            values[w.name] = w.text
        elif isinstance(w, TextInput):
            values[_default_field(w)] = w.default
        elif isinstance(w, SpanSelect):
            values[_text_field(w)] = w.text
    return values


def known_solution(item: PageItem) -> dict[str, Any] | None:
    """A golden item's known answer as output values (only the fields it fixes)."""
    if not item.golden or not item.known_answer:
        return None
    return dict(item.known_answer)


def parse_output(widgets: Sequence[Widget], output: dict[str, Any]) -> dict[str, Any]:
    """Toloka output values in the neutral shapes (see FORMS.md's last paragraph)."""
    out: dict[str, Any] = {}
    for w in widgets:
        if isinstance(w, Display):
            continue
        value = output.get(w.name)
        if isinstance(w, MultiChoice):
            value = list(value or [])
        elif isinstance(w, SpanSelect):
            value = [
                {"start": int(s["start"]), "end": int(s["end"]), "label": s.get("label", w.labels[0])}
                for s in (value or [])
            ]
        elif isinstance(w, TextInput):
            value = "" if value is None else str(value)
        out[w.name] = value
    return out
