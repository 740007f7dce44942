"""Find-Fix-Verify (Bernstein et al., Soylent, 2010): the logic shared by its three task kinds.

Why three small tasks: "improve this text" is hard to check, but "mark one weak span", "rewrite
this marked span" and "pick the best rewrite" are each small and checkable. This module holds what
the kinds and the engine share: the settings, the input item, span validation, patches from
overlapping highlights, candidate slots for Verify, and assembling the revised text.

Spans are half-open character ranges ``[start, end)`` of the item text.

>>> patches_from_spans("The cat sat on teh mat.", [[(15, 18)], [(15, 18)], [(4, 7)]], threshold=2)
[(15, 18)]
>>> apply_fixes("The cat sat on teh mat.", [(15, 18, "the")])
'The cat sat on the mat.'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from decomposition.errors import AnswerError, ItemError, first_error

KEEP = "keep"  # the Verify option "keep the original"
MARK_OPEN, MARK_CLOSE = "[[", "]]"  # how a patch is marked in the text shown to Fix/Verify workers


class FFVSettings(BaseModel):
    """``settings:`` of a ``kind: ffv`` campaign. Worker counts are per task (the page overlap)."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(default="Fix factual and grammar errors.", min_length=1)
    labels: list[str] = Field(default_factory=lambda: ["factual", "grammar", "style", "other"], min_length=1)
    find_workers: int = Field(default=10, ge=1)
    find_min: int = Field(default=6, ge=1)
    fix_workers: int = Field(default=5, ge=1)
    fix_min: int = Field(default=3, ge=1)
    verify_workers: int = Field(default=5, ge=1)
    verify_min: int = Field(default=3, ge=1)
    patch_share: float = Field(default=0.2, gt=0.0, le=1.0)  # share of Find workers whose marks overlap
    max_span_share: float = Field(default=0.5, gt=0.0, le=1.0)  # one worker marking more is garbage
    max_spans: int = Field(default=8, ge=1)
    no_patch: Literal["done", "reask"] = "done"  # a text nobody agreed on: keep it, or ask Find again
    max_reasks: int = Field(default=1, ge=0)
    method: Literal["mv", "ds"] = "mv"  # Verify aggregation

    @model_validator(mode="after")
    def _mins(self) -> FFVSettings:
        for stage in ("find", "fix", "verify"):
            if getattr(self, f"{stage}_min") > getattr(self, f"{stage}_workers"):
                raise ValueError(f"{stage}_min must not exceed {stage}_workers")
        return self

    def threshold(self, workers: int) -> int:
        """Highlights that must overlap for a patch: max(1, ceil(patch_share x workers))."""
        return max(1, math.ceil(self.patch_share * workers - 1e-9))


class TextItem(BaseModel):
    """An input item: ``{"id", "prompt"?, "text"}``."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    prompt: str | None = None
    text: str = Field(min_length=1)

    @field_validator("id", mode="before")
    @classmethod
    def _number_id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


def parse_text_item(item: Mapping[str, Any]) -> TextItem:
    if not isinstance(item, Mapping):
        raise ItemError(f"an item must be an object, got {type(item).__name__}")
    try:
        model = TextItem.model_validate(item)
    except ValidationError as err:
        field, msg = first_error(err)
        raise ItemError(msg, field=field) from None
    if not model.text.strip():
        raise ItemError("text is blank", field="text")
    return model


# --------------------------------------------------------------------------- spans
def clean_spans(value: Any, text: str, labels: Sequence[str], settings: FFVSettings) -> list[dict[str, Any]]:
    """Validate one worker's spans; ``AnswerError`` for anything that is not a sane answer
    (out of the text, empty, unknown label, too many, or marking most of the text)."""
    if not isinstance(value, list):
        raise AnswerError(f"spans must be a list, got {type(value).__name__}", field="spans")
    if len(value) > settings.max_spans:
        raise AnswerError(f"{len(value)} spans marked; at most {settings.max_spans} allowed", field="spans")
    out = []
    for n, span in enumerate(value):
        if not isinstance(span, Mapping):
            raise AnswerError("a span must be an object", field=f"spans.{n}")
        start, end = span.get("start"), span.get("end")
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
            raise AnswerError("start and end must be integers", field=f"spans.{n}")
        if not 0 <= start < end <= len(text):
            raise AnswerError(f"span {start}-{end} is outside the text (length {len(text)})", field=f"spans.{n}")
        label = span.get("label") or labels[0]
        if label not in labels:
            raise AnswerError(f"unknown reason {label!r}", field=f"spans.{n}.label")
        out.append({"start": start, "end": end, "label": label})
    covered = sum(e - s for s, e in merge_ranges((s["start"], s["end"]) for s in out))
    if covered > settings.max_span_share * len(text):
        raise AnswerError(f"marks cover {covered} of {len(text)} characters; mark only the weak parts",
                          field="spans")
    return sorted(out, key=lambda s: (s["start"], s["end"]))


def merge_ranges(ranges: Iterable[tuple[int, int]], *, touching: bool = False) -> list[tuple[int, int]]:
    """Union of ranges; ``touching`` also joins ranges that meet end to start."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and (s < out[-1][1] or (touching and s == out[-1][1])):
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a range to whole words, so a rewrite never has to splice half a word."""
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end - 1].isalnum() and text[end].isalnum():
        end += 1
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def patches_from_spans(text: str, workers_spans: Sequence[Sequence[tuple[int, int]]],
                       threshold: int) -> list[tuple[int, int]]:
    """Regions where at least ``threshold`` workers' marks overlap, widened to whole words;
    overlapping or touching patches merge. Each worker counts once per character."""
    coverage = [0] * (len(text) + 1)
    for spans in workers_spans:
        for s, e in merge_ranges(spans):
            coverage[s] += 1
            coverage[e] -= 1
    runs, depth, start = [], 0, None
    for i in range(len(text) + 1):
        depth += coverage[i]
        if depth >= threshold and start is None:
            start = i
        elif depth < threshold and start is not None:
            runs.append((start, i))
            start = None
    widened = [_word_bounds(text, s, e) for s, e in runs]
    return merge_ranges([(s, e) for s, e in widened if e > s], touching=True)


def marked(text: str, start: int, end: int) -> str:
    """The text with one patch marked, as Fix and Verify workers see it."""
    return f"{text[:start]}{MARK_OPEN}{text[start:end]}{MARK_CLOSE}{text[end:]}"


def same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


# --------------------------------------------------------------------------- verify candidates
def candidate_slots(rewrites: Sequence[str], original: str, slots: int) -> list[str]:
    """Distinct rewrites, most often written first (ties by first appearance), at most ``slots``;
    empty ones and ones identical to the original are dropped."""
    counts: dict[str, int] = {}
    for r in rewrites:
        r = r.strip()
        if r and not same_text(r, original):
            counts[r] = counts.get(r, 0) + 1
    ranked = sorted(counts, key=lambda r: -counts[r])  # sorted is stable: first appearance breaks ties
    return ranked[:slots]


def slot_id(n: int) -> str:
    return f"c{n + 1}"


# --------------------------------------------------------------------------- assembly
def apply_fixes(text: str, fixes: Sequence[tuple[int, int, str]]) -> str:
    """Replace non-overlapping ``[start, end)`` ranges of ``text`` (applied right to left)."""
    out = text
    last = len(text) + 1
    for start, end, replacement in sorted(fixes, reverse=True):
        if end > last:
            raise ValueError(f"fixes overlap at {start}-{end}")
        out = out[:start] + replacement + out[end:]
        last = start
    return out
