"""Is a self-made prompt one request? The shapes a small model writes instead, defined once.

prompts@t shows M(t-1) a numbered list of example requests (stages/judging/templates/self_instruct.txt) and asks for one
new request. A small model often continues the list instead (BENCHMARKS.md, "Prompt content"):

  multi_request  several requests run together: after some request text, a numbered list marker ("2. ", "10) ",
                 "**3. ") starts a new line or follows the end of a sentence ("X? 2. Y 3. Z"). A list that the request
                 itself introduces with a colon ("Sort these: 1. pears 2. figs") is part of it, not a continuation.
  scaffolding    no request at all: nothing but list markers, numbers and punctuation ("1. / 2. 2. / 3. 3."),
                 a lead-in that ends in a colon with nothing after it ("This new request is:"), or the template's
                 own wording (a run of TEMPLATE_SPAN words copied from it: "Write one new request that a person
                 might send to an AI assistant.")
  ok             anything else (this says nothing about whether the request is a good one)

`numbered` says whether a raw generation starts with a list marker (the model continued the numbering; the
parser drops that marker). `cut_at_continuation` keeps a multi-request text up to its first continuation marker.
"""

from __future__ import annotations

import re

from stages.judging.prompting import SELF_INSTRUCT_TEMPLATE
from stages.judging.text import words

LABELS = ("ok", "multi_request", "scaffolding")
TEMPLATE_SPAN = 5  # consecutive template words that make a copy; 5 rarely occur by chance in a request

# a numbered list marker ("2. ", "**3) "): at the start of a later line, or after the end of a sentence
_CONTINUATION = re.compile(r"(?:\n[ \t]*|(?<=[.?!\"')])[ \t]+)[*_#>]*[ \t]*\d{1,2}[.)][ \t]+(?=\S)")
_LEADING_MARKER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*])\s")
_LETTERS = re.compile(r"[^\W\d_]")


def _template_spans(template: str, span: int) -> frozenset[tuple[str, ...]]:
    w = words(template.replace("{examples}", " "))
    return frozenset(tuple(w[i : i + span]) for i in range(len(w) - span + 1))


_TEMPLATE = _template_spans(SELF_INSTRUCT_TEMPLATE, TEMPLATE_SPAN)


def continuation_at(text: str) -> int | None:
    """Where the first continuation marker of `text` starts (None: no marker, or a list the request introduces)."""
    m = _CONTINUATION.search(text or "")
    if m is None:
        return None
    before = text[: m.start()].rstrip()
    if not _LETTERS.search(before) or before.endswith(":"):
        return None
    return m.start()


def cut_at_continuation(text: str) -> str:
    """The text up to its first continuation marker (all of it when there is none)."""
    at = continuation_at(text)
    return text if at is None else text[:at].rstrip()


def copies_template(text: str, span: int = TEMPLATE_SPAN) -> bool:
    w = words(text)
    return any(tuple(w[i : i + span]) in _TEMPLATE for i in range(len(w) - span + 1))


def classify(text: str | None) -> str:
    """One of LABELS for a prompt as prompts@t keeps it (after stages/judging/prompting.py: parse_instruction)."""
    text = (text or "").strip()
    if not _LETTERS.search(text) or text.endswith(":") or copies_template(text):
        return "scaffolding"
    if continuation_at(text) is not None:
        return "multi_request"
    return "ok"


def numbered(raw: str | None) -> bool:
    """Does a raw generation start with a list marker, continuing the examples' numbering?"""
    return bool(_LEADING_MARKER.match(raw or ""))
