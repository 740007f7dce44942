"""MTurk question and answer documents: checking what requesters send, reading it as a worker
would, and writing the answers MTurk records for it.

- ``check_question(xml)`` / ``check_answer_key(xml)``: size, well-formedness, namespace and XSD
  validation (``xmlschema``) against MTurk's schemas found in ``$CROWD_MTURK_XSD_DIR`` or
  ``<repo>/../shared/data/mturk-xsd`` (skipped when neither exists). ``check_question`` returns
  the document's kind (``HTML``, ``EXTERNAL`` or ``FORM``).
- ``read_hit_question(xml) -> Page`` / ``fetch_external_page(...) -> Page``: what a worker sees
  and how the page hands its answers in (``Page.style``): a crowd-html-elements form
  (``crowd-form``: one ``taskAnswers`` JSON answer, FORMS.md), a plain HTML form posting to
  externalSubmit (``html-form``: one FreeText answer per posted field), or a QuestionForm.
- ``answer_xml(page, answers, hit_id, worker_id)``: the QuestionFormAnswers MTurk records.
- ``read_question_form(xml, answer_key)`` and ``score(answer_key, answers_xml)``: screening tests
  as QuestionForm + AnswerKey, scored per the AnswerKey's rules.

QuestionForm comes in two versions: 2017-11-06 (current) is 2005-10-01 without
``FileUploadAnswer`` and ``Application``, which MTurk stopped accepting in either version on
2017-12-12 (AWS, "Data Structure Schema Locations"). Both are validated against the 2005 schema
with those elements removed, derived here rather than shipped as a second copy.
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

import httpx
import lxml.html
from lxml import etree

from connectors.local.crowd import SimField, SimTask
from connectors.local.mturk.wire import invalid

MAX_QUESTION_BYTES = 65535
_BASE = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
NS_HTML = _BASE + "2011-11-11/HTMLQuestion.xsd"
NS_EXTERNAL = _BASE + "2006-07-14/ExternalQuestion.xsd"
NS_FORM = _BASE + "2005-10-01/QuestionForm.xsd"
NS_FORM_2017 = _BASE + "2017-11-06/QuestionForm.xsd"
NS_KEY = _BASE + "2005-10-01/AnswerKey.xsd"
NS_ANSWERS = _BASE + "2005-10-01/QuestionFormAnswers.xsd"
SCHEMA_FILES = {
    NS_HTML: "HTMLQuestion_20111111.xsd",
    NS_EXTERNAL: "ExternalQuestion_20060714.xsd",
    NS_FORM: "QuestionForm_20051001.xsd",
    NS_FORM_2017: "QuestionForm_20051001.xsd",  # minus RETIRED_FORM_ELEMENTS, in its own namespace
    NS_KEY: "AnswerKey_20051001.xsd",
    NS_ANSWERS: "QuestionFormAnswers_20051001.xsd",
}
FORM_NAMESPACES = (NS_FORM_2017, NS_FORM)
RETIRED_FORM_ELEMENTS = ("FileUploadAnswer", "Application")
HTML, EXTERNAL, FORM = "HTMLQuestion", "ExternalQuestion", "QuestionForm"
KINDS = {NS_HTML: HTML, NS_EXTERNAL: EXTERNAL, NS_FORM: FORM, NS_FORM_2017: FORM}
_XS = "{http://www.w3.org/2001/XMLSchema}"


def xsd_dir() -> Path | None:
    env = os.environ.get("CROWD_MTURK_XSD_DIR")
    if env:
        return Path(env) if Path(env).is_dir() else None
    repo = Path(__file__).resolve().parents[3]
    found = (repo / ".." / "shared" / "data" / "mturk-xsd").resolve()
    return found if found.is_dir() else None


def derived_form_schema(source: str, namespace: str) -> str:
    """The QuestionForm 2005-10-01 schema text without the retired elements (and the types only
    they used), in ``namespace``."""
    root = etree.fromstring(source.encode("utf-8"))
    for el in [e for e in root.iter(_XS + "element") if e.get("name") in RETIRED_FORM_ELEMENTS]:
        el.getparent().remove(el)
    while True:  # drop the named types nothing refers to any more
        used = {v.split(":")[-1] for e in root.iter() for a in ("type", "base") if (v := e.get(a))}
        unused = [
            t
            for t in root
            if t.tag in (_XS + "complexType", _XS + "simpleType") and t.get("name") not in used
        ]
        if not unused:
            break
        for t in unused:
            root.remove(t)
    return etree.tostring(root, encoding="unicode").replace(NS_FORM, namespace)


@cache
def _schema(directory: str, namespace: str) -> Any:
    import xmlschema

    path = Path(directory) / SCHEMA_FILES[namespace]
    if namespace in FORM_NAMESPACES:
        return xmlschema.XMLSchema(derived_form_schema(path.read_text(encoding="utf-8"), namespace))
    return xmlschema.XMLSchema(str(path))


def schema_for(namespace: str) -> Any | None:
    """The compiled XSD for a namespace, or None when the schema folder is absent."""
    d = xsd_dir()
    return _schema(str(d), namespace) if d else None


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
        name = SCHEMA_FILES[namespace]
        if namespace in FORM_NAMESPACES:
            name += f" as {namespace.removeprefix(_BASE)}, without {' and '.join(RETIRED_FORM_ELEMENTS)}"
        retired = [n for n in RETIRED_FORM_ELEMENTS if next(root.iter(f"{{{namespace}}}{n}"), None) is not None]
        if namespace in FORM_NAMESPACES and retired:
            reason = f"{retired[0]} is no longer supported in any QuestionForm version ({reason})"
        raise invalid(
            "There was an error parsing the XML question or answer data in your request. Please make sure "
            f"the data is well-formed and validates against the appropriate schema. Details: {what} does not "
            f"validate against {name}: {reason}"
        )


def _ns(root: etree._Element) -> str:
    return etree.QName(root).namespace or ""


def check_question(xml: str, what: str = "Question") -> str:
    """Validate a HIT's or test's question document; returns its kind (HTML, EXTERNAL or FORM)."""
    root = _parse(xml, what)
    ns = _ns(root)
    if ns not in KINDS:
        raise invalid(f"{what} must be an HTMLQuestion, ExternalQuestion or QuestionForm (namespace {ns!r})")
    _validate_xsd(root, ns, what)
    if ns == NS_HTML:
        content = root.findtext(f"{{{NS_HTML}}}HTMLContent")
        if not content or not content.strip():
            raise invalid(f"{what}: HTMLQuestion needs a non-empty HTMLContent")
        height = (root.findtext(f"{{{NS_HTML}}}FrameHeight") or "").strip()
        if not height.isdigit():
            raise invalid(f"{what}: FrameHeight must be a non-negative integer (0 = full window)")
    return KINDS[ns]


def check_answer_key(xml: str) -> None:
    root = _parse(xml, "AnswerKey")
    if _ns(root) != NS_KEY:
        raise invalid("AnswerKey must be in the AnswerKey 2005-10-01 namespace")
    _validate_xsd(root, NS_KEY, "AnswerKey")


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


# --------------------------------------------------------------------------- pages and what they post
CROWD_FORM, HTML_FORM = "crowd-form", "html-form"
NOT_POSTED = {"submit", "button", "reset", "image", "file"}  # input types a submitted form leaves out
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
FETCH_TIMEOUT_S = 3.0


@dataclass
class Page:
    """One HIT page as its worker sees it, and how it is handed in: ``style`` is CROWD_FORM
    (crowd-form posts one ``taskAnswers`` JSON), HTML_FORM (a plain form: MTurk records one
    FreeText per posted field) or FORM (a QuestionForm: one Answer per question)."""

    style: str
    items: list[FormItem]

    @property
    def tasks(self) -> list[SimTask]:
        return [item.task for item in self.items]


def _html_form_fields(form: Any) -> list[FormField]:
    """The fields a plain form posts, one per name in document order. ``assignmentId`` is left out:
    MTurk takes it as the assignment's id, not as an answer. Hidden fields post their own value."""
    groups: dict[str, list[Any]] = {}
    for el in form.iter("input", "select", "textarea"):
        name = el.get("name")
        kind = (el.get("type") or "text").lower() if el.tag == "input" else el.tag
        if name and name != "assignmentId" and el.get("disabled") is None and kind not in NOT_POSTED:
            groups.setdefault(name, []).append((kind, el))
    out = []
    for name, els in groups.items():
        kind, el = els[0]
        if kind in ("radio", "checkbox"):
            values = [e.get("value") or "on" for k, e in els if k == kind]
            f = SimField(name, "choice" if kind == "radio" else "multi_choice", values)
        elif kind == "select":
            options = [o.get("value", o.text_content().strip()) for o in el.iter("option")]
            f = SimField(name, "multi_choice" if el.get("multiple") is not None else "choice", options or [""])
        elif kind in ("number", "range") and _int_range(el):
            f = SimField(name, "choice", _int_range(el))
        else:
            f = SimField(name, "text", default=(el.text_content() if kind == "textarea" else el.get("value")) or "")
        out.append(FormField(f, "hidden" if kind == "hidden" else "post", name=name))
    return out


def _int_range(el: Any) -> list[str]:
    try:
        low, high = int(el.get("min", "")), int(el.get("max", ""))
    except ValueError:
        return []
    return [str(v) for v in range(low, high + 1)] if 0 <= high - low <= 100 else []


def read_html_page(html: str) -> Page:
    """A page as a worker reads it: a crowd-form (with or without FORMS.md markers) or a plain
    form, preferring the one that posts to externalSubmit."""
    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return Page(HTML_FORM, [])
    if doc.xpath("//crowd-form | //*[@data-cb-item]"):
        return Page(CROWD_FORM, read_html_form(html))
    forms = doc.xpath("//form")
    form = next((f for f in forms if "externalSubmit" in (f.get("action") or "")), forms[0] if forms else doc)
    fields = _html_form_fields(form)
    text = " ".join(form.text_content().split())
    task = SimTask("i0", {"text": text}, [f.field for f in fields if f.style != "hidden"])
    return Page(HTML_FORM, [FormItem(task, fields)])


def read_hit_question(xml: str) -> Page:
    """The page of an HTMLQuestion or QuestionForm HIT (ExternalQuestion: ``fetch_external_page``)."""
    root = _parse(xml, "Question")
    if _ns(root) == NS_HTML:
        return read_html_page(root.findtext(f"{{{NS_HTML}}}HTMLContent") or "")
    if _ns(root) in FORM_NAMESPACES:
        return Page(FORM, [FormItem(t, []) for t in read_question_form(xml)])
    return Page(HTML_FORM, [])


def fetch_external_page(xml: str, ids: dict[str, str]) -> Page:
    """The page an ExternalQuestion shows one assignment's worker: fetched with the query
    parameters MTurk appends (``ids``: assignmentId, hitId, workerId, turkSubmitTo) when it is
    served on this machine; an empty page (so the minimal post) when unreachable."""
    url = (_parse(xml, "Question").findtext(f"{{{NS_EXTERNAL}}}ExternalURL") or "").strip()
    try:
        target = httpx.URL(url)
        if target.host not in LOCAL_HOSTS or target.scheme not in ("http", "https"):
            return Page(HTML_FORM, [])
        response = httpx.get(target.copy_merge_params(ids), timeout=FETCH_TIMEOUT_S, follow_redirects=True)
        response.raise_for_status()
    except (httpx.HTTPError, httpx.InvalidURL):
        return Page(HTML_FORM, [])
    return read_html_page(response.text)


def _posted(page: Page, answers: list[dict[str, Any]]) -> list[tuple[str, list[str] | None, str | None]]:
    """A plain form's post: the answered value per field; several checked boxes of one name are
    joined with ``|`` as MTurk records them, none checked posts nothing."""
    rows: list[tuple[str, list[str] | None, str | None]] = []
    for item, answer in zip(page.items, answers, strict=True):
        for ff in item.fields:
            value = ff.field.default if ff.style == "hidden" else answer.get(ff.field.name)
            if isinstance(value, list):
                value = "|".join(str(v) for v in value) if value else None
            if value is not None:
                rows.append((ff.name, None, str(value)))
    return rows


def answer_xml(page: Page, answers: list[dict[str, Any]], hit_id: str, worker_id: str) -> str:
    """The QuestionFormAnswers MTurk records for a worker's answers to a page. A page that would
    post nothing but ``assignmentId`` (MTurk requires one more field) posts what a minimal
    external page does: the ``hitId`` and ``workerId`` MTurk appended to its URL."""
    if page.style == CROWD_FORM:
        return crowd_form_answer_xml(task_answers(page.items, answers))
    if page.style == FORM:
        return question_form_answer(page.tasks, answers)
    rows = _posted(page, answers) or [("hitId", None, hit_id), ("workerId", None, worker_id)]
    return form_answers_xml(rows)


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
    q = f"{{{_ns(root)}}}"  # either QuestionForm version
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
            default = question.findtext(f"{q}AnswerSpecification/{q}FreeTextAnswer/{q}DefaultText") or ""
            f = SimField("answer", "text", default=default.strip())
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
