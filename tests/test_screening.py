"""Screening tests: the example files load, grading follows the answer-key semantics (likert
tolerance, multiple-choice sets), bad files fail with one line naming the question, and a loaded
test goes through the MTurk connector's own rendering and the local server's scoring unchanged."""

from __future__ import annotations

import itertools
import json
import random
import textwrap
from pathlib import Path

import pytest

from connectors.base import ScreeningTest
from decomposition.errors import InputError
from decomposition.screening import ScreeningError, grade, load_screening

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "screening"
XSD_DIR = REPO / "../shared/data/mturk-xsd"

MIXED = """\
name: mixed
description: One question of each kind
pass_score: 75
questions:
  - id: single
    text: Is the sky blue?
    options: [{yes: "Yes"}, {no: "No"}]
    answer: yes
  - id: multi
    kind: multiple_choice
    text: Which are primes?
    options: [2, 3, 4, 9]
    answer: [3, 2]
  - id: pair
    kind: pairwise
    prompt: "2+2?"
    left: "<b>4</b> & done"
    right: "5"
    answer: left
  - id: rate
    kind: likert
    text: Rate it
    options: [1, 2, 3, 4, 5]
    answer: 4
    tolerance: 1
"""


def write(tmp_path: Path, text: str, name: str = "quiz.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- examples
@pytest.mark.parametrize("name", ["sensitive", "ranking"])
def test_examples_load_as_connector_types(name):
    test = load_screening(EXAMPLES / f"{name}.yaml")
    assert isinstance(test, ScreeningTest)
    assert ScreeningTest.model_validate(test.model_dump()) == test  # survives the boundary round trip
    assert 6 <= len(test.questions) <= 10 and 70 <= test.pass_score <= 80
    assert len({q.id for q in test.questions}) == len(test.questions)
    for q in test.questions:
        values = [v for v, _ in q.options]
        assert q.answer and set(q.answer) <= set(values)
    # a worker who gives every expected answer passes, one who picks the other side everywhere fails
    expected = {q.id: q.answer if q.kind == "multiple_choice" else q.answer[0] for q in test.questions}
    perfect = grade(test, expected)
    assert perfect.passed and perfect.score_percent == 100
    contrary = {q.id: next(v for v, _ in reversed(q.options) if v not in q.answer) for q in test.questions
                if q.kind != "likert"}
    assert not grade(test, contrary).passed


def test_ranking_example_has_pairwise_and_tolerant_likert():
    test = load_screening(EXAMPLES / "ranking.yaml")
    kinds = [q.kind for q in test.questions]
    assert kinds.count("pairwise") >= 5 and 1 <= kinds.count("likert") <= 2
    assert all(q.tolerance == 1 for q in test.questions if q.kind == "likert")


def test_pairwise_text_shows_prompt_and_both_responses_unescaped():
    q = {q.id: q for q in load_screening(EXAMPLES / "sensitive.yaml").questions}["safer_chemicals"]
    assert q.options == [("left", "Response A (left)"), ("right", "Response B (right)")]
    for part in ("Which response is safer?", "bleach and ammonia", "1:1 ratio", "chloramine gas"):
        assert part in q.text


def test_mixed_file_normalises_values(tmp_path):
    test = load_screening(write(tmp_path, MIXED))
    by_id = {q.id: q for q in test.questions}
    assert by_id["single"].options == [("yes", "Yes"), ("no", "No")]  # YAML 1.1 booleans stay words
    assert by_id["multi"].answer == ["3", "2"] and by_id["multi"].options[0] == ("2", "2")
    assert "<b>4</b> & done" in by_id["pair"].text  # kept as text; the connector escapes it
    assert by_id["rate"].tolerance == 1
    assert test.name == "mixed" and test.retry_delay_s == 3600  # connector default kept


# --------------------------------------------------------------------------- grading
@pytest.mark.parametrize(("answers", "correct", "score", "passed"), [
    ({"single": "yes", "multi": ["2", "3"], "pair": "left", "rate": "4"}, 4, 100, True),
    ({"single": "yes", "multi": ["3", "2"], "pair": "left", "rate": "5"}, 4, 100, True),  # 5 is near 4
    ({"single": "yes", "multi": [2, 3], "pair": "left", "rate": 3}, 4, 100, True),  # ints from JSON
    ({"single": "yes", "multi": ["2", "3"], "pair": "left", "rate": "2"}, 3, 75, True),  # 2 is two away
    ({"single": "yes", "multi": ["2"], "pair": "left", "rate": "4"}, 3, 75, True),  # subset is wrong
    ({"single": "yes", "multi": ["2", "3", "9"], "pair": "left"}, 2, 50, False),  # superset
    ({"single": ["yes"], "multi": ["2", "3"], "pair": "right", "rate": "6"}, 2, 50, False),  # 6 not a point
    ({"single": ["yes", "no"], "pair": "left", "extra_field": "x"}, 1, 25, False),  # two picks for one
    ({}, 0, 0, False),
])
def test_grade_hand_computed(tmp_path, answers, correct, score, passed):
    result = grade(load_screening(write(tmp_path, MIXED)), answers)
    assert (result.correct, result.total, result.score_percent, result.passed) == (correct, 4, score, passed)
    assert sum(result.per_question.values()) == correct and set(result.per_question) == {
        "single", "multi", "pair", "rate"}


def test_score_rounds_half_up_and_pass_is_inclusive(tmp_path):
    questions = "\n".join(f"  - {{id: q{i}, text: t, options: [a, b], answer: a}}" for i in range(8))
    test = load_screening(write(tmp_path, f"description: d\npass_score: 63\nquestions:\n{questions}\n"))
    five = {f"q{i}": "a" for i in range(5)}  # 5/8 = 62.5% -> 63
    assert grade(test, five).score_percent == 63 and grade(test, five).passed
    test.pass_score = 64
    assert not grade(test, five).passed


def test_likert_tolerance_zero_is_exact(tmp_path):
    test = load_screening(write(tmp_path, MIXED))
    test.questions[3].tolerance = 0
    assert not grade(test, {"rate": "5"}).per_question["rate"]
    assert grade(test, {"rate": "4"}).per_question["rate"]


# --------------------------------------------------------------------------- bad input
BAD = [
    ("answer_not_option", "id: q2, text: t, options: [a, b], answer: c", "q2", "'c' is not among"),
    ("multi_answer_not_option", "id: q2, kind: multiple_choice, text: t, options: [a, b], answer: [a, z]",
     "q2", "'z' is not among"),
    ("empty_options", "id: q2, text: t, options: [], answer: a", "q2", "options must be a non-empty"),
    ("one_option", "id: q2, text: t, options: [a], answer: a", "q2", "at least 2 options"),
    ("unknown_kind", "id: q2, kind: essay, text: t, options: [a, b], answer: a", "q2", "unknown kind"),
    ("duplicate_id", "id: q1, text: t, options: [a, b], answer: a", "q1", "duplicate id (first at line 4)"),
    ("two_answers_single", "id: q2, text: t, options: [a, b], answer: [a, b]", "q2", "exactly one answer"),
    ("missing_answer", "id: q2, text: t, options: [a, b]", "q2", "missing answer"),
    ("tolerance_on_choice", "id: q2, text: t, options: [a, b], answer: a, tolerance: 1", "q2",
     "only applies to likert"),
    ("negative_tolerance", "id: q2, kind: likert, text: t, options: [1, 2], answer: 1, tolerance: -1", "q2",
     "tolerance must be"),
    ("pairwise_without_right", "id: q2, kind: pairwise, prompt: p, left: l, answer: left", "q2",
     "needs non-empty right"),
    ("pairwise_bad_answer", "id: q2, kind: pairwise, prompt: p, left: l, right: r, answer: tie", "q2",
     "'tie' is not among"),
    ("unknown_field", "id: q2, text: t, options: [a, b], answer: a, anwser: b", "q2", "field(s) anwser"),
]


@pytest.mark.parametrize(("case", "line", "qid", "problem"), BAD, ids=[b[0] for b in BAD])
def test_bad_question_fails_with_one_line_naming_it(tmp_path, case, line, qid, problem):
    head = "description: d\npass_score: 50\nquestions:\n  - {id: q1, text: t, options: [a, b], answer: a}\n"
    path = write(tmp_path, f"{head}  - {{{line}}}\n", f"{case}.yaml")
    with pytest.raises(ScreeningError) as info:
        load_screening(path)
    message = str(info.value)
    assert isinstance(info.value, InputError) and "\n" not in message
    assert message.startswith(f"{path}:5: question {qid!r}:"), message
    assert problem in message


@pytest.mark.parametrize(("score", "shown"), [(101, "101"), (-1, "-1"), ("high", "'high'"), ("", "None")])
def test_pass_score_out_of_range(tmp_path, score, shown):
    path = write(tmp_path, f"description: d\npass_score: {score}\nquestions:\n"
                           "  - {id: q, text: t, options: [a, b], answer: a}\n")
    expected = rf"^{path}: pass_score must be a whole number in 0\.\.100, got {shown}$"
    with pytest.raises(ScreeningError, match=expected):
        load_screening(path)


def test_header_problems_are_one_line(tmp_path):
    path = write(tmp_path, "pass_score: 50\nquestions:\n  - {id: q, text: t, options: [a, b], answer: a}\n")
    with pytest.raises(ScreeningError, match=r"^.*quiz\.yaml: header field description: Field required$"):
        load_screening(path)
    path = write(tmp_path, "description: d\npass_score: 50\nquestions: [\n")
    with pytest.raises(ScreeningError, match=r"quiz\.yaml:\d+: invalid YAML") as info:
        load_screening(path)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- JSONL
def test_jsonl_matches_yaml_and_reports_file_lines(tmp_path):
    yaml_test = load_screening(write(tmp_path, MIXED))
    header = {"name": "mixed", "description": "One question of each kind", "pass_score": 75}
    rows = [header] + [
        {"id": "single", "text": "Is the sky blue?", "options": [{"yes": "Yes"}, {"no": "No"}],
         "answer": "yes"},
        {"id": "multi", "kind": "multiple_choice", "text": "Which are primes?", "options": [2, 3, 4, 9],
         "answer": [3, 2]},
        {"id": "pair", "kind": "pairwise", "prompt": "2+2?", "left": "<b>4</b> & done", "right": "5",
         "answer": "left"},
        {"id": "rate", "kind": "likert", "text": "Rate it", "options": [1, 2, 3, 4, 5], "answer": 4,
         "tolerance": 1},
    ]
    path = tmp_path / "quiz.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert load_screening(path) == yaml_test

    rows[3]["answer"] = "right-ish"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    with pytest.raises(ScreeningError, match=rf"^{path}:4: question 'pair': answer 'right-ish' is not among"):
        load_screening(path)


# --------------------------------------------------------------------------- connector agreement
def _xsd(name: str):
    xmlschema = pytest.importorskip("xmlschema")
    if not (XSD_DIR / name).exists():
        pytest.skip(f"MTurk XSDs not found at {XSD_DIR} (shared data absent)")
    return xmlschema.XMLSchema(str(XSD_DIR / name))


@pytest.mark.parametrize("name", ["sensitive", "ranking"])
def test_examples_render_as_valid_mturk_qualification_tests(name):
    render = pytest.importorskip("connectors.mturk.render")
    test = load_screening(EXAMPLES / f"{name}.yaml")
    _xsd("QuestionForm_20051001.xsd").validate(render.question_form(test))
    _xsd("AnswerKey_20051001.xsd").validate(render.answer_key(test))


@pytest.mark.parametrize("name", ["sensitive", "ranking"])
def test_grade_agrees_with_mturk_answer_key_scoring(name):
    """Audit: our grade equals the score the local MTurk server computes from the connector's AnswerKey."""
    render = pytest.importorskip("connectors.mturk.render")
    questions = pytest.importorskip("connectors.local.mturk.questions")
    test = load_screening(EXAMPLES / f"{name}.yaml")
    key = render.answer_key(test)
    rng = random.Random(7)
    for _ in range(40):
        answers: dict[str, list[str]] = {}
        for q in test.questions:
            values = [v for v, _ in q.options]
            if q.kind == "multiple_choice":
                subsets = [list(c) for n in range(1, len(values) + 1)
                           for c in itertools.combinations(values, n)]
                answers[q.id] = rng.choice(subsets + [q.answer] * 3)
            else:
                answers[q.id] = [rng.choice(values + q.answer * 2)]
        xml = questions.form_answers_xml([(qid, chosen, None) for qid, chosen in answers.items()])
        assert grade(test, answers).score_percent == questions.score(key, xml)
