"""The simulated crowd's hidden truth for the bundled examples, and oracles that answer by it
(with each worker's accuracy): what makes the demo's and the benchmarks' figures checkable."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from campaigns.errors import CrowdError
from campaigns.spec.loading import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def pairwise_oracle(truth: dict[str, float]) -> Callable:
    """Answers like a careful reader who knows each response's hidden quality (with the worker's
    accuracy). A text it has never seen (a golden task's degraded copy) is worse than any known one."""
    from connectors.local.crowd import noisy_choice

    def quality(text: str) -> float:
        return truth.get(text.strip(), -1.0)

    def oracle(task, worker, rng: random.Random) -> dict[str, Any] | None:
        left, right = task.inputs.get("left"), task.inputs.get("right")
        if left is None or right is None:
            return None
        ql, qr = quality(left), quality(right)
        truth_choice = "left" if ql > qr else "right"
        answer: dict[str, Any] = {}
        for f in task.fields:
            if f.kind == "choice" and "left" in f.options and "right" in f.options:
                answer[f.name] = noisy_choice(worker, rng, truth_choice, ["left", "right"])
        return answer

    return oracle


def _errors_in(text: str, start: int, end: int, errors: list[dict]) -> tuple[list[dict], bool]:
    """(seeded errors wholly inside [start, end), whether any error only partly overlaps it)."""
    inside = [e for e in errors if start <= e["start"] and e["end"] <= end]
    partial = any(e["start"] < end and start < e["end"] and e not in inside for e in errors)
    return inside, partial


def _rewrite(patch: str, start: int, errors: list[dict], key: str) -> str:
    """The patch with each seeded error inside it replaced by its ``key`` text (correct/distractor)."""
    from decomposition.ffv import apply_fixes

    return apply_fixes(patch, [(e["start"] - start, e["end"] - start, e[key]) for e in errors])


def _tweak(patch: str) -> str:
    """A needless edit (what a worker writes for a part with nothing wrong in it)."""
    words = patch.split()
    return " ".join(words[:-1]) if len(words) > 1 else patch + "s"


def ffv_oracle(truth: dict[str, list[dict]]) -> Callable:
    """Answers Find, Fix and Verify tasks like a careful worker who can spot the seeded errors
    (``truth``: seeded text -> errors) with the worker's accuracy: Find marks each error (sometimes
    with the word before it) and now and then a correct word; Fix writes the correct replacement,
    else a plausible wrong one; Verify votes for the correct candidate (or keep) and flags it."""
    from connectors.local.crowd import noisy_choice
    from decomposition.ffv import KEEP, MARK_CLOSE, MARK_OPEN
    from decomposition.verify import EMPTY_SLOT

    def unmark(shown: str) -> tuple[str, int, int] | None:
        a, b = shown.find(MARK_OPEN), shown.find(MARK_CLOSE)
        if a < 0 or b < a:
            return None
        text = shown[:a] + shown[a + len(MARK_OPEN):b] + shown[b + len(MARK_CLOSE):]
        return text, a, b - len(MARK_OPEN)

    def find(text: str, labels: list[str], worker, rng: random.Random) -> dict:
        errors = truth.get(text.strip(), [])
        spans = []
        for e in errors:
            if rng.random() < worker.accuracy:
                start = e["start"]
                if rng.random() < 0.2 and start > 1:  # include the word before
                    start = text.rfind(" ", 0, start - 1) + 1
                label = e["category"] if e["category"] in labels else labels[0]
                spans.append({"start": start, "end": e["end"], "label": label})
        if rng.random() < 0.05 + 0.3 * (1 - worker.accuracy):  # a correct word marked by mistake
            words = [(m.start(), m.end()) for m in re.finditer(r"\w+", text)
                     if not any(m.start() < e["end"] and e["start"] < m.end() for e in errors)]
            if words:
                a, b = rng.choice(words)
                spans.append({"start": a, "end": b, "label": labels[-1]})
        return {"spans": spans}

    def correct_patch(shown: str) -> tuple[str, str | None, str] | None:
        """(original patch, its correct version or None when nothing seeded is wholly in it, distractor)."""
        found = unmark(shown)
        if found is None or found[0].strip() not in truth:
            return None
        text, a, b = found
        inside, partial = _errors_in(text, a, b, truth[text.strip()])
        patch = text[a:b]
        if not inside or partial:
            return patch, None, _tweak(patch)
        return patch, _rewrite(patch, a, inside, "correct"), _rewrite(patch, a, inside, "distractor")

    def oracle(task, worker, rng: random.Random) -> dict[str, Any] | None:
        fields = {f.name: f for f in task.fields}
        if "spans" in fields:
            return find(fields["spans"].text, fields["spans"].options or ["issue"], worker, rng)
        known = correct_patch(task.inputs.get("text", ""))
        if known is None:
            return None
        patch, right, wrong = known
        if "rewrite" in fields:
            good = right if right is not None else _tweak(patch)
            return {"rewrite": good if rng.random() < worker.accuracy else wrong}
        if "best" in fields:
            filled = {o: task.inputs.get(o) for o in fields["best"].options
                      if o != KEEP and task.inputs.get(o) not in (None, EMPTY_SLOT)}
            target = next((o for o, t in filled.items() if right is not None and t == right), KEEP)
            best = noisy_choice(worker, rng, target, [KEEP, *filled])
            ok = [o for o in filled if o == target]
            if rng.random() >= worker.accuracy and filled:
                ok = sorted(set(ok) ^ {rng.choice(list(filled))})
            return {"best": best, "acceptable": ok}
        return None

    return oracle


def _load_ffv_truth(example: Path, items: list[dict]) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """(errors by item id, errors by seeded text)."""
    by_id = {t["id"]: t["errors"] for t in map(json.loads, (example / "truth.jsonl").read_text().splitlines())}
    by_id = {it["id"]: by_id[it["id"]] for it in items}
    return by_id, {it["text"].strip(): by_id[it["id"]] for it in items}


def _load_truth(example: Path, items: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    by_id = {json.loads(line)["response_id"]: json.loads(line)["quality"]
             for line in (example / "truth.jsonl").read_text().splitlines() if line.strip()}
    by_text = {}
    for it in items:
        for r in it["responses"]:
            by_text[r["text"].strip()] = by_id[r["id"]]
    return by_id, by_text


def example_oracle(example: Path, items: list[dict] | None = None) -> tuple[dict, Callable]:
    """(truth by item or response id, an oracle answering from it) for an example directory with a
    ``spec.yaml``, its items and ``truth.jsonl`` (``examples/pairwise``, ``examples/ffv``): what
    makes simulated honest workers answer like careful readers instead of at random. ``items``
    defaults to the spec's items file."""
    if not example.is_dir() and (EXAMPLES / example.name / "spec.yaml").is_file():
        example = EXAMPLES / example.name  # a bundled example by name: works from an installed wheel
    spec_path, truth_path = example / "spec.yaml", example / "truth.jsonl"
    for path in (spec_path, truth_path):
        if not path.is_file():
            raise CrowdError(f"{example}: no {path.name}; give an example directory such as examples/pairwise")
    spec = load_spec(spec_path)
    if items is None:
        items = [json.loads(x) for x in (example / spec.items).read_text().splitlines() if x.strip()]
    if spec.kind == "ffv":
        by_id, by_text = _load_ffv_truth(example, items)
        return by_id, ffv_oracle(by_text)
    if spec.kind == "pairwise":
        by_id, by_text = _load_truth(example, items)
        return by_id, pairwise_oracle(by_text)
    raise CrowdError(f"{example}: no simulated answers for kind {spec.kind!r} (pairwise and ffv have them)")


