"""Spec and item files: every mistake is one line naming the file, the line and the field."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from campaigns.errors import CrowdError, SpecError
from campaigns.spec.loading import load_items, load_spec

GOOD = """\
# a minimal pairwise campaign
name: demo-1
items: data/items.jsonl
pricing:
  reward: 0.015
budget:
  cap: 12.50
stages:
  compare:
    page_size: 4
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def line_of(text: str, marker: str) -> int:
    """1-based line of the first line containing ``marker`` (so tests never hard-code line numbers)."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def error_of(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_good_spec_loads_with_exact_money_and_base_dir(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.name == "demo-1"
    assert spec.pricing.reward == Decimal("0.015")
    assert spec.budget is not None and spec.budget.cap == Decimal("12.50")
    assert spec.stages["compare"].page_size == 4
    assert spec.base_dir == tmp_path.resolve()
    assert spec.path(spec.items) == tmp_path.resolve() / "data" / "items.jsonl"


@pytest.mark.parametrize(("text", "marker", "expected"), [
    pytest.param(GOOD.replace("  reward: 0.015", "  reward: 0.1234"), "reward:",
                 "pricing.reward: more than 3 decimal places: 0.1234", id="bad-money"),
    pytest.param(GOOD + "page_size: many\n", "page_size: many",
                 "page_size: input should be a valid integer", id="wrong-type"),
    pytest.param(GOOD + "provider: ebay\n", "provider:",
                 "provider: input should be 'mturk', 'toloka', 'inhouse' or 'prolific' (got 'ebay')", id="bad-choice"),
    pytest.param(GOOD + "colour: red\n", "colour:", "colour: unknown field", id="unknown-field"),
    pytest.param(GOOD + "    bonus_rate: 2\n", "bonus_rate", "stages.compare.bonus_rate: unknown field",
                 id="nested-unknown-field"),
    pytest.param(GOOD + "keywords:\n  - fine\n  - {nested: 1}\n", "{nested",
                 "keywords.1: input should be a valid string", id="list-item"),
    pytest.param(GOOD + "screening:\n  pool: trained\n", "screening:", "screening.test: field required",
                 id="missing-nested-field"),
    pytest.param(GOOD.replace("items: data/items.jsonl\n", ""), "name: demo-1", "items: field required",
                 id="missing-required-field"),
    pytest.param(GOOD.replace("  reward: 0.015", "  hourly_wage: 12"), "pricing:",
                 "pricing: give either reward, or both seconds_per_item and hourly_wage", id="model-rule"),
    pytest.param(GOOD + "base_dir: /etc\n", "base_dir", "base_dir: unknown field", id="base-dir-not-in-yaml"),
    pytest.param(GOOD + "name: again\n", "name: again", "name: duplicate key", id="duplicate-key"),
])
def test_spec_error_names_line_and_field(tmp_path, text, marker, expected):
    message = error_of(write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'spec.yaml'}:{line_of(text, marker)}: {expected}"), message


def test_first_problem_in_file_order_and_a_count_of_the_rest(tmp_path):
    text = GOOD + "colour: red\npage_size: many\n"
    message = error_of(write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'spec.yaml'}:{line_of(text, 'colour')}: colour: unknown field")
    assert message.endswith("(and 1 more problem)")


def test_yaml_syntax_error_names_its_line(tmp_path):
    text = GOOD + "overlap: {min: 3\nseed: 4\n"
    message = error_of(write(tmp_path, text))
    assert "YAML syntax error" in message
    line = int(message.split(":")[1])
    assert line in (line_of(text, "overlap:"), line_of(text, "seed: 4"))  # PyYAML reports where it gave up


def test_bad_indentation_is_a_syntax_error_with_line(tmp_path):
    text = GOOD.replace("  reward: 0.015", "  reward: 0.015\n bad: indent")
    message = error_of(write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'spec.yaml'}:{line_of(text, 'bad: indent')}: YAML syntax error")


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "just a string\n"])
def test_spec_must_be_a_mapping(tmp_path, text):
    assert "must be a YAML mapping" in error_of(write(tmp_path, text))


def test_missing_spec_file_is_one_line(tmp_path):
    message = error_of(tmp_path / "nope.yaml")
    assert message == f"{tmp_path / 'nope.yaml'}: no such file"
    assert isinstance(SpecError("x"), CrowdError) and SpecError.exit_code == 1


# ------------------------------------------------------------------------------------------ JSONL items
class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    prompt: str
    a: str
    b: str


def check_pair(item: dict) -> None:
    Pair.model_validate(item)


def items_file(tmp_path: Path, lines: list[str]) -> Path:
    return write(tmp_path, "\n".join(lines) + "\n", "items.jsonl")


def pair(i: int, **extra) -> str:
    return json.dumps({"id": f"p{i}", "prompt": f"q{i}", "a": "x", "b": "y", **extra})


def item_error(path: Path, validate=check_pair) -> str:
    with pytest.raises(SpecError) as info:
        load_items(path, validate)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_items_load_and_blank_lines_are_skipped(tmp_path):
    path = items_file(tmp_path, [pair(1), "", "   ", pair(2)])
    assert [it["id"] for it in load_items(path, check_pair)] == ["p1", "p2"]
    assert len(load_items(path)) == 2  # no validator: JSON objects only


def test_bad_json_line_is_named(tmp_path):
    path = items_file(tmp_path, [pair(1), "", '{"id": "p2", "prompt": }', pair(3)])
    assert item_error(path).startswith(f"{path}:3: not valid JSON")


def test_item_failing_validation_names_line_and_field(tmp_path):
    path = items_file(tmp_path, [pair(1), pair(2), json.dumps({"id": "p3", "prompt": "q", "a": "x"})])
    assert item_error(path) == f"{path}:3: b: field required"


def test_plain_value_error_from_validator(tmp_path):
    def no_empty_prompt(item: dict) -> None:
        if not item.get("prompt"):
            raise ValueError("prompt must not be empty")

    path = items_file(tmp_path, [pair(1), json.dumps({"id": "p2", "prompt": ""})])
    assert item_error(path, no_empty_prompt) == f"{path}:2: prompt must not be empty"


def test_duplicate_id_is_refused_with_both_lines(tmp_path):
    path = items_file(tmp_path, [pair(1), pair(2), "", pair(1)])
    assert item_error(path) == f"{path}:4: duplicate id 'p1' (first on line 1)"


def test_non_object_line_and_missing_file(tmp_path):
    path = items_file(tmp_path, [pair(1), "[1, 2]"])
    assert item_error(path) == f"{path}:2: an item must be a JSON object, not list"
    assert item_error(tmp_path / "absent.jsonl") == f"{tmp_path / 'absent.jsonl'}: no such file"
