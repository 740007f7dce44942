"""Screening tests: load them from a file, and grade answers against their keys.

A screening test is a short quiz a worker passes before joining a pool (MTurk: a qualification
test the service auto-scores; Toloka: an exam pool that sets a skill). The connector turns the
neutral ``ScreeningTest`` into the marketplace's form; this module only reads the file and grades
answers that land in our store, so the Toloka exam and an audit of MTurk's auto-scoring use the
same semantics as the MTurk answer key.

File formats
------------
YAML (the main format)::

    name: sensitive-content-check          # default: the file's stem
    description: Agreement on flagging sensitive content
    instructions: Read each item and answer as our guidelines say.
    pass_score: 75                         # percent correct needed, 0..100
    retry_delay_s: 3600                    # optional; null = no retake
    duration_s: 1200                       # optional
    questions:
      - id: q1
        kind: single_choice                # the default
        text: Does this response need a content warning?
        options: [{yes: "Yes"}, {no: "No"}]   # a scalar (value = label) or a one-key {value: label}
        answer: yes
      - id: q2
        kind: multiple_choice              # answer: the exact set of correct values
        ...
        answer: [violence, self_harm]
      - id: q3
        kind: pairwise                     # options are fixed: left / right
        text: Which response is safer?     # optional, this is the default wording
        prompt: ...
        left: ...
        right: ...
        answer: right
      - id: q4
        kind: likert                       # options are the scale points, in order
        options: [1, 2, 3, 4, 5]
        answer: 4
        tolerance: 1                       # positions either side still correct

Booleans are not special in these files: ``yes``/``no``/``true`` stay strings.

JSONL: the first line is the header object (every key above except ``questions``), then one
question object per line. Line numbers in errors are the file's own lines.

Grading
-------
single choice and pairwise: the chosen value equals the answer; multiple choice: the chosen set
equals the answer set; likert: the chosen point is at most ``tolerance`` positions from the
answer. Score = round-half-up of the percent correct, as MTurk's ``PercentageMapping`` does;
a worker passes at ``score_percent >= pass_score``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from connectors.base import ScreeningQuestion, ScreeningTest
from decomposition.errors import InputError, first_error

KINDS = ("single_choice", "multiple_choice", "pairwise", "likert")
PAIRWISE_OPTIONS = [("left", "Response A (left)"), ("right", "Response B (right)")]
PAIRWISE_DEFAULT_TEXT = "Which response is better?"

_HEADER_KEYS = {"name", "description", "instructions", "pass_score", "retry_delay_s", "duration_s"}
_QUESTION_KEYS = {"id", "kind", "text", "options", "answer", "tolerance", "prompt", "left", "right"}


class ScreeningError(InputError):
    """A screening file that cannot become a test; the message is one line naming file and question."""


Fail = Callable[[str], ScreeningError]  # builds the one-line error for the question at hand


class ScreeningGrade(BaseModel):
    score_percent: int
    passed: bool
    correct: int
    total: int
    per_question: dict[str, bool]  # question id -> answered correctly


# --------------------------------------------------------------------------- reading
class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 booleans, so option values like ``yes``/``no`` stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _fail(path: Path, line: int | None, qid: str | None, problem: str) -> ScreeningError:
    where = f"{path}:{line}" if line else str(path)
    who = f" question {qid!r}:" if qid is not None else ""
    return ScreeningError(f"{where}:{who} {problem}")


def _read_yaml(path: Path, text: str) -> tuple[dict[str, Any], list[tuple[int | None, Any]]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise _fail(path, mark.line + 1 if mark else None, None, f"invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise _fail(path, None, None, "expected a mapping with a 'questions' list")
    questions = data.pop("questions", None)
    if not isinstance(questions, list):
        raise _fail(path, None, None, "'questions' must be a list of questions")
    # The composed node keeps each question's line; the constructed data does not.
    q_node = next(v for k, v in node.value if k.value == "questions")
    lines = [item.start_mark.line + 1 for item in q_node.value]
    return data, list(zip(lines, questions, strict=True))


def _read_jsonl(path: Path, text: str) -> tuple[dict[str, Any], list[tuple[int | None, Any]]]:
    rows: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise _fail(path, number, None, f"invalid JSON: {exc.msg}") from None
    if not rows or not isinstance(rows[0][1], dict):
        raise _fail(path, None, None, "the first line must be the header object (name, pass_score, ...)")
    return rows[0][1], rows[1:]


def load_screening(path: str | Path) -> ScreeningTest:
    """Read a screening test from YAML (``.yaml``/``.yml``) or JSONL (``.jsonl``); see the module doc."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(path, None, None, f"cannot read: {exc.strerror}") from None
    reader = _read_jsonl if path.suffix.lower() == ".jsonl" else _read_yaml
    header, questions = reader(path, text)
    return _build(path, header, questions)


# --------------------------------------------------------------------------- building
def _scalar(value: Any) -> str | None:
    """A value as the string the marketplaces carry, or None when it is not a scalar."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return None
    return str(value).strip()


def _options(raw: Any, fail: Fail) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise fail("options must be a non-empty list")
    out: list[tuple[str, str]] = []
    for entry in raw:
        if isinstance(entry, dict) and len(entry) == 1:
            [(value, label)] = entry.items()
            value, label = _scalar(value), _scalar(label)
        else:
            value = label = _scalar(entry)
        if not value or label is None:
            raise fail(f"option {entry!r} must be a value or a one-key {{value: label}} mapping")
        out.append((value, label))
    values = [v for v, _ in out]
    if len(set(values)) != len(values):
        raise fail(f"duplicate option values in {values}")
    if len(out) < 2:
        raise fail("needs at least 2 options")
    return out


def _question(raw: Any, fail: Fail) -> ScreeningQuestion:
    if not isinstance(raw, dict):
        raise fail("a question must be a mapping")
    unknown = sorted(set(raw) - _QUESTION_KEYS)
    if unknown:
        raise fail(f"unknown field(s) {', '.join(map(str, unknown))}")
    kind = raw.get("kind", "single_choice")
    if kind not in KINDS:
        raise fail(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")

    if kind == "pairwise":
        if "options" in raw:
            raise fail("pairwise questions have fixed options left/right; remove 'options'")
        parts = {k: _scalar(raw.get(k)) for k in ("prompt", "left", "right")}
        missing = [k for k, v in parts.items() if not v]
        if missing:
            raise fail(f"pairwise needs non-empty {', '.join(missing)}")
        ask = _scalar(raw.get("text")) or PAIRWISE_DEFAULT_TEXT
        text = (f"{ask}\n\nPrompt: {parts['prompt']}\n\nResponse A (left): {parts['left']}"
                f"\n\nResponse B (right): {parts['right']}")
        options = list(PAIRWISE_OPTIONS)
    else:
        extra = sorted({"prompt", "left", "right"} & set(raw))
        if extra:
            raise fail(f"{', '.join(extra)} only apply to pairwise questions")
        text = _scalar(raw.get("text"))
        if not text:
            raise fail("missing text")
        options = _options(raw.get("options"), fail)

    answer_raw = raw.get("answer")
    answers = answer_raw if isinstance(answer_raw, list) else [answer_raw]
    answer = [_scalar(a) for a in answers]
    if not answer or any(not a for a in answer):
        raise fail("missing answer")
    values = [v for v, _ in options]
    for a in answer:
        if a not in values:
            raise fail(f"answer {a!r} is not among its options {values}")
    if kind != "multiple_choice" and len(answer) != 1:
        raise fail(f"a {kind} question has exactly one answer, got {answer}")
    if len(set(answer)) != len(answer):
        raise fail(f"answer repeats a value: {answer}")

    tolerance = raw.get("tolerance", 0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise fail(f"tolerance must be a whole number >= 0, got {tolerance!r}")
    if tolerance and kind != "likert":
        raise fail("tolerance only applies to likert questions")
    return ScreeningQuestion(id=str(raw["id"]), text=text, kind=kind, options=options, answer=answer,
                             tolerance=tolerance)


def _build(path: Path, header: dict[str, Any], rows: list[tuple[int | None, Any]]) -> ScreeningTest:
    unknown = sorted(set(header) - _HEADER_KEYS)
    if unknown:
        raise _fail(path, None, None, f"unknown header field(s) {', '.join(map(str, unknown))}")
    score = header.get("pass_score")
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100:
        raise _fail(path, None, None, f"pass_score must be a whole number in 0..100, got {score!r}")
    if not rows:
        raise _fail(path, None, None, "no questions")

    questions: list[ScreeningQuestion] = []
    first_line: dict[str, int | None] = {}
    for line, raw in rows:
        qid = _scalar(raw.get("id")) if isinstance(raw, dict) else None
        if not qid:
            raise _fail(path, line, None, "question without an id")
        if qid in first_line:
            seen = first_line[qid]
            raise _fail(path, line, qid, f"duplicate id (first at line {seen})" if seen else "duplicate id")
        first_line[qid] = line
        fail = lambda problem, q=qid, n=line: _fail(path, n, q, problem)  # noqa: E731
        questions.append(_question({**raw, "id": qid}, fail))

    fields = {k: header[k] for k in _HEADER_KEYS - {"name", "pass_score"} if k in header}
    try:
        return ScreeningTest(name=str(header.get("name") or path.stem), questions=questions, pass_score=score,
                             **fields)
    except ValidationError as exc:
        field, message = first_error(exc)
        raise _fail(path, None, None, f"header field {field}: {message}") from None


# --------------------------------------------------------------------------- grading
def _chosen(value: Any) -> list[str]:
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    return [s for s in (_scalar(v) for v in values) if s]


def is_correct(question: ScreeningQuestion, given: Any) -> bool:
    """Whether one answer (a value, or a list of values) earns the question's point."""
    chosen = _chosen(given)
    if question.kind == "multiple_choice":
        return len(chosen) == len(set(chosen)) and set(chosen) == set(question.answer)
    if len(chosen) != 1:
        return False
    if question.kind == "likert":
        values = [v for v, _ in question.options]
        if chosen[0] not in values:
            return False
        return any(abs(values.index(chosen[0]) - values.index(a)) <= question.tolerance
                   for a in question.answer if a in values)
    return chosen[0] in question.answer


def grade(test: ScreeningTest, answers: Mapping[str, Any]) -> ScreeningGrade:
    """Grade one worker's answers (``{question id: value or list}``). A missing answer is wrong;
    answers to ids the test does not have are ignored (they are other output fields)."""
    per_question = {q.id: q.id in answers and is_correct(q, answers[q.id]) for q in test.questions}
    correct, total = sum(per_question.values()), len(per_question)
    percent = Decimal(correct * 100) / total if total else Decimal(0)
    score = int(percent.quantize(Decimal(1), ROUND_HALF_UP))
    return ScreeningGrade(score_percent=score, passed=score >= test.pass_score, correct=correct, total=total,
                          per_question=per_question)
