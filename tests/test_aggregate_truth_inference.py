"""Aggregation on real crowd answers with ground truth (Zheng et al., PVLDB 2017).

The expected accuracies are read from the shared data README's table, not written here. MV and
DS go through ``aggregate_csv`` (the library side of ``crowd aggregate``) on the original files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from decomposition.aggregate import aggregate_csv, aggregate_labels

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TRUTH = DATA / "truth-inference"
README = DATA / "README.md"

pytestmark = pytest.mark.skipif(not (TRUTH.is_dir() and README.is_file()),
                                reason=f"shared truth-inference data not found at {TRUTH.resolve()}")


def readme_table() -> dict[str, dict[str, float]]:
    """``{folder: {"mv": acc, "ds": acc}}`` from the README's markdown table."""
    rows = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"\.\d+", cells[4]) and re.fullmatch(r"\.\d+", cells[5]):
            rows[cells[0]] = {"mv": float(cells[4]), "ds": float(cells[5])}
    return rows


def accuracy(result: pd.DataFrame, folder: str) -> float:
    truth = pd.read_csv(TRUTH / folder / "truth.csv", dtype=str).set_index("question")["truth"]
    predicted = result.set_index("question")["answer"].reindex(truth.index)
    return float((predicted == truth).mean())


def cases() -> list[tuple[str, str, float]]:
    if not README.is_file():
        return []
    return [(folder, method, acc) for folder, accs in readme_table().items() for method, acc in accs.items()]


def test_readme_table_is_found():
    assert len(readme_table()) >= 4


@pytest.mark.parametrize(("folder", "method", "expected"), cases())
def test_mv_and_ds_reproduce_published_accuracy(folder, method, expected, tmp_path):
    if not (TRUTH / folder / "answer.csv").is_file():
        pytest.skip(f"{folder}/answer.csv not found")
    out = tmp_path / "agg.csv"
    result = aggregate_csv(TRUTH / folder / "answer.csv", method, task_column="question",
                           worker_column="worker", label_column="answer", out=out)
    assert list(result.columns) == ["question", "answer", "confidence"]
    assert result["confidence"].between(0, 1).all()
    assert accuracy(result, folder) == pytest.approx(expected, abs=0.0015)
    assert pd.read_csv(out, dtype=str)["question"].tolist() == result["question"].tolist()


@pytest.mark.parametrize("method", ["glad", "mace"])
def test_glad_and_mace_beat_chance(method):
    folder = "d_Duck_Identification"
    answers = pd.read_csv(TRUTH / folder / "answer.csv", dtype=str)
    data = answers.rename(columns={"question": "task", "answer": "label"})
    result = aggregate_labels(data, method, seed=0).rename(columns={"task": "question", "label": "answer"})
    chance = 1 / answers["answer"].nunique()
    assert accuracy(result, folder) > chance + 0.1
    assert result["confidence"].between(1 / answers["answer"].nunique() - 1e-9, 1).all()
