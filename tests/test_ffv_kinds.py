"""Find-Fix-Verify task kinds and their shared logic (issue 5): patches from overlapping marks,
answer validation (bad spans, empty or unchanged rewrites, empty Verify slots), candidate slots
and assembly."""

from __future__ import annotations

import pytest

from connectors.base import Display, SpanSelect, TextInput
from decomposition.errors import AnswerError, ItemError
from decomposition.ffv import (
    KEEP,
    FFVSettings,
    apply_fixes,
    candidate_slots,
    marked,
    patches_from_spans,
)
from decomposition.kinds import get_kind, kind_names

TEXT = "The Eiffel Tower was completed in 1869. It are made of iron."
SETTINGS = FFVSettings(goal="Fix errors.")


def find_task():
    (draft,) = get_kind("find").make_tasks({"id": "t1", "prompt": "When?", "text": TEXT}, SETTINGS, 0)
    return draft


def patch_item(**extra):
    start = TEXT.index("1869")
    return {"id": "t1", "patch_id": "p1", "start": start, "end": start + 4, "text": TEXT, **extra}


def test_the_three_kinds_are_registered():
    assert {"find", "fix", "verify"} <= set(kind_names())


@pytest.mark.parametrize(("workers", "expected"), [(1, 1), (3, 1), (5, 1), (6, 2), (10, 2), (11, 3)])
def test_threshold_is_max_one_and_ceil_of_share(workers, expected):
    assert SETTINGS.threshold(workers) == expected


def test_patch_needs_threshold_overlap_and_widens_to_whole_words():
    text = "The cat sat on teh mat today."
    teh = text.index("teh")
    marks = [[(teh, teh + 3)], [(teh + 1, teh + 3)], [(0, 3)]]  # two on "teh" (one partial), one on "The"
    assert patches_from_spans(text, marks, threshold=2) == [(teh, teh + 3)]
    assert patches_from_spans(text, marks, threshold=1) == [(0, 3), (teh, teh + 3)]
    assert patches_from_spans(text, marks, threshold=3) == []


def test_overlapping_and_touching_patches_merge_and_one_worker_counts_once():
    text = "aaa bbb ccc ddd"
    marks = [[(0, 7)], [(4, 11)], [(4, 7), (4, 6)]]  # the third worker's two marks overlap: counted once
    assert patches_from_spans(text, marks, threshold=2) == [(4, 7)]
    assert patches_from_spans(text, [[(0, 3)], [(0, 3)], [(4, 7)], [(4, 7)]], threshold=2) == [(0, 3), (4, 7)]
    assert patches_from_spans(text, [[(0, 5)], [(2, 9)]], threshold=1) == [(0, 11)]


@pytest.mark.parametrize(("spans", "why"), [
    ([{"start": 50, "end": 80}], "outside the text"),
    ([{"start": 5, "end": 5}], "outside the text"),
    ([{"start": -1, "end": 3}], "outside the text"),
    ([{"start": "a", "end": 3}], "integers"),
    ([{"start": 0, "end": 3, "label": "spelling!"}], "unknown reason"),
    ([{"start": 0, "end": 40}], "cover"),
    ([{"start": i, "end": i + 1} for i in range(9)], "at most"),
    ("0-3", "must be a list"),
])
def test_find_rejects_garbage_spans(spans, why):
    draft = find_task()
    with pytest.raises(AnswerError, match=why):
        get_kind("find").parse(draft.payload, {"spans": spans})


def test_find_accepts_marks_and_no_marks():
    draft = find_task()
    start = TEXT.index("1869")
    j = get_kind("find").parse(draft.payload, {"spans": [{"start": start, "end": start + 4, "label": "factual"}]})
    assert j.spans == [{"start": start, "end": start + 4, "label": "factual"}]
    assert get_kind("find").parse(draft.payload, {"spans": []}).spans == []
    widgets = get_kind("find").widgets(draft.payload, SETTINGS)
    assert isinstance(widgets[-1], SpanSelect) and widgets[-1].text == TEXT
    assert {w.name for w in widgets if isinstance(w, Display)} == {"goal", "prompt"}


def test_find_rejects_a_bad_item():
    with pytest.raises(ItemError):
        get_kind("find").make_tasks({"id": "x", "text": "   "}, SETTINGS, 0)


def test_fix_rejects_empty_and_unchanged_rewrites_with_a_message():
    fix = get_kind("fix")
    (draft,) = fix.make_tasks(patch_item(), SETTINGS, 0)
    assert draft.payload["original"] == "1869"
    bad_rewrites = [("", "empty"), ("   ", "empty"), ("1869", "identical"), (" 1869 ", "identical"),
                    (None, "missing")]
    for bad, why in bad_rewrites:
        with pytest.raises(AnswerError, match=why):
            fix.parse(draft.payload, {"rewrite": bad})
    assert fix.parse(draft.payload, {"rewrite": " 1889 "}).rewrite == "1889"
    widgets = fix.widgets(draft.payload, SETTINGS)
    box = [w for w in widgets if isinstance(w, TextInput)][0]
    assert box.default == "1869"
    shown = [w for w in widgets if w.name == "text"][0]
    assert shown.text == marked(TEXT, draft.payload["start"], draft.payload["end"]) and "[[1869]]" in shown.text


def test_verify_form_has_the_same_fields_whatever_the_number_of_candidates():
    verify = get_kind("verify")
    one = verify.make_tasks(patch_item(candidates=["1889"], slots=3), SETTINGS, 0)[0]
    three = verify.make_tasks(patch_item(candidates=["1889", "1899", "1887"], slots=3), SETTINGS, 0)[0]
    shape = [[(w.type, w.name) for w in verify.widgets(d.payload, SETTINGS)] for d in (one, three)]
    assert shape[0] == shape[1]
    best = [w for w in verify.widgets(one.payload, SETTINGS) if w.name == "best"][0]
    assert [v for v, _ in best.options] == [KEEP, "c1", "c2", "c3"]
    with pytest.raises(ItemError):
        verify.make_tasks(patch_item(candidates=[], slots=3), SETTINGS, 0)


def test_verify_rejects_empty_slots_and_accepts_keep():
    verify = get_kind("verify")
    (draft,) = verify.make_tasks(patch_item(candidates=["1889", "1899"], slots=4), SETTINGS, 0)
    with pytest.raises(AnswerError, match="best"):
        verify.parse(draft.payload, {"best": "c3", "acceptable": []})
    with pytest.raises(AnswerError, match="acceptable"):
        verify.parse(draft.payload, {"best": "c1", "acceptable": ["c1", "c4"]})
    j = verify.parse(draft.payload, {"best": KEEP, "acceptable": ["c2", "c2"]})
    assert (j.best, j.acceptable) == (KEEP, ["c2"])
    assert verify.known_answer(draft.payload, {"rewrite": "1899"}) == {"best": "c2"}
    assert verify.known_answer(draft.payload, {"rewrite": "1777"}) == {"best": KEEP}


def test_candidate_slots_dedupe_rank_and_drop_unusable_rewrites():
    got = candidate_slots(["b", "a", "a ", "orig", "", "c", "b", "a"], "orig", slots=2)
    assert got == ["a", "b"]


def test_apply_fixes_right_to_left_and_refuses_overlaps():
    assert apply_fixes("one two three", [(0, 3, "1"), (8, 13, "3")]) == "1 two 3"
    with pytest.raises(ValueError):
        apply_fixes("one two three", [(0, 5, "x"), (4, 7, "y")])


def test_settings_refuse_a_minimum_above_the_workers():
    with pytest.raises(Exception, match="find_min"):
        FFVSettings(find_workers=3, find_min=4)
