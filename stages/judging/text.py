"""Text properties defined once, so they mean the same thing wherever they are counted.

Near-duplicate (the prompts@t filter, `srlm diff` novelty, the validation gate): the word-level LCS
similarity (ROUGE-L-like, 0..1; Self-Instruct filters at 0.7) of the lowercased `\\w+` words of two texts,
punctuation ignored.

Looping (responses@t, IFEval, the pair rules): a text loops when some run of LOOP_SPAN consecutive words
occurs LOOP_TIMES times or more: the degenerate repetition of a model that writes the same sentence or
list item again and again until the token cap. Natural prose, even a list with a shared lead-in, almost
never repeats 8 words verbatim 3 times.
"""

from __future__ import annotations

import re

import numpy as np

_WORD = re.compile(r"\w+")
LOOP_SPAN = 8
LOOP_TIMES = 3


def words(text: str | None) -> list[str]:
    return _WORD.findall(text.lower()) if text else []


def near_duplicate(query: list[str], choices: list[list[str]], threshold: float) -> bool:
    """Is the word list `query` at least `threshold` similar to any of `choices` (word lists)?"""
    from rapidfuzz import process
    from rapidfuzz.distance import LCSseq

    if not choices:
        return False
    return process.extractOne(query, choices, scorer=LCSseq.normalized_similarity, score_cutoff=threshold) is not None


def max_similarity(queries: list[str], choices: list[str], exclude_self: bool) -> np.ndarray:
    """Per query text, the highest similarity to any choice text (NaN when there is none);
    with exclude_self, queries and choices are the same list and a text is not compared with itself."""
    from rapidfuzz import process
    from rapidfuzz.distance import LCSseq

    if not queries or not choices or (exclude_self and len(queries) < 2):
        return np.full(len(queries), np.nan)
    m = process.cdist(
        [words(q) for q in queries],
        [words(c) for c in choices],
        scorer=LCSseq.normalized_similarity,
        dtype=np.float32,
        workers=-1,
    )
    if exclude_self:
        np.fill_diagonal(m, -1.0)
    return m.max(axis=1).astype(np.float64)


def loops(text: str | None, span: int = LOOP_SPAN, times: int = LOOP_TIMES) -> bool:
    """Does some run of `span` consecutive words occur `times` times or more (overlaps allowed)?"""
    w = words(text)
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(w) - span + 1):
        gram = tuple(w[i : i + span])
        seen[gram] = seen.get(gram, 0) + 1
        if seen[gram] >= times:
            return True
    return False
