"""Verifiable instruction constraints: sentences appended to a prompt, and code that checks an answer obeys them.

A 135M judge cannot tell a good answer from a bad one, but code can tell whether an answer has at most 40 words
or no commas. `attach` appends one or more constraints to a prompt in natural wording; `verdicts` checks an
answer against them. They reward following the format, not the quality of the answer. Taxonomy, phrasings and
checkers are our own (docs/checks.md compares them with IFEval's).

Conventions shared by every check:
- A blank answer (no word at all) fails every constraint, also the "must not" ones: an empty answer shows
  nothing, and rewarding it would teach the model to say nothing.
- Keywords match whole words, ignoring letter case ("River" counts for "river"; "rivers" does not).
- Start and end phrases and the "P.S." ignore letter case, so they combine with case.lower / case.upper.
- words, sentences and paragraphs are defined once below and used by every kind that counts them.

Standard library only, and no import from the rest of `stages`: any stage can use it without new deps.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

AT_LEAST, AT_MOST, EXACTLY = "at least", "at most", "exactly"
RELATIONS = (AT_LEAST, AT_MOST, EXACTLY)

# --- counting, defined once -------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+(?:['’-]\w+)*")  # "don't" and "well-known" are one word
# a sentence ends at a run of . ! ? (closing quotes or brackets may follow) before whitespace or the end
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+", re.MULTILINE)


def words(text: str) -> list[str]:
    """The words of `text`: runs of \\w with internal apostrophes or hyphens."""
    return _WORD.findall(text)


def sentences(text: str) -> list[str]:
    """The sentences of `text`; a piece without a word (a lone "...") is not a sentence. List markers are dropped
    first, so that the "1." of a numbered item does not end a sentence. Abbreviations such as "e.g." do end one
    here: a rule simple to state beats one that guesses."""
    return [s.strip() for s in _SENTENCE_END.split(_LIST_MARKER.sub("", text)) if _WORD.search(s)]


def paragraphs(text: str) -> list[str]:
    """The blocks of `text` separated by one or more blank lines."""
    return [p.strip() for p in _BLANK_LINE.split(text.replace("\r\n", "\n")) if p.strip()]


def _compare(count: int, relation: str, n: int) -> bool:
    return count >= n if relation == AT_LEAST else count <= n if relation == AT_MOST else count == n


def _whole_word(word: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n")


def _quoted_list(ws: Sequence[str], joiner: str) -> str:
    quoted = [f'"{w}"' for w in ws]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" {joiner} " + quoted[-1]


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


# --- the constraint and its kinds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Constraint:
    """One attached constraint: a kind's id plus its arguments; the arguments a kind does not use stay at their
    defaults, so every constraint fits one parquet struct with fixed fields."""

    id: str
    n: int | None = None  # a count: words, sentences, bullets, ...
    relation: str | None = None  # AT_LEAST | AT_MOST | EXACTLY, for kinds that count
    words: tuple[str, ...] = ()  # keywords
    text: str | None = None  # a phrase: the start or end text

    def as_row(self) -> dict:
        return {"id": self.id, "n": self.n, "relation": self.relation, "words": list(self.words), "text": self.text}

    @classmethod
    def from_row(cls, row: dict) -> Constraint:
        """The inverse of as_row; a row of an unknown kind, or with arguments its kind does not take, raises
        ValueError naming the id (a dataset written by another version of this module must not be misread)."""
        cid = row.get("id")
        if cid not in KINDS:
            raise ValueError(f"unknown constraint id {cid!r}; known: {', '.join(KINDS)}")
        extra = set(row) - {"id", "n", "relation", "words", "text"}
        if extra:
            raise ValueError(f"constraint {cid}: unknown fields {sorted(extra)}")
        ws = row.get("words")
        if ws is None:
            ws = ()
        if isinstance(ws, str) or not all(isinstance(w, str) for w in ws):
            raise ValueError(f"constraint {cid}: words must be a list of strings, got {ws!r}")
        c = cls(id=cid, n=row.get("n"), relation=row.get("relation"), words=tuple(ws), text=row.get("text"))
        KINDS[cid].validate(c)
        return c


@dataclass(frozen=True)
class Kind:
    """A constraint kind: how to draw its arguments, how to say it, how to check an answer against it."""

    id: str
    group: str  # length, keywords, start_end, lists, format, case, punctuation
    uses: frozenset[str]  # the Constraint fields it takes: a subset of n, relation, words, text
    relations: tuple[str, ...]  # the relations its count may have (empty: it does not count)
    draw: Callable[[random.Random], dict]  # rng -> the arguments of a Constraint
    say: Callable[[Constraint], str]  # the sentence appended to a prompt
    test: Callable[[str, Constraint], bool]  # the check proper, on an answer that has words

    def sample(self, rng: random.Random) -> Constraint:
        return Constraint(self.id, **self.draw(rng))

    def phrase(self, c: Constraint) -> str:
        return self.say(c)

    def check(self, answer: str | None, c: Constraint) -> bool:
        return bool(answer) and bool(_WORD.search(answer)) and self.test(answer, c)

    def validate(self, c: Constraint) -> None:
        """Raise ValueError if `c` lacks an argument this kind needs or sets one it does not use."""
        bad = []
        if ("n" in self.uses) != (c.n is not None):
            bad.append(f"n={c.n!r}")
        elif c.n is not None and (isinstance(c.n, bool) or not isinstance(c.n, int) or c.n < 1):
            bad.append(f"n={c.n!r} (a count >= 1)")
        if c.relation not in (self.relations or (None,)):
            bad.append(f"relation={c.relation!r} (takes {list(self.relations) or None})")
        if ("words" in self.uses) != bool(c.words) or any(not w.strip() for w in c.words):
            bad.append(f"words={list(c.words)!r}")
        if ("text" in self.uses) != (c.text is not None) or (c.text is not None and not c.text.strip()):
            bad.append(f"text={c.text!r}")
        if bad:
            raise ValueError(f"constraint {c.id}: malformed arguments {', '.join(bad)}")


# Fixed vocabularies. Include/frequency words are neutral and fit most topics; exclude words are fillers a model
# reaches for. The two lists are disjoint, and no exclude word occurs in a start or end phrase, so no draw of
# two kinds asks for and forbids the same word.
INCLUDE_WORDS = (
    "example", "balance", "future", "simple", "detail", "practice", "result", "choice", "reason", "pattern",
    "clear", "change", "idea", "question", "process", "value", "step", "common", "useful", "important",
)  # fmt: skip
EXCLUDE_WORDS = ("very", "really", "thing", "good", "just", "also", "many", "like")
START_PHRASES = ("In short", "Here is my answer", "To begin with", "Let me explain", "First of all", "Put simply")
END_PHRASES = ("Hope this helps.", "That is all.", "Thank you for reading.", "Let me know if you have questions.")


def _count_kind(kid: str, group: str, relations: tuple[str, ...], sizes: dict[str, tuple[int, ...]], say, count):
    """A kind that compares a count of the answer with n; `sizes` gives the n to draw from per relation."""

    def draw(rng: random.Random) -> dict:
        relation = rng.choice(relations)
        return {"n": rng.choice(sizes[relation]), "relation": relation}

    return Kind(
        kid,
        group,
        frozenset({"n", "relation"}),
        relations,
        draw,
        say,
        lambda a, c: _compare(count(a), c.relation, c.n),
    )


# length ---------------------------------------------------------------------------------------------------------

_LENGTH_WORDS = _count_kind(
    "length.words",
    "length",
    (AT_LEAST, AT_MOST),
    {AT_LEAST: (40, 60, 100, 150), AT_MOST: (20, 40, 60, 100)},
    lambda c: f"Answer in at most {c.n} words." if c.relation == AT_MOST else f"Write no fewer than {c.n} words.",
    lambda a: len(words(a)),
)
_LENGTH_SENTENCES = _count_kind(
    "length.sentences",
    "length",
    (AT_LEAST, AT_MOST),
    {AT_LEAST: (3, 5, 8), AT_MOST: (2, 3, 5)},
    lambda c: f"Keep it to {c.n} sentences or fewer." if c.relation == AT_MOST else f"Use {c.n} sentences or more.",
    lambda a: len(sentences(a)),
)
_LENGTH_PARAGRAPHS = _count_kind(
    "length.paragraphs",
    "length",
    (EXACTLY,),
    {EXACTLY: (2, 3, 4)},
    lambda c: f"Write exactly {c.n} paragraphs with a blank line between them.",
    lambda a: len(paragraphs(a)),
)

# keywords -------------------------------------------------------------------------------------------------------


def _draw_include(rng: random.Random) -> dict:
    return {"words": tuple(rng.sample(INCLUDE_WORDS, rng.choice((1, 2))))}


def _draw_exclude(rng: random.Random) -> dict:
    return {"words": tuple(rng.sample(EXCLUDE_WORDS, rng.choice((1, 2))))}


def _draw_frequency(rng: random.Random) -> dict:
    return {"words": (rng.choice(INCLUDE_WORDS),), "n": rng.choice((2, 3, 4)), "relation": AT_LEAST}


_KEYWORDS_INCLUDE = Kind(
    "keywords.include",
    "keywords",
    frozenset({"words"}),
    (),
    _draw_include,
    lambda c: (
        f"Make sure the word{'s' if len(c.words) > 1 else ''} {_quoted_list(c.words, 'and')} appear"
        f"{'' if len(c.words) > 1 else 's'} in your answer."
    ),
    lambda a, c: all(_whole_word(w).search(a) for w in c.words),
)
_KEYWORDS_EXCLUDE = Kind(
    "keywords.exclude",
    "keywords",
    frozenset({"words"}),
    (),
    _draw_exclude,
    lambda c: f"Avoid the word{'s' if len(c.words) > 1 else ''} {_quoted_list(c.words, 'and')} completely.",
    lambda a, c: not any(_whole_word(w).search(a) for w in c.words),
)
_KEYWORDS_FREQUENCY = Kind(
    "keywords.frequency",
    "keywords",
    frozenset({"words", "n", "relation"}),
    (AT_LEAST,),
    _draw_frequency,
    lambda c: f'Mention the word "{c.words[0]}" {c.n} times or more.',
    lambda a, c: _compare(len(_whole_word(c.words[0]).findall(a)), c.relation, c.n),
)

# start_end ------------------------------------------------------------------------------------------------------


def _starts_with(answer: str, c: Constraint) -> bool:
    return bool(
        re.match(rf"{re.escape(c.text)}(?!\w)", answer.lstrip(), re.IGNORECASE)
    )  # "In shortest" is not "In short"


def _ends_with(answer: str, c: Constraint) -> bool:
    return bool(re.search(rf"(?<!\w){re.escape(c.text)}$", answer.rstrip(), re.IGNORECASE))


# the last non-blank line opens with "P.S." (emphasis markers and "P. S." allowed) and says something after it
_POSTSCRIPT = re.compile(r"[*_]*p\.\s?s\.[*_:]*\s*\w", re.IGNORECASE)


def _has_postscript(answer: str, c: Constraint) -> bool:
    filled = [line.strip() for line in _lines(answer) if line.strip()]
    return bool(_POSTSCRIPT.match(filled[-1]))


_START = Kind(
    "start_end.start",
    "start_end",
    frozenset({"text"}),
    (),
    lambda rng: {"text": rng.choice(START_PHRASES)},
    lambda c: f'Open your answer with the words "{c.text}".',
    _starts_with,
)
_END = Kind(
    "start_end.end",
    "start_end",
    frozenset({"text"}),
    (),
    lambda rng: {"text": rng.choice(END_PHRASES)},
    lambda c: f'Make "{c.text}" the very last words of your answer.',
    _ends_with,
)
_POSTSCRIPT_KIND = Kind(
    "start_end.postscript",
    "start_end",
    frozenset(),
    (),
    lambda rng: {},
    lambda c: "Close with a postscript: a final line that starts with P.S.",
    _has_postscript,
)

# lists ----------------------------------------------------------------------------------------------------------

# top-level items only (at most one leading space): an indented "  - x" is a nested item, not one of the list's own
_BULLET = re.compile(r"^ ?[-*] +\S", re.MULTILINE)
_NUMBERED = re.compile(r"^ ?(\d+)[.)] +\S", re.MULTILINE)


def _numbered_items(answer: str, c: Constraint) -> bool:
    """Exactly n items, numbered 1 to n in order: "1. 1. 1." or a gap is not the list that was asked for."""
    return [int(m) for m in _NUMBERED.findall(answer)] == list(range(1, c.n + 1))


_BULLETS = Kind(
    "lists.bullets",
    "lists",
    frozenset({"n", "relation"}),
    (EXACTLY,),
    lambda rng: {"n": rng.choice((3, 4, 5)), "relation": EXACTLY},
    lambda c: f'Give exactly {c.n} bullet points, one per line, each starting with "- ".',
    lambda a, c: len(_BULLET.findall(a)) == c.n,
)
_NUMBERED_KIND = Kind(
    "lists.numbered",
    "lists",
    frozenset({"n", "relation"}),
    (EXACTLY,),
    lambda rng: {"n": rng.choice((3, 4, 5)), "relation": EXACTLY},
    lambda c: f"Lay out your answer as a numbered list of exactly {c.n} items, numbered 1 to {c.n}.",
    _numbered_items,
)

# format ---------------------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^ {0,3}##(?!#)[ \t]+\S.*$", re.MULTILINE)
_TITLE = re.compile(r"<<[^<>\n]*\w[^<>\n]*>>")
_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL | re.IGNORECASE)
# *span*: single asterisks hugging non-space text; not **bold**, not a "* " bullet, not 2*3*4
_HIGHLIGHT = re.compile(r"(?<![\w*])\*[^\s*](?:[^*\n]*[^\s*])?\*(?![\w*])")
# [name]: a short bracketed label with a letter; a markdown link [text](url) is not a placeholder
_PLACEHOLDER = re.compile(r"\[(?=[^\]\n]*[A-Za-z])[^\[\]\n]{1,40}\](?!\()")
_MARKDOWN = (
    re.compile(r"^ {0,3}#{1,6}[ \t]", re.MULTILINE),  # a heading
    re.compile(r"^ *[-*+] +\S", re.MULTILINE),  # a bullet
    re.compile(r"^ *\d+[.)] +\S", re.MULTILINE),  # a numbered item
    re.compile(r"[*`]"),  # emphasis, bold, code, a fence
    re.compile(r"\[[^\]\n]*\]\([^)\n]*\)"),  # a link
)


def _sections(answer: str, c: Constraint) -> bool:
    """Exactly n "## " headings, each followed by some text before the next one (an empty section is no section)."""
    heads = list(_HEADING.finditer(answer))
    ends = [h.start() for h in heads[1:]] + [len(answer)]
    return len(heads) == c.n and all(_WORD.search(answer[h.end() : e]) for h, e in zip(heads, ends))


def _titled(answer: str, c: Constraint) -> bool:
    first = next(line for line in _lines(answer) if line.strip())
    return bool(_TITLE.search(first))


def _is_json(answer: str, c: Constraint) -> bool:
    """The whole answer, or the inside of one ```json fence that is the whole answer, is a JSON object or array
    (a bare "string" or number is valid JSON but says nothing that needed JSON)."""
    body = answer.strip()
    fenced = _FENCE.fullmatch(body)
    try:
        value = json.loads(fenced.group(1) if fenced else body)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, (dict, list))


def _quoted(answer: str, c: Constraint) -> bool:
    body = answer.strip()
    return len(body) >= 2 and (body[0], body[-1]) in {('"', '"'), ("“", "”")}


_SECTIONS = Kind(
    "format.sections",
    "format",
    frozenset({"n", "relation"}),
    (EXACTLY,),
    lambda rng: {"n": rng.choice((2, 3, 4)), "relation": EXACTLY},
    lambda c: f'Organize the answer into exactly {c.n} parts, each under its own heading line beginning with "## ".',
    _sections,
)
_TITLE_KIND = Kind(
    "format.title",
    "format",
    frozenset(),
    (),
    lambda rng: {},
    lambda c: "Put a title on the first line, inside double angle brackets, for example <<A Short Title>>.",
    _titled,
)
_JSON = Kind(
    "format.json",
    "format",
    frozenset(),
    (),
    lambda rng: {},
    lambda c: "Reply only with valid JSON (an object or a list), with no text around it.",
    _is_json,
)
_QUOTED = Kind(
    "format.quoted",
    "format",
    frozenset(),
    (),
    lambda rng: {},
    lambda c: "Put your whole answer inside one pair of double quotes.",
    _quoted,
)
_HIGHLIGHT_KIND = _count_kind(
    "format.highlight",
    "format",
    (AT_LEAST,),
    {AT_LEAST: (1, 2, 3)},
    lambda c: f"Mark at least {_plural(c.n, 'key phrase', 'key phrases')} with single asterisks, like *this*.",
    lambda a: len(_HIGHLIGHT.findall(a)),
)
_PLACEHOLDERS = _count_kind(
    "format.placeholders",
    "format",
    (AT_LEAST,),
    {AT_LEAST: (1, 2, 3)},
    lambda c: (
        f"Leave at least {_plural(c.n, 'blank', 'blanks')} for the reader to fill in, written in square "
        "brackets such as [name]."
    ),
    lambda a: len(_PLACEHOLDER.findall(a)),
)
_NO_MARKDOWN = Kind(
    "format.no_markdown",
    "format",
    frozenset(),
    (),
    lambda rng: {},
    lambda c: "Write plain text with no markdown: no headings, lists, asterisks or backticks.",
    lambda a, c: not any(p.search(a) for p in _MARKDOWN),
)

# case and punctuation -------------------------------------------------------------------------------------------

_LOWER = Kind(
    "case.lower",
    "case",
    frozenset(),
    (),
    lambda rng: {},
    lambda c: "Use only lowercase letters, with no capitals anywhere.",
    lambda a, c: not any(ch.isupper() for ch in a),
)
_UPPER = Kind(
    "case.upper",
    "case",
    frozenset(),
    (),
    lambda rng: {},
    lambda c: "Write everything in capital letters.",
    lambda a, c: not any(ch.islower() for ch in a),
)
_NO_COMMAS = Kind(
    "punctuation.no_commas",
    "punctuation",
    frozenset(),
    (),
    lambda rng: {},
    lambda c: "Use no commas at all.",
    lambda a, c: "," not in a and "，" not in a,  # the full-width comma too
)

KINDS: dict[str, Kind] = {
    k.id: k
    for k in (
        _LENGTH_WORDS,
        _LENGTH_SENTENCES,
        _LENGTH_PARAGRAPHS,
        _KEYWORDS_INCLUDE,
        _KEYWORDS_EXCLUDE,
        _KEYWORDS_FREQUENCY,
        _START,
        _END,
        _POSTSCRIPT_KIND,
        _BULLETS,
        _NUMBERED_KIND,
        _SECTIONS,
        _TITLE_KIND,
        _JSON,
        _QUOTED,
        _HIGHLIGHT_KIND,
        _PLACEHOLDERS,
        _NO_MARKDOWN,
        _LOWER,
        _UPPER,
        _NO_COMMAS,
    )
}

# --- conflicts --------------------------------------------------------------------------------------------------

# kind -> the kinds it must not be drawn with: contradictory, or so awkward together that the answer could not be
# natural (a JSON answer with a P.S., a quoted answer whose first line must be a "## " heading)
_CONFLICTING: dict[str, tuple[str, ...]] = {
    # JSON combines only with word counts, keywords and lowercase: JSON's true/false/null are lowercase, and any
    # layout, list, opening or closing text, title or comma-free rule breaks the "only JSON" answer
    "format.json": tuple(
        k for k in KINDS if k not in {"format.json", "length.words", "case.lower"} and not k.startswith("keywords.")
    ),
    "format.quoted": (
        "start_end.start",
        "start_end.end",
        "start_end.postscript",
        "lists.bullets",
        "lists.numbered",
        "format.sections",
    ),
    "format.no_markdown": ("lists.bullets", "lists.numbered", "format.sections", "format.highlight"),
    "case.lower": ("case.upper",),
    "lists.bullets": ("lists.numbered",),
    "start_end.end": ("start_end.postscript",),  # both claim the last line
    "start_end.start": ("format.title",),  # both claim the first line
    "length.paragraphs": ("length.sentences", "format.sections", "start_end.postscript"),  # counts that collide
}
CONFLICTS: frozenset[frozenset[str]] = frozenset(
    frozenset((a, b)) for a, others in _CONFLICTING.items() for b in others if a != b
)


def conflicts(a: str, b: str) -> bool:
    return frozenset((a, b)) in CONFLICTS


# --- the API stages call ----------------------------------------------------------------------------------------


def check_ids(ids: Iterable[str]) -> list[str]:
    """The unknown ids among `ids`, each once, in order (validation of params and datasets)."""
    return [i for i in dict.fromkeys(ids) if i not in KINDS]


def phrase(constraints: Sequence[Constraint]) -> str:
    """The sentences that attach() appends for `constraints`, one per constraint, space-separated."""
    return " ".join(KINDS[c.id].phrase(c) for c in constraints)


def with_constraints(prompt: str, constraints: Sequence[Constraint]) -> str:
    """`prompt` followed by phrase(constraints): after a space when the prompt is one line ending a sentence,
    else on a new line (after "List three fruits:" or a code block, a space would glue the two together)."""
    if not constraints:
        return prompt
    body = prompt.rstrip()
    if not body:
        return phrase(constraints)
    sep = " " if "\n" not in body and re.search(r"[.!?][\"'”’)\]]*$", body) else "\n"
    return body + sep + phrase(constraints)


def attach(
    prompt: str, rng: random.Random, kinds: Sequence[str], per_prompt: int
) -> tuple[str, tuple[Constraint, ...]]:
    """The prompt with `per_prompt` constraints of distinct, non-conflicting kinds drawn from `kinds`, phrased
    after it (with_constraints), and the constraints, in the order they are phrased.

    Kinds are drawn one at a time, uniformly among those of `kinds` not yet drawn and conflicting with none drawn
    so far. When fewer than `per_prompt` remain possible (few kinds, or an early format.json that rules most out)
    it draws as many as it can: fewer constraints, never conflicting ones. Same rng state, same result."""
    if per_prompt < 0:
        raise ValueError(f"per_prompt must be >= 0, got {per_prompt}")
    unknown = check_ids(kinds)
    if unknown:
        raise ValueError(f"unknown constraint kinds {unknown}; known: {', '.join(KINDS)}")
    pool = list(dict.fromkeys(kinds))  # a fixed order, so the draw depends on the rng alone
    chosen: list[str] = []
    while len(chosen) < per_prompt:
        options = [k for k in pool if k not in chosen and not any(conflicts(k, c) for c in chosen)]
        if not options:
            break
        chosen.append(rng.choice(options))
    constraints = tuple(KINDS[k].sample(rng) for k in chosen)
    return with_constraints(prompt, constraints), constraints


def verdicts(answer: str | None, constraints: Sequence[Constraint]) -> tuple[bool, ...]:
    """Per constraint, does `answer` obey it? A missing answer (None) obeys none."""
    unknown = check_ids(c.id for c in constraints)
    if unknown:
        raise ValueError(f"unknown constraint kinds {unknown}")
    return tuple(KINDS[c.id].check(answer, c) for c in constraints)


def share_met(verdicts: Sequence[bool]) -> float | None:
    """The share of constraints met, 0..1; None when there are none (no evidence, not a zero)."""
    return sum(map(bool, verdicts)) / len(verdicts) if len(verdicts) else None
