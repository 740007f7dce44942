"""MTurk answer payloads parsed into the neutral ``{item_key: {field: value}}``.

MTurk hands back every answer as QuestionFormAnswers XML. A crowd-form (HTMLQuestion) page has
one ``<Answer>`` named ``taskAnswers`` whose FreeText is the JSON crowd-html-elements produce
(FORMS.md); a plain QuestionForm has one ``<Answer>`` per question with ``FreeText`` or
``SelectionIdentifier``. ``parse_answer`` never raises: a payload it cannot read comes back as
``AnswerParseError`` for the caller to record next to the verbatim payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from typing import Any

from lxml import etree

FORM_KEY = "_form"  # item key for QuestionForm answers whose identifier names no page item

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_ITEM_FIELD = re.compile(r"i(\d+)__(.+)", re.DOTALL)


class AnswerParseError(ValueError):
    """The payload is not one of the shapes MTurk delivers."""


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def read_question_form_answers(xml: str) -> list[tuple[str, str | list[str]]]:
    """``[(QuestionIdentifier, FreeText or [SelectionIdentifier...])]`` in document order."""
    try:
        root = etree.fromstring(xml.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise AnswerParseError(f"answer is not XML: {exc}") from exc
    if root.getroottree().docinfo.internalDTD is not None or root.getroottree().docinfo.doctype:
        raise AnswerParseError("answer carries a DTD, which MTurk never sends")
    if _local(root.tag) != "QuestionFormAnswers":
        raise AnswerParseError(f"unexpected root element {_local(root.tag)!r}")
    out: list[tuple[str, str | list[str]]] = []
    for answer in root:
        if _local(answer.tag) != "Answer":
            continue
        qid, free, selections = None, None, []
        for child in answer:
            name = _local(child.tag)
            if name == "QuestionIdentifier":
                qid = child.text or ""
            elif name == "FreeText":
                free = child.text or ""
            elif name in ("SelectionIdentifier", "OtherSelectionText"):
                selections.append(child.text or "")
        if qid is None:
            raise AnswerParseError("an <Answer> without <QuestionIdentifier>")
        out.append((qid, free if free is not None else selections))
    if not out:
        raise AnswerParseError("QuestionFormAnswers without any <Answer>")
    return out


def _task_answers(free_text: str, item_keys: Sequence[str],
                  multi_fields: Collection[str]) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(free_text)
    except json.JSONDecodeError as exc:
        raise AnswerParseError(f"taskAnswers is not JSON: {exc}") from exc
    if isinstance(data, list):
        if len(data) != 1 or not isinstance(data[0], dict):
            raise AnswerParseError("taskAnswers must be a one-element list holding an object")
        data = data[0]
    if not isinstance(data, dict):
        raise AnswerParseError("taskAnswers must be an object")

    out: dict[str, dict[str, Any]] = {}
    chosen: dict[tuple[str, str], list[str]] = {}  # (item, field) -> options ticked, for Choice/Multi
    for key, value in data.items():
        m = _ITEM_FIELD.fullmatch(key)
        if not m:
            continue  # crowd-form may add its own keys; only ours (i{k}__...) matter
        k, rest = int(m.group(1)), m.group(2)
        if k >= len(item_keys):
            raise AnswerParseError(f"answer for item i{k} but the page has {len(item_keys)} items")
        item = item_keys[k]
        if isinstance(value, str):
            out.setdefault(item, {})[rest] = value
        elif isinstance(value, dict) and "entities" in value:
            entities = value["entities"] or []
            try:
                spans = [{"start": int(e["startOffset"]), "end": int(e["endOffset"]),
                          "label": str(e["label"])} for e in entities]
            except (KeyError, TypeError, ValueError) as exc:
                raise AnswerParseError(f"malformed entity in {key}: {exc}") from exc
            out.setdefault(item, {})[rest] = spans
        elif isinstance(value, dict):
            field = rest.split("__", 1)[0]
            ticked = chosen.setdefault((item, field), [])
            ticked.extend(str(option) for option, on in value.items() if on is True)
            out.setdefault(item, {})
        else:
            raise AnswerParseError(f"unexpected value type for {key}: {type(value).__name__}")

    for (item, field), ticked in chosen.items():
        k = item_keys.index(item)
        if f"i{k}__{field}" in multi_fields:
            out[item][field] = ticked
        elif len(ticked) > 1:
            raise AnswerParseError(f"single-choice field i{k}__{field} has several values {ticked}")
        else:
            out[item][field] = ticked[0] if ticked else None
    return out


def parse_answer(xml: str, item_keys: Sequence[str],
                 multi_fields: Collection[str] = ()) -> dict[str, dict[str, Any]]:
    """Parse an Assignment's ``Answer``. ``item_keys[k]`` is the key of the page's item ``i{k}``;
    ``multi_fields`` names the MultiChoice fields (``i{k}__{field}``), whose value is a list.

    QuestionForm answers whose identifier is ``i{k}__{field}`` land on that item; any other
    identifier lands under ``FORM_KEY``. One SelectionIdentifier gives a string, several a list.
    """
    answers = read_question_form_answers(xml)
    if len(answers) == 1 and answers[0][0] == "taskAnswers" and isinstance(answers[0][1], str):
        return _task_answers(answers[0][1], item_keys, multi_fields)
    out: dict[str, dict[str, Any]] = {}
    for qid, value in answers:
        if isinstance(value, list) and len(value) == 1 and qid not in multi_fields:
            value = value[0]
        m = _ITEM_FIELD.fullmatch(qid)
        if m and int(m.group(1)) < len(item_keys):
            out.setdefault(item_keys[int(m.group(1))], {})[m.group(2)] = value
        else:
            out.setdefault(FORM_KEY, {})[qid] = value
    return out
