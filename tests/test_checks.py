"""Verifiable instruction constraints (stages/judging/checks.py): every kind passes and fails a hand-written answer,
attach draws deterministically and never conflicting kinds, rows round-trip. Pure Python, well under a second."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pytest

from stages.judging import checks as C
from stages.judging.checks import Constraint

ROOT = Path(__file__).resolve().parents[1]


def K(cid: str, **args) -> Constraint:
    return Constraint(cid, **args)


LEAST, MOST, EXACT = C.AT_LEAST, C.AT_MOST, C.EXACTLY

# (constraint, answer, verdict): at least one passing and one failing answer per kind, plus edge cases
CASES = [
    # length.words: \w runs with internal apostrophes/hyphens
    (K("length.words", n=5, relation=MOST), "One two three four five.", True),
    (K("length.words", n=5, relation=MOST), "One two three four five six.", False),
    (K("length.words", n=3, relation=MOST), "Don't re-read x-rays twice.", False),  # 4 words, not 7
    (K("length.words", n=4, relation=MOST), "Don't re-read x-rays twice.", True),
    (K("length.words", n=5, relation=LEAST), "one two three four five", True),
    (K("length.words", n=5, relation=LEAST), "Too short.", False),
    # length.sentences
    (K("length.sentences", n=2, relation=MOST), "Hi there. How are you?", True),
    (K("length.sentences", n=2, relation=MOST), "One. Two! Three?", False),
    (K("length.sentences", n=2, relation=MOST), "Pi is 3.14 or so. Done.", True),  # a decimal point ends nothing
    (K("length.sentences", n=2, relation=MOST), "Fruits:\n1. Apples\n2. Pears\n3. Plums", True),  # "1." is a marker
    (K("length.sentences", n=3, relation=LEAST), 'He said "go." She went. They left...', True),
    (K("length.sentences", n=3, relation=LEAST), "Only one sentence here.", False),
    # length.paragraphs
    (K("length.paragraphs", n=2, relation=EXACT), "First part.\n\nSecond part.", True),
    (K("length.paragraphs", n=2, relation=EXACT), "First line.\nStill the first paragraph.", False),
    (
        K("length.paragraphs", n=3, relation=EXACT),
        "A.\n \t\n\nB.\r\n\r\nC.\n\n\n",
        True,
    ),  # blank lines with spaces, CRLF
    (K("length.paragraphs", n=2, relation=EXACT), "A.\n\nB.\n\nC.", False),
    # keywords.include: whole words, any case
    (K("keywords.include", words=("river", "balance")), "The RIVER keeps its Balance.", True),
    (K("keywords.include", words=("river", "balance")), "The river flows.", False),
    (K("keywords.include", words=("river",)), "Rivers flow.", False),
    (K("keywords.include", words=("river",)), "A river's bank.", True),
    # keywords.exclude
    (K("keywords.exclude", words=("very", "just")), "Everything is quite fine.", True),  # "very" inside a word
    (K("keywords.exclude", words=("very", "just")), "It is Very fine.", False),
    (K("keywords.exclude", words=("very", "just")), "It is fine, just so.", False),
    # keywords.frequency
    (K("keywords.frequency", words=("step",), n=3, relation=LEAST), "Step one. Another step. The last STEP.", True),
    (K("keywords.frequency", words=("step",), n=3, relation=LEAST), "step steps stepping step", False),
    # start_end.start: leading whitespace and case ignored, whole words
    (K("start_end.start", text="In short"), "  In short, yes.", True),
    (K("start_end.start", text="In short"), "in short yes", True),
    (K("start_end.start", text="In short"), "In shortest terms, yes.", False),
    (K("start_end.start", text="In short"), "Well, in short, yes.", False),
    # start_end.end: trailing whitespace ignored, the phrase exactly (up to case)
    (K("start_end.end", text="That is all."), "Rivers flow. That is all.  \n\n", True),
    (K("start_end.end", text="That is all."), "RIVERS FLOW. THAT IS ALL.", True),
    (K("start_end.end", text="That is all."), "That is all. Bye.", False),
    (K("start_end.end", text="That is all."), "Rivers flow. That is all", False),
    (K("start_end.end", text="That is all."), "What is all.", False),
    (K("start_end.end", text="That is all."), "Rivers flowThat is all.", False),  # whole words
    # start_end.postscript: the last non-blank line opens with P.S. and says something
    (K("start_end.postscript"), "Main text.\n\nP.S. Call me.\n", True),
    (K("start_end.postscript"), "Main text.\n**P.S.** bold counts", True),
    (K("start_end.postscript"), "main text.\np.s. lowercase counts", True),
    (K("start_end.postscript"), "Main.\nP.S. one\nthen more text", False),
    (K("start_end.postscript"), "Main text. P.S. inline", False),
    (K("start_end.postscript"), "Main text.\nP.S.", False),
    # lists.bullets: top-level "- " or "* " lines
    (K("lists.bullets", n=3, relation=EXACT), "Three:\n- a\n* b\n- c\nDone.", True),
    (K("lists.bullets", n=3, relation=EXACT), "- a\n- b", False),
    (K("lists.bullets", n=3, relation=EXACT), "- a\n  - nested\n- b\n- c", True),
    (K("lists.bullets", n=3, relation=EXACT), "*one* thing\n- a\n- b", False),  # emphasis is no bullet
    # lists.numbered: exactly 1..n in order
    (K("lists.numbered", n=3, relation=EXACT), "1. a\n2. b\n3. c", True),
    (K("lists.numbered", n=3, relation=EXACT), "Steps:\n1) a\n2) b\n3) c", True),
    (K("lists.numbered", n=3, relation=EXACT), "1. a\n1. b\n1. c", False),
    (K("lists.numbered", n=3, relation=EXACT), "1. a\n2. b\n4. c", False),
    (K("lists.numbered", n=3, relation=EXACT), "1. a\n2. b", False),
    # format.sections: "## " headings, each with some text
    (K("format.sections", n=2, relation=EXACT), "Intro.\n## One\ntext\n## Two\nmore text", True),
    (K("format.sections", n=2, relation=EXACT), "## One\n## Two\ntext", False),  # the first is empty
    (K("format.sections", n=2, relation=EXACT), "### One\ntext\n### Two\ntext", False),
    (K("format.sections", n=2, relation=EXACT), "## One\ntext", False),
    # format.title: on the first non-blank line
    (K("format.title"), "<<Rivers>>\nThey flow.", True),
    (K("format.title"), "\n\n# <<Rivers of Europe>>\nThey flow.", True),
    (K("format.title"), "They flow.\n<<Rivers>>", False),
    (K("format.title"), "<<>>\nThey flow.", False),
    (K("format.title"), "<Rivers>\nThey flow.", False),
    # format.json: the whole answer, or one fence around it; an object or array
    (K("format.json"), '{"river": "Nile", "km": 6650}', True),
    (K("format.json"), '  ```json\n{"rivers": ["Nile", "Amazon"]}\n```  ', True),
    (K("format.json"), '```\n["Nile"]\n```', True),
    (K("format.json"), 'Here it is: {"river": "Nile"}', False),
    (K("format.json"), '```json\n{"river": "Nile"}\n```\nHope this helps.', False),
    (K("format.json"), '"just a string"', False),
    (K("format.json"), '{"river": "Nile",}', False),
    # format.quoted
    (K("format.quoted"), '"All of it, quoted."', True),
    (K("format.quoted"), "  “Curly quotes count.”\n", True),
    (K("format.quoted"), 'Not "quoted" as a whole.', False),
    (K("format.quoted"), '"never closed', False),
    # format.highlight: *span*, not **bold**, a bullet or 2*3*4
    (K("format.highlight", n=2, relation=LEAST), "This is *key* and *also key*.", True),
    (K("format.highlight", n=2, relation=LEAST), "**bold** and *one*", False),
    (K("format.highlight", n=1, relation=LEAST), "* bullet\n2*3* is 6 and * loose *", False),
    # format.placeholders: [label], not a link, not [ ]
    (K("format.placeholders", n=2, relation=LEAST), "Dear [name], see you at [address].", True),
    (K("format.placeholders", n=2, relation=LEAST), "See [the docs](http://x.org) and [name].", False),
    (K("format.placeholders", n=1, relation=LEAST), "A box [ ] and a number [1].", False),
    # format.no_markdown
    (K("format.no_markdown"), "Plain words here. 2 + 2 = 4 - fine.", True),
    (K("format.no_markdown"), "Use `code` here.", False),
    (K("format.no_markdown"), "# Title\ntext", False),
    (K("format.no_markdown"), "Items:\n- one", False),
    (K("format.no_markdown"), "Items:\n1. one", False),
    (K("format.no_markdown"), "a *word* here", False),
    (K("format.no_markdown"), "a [link](http://x.org)", False),
    # case
    (K("case.lower"), "all lowercase, 42 times.", True),
    (K("case.lower"), "Not lowercase.", False),
    (K("case.upper"), "ALL CAPS, 42 TIMES.", True),
    (K("case.upper"), "ALL CAPS but one.", False),
    # punctuation
    (K("punctuation.no_commas"), "No commas here.", True),
    (K("punctuation.no_commas"), "One, two.", False),
    (K("punctuation.no_commas"), "全角，逗号", False),
]


@pytest.mark.parametrize(("c", "answer", "want"), CASES, ids=[f"{c.id}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_check(c, answer, want):
    C.KINDS[c.id].validate(c)  # the hand-made constraint is one a row could hold
    assert C.KINDS[c.id].check(answer, c) is want
    assert C.verdicts(answer, [c]) == (want,)


def test_every_kind_has_a_passing_and_a_failing_case():
    passing = {c.id for c, _, want in CASES if want}
    failing = {c.id for c, _, want in CASES if not want}
    assert passing == set(C.KINDS) and failing == set(C.KINDS)


@pytest.mark.parametrize("cid", list(C.KINDS))
@pytest.mark.parametrize("answer", ["", "   \n\t", "... !!", None])
def test_a_blank_answer_fails_every_kind(cid, answer):
    """Also the "must not" kinds (no commas, no uppercase): an empty answer shows nothing."""
    c = C.KINDS[cid].sample(random.Random(0))
    assert C.KINDS[cid].check(answer, c) is False


def test_counting_definitions():
    assert C.words("Don't re-read x-rays, twice!") == ["Don't", "re-read", "x-rays", "twice"]
    assert C.sentences("One. Two?! Three... 3.14 is pi") == ["One", "Two", "Three", "3.14 is pi"]
    assert C.sentences("- a\n- b\n1. c") == ["a\nb\nc"]
    assert C.sentences("") == [] and C.sentences("...") == []
    assert C.paragraphs("a\nb\n\n\n c \n  \nd") == ["a\nb", "c", "d"]


def test_keywords_are_case_insensitive_and_whole_word():
    c = K("keywords.frequency", words=("idea",), n=2, relation=LEAST)
    assert C.verdicts("IDEA, Idea", [c]) == (True,)
    assert C.verdicts("ideas, idealist, idea", [c]) == (False,)


# --- attach -----------------------------------------------------------------------------------------------------


def test_attach_is_deterministic_for_a_seed():
    draws = [C.attach("Tell me about rivers.", random.Random(seed), list(C.KINDS), 3) for seed in range(20)]
    again = [C.attach("Tell me about rivers.", random.Random(seed), list(C.KINDS), 3) for seed in range(20)]
    assert draws == again
    assert len({d[1] for d in draws}) > 15  # and the seed matters


@pytest.mark.parametrize("seed", range(300))
def test_attach_never_draws_conflicting_kinds_and_draws_as_many_as_it_can(seed):
    rng = random.Random(seed)
    kinds = rng.sample(list(C.KINDS), rng.randint(1, len(C.KINDS)))
    per_prompt = rng.randint(0, 8)
    _, cs = C.attach("Explain tides.", random.Random(seed), kinds, per_prompt)
    ids = [c.id for c in cs]
    assert len(set(ids)) == len(ids) <= per_prompt
    assert set(ids) <= set(kinds)
    assert not [(a, b) for a in ids for b in ids if C.conflicts(a, b)]
    if len(ids) < per_prompt:  # fewer only when every kind left conflicts with one drawn
        assert all(any(C.conflicts(k, i) for i in ids) for k in kinds if k not in ids)


def test_attach_respects_kinds_and_per_prompt():
    rng = random.Random(0)
    _, cs = C.attach("Q.", rng, ["case.lower", "punctuation.no_commas", "case.lower"], 5)
    assert sorted(c.id for c in cs) == ["case.lower", "punctuation.no_commas"]  # duplicates count once
    _, cs = C.attach("Q.", rng, ["case.lower", "case.upper"], 2)
    assert len(cs) == 1  # the two conflict: one is drawn, not both
    _, cs = C.attach("Q.", rng, list(C.KINDS), 4)
    assert len(cs) == 4 or any(c.id == "format.json" for c in cs)
    assert C.attach("Q. ", rng, list(C.KINDS), 0) == ("Q. ", ())
    assert C.attach("Q.", rng, [], 3) == ("Q.", ())


def test_attach_rejects_unknown_kinds_and_negative_counts():
    with pytest.raises(ValueError, match="length.chars"):
        C.attach("Q.", random.Random(0), ["length.words", "length.chars"], 1)
    with pytest.raises(ValueError, match="per_prompt"):
        C.attach("Q.", random.Random(0), ["length.words"], -1)


def test_phrase_is_what_attach_appended():
    for seed in range(50):
        text, cs = C.attach("Tell me about rivers.", random.Random(seed), list(C.KINDS), 3)
        assert text == "Tell me about rivers. " + C.phrase(cs)
        assert text == C.with_constraints("Tell me about rivers.", cs)
    text, cs = C.attach("List three fruits:", random.Random(1), ["case.lower"], 1)
    assert text == "List three fruits:\n" + C.phrase(cs)  # a space would glue "fruits:" to the constraint
    text, cs = C.attach("Fix this:\n```\nx = 1\n```", random.Random(1), ["case.lower"], 1)
    assert text == "Fix this:\n```\nx = 1\n```\n" + C.phrase(cs)
    text, cs = C.attach("Read this.\nThen summarize it.", random.Random(1), ["case.lower"], 1)
    assert text == "Read this.\nThen summarize it.\n" + C.phrase(cs)  # a multi-line prompt: on a new line
    assert C.phrase([K("case.lower"), K("punctuation.no_commas")]) == (
        "Use only lowercase letters, with no capitals anywhere. Use no commas at all."
    )


@pytest.mark.parametrize("cid", list(C.KINDS))
def test_each_kind_samples_valid_constraints_phrased_with_their_arguments(cid):
    kind = C.KINDS[cid]
    assert cid.split(".")[0] == kind.group
    for seed in range(30):
        c = kind.sample(random.Random(seed))
        assert c.id == cid
        kind.validate(c)
        p = kind.phrase(c)
        assert p[0].isupper() and p.endswith("."), p
        assert (c.n is None or str(c.n) in p) and all(f'"{w}"' in p for w in c.words)
        assert c.text is None or f'"{c.text}"' in p


def test_phrasings_differ_between_kinds():
    said = {C.KINDS[k].phrase(C.KINDS[k].sample(random.Random(0))) for k in C.KINDS}
    assert len(said) == len(C.KINDS)


def test_same_seed_same_constraint():
    for kind in C.KINDS.values():
        assert kind.sample(random.Random(7)) == kind.sample(random.Random(7))


# --- conflicts and vocabularies ---------------------------------------------------------------------------------


def test_conflicts_are_pairs_of_known_kinds_and_include_the_contradictions():
    assert all(len(pair) == 2 and pair <= set(C.KINDS) for pair in C.CONFLICTS)
    assert C.conflicts("case.lower", "case.upper") and C.conflicts("case.upper", "case.lower")
    for k in C.KINDS:
        if k.startswith(("lists.", "start_end.")) or k in {"format.sections", "format.title", "length.paragraphs"}:
            assert C.conflicts("format.json", k), k
    for k in ("start_end.start", "start_end.end", "start_end.postscript"):
        assert C.conflicts("format.quoted", k)
    assert not C.conflicts("format.json", "keywords.include") and not C.conflicts("length.words", "case.lower")


def test_vocabularies_cannot_contradict_each_other():
    """No draw may ask for a word and forbid it, or demand a comma under no_commas."""
    assert not set(C.INCLUDE_WORDS) & set(C.EXCLUDE_WORDS)
    fixed = " ".join(C.START_PHRASES + C.END_PHRASES)
    assert not {w.lower() for w in C.words(fixed)} & set(C.EXCLUDE_WORDS)
    assert "," not in fixed


def test_an_answer_can_meet_several_constraints_at_once():
    _, cs = C.attach("Q.", random.Random(3), ["case.lower", "punctuation.no_commas", "lists.bullets"], 3)
    n = next(c.n for c in cs if c.id == "lists.bullets")
    answer = "here you go\n" + "\n".join(f"- point {i}" for i in range(n))
    assert C.verdicts(answer, cs) == (True, True, True)
    assert C.verdicts(answer.upper(), cs).count(True) == 2


# --- rows, ids, shares ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", list(C.KINDS))
def test_row_round_trip(cid):
    for seed in range(10):
        c = C.KINDS[cid].sample(random.Random(seed))
        row = c.as_row()
        assert list(row) == ["id", "n", "relation", "words", "text"]  # one struct for all kinds
        assert Constraint.from_row(row) == c
        assert Constraint.from_row(json.loads(json.dumps(row))) == c


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "length.chars", "n": 3}, "length.chars"),
        ({"id": None}, "None"),
        ({"id": "length.words", "relation": "at most"}, "length.words.*n=None"),
        ({"id": "length.words", "n": 20, "relation": "exactly"}, "length.words.*relation"),
        ({"id": "length.words", "n": 0, "relation": "at most"}, "length.words.*n=0"),
        ({"id": "length.words", "n": True, "relation": "at most"}, "length.words.*n=True"),
        ({"id": "case.lower", "text": "x"}, "case.lower.*text"),
        ({"id": "keywords.include", "words": "river"}, "keywords.include.*words"),
        ({"id": "keywords.include", "words": []}, "keywords.include.*words"),
        ({"id": "start_end.end", "text": "  "}, "start_end.end.*text"),
        ({"id": "case.lower", "colour": "red"}, "case.lower.*colour"),
    ],
)
def test_from_row_rejects_unknown_and_malformed_rows(row, message):
    with pytest.raises(ValueError, match=message):
        Constraint.from_row(row)


def test_from_row_takes_missing_unused_fields_as_defaults():
    assert Constraint.from_row({"id": "case.upper"}) == K("case.upper")
    assert Constraint.from_row({"id": "format.json", "words": None}) == K("format.json")


def test_check_ids():
    assert C.check_ids(["length.words", "nope", "case.x", "nope"]) == ["nope", "case.x"]
    assert C.check_ids(list(C.KINDS)) == [] and C.check_ids([]) == []


def test_verdicts_and_share_met():
    cs = [K("case.lower"), K("punctuation.no_commas"), K("length.words", n=3, relation=MOST)]
    v = C.verdicts("short, and lower", cs)
    assert v == (True, False, True)
    assert C.share_met(v) == pytest.approx(2 / 3)
    assert C.share_met((False, False)) == 0.0 and C.share_met([True]) == 1.0
    assert C.share_met(()) is None and C.verdicts("anything", ()) == ()
    assert C.verdicts(None, cs) == (False, False, False)
    with pytest.raises(ValueError, match="length.chars"):
        C.verdicts("x", [K("length.chars")])


# --- the module's boundaries ------------------------------------------------------------------------------------


def test_standard_library_only_and_no_other_stages_module():
    tree = ast.parse((ROOT / "stages/judging/checks.py").read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert imported <= {"__future__", "collections", "dataclasses", "json", "random", "re", "string", "typing"}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]


def test_docs_list_every_kind():
    doc = (ROOT / "docs/checks.md").read_text(encoding="utf-8")
    assert [k for k in C.KINDS if f"`{k}`" not in doc] == []
