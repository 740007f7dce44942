"""MTurk question and answer documents: checking what requesters send, reading it as a worker
would, and writing answers in MTurk's real formats.

- ``check_question(xml)`` / ``check_answer_key(xml)``: size, well-formedness, namespace and XSD
  validation (``xmlschema``) against MTurk's schemas found in ``$CROWD_MTURK_XSD_DIR`` or
  ``<repo>/../shared/data/mturk-xsd`` (skipped when neither exists).
- ``read_html_form(html) -> list[FormItem]``: the crowd-form as FORMS.md lays it out, one
  ``FormItem`` (a ``SimTask`` plus how its fields map to form element names) per ``data-cb-item``
  section; a form without markers is one item whose named elements are all filled at random.
- ``task_answers(items, answers)`` and ``form_answers_xml(...)``: the ``taskAnswers`` JSON and the
  QuestionFormAnswers XML a crowd-form submission produces.
- ``read_question_form(xml, answer_key)`` and ``score(answer_key, selections)``: screening tests
  as QuestionForm + AnswerKey, scored per the AnswerKey's rules.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import lxml.html
from lxml import etree

from connectors.local.crowd import SimField, SimTask
from connectors.local.mturk.wire import invalid

MAX_QUESTION_BYTES = 65535
_BASE = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
NS_HTML = _BASE + "2011-11-11/HTMLQuestion.xsd"
NS_EXTERNAL = _BASE + "2006-07-14/ExternalQuestion.xsd"
NS_FORM = _BASE + "2005-10-01/QuestionForm.xsd"
NS_KEY = _BASE + "2005-10-01/AnswerKey.xsd"
NS_ANSWERS = _BASE + "2005-10-01/QuestionFormAnswers.xsd"
SCHEMA_FILES = {
    NS_HTML: "HTMLQuestion_20111111.xsd",
    NS_EXTERNAL: "ExternalQuestion_20060714.xsd",
    NS_FORM: "QuestionForm_20051001.xsd",
    NS_KEY: "AnswerKey_20051001.xsd",
    NS_ANSWERS: "QuestionFormAnswers_20051001.xsd",
}
QUESTION_NAMESPACES = (NS_HTML, NS_EXTERNAL, NS_FORM)


def xsd_dir() -> Path | None:
    env = os.environ.get("CROWD_MTURK_XSD_DIR")
    if env:
        return Path(env) if Path(env).is_dir() else None
    repo = Path(__file__).resolve().parents[3]
    found = (repo / ".." / "shared" / "data" / "mturk-xsd").resolve()
    return found if found.is_dir() else None


@cache
def _schema(directory: str, filename: str) -> Any:
    import xmlschema

    return xmlschema.XMLSchema(str(Path(directory) / filename))


def schema_for(namespace: str) -> Any | None:
    """The compiled XSD for a namespace, or None when the schema folder is absent."""
    d = xsd_dir()
    return _schema(str(d), SCHEMA_FILES[namespace]) if d else None


def _parse(xml: str, what: str) -> etree._Element:
    if len(xml.encode("utf-8")) > MAX_QUESTION_BYTES:
        raise invalid(f"{what} is larger than {MAX_QUESTION_BYTES} bytes")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.fromstring(xml.encode("utf-8"), parser)
    except etree.XMLSyntaxError as e:
        raise invalid(f"{what} is not well-formed XML: {e}") from e


def _validate_xsd(root: etree._Element, namespace: str, what: str) -> None:
    schema = schema_for(namespace)
    if schema is None:
        return
    errors = list(schema.iter_errors(root))
    if errors:
        reason = getattr(errors[0], "reason", None) or str(errors[0]).splitlines()[0]
        raise invalid(f"{what} does not validate against {SCHEMA_FILES[namespace]}: {reason}")


def _ns(root: etree._Element) -> str:
    return etree.QName(root).namespace or ""


def check_question(xml: str, what: str = "Question") -> str:
    """Validate a HIT's or test's question document; returns its namespace."""
    root = _parse(xml, what)
    ns = _ns(root)
    if ns not in QUESTION_NAMESPACES:
        raise invalid(f"{what} must be an HTMLQuestion, ExternalQuestion or QuestionForm (namespace {ns!r})")
    _validate_xsd(root, ns, what)
    if ns == NS_HTML:
        content = root.findtext(f"{{{NS_HTML}}}HTMLContent")
        if not content or not content.strip():
            raise invalid(f"{what}: HTMLQuestion needs a non-empty HTMLContent")
        height = (root.findtext(f"{{{NS_HTML}}}FrameHeight") or "").strip()
        if not height.isdigit():
            raise invalid(f"{what}: FrameHeight must be a non-negative integer (0 = full window)")
    return ns


def check_answer_key(xml: str) -> None:
    root = _parse(xml, "AnswerKey")
    if _ns(root) != NS_KEY:
        raise invalid("AnswerKey must be in the AnswerKey 2005-10-01 namespace")
    _validate_xsd(root, NS_KEY, "AnswerKey")


def html_content(xml: str) -> str:
    return _parse(xml, "Question").findtext(f"{{{NS_HTML}}}HTMLContent") or ""


# --------------------------------------------------------------------------- crowd-html forms
@dataclass
class FormField:
    """One answerable field and the form element names its answer is written under."""

    field: SimField
    style: str  # 'buttons' (radio/checkbox, one name per option) | 'text' | 'entities' | 'plain'
    name: str = ""
    buttons: dict[str, str] = field(default_factory=dict)  # option value -> element name


@dataclass
class FormItem:
    task: SimTask
    fields: list[FormField]


def _buttons(el: Any, tag: str) -> dict[str, str]:
    out = {}
    for b in el.iter(tag):
        value = b.get("value") or (b.text_content() or "").strip()
        out[value] = b.get("name") or value
    return out


def _read_field(el: Any, name: str) -> FormField | None:
    tag = el.tag
    if tag == "crowd-radio-group" or el.get("data-cb-kind") == "choice":
        buttons = _buttons(el, "crowd-radio-button")
        return FormField(SimField(name, "choice", list(buttons)), "buttons", buttons=buttons)
    if el.get("data-cb-kind") == "multi_choice":
        buttons = _buttons(el, "crowd-checkbox")
        return FormField(SimField(name, "multi_choice", list(buttons)), "buttons", buttons=buttons)
    if tag in ("crowd-text-area", "crowd-input", "textarea", "input"):
        return FormField(
            SimField(name, "text", default=el.get("value") or el.text_content() or ""),
            "text",
            name=el.get("name") or name,
        )
    if tag == "crowd-entity-annotation":
        try:
            labels = [x["label"] for x in json.loads(el.get("labels") or "[]")]
        except (ValueError, KeyError, TypeError):
            labels = []
        return FormField(
            SimField(name, "spans", labels or ["issue"], text=el.get("text") or ""),
            "entities",
            name=el.get("name") or name,
        )
    return None


def _unmarked_fields(form: Any) -> list[FormField]:
    """Every named element of a form without FORMS.md markers, answered at random."""
    out: list[FormField] = []
    for group in form.iter("crowd-radio-group"):
        buttons = _buttons(group, "crowd-radio-button")
        if buttons:
            out.append(
                FormField(SimField(f"radio{len(out)}", "choice", list(buttons)), "buttons", buttons=buttons)
            )
    for box in form.iter("crowd-checkbox"):
        value = box.get("value") or box.get("name") or "on"
        out.append(
            FormField(
                SimField(f"checkbox{len(out)}", "multi_choice", [value]),
                "buttons",
                buttons={value: box.get("name") or value},
            )
        )
    radios: dict[str, list[str]] = {}
    for el in form.iter(
        "input", "select", "textarea", "crowd-input", "crowd-text-area", "crowd-entity-annotation"
    ):
        name = el.get("name")
        if not name:
            continue
        kind = (el.get("type") or "").lower()
        if el.tag == "input" and kind == "radio":
            radios.setdefault(name, []).append(el.get("value") or "on")
        elif el.tag == "select":
            options = [o.get("value") or o.text_content() for o in el.iter("option")]
            out.append(FormField(SimField(name, "choice", options or [""]), "plain", name=name))
        elif el.tag == "input" and kind in ("submit", "hidden", "button", "checkbox"):
            continue
        else:
            ff = _read_field(el, name)
            if ff:
                out.append(ff)
    for name, values in radios.items():
        out.append(FormField(SimField(name, "choice", values), "plain", name=name))
    return out


def read_html_form(html: str) -> list[FormItem]:
    """The items of a crowd-form page, as a worker reads them."""
    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return [FormItem(SimTask("i0", {}, []), [])]
    sections = doc.xpath("//*[@data-cb-item]")
    if not sections:
        forms = doc.xpath("//crowd-form") or [doc]
        text = " ".join(forms[0].text_content().split())
        fields = _unmarked_fields(forms[0])
        return [FormItem(SimTask("i0", {"text": text}, [f.field for f in fields]), fields)]
    items = []
    for sec in sections:
        inputs = {el.get("data-cb-input"): el.text_content() for el in sec.xpath(".//*[@data-cb-input]")}
        fields = [
            ff for el in sec.xpath(".//*[@data-cb-field]") if (ff := _read_field(el, el.get("data-cb-field")))
        ]
        items.append(FormItem(SimTask(sec.get("data-cb-item"), inputs, [f.field for f in fields]), fields))
    return items


def task_answers(items: list[FormItem], answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The object crowd-form submits for these answers (FORMS.md shapes)."""
    out: dict[str, Any] = {}
    for item, answer in zip(items, answers, strict=True):
        for ff in item.fields:
            value = answer.get(ff.field.name)
            if ff.style == "buttons":
                chosen = set(value) if isinstance(value, list) else {value}
                for option, name in ff.buttons.items():
                    out[name] = {option: option in chosen}
            elif ff.style == "entities":
                out[ff.name] = {
                    "entities": [
                        {
                            "label": s.get("label", "issue"),
                            "startOffset": int(s["start"]),
                            "endOffset": int(s["end"]),
                        }
                        for s in value or []
                    ]
                }
            else:
                out[ff.name] = "" if value is None else str(value)
    return out


def form_answers_xml(answers: list[tuple[str, list[str] | None, str | None]]) -> str:
    """QuestionFormAnswers XML: one ``(question id, selections, free text)`` per Answer."""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<QuestionFormAnswers xmlns="{NS_ANSWERS}">']
    for qid, selections, text in answers:
        parts.append(f"<Answer><QuestionIdentifier>{escape(qid)}</QuestionIdentifier>")
        if selections is not None:
            parts.extend(f"<SelectionIdentifier>{escape(s)}</SelectionIdentifier>" for s in selections)
        else:
            parts.append(f"<FreeText>{escape(text or '')}</FreeText>")
        parts.append("</Answer>")
    parts.append("</QuestionFormAnswers>")
    return "".join(parts)


def crowd_form_answer_xml(obj: dict[str, Any]) -> str:
    return form_answers_xml([("taskAnswers", None, json.dumps([obj]))])


# --------------------------------------------------------------------------- QuestionForm tests
def _key_options(answer_key: str | None) -> dict[str, list[tuple[frozenset[str], Decimal]]]:
    if not answer_key:
        return {}
    root = _parse(answer_key, "AnswerKey")
    q = f"{{{NS_KEY}}}"
    out: dict[str, list[tuple[frozenset[str], Decimal]]] = {}
    for question in root.iter(q + "Question"):
        qid = (question.findtext(q + "QuestionIdentifier") or "").strip()
        out[qid] = [
            (
                frozenset((s.text or "").strip() for s in opt.iter(q + "SelectionIdentifier")),
                Decimal((opt.findtext(q + "AnswerScore") or "0").strip()),
            )
            for opt in question.iter(q + "AnswerOption")
        ]
    return out


def read_question_form(xml: str, answer_key: str | None = None) -> list[SimTask]:
    """One task per QuestionForm question; ``truth`` is the answer key's best-scoring option."""
    root = _parse(xml, "QuestionForm")
    q = f"{{{NS_FORM}}}"
    key = _key_options(answer_key)
    tasks = []
    for question in root.iter(q + "Question"):
        qid = (question.findtext(q + "QuestionIdentifier") or "").strip()
        content = question.find(q + "QuestionContent")
        text = " ".join("".join(content.itertext()).split()) if content is not None else ""
        selection = question.find(f"{q}AnswerSpecification/{q}SelectionAnswer")
        truth = None
        if selection is not None:
            options = [
                (s.findtext(q + "SelectionIdentifier") or "").strip() for s in selection.iter(q + "Selection")
            ]
            multi = int(selection.findtext(q + "MaxSelectionCount") or 1) > 1
            f = SimField("answer", "multi_choice" if multi else "choice", options)
            if key.get(qid):
                best = max(key[qid], key=lambda o: o[1])[0]
                truth = {"answer": sorted(best) if multi else next(iter(best), "")}
        else:
            f = SimField("answer", "text")
        tasks.append(SimTask(qid, {"question": text}, [f], truth))
    return tasks


def question_form_answer(tasks: list[SimTask], answers: list[dict[str, Any]]) -> str:
    rows: list[tuple[str, list[str] | None, str | None]] = []
    for task, answer in zip(tasks, answers, strict=True):
        f = task.fields[0]
        value = answer.get("answer")
        if f.kind == "choice":
            rows.append((task.item, [str(value)], None))
        elif f.kind == "multi_choice":
            rows.append((task.item, [str(v) for v in value or []], None))
        else:
            rows.append((task.item, None, str(value or "")))
    return form_answers_xml(rows)


def score(answer_key: str, answers_xml: str) -> int:
    """The qualification value an AnswerKey gives a QuestionFormAnswers document."""
    key = _key_options(answer_key)
    root = _parse(answer_key, "AnswerKey")
    k = f"{{{NS_KEY}}}"
    defaults = {
        (qq.findtext(k + "QuestionIdentifier") or "").strip(): Decimal(qq.findtext(k + "DefaultScore") or 0)
        for qq in root.iter(k + "Question")
    }
    a = f"{{{NS_ANSWERS}}}"
    given = {
        (ans.findtext(a + "QuestionIdentifier") or "").strip(): frozenset(
            (s.text or "").strip() for s in ans.iter(a + "SelectionIdentifier")
        )
        for ans in _parse(answers_xml, "Answer").iter(a + "Answer")
    }
    total = Decimal(0)
    for qid, options in key.items():
        chosen = given.get(qid)
        total += next((pts for sel, pts in options if sel == chosen), defaults.get(qid, Decimal(0)))
    mapping = root.find(k + "QualificationValueMapping")
    if mapping is None:
        return int(total)
    pct = mapping.find(k + "PercentageMapping")
    if pct is not None:
        maximum = Decimal(pct.findtext(k + "MaximumSummedScore") or 1)
        return int((total * 100 / maximum).quantize(Decimal(1), ROUND_HALF_UP)) if maximum else 0
    scale = mapping.find(k + "ScaleMapping")
    if scale is not None:
        return int(
            (total * Decimal(scale.findtext(k + "SummedScoreMultiplier") or 1)).quantize(
                Decimal(1), ROUND_HALF_UP
            )
        )
    rng = mapping.find(k + "RangeMapping")
    if rng is not None:
        for r in rng.iter(k + "SummedScoreRange"):
            if (
                Decimal(r.findtext(k + "InclusiveLowerBound"))
                <= total
                <= Decimal(r.findtext(k + "InclusiveUpperBound"))
            ):
                return int(r.findtext(k + "QualificationValue"))
        return int(rng.findtext(k + "OutOfRangeQualificationValue") or 0)
    return int(total)
