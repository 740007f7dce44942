"""Neutral widgets and screening tests rendered into MTurk's XML formats.

* ``html_question(page, instructions)`` -> HTMLQuestion (2011-11-11) holding one crowd-form page,
  laid out exactly as ``connectors/FORMS.md`` says. One renderer for every widget type, so a new
  task kind needs no change here.
* ``question_form(test)`` / ``answer_key(test)`` -> QuestionForm and AnswerKey (2005-10-01) for a
  qualification test that MTurk scores by itself.

Every piece of item text is HTML-escaped (``html.escape`` with quotes), so hostile text such as
``<script>``, quotes or ``]]>`` reaches the worker as text. The HTML then goes into a CDATA
section whose ``]]>`` occurrences are split (belt and braces: escaping already turns ``>`` into
``&gt;``). Characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates) are replaced
by U+FFFD, the only change ever made to item text.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from connectors.base import (
    Choice,
    Display,
    MultiChoice,
    Page,
    ScreeningTest,
    SpanSelect,
    TextInput,
    Widget,
)

HTML_QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
QUESTION_FORM_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionForm.xsd"
ANSWER_KEY_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/AnswerKey.xsd"
CROWD_JS = "https://assets.crowd.aws/crowd-html-elements.js"

_XML_ILLEGAL = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Replace what XML 1.0 cannot represent (even escaped) with U+FFFD."""
    return _XML_ILLEGAL.sub("\ufffd", text)


def esc(text: str) -> str:
    """Text or attribute value for HTML: always text, never markup."""
    return html.escape(xml_safe(text), quote=True)


def cdata(text: str) -> str:
    """A CDATA section holding ``text`` verbatim, ``]]>`` split across two sections."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def field_name(k: int, field: str) -> str:
    """The crowd-form name of item ``k``'s field (FORMS.md): ``i{k}__{field}``."""
    if "__" in field or not field:
        raise ValueError(f"widget name {field!r} must be non-empty and must not contain '__'")
    return f"i{k}__{field}"


# --------------------------------------------------------------------------- HTMLQuestion
def _label(text: str) -> str:
    return f'<p class="cb-label">{esc(text)}</p>' if text else ""


def render_widget(k: int, w: Widget) -> str:
    """One widget of item ``k`` as crowd-html-elements markup (the table in FORMS.md)."""
    if isinstance(w, Display):
        return f'{_label(w.label)}<div data-cb-input="{esc(w.name)}" class="cb-text">{esc(w.text)}</div>'
    name = field_name(k, w.name)
    if isinstance(w, Choice):
        buttons = "".join(
            f'<crowd-radio-button name="{esc(f"{name}__{value}")}" value="{esc(value)}">{esc(label)}'
            "</crowd-radio-button>" for value, label in w.options)
        return (f'{_label(w.label)}<crowd-radio-group data-cb-field="{esc(w.name)}">{buttons}'
                "</crowd-radio-group>")
    if isinstance(w, MultiChoice):
        boxes = "".join(
            f'<crowd-checkbox name="{esc(f"{name}__{value}")}" value="{esc(value)}">{esc(label)}'
            "</crowd-checkbox>" for value, label in w.options)
        return (f'{_label(w.label)}<div data-cb-field="{esc(w.name)}" data-cb-kind="multi_choice">'
                f"{boxes}</div>")
    if isinstance(w, TextInput):
        tag = "crowd-text-area" if w.multiline else "crowd-input"
        required = " required" if w.required else ""
        return (f'{_label(w.label)}<{tag} name="{esc(name)}" data-cb-field="{esc(w.name)}" '
                f'label="{esc(w.label)}" value="{esc(w.default)}"{required}></{tag}>')
    if isinstance(w, SpanSelect):
        labels = json.dumps([{"label": label} for label in w.labels])
        return (f'<crowd-entity-annotation name="{esc(name)}" data-cb-field="{esc(w.name)}" '
                f'header="{esc(w.label)}" labels="{esc(labels)}" text="{esc(w.text)}">'
                "</crowd-entity-annotation>")
    raise TypeError(f"unknown widget type {type(w).__name__}")


_STYLE = ("<style>.cb-text{white-space:pre-wrap;margin:.4em 0 1em}"
          ".cb-label{font-weight:600;margin:.6em 0 .2em}"
          "section{border-top:1px solid #ddd;padding:.5em 0}</style>")


def page_html(page: Page, instructions: str = "") -> str:
    """The whole HTML document a worker sees for ``page``. Item keys never appear in it."""
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f'<script src="{CROWD_JS}"></script>',
        _STYLE,
        "</head><body><crowd-form>",
    ]
    if instructions:
        parts.append(f'<div class="cb-instructions cb-text">{esc(instructions)}</div>')
    for k, item in enumerate(page.items):
        body = "".join(render_widget(k, w) for w in item.widgets)
        parts.append(f'<section data-cb-item="i{k}">{body}</section>')
    parts.append("</crowd-form></body></html>")
    return "\n".join(parts)


def html_question(page: Page, instructions: str = "", frame_height: int = 0) -> str:
    """The ``Question`` parameter of CreateHIT: an HTMLQuestion wrapping ``page_html`` in CDATA."""
    return (f'<HTMLQuestion xmlns="{HTML_QUESTION_NS}">'
            f"<HTMLContent>{cdata(page_html(page, instructions))}</HTMLContent>"
            f"<FrameHeight>{int(frame_height)}</FrameHeight></HTMLQuestion>")


def multi_choice_fields(page: Page) -> list[str]:
    """Names (``i{k}__{field}``) of the page's MultiChoice fields: their answers are lists, while a
    Choice gives one value; both look alike in ``taskAnswers``, so the parser needs this list."""
    return [field_name(k, w.name) for k, item in enumerate(page.items)
            for w in item.widgets if isinstance(w, MultiChoice)]


_CHECKBOX_NAME = re.compile(r'<crowd-checkbox name="(i\d+__[^"]*?)__')


def multi_choice_fields_from_html(question: str) -> list[str]:
    """``multi_choice_fields`` recovered from a HIT's Question (as GetHIT/ListHITs return it)."""
    return sorted({html.unescape(m) for m in _CHECKBOX_NAME.findall(question)})


# --------------------------------------------------------------------------- screening tests
def _xml(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = xml_safe(text)
    return el


def question_form(test: ScreeningTest) -> str:
    """QuestionForm XML: an overview, then one SelectionAnswer question per screening question."""
    ET.register_namespace("", QUESTION_FORM_NS)
    q = f"{{{QUESTION_FORM_NS}}}"
    root = ET.Element(f"{q}QuestionForm")
    overview = _sub(root, f"{q}Overview")
    _sub(overview, f"{q}Title", test.name)
    _sub(overview, f"{q}Text", test.instructions or test.description)
    for question in test.questions:
        el = _sub(root, f"{q}Question")
        _sub(el, f"{q}QuestionIdentifier", question.id)
        _sub(el, f"{q}IsRequired", "true")
        _sub(_sub(el, f"{q}QuestionContent"), f"{q}Text", question.text)
        sel = _sub(_sub(el, f"{q}AnswerSpecification"), f"{q}SelectionAnswer")
        multiple = question.kind == "multiple_choice"
        _sub(sel, f"{q}MinSelectionCount", "1")
        _sub(sel, f"{q}MaxSelectionCount", str(len(question.options) if multiple else 1))
        _sub(sel, f"{q}StyleSuggestion", "checkbox" if multiple else "radiobutton")
        selections = _sub(sel, f"{q}Selections")
        for value, label in question.options:
            option = _sub(selections, f"{q}Selection")
            _sub(option, f"{q}SelectionIdentifier", value)
            _sub(option, f"{q}Text", label)
    return _xml(root)


def correct_selections(values: Sequence[str], kind: str, answer: Sequence[str],
                       tolerance: int) -> list[list[str]]:
    """The selections (each a set chosen together) that score 1. A multiple-choice answer must
    match as a whole; a likert answer within ``tolerance`` positions of the expected one counts."""
    if kind == "multiple_choice":
        return [list(answer)]
    if kind == "likert" and tolerance > 0:
        centres = [values.index(a) for a in answer if a in values]
        return [[v] for i, v in enumerate(values) if any(abs(i - c) <= tolerance for c in centres)]
    return [[a] for a in answer]


def answer_key(test: ScreeningTest) -> str:
    """AnswerKey XML: 1 point per correct question, score = percentage of the maximum."""
    ET.register_namespace("", ANSWER_KEY_NS)
    a = f"{{{ANSWER_KEY_NS}}}"
    root = ET.Element(f"{a}AnswerKey")
    for question in test.questions:
        el = _sub(root, f"{a}Question")
        _sub(el, f"{a}QuestionIdentifier", question.id)
        values = [v for v, _ in question.options]
        for selection in correct_selections(values, question.kind, question.answer, question.tolerance):
            option = _sub(el, f"{a}AnswerOption")
            for value in selection:
                _sub(option, f"{a}SelectionIdentifier", value)
            _sub(option, f"{a}AnswerScore", "1")
        _sub(el, f"{a}DefaultScore", "0")
    mapping = _sub(_sub(root, f"{a}QualificationValueMapping"), f"{a}PercentageMapping")
    _sub(mapping, f"{a}MaximumSummedScore", str(len(test.questions)))
    return _xml(root)
