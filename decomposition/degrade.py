"""Degraded copies of a response, for synthetic pairwise golden tasks where the original must win.

Each mode damages the text in a different way, so golden tasks test more than noticing length:
``truncate`` (about 40% of the words: incomplete), ``shuffle`` (sentence order: incoherent) and
``swap_facts`` (numbers changed, or two names swapped: wrong in a detail a reader can check).
A mode that cannot apply to a text falls back to ``truncate``; every copy differs from the
original, or the golden answer would be arbitrary.
"""

from __future__ import annotations

import random
import re
from typing import Literal, get_args

from decomposition.errors import InputError
from decomposition.kinds import Rng, as_rng

Mode = Literal["truncate", "shuffle", "swap_facts"]
MODES: tuple[str, ...] = get_args(Mode)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_NUMBER = re.compile(r"\b\d+\b")  # a digit run on its own ("1969", "3" and "14" of "3.14"), not "H2O" or "2nd"
_WORD = re.compile(r"[^\W\d_]+")  # letters only


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def truncate(text: str, rng: Rng = None, keep: float = 0.4) -> str:
    """The first ``keep`` of the words (at least one, and at least one fewer than all)."""
    words = text.split()
    if len(words) < 2:
        raise InputError(f"cannot degrade a text of fewer than 2 words: {text!r}")
    return " ".join(words[:min(len(words) - 1, max(1, round(len(words) * keep)))])


def shuffle(text: str, rng: Rng) -> str:
    """The sentences in another order; ``truncate`` when there is no other order."""
    parts = sentences(text)
    order = list(parts)
    as_rng(rng).shuffle(order)
    if order == parts:  # the shuffle kept the order: rotating changes it unless all sentences are equal
        order = order[1:] + order[:1]
    return truncate(text) if order == parts else " ".join(order)


def swap_facts(text: str, rng: Rng) -> str:
    """Every number replaced by a different one of as many digits; without numbers, two distinct
    capitalised words that do not start a sentence (names, mostly) swapped; else ``truncate``."""
    r = as_rng(rng)
    if _NUMBER.search(text):
        return _NUMBER.sub(lambda m: _other_number(m.group(), r), text)
    names = [m for m in _WORD.finditer(text)
             if len(m.group()) > 1 and m.group()[0].isupper() and not _starts_sentence(text, m.start())]
    distinct = sorted({m.group() for m in names})
    if len(distinct) < 2:
        return truncate(text)
    a, b = r.sample(distinct, 2)
    first, second = sorted((next(m for m in names if m.group() == w) for w in (a, b)), key=lambda m: m.start())
    return (text[:first.start()] + second.group() + text[first.end():second.start()] + first.group()
            + text[second.end():])


def degrade(text: str, rng: Rng, keep: float = 0.4, mode: str | None = None) -> str:
    """A copy of ``text`` that reads worse. ``mode`` None (spec ``synthetic: true``) is the original
    recipe: sentences shuffled, then cut to ``keep`` of the words."""
    r = as_rng(rng)
    if mode is None:
        parts = sentences(text)
        r.shuffle(parts)
        return truncate(" ".join(parts), keep=keep)
    if mode == "truncate":
        return truncate(text, keep=keep)
    if mode == "shuffle":
        return shuffle(text, r) if len(sentences(text)) >= 2 else truncate(text, keep=keep)
    if mode == "swap_facts":
        return swap_facts(text, r)
    raise InputError(f"unknown degradation mode {mode!r} (known: {', '.join(MODES)})")


def _other_number(digits: str, r: random.Random) -> str:
    """A different digit run of the same length (no new leading zero), so the text still reads naturally."""
    low = 0 if digits[0] == "0" else 10 ** (len(digits) - 1)
    while True:
        other = str(r.randint(low, 10 ** len(digits) - 1)).zfill(len(digits))
        if other != digits:
            return other


def _starts_sentence(text: str, start: int) -> bool:
    before = text[:start].rstrip(" \t\"'“‘([*-")
    return not before or before[-1] in ".!?:\n\r"
