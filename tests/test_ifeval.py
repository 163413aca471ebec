"""IFEval scorer: hand-made answers with known verdicts, Wilson intervals checked by hand. Offline, a few seconds."""

from __future__ import annotations

import json
import sys

import pytest

if sys.version_info < (3, 11):  # the ifeval extra installs if-verifiable on Python >= 3.11 only
    pytest.skip("if-verifiable needs Python >= 3.11", allow_module_level=True)

from stages.measure import ifeval
from stages.measure.stats import wilson_interval

from .conftest import SHARED_DATA

# Three real rows of ../shared/data/ifeval/input_data.jsonl, copied so the tests need no shared data.
NO_COMMA = {
    "key": 3615,
    "prompt": "Write a riddle about Camilla that doesn't use commas.",
    "instruction_id_list": ["punctuation:no_comma"],
    "kwargs": [{}],
}
LOWERCASE = {
    "key": 1593,
    "prompt": "Compose a poem all in lowercase letters about my friend Barnet.",
    "instruction_id_list": ["change_case:english_lowercase"],
    "kwargs": [{}],
}
UNDER_300_WORDS = {
    "key": 1092,
    "prompt": "Write a short blog post about a trip to Japan using less than 300 words.",
    "instruction_id_list": ["length_constraints:number_words"],
    "kwargs": [{"relation": "less than", "num_words": 300}],
}


def row(iid: str, key: int = 1, **kwargs) -> dict:
    return {"key": key, "prompt": "a hand-made prompt", "instruction_id_list": [iid], "kwargs": [kwargs]}


def verdict(r: dict, answer: str) -> tuple[bool, bool]:
    (v,) = ifeval.check_answer(r, answer)
    assert v["unscored"] is None
    return v["strict"], v["loose"]


PASS, FAIL, LOOSE_ONLY = (True, True), (False, False), (False, True)

CASES = [
    (NO_COMMA, "What walks on four legs at dawn and sings all night? Camilla's cat.", PASS),
    (NO_COMMA, "Camilla, who sings, is the answer.", FAIL),
    # the checker also asks langdetect for English, so the text must be long enough to look English
    (LOWERCASE, "my friend barnet walks along the river every morning and sings to the birds", PASS),
    (LOWERCASE, "My friend Barnet walks along the river every morning and sings to the birds", FAIL),
    (UNDER_300_WORDS, " ".join(["word"] * 299), PASS),  # "less than 300": 299 passes, 300 fails
    (UNDER_300_WORDS, " ".join(["word"] * 300), FAIL),
    (row("detectable_format:json_format"), '{"city": "Kyoto", "days": 3}', PASS),
    (row("detectable_format:json_format"), '```json\n{"city": "Kyoto"}\n```', PASS),  # the checker strips fences
    (row("detectable_format:json_format"), "city: Kyoto", FAIL),
    (row("detectable_format:number_bullet_lists", num_bullets=3), "* tea\n* rice\n* fish", PASS),
    (row("detectable_format:number_bullet_lists", num_bullets=3), "* tea\n* rice", FAIL),
    (row("startend:end_checker", end_phrase="Any other questions?"), "Done. Any other questions?", PASS),
    (row("startend:end_checker", end_phrase="Any other questions?"), "Any other questions? Done.", FAIL),
    (
        row("keywords:existence", keywords=["correlated", "experiencing"]),
        "People experiencing stress report correlated symptoms.",
        PASS,
    ),
    (row("keywords:existence", keywords=["correlated", "experiencing"]), "People report correlated symptoms.", FAIL),
    # strict fails, loose passes: a sign-off line after the end phrase, a preamble before a list, markdown bold
    (row("startend:end_checker", end_phrase="Any other questions?"), "Done. Any other questions?\nCheers", LOOSE_ONLY),
    (row("detectable_format:number_bullet_lists", num_bullets=3), "Sure:\n* tea\n* rice\n* fish\n* miso", LOOSE_ONLY),
    (row("startend:quotation"), '**"Hello there."**', LOOSE_ONLY),
]


@pytest.mark.parametrize(("r", "answer", "expected"), CASES)
def test_hand_made_verdicts(r, answer, expected):
    assert verdict(r, answer) == expected


def test_sentence_count_uses_offline_punkt_tab():
    assert ifeval.punkt_tab_available(), (
        "NLTK punkt_tab missing: run `python -m stages.measure.ifeval install-punkt-tab`"
    )

    def at_least(n: int) -> dict:
        return row("length_constraints:number_sentences", relation="at least", num_sentences=n)

    # Punkt knows "Dr." is an abbreviation: 2 sentences, where splitting on periods would count 3.
    assert verdict(at_least(2), "Dr. Smith came home. He sat down.") == PASS
    assert verdict(at_least(3), "Dr. Smith came home. He sat down.") == FAIL
    # capital_word_frequency tokenizes with nltk.word_tokenize, which needs punkt_tab too
    caps = row("change_case:capital_word_frequency", capital_relation="at least", capital_frequency=2)
    assert verdict(caps, "USE THE NASA API.") == PASS


def test_language_check_is_deterministic():
    r = row("language:response_language", language="fr")
    answer = "Bonjour, je m'appelle Marie et j'aime beaucoup la cuisine de ma grand-mère."
    assert verdict(r, answer) == PASS
    assert verdict(row("language:response_language", language="en"), answer) == FAIL
    assert ifeval.score([r] * 3, [answer] * 3) == ifeval.score([r] * 3, [answer] * 3)


def test_empty_answer_fails_every_instruction():
    r = {
        "key": 2,
        "prompt": "p",
        "instruction_id_list": ["punctuation:no_comma", "keywords:forbidden_words"],
        "kwargs": [{}, {"forbidden_words": ["rock"]}],
    }  # both would pass on any non-empty answer without them
    for answer in ("", "  \n ", None):
        assert [(v["strict"], v["loose"]) for v in ifeval.check_answer(r, answer)] == [FAIL, FAIL]
    s = ifeval.score([r, r], ["", "no rocks here"])
    assert s["empty_answers"] == {"count": 1, "share": 0.5}
    assert (s["inst_level_strict_acc"]["k"], s["inst_level_strict_acc"]["n"]) == (2, 4)


def test_unknown_instruction_counts_as_failure():
    r = {"key": 3, "prompt": "p", "instruction_id_list": ["punctuation:no_comma", "made:up"], "kwargs": [{}, {}]}
    s = ifeval.score([r], ["fine"])
    assert s["unknown_instruction_ids"] == ["made:up"]
    assert (s["inst_level_strict_acc"]["k"], s["inst_level_strict_acc"]["n"]) == (1, 2)
    assert s["prompt_level_loose_acc"]["k"] == 0


def test_score_levels_intervals_and_flags():
    two = {
        "key": 4,
        "prompt": "p",
        "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
        "kwargs": [{}, {}],
    }
    rows = [two, two, NO_COMMA]
    answers = [
        "this answer is written in lowercase and it has no commas at all",
        "This answer is written with capitals and it has no commas at all",
        "Sure,\nno commas here",
    ]
    s = ifeval.score(rows, answers, cap_hit=[True, False, False], loops=[False, False, False])
    # strict: prompt 1 passes both, prompt 2 fails lowercase, prompt 3 fails the comma check
    assert (s["prompt_level_strict_acc"]["k"], s["prompt_level_strict_acc"]["n"]) == (1, 3)
    assert (s["inst_level_strict_acc"]["k"], s["inst_level_strict_acc"]["n"]) == (3, 5)
    # loose drops the first line "Sure," of prompt 3
    assert (s["prompt_level_loose_acc"]["k"], s["inst_level_loose_acc"]["k"]) == (2, 4)
    assert s["inst_level_strict_acc"]["acc"] == 0.6
    assert s["inst_level_strict_acc"]["ci95"] == [round(x, 4) for x in wilson_interval(3, 5)]
    assert s["by_instruction"]["punctuation:no_comma"] == {
        "n": 3,
        "strict_k": 2,
        "loose_k": 3,
        "unscored": 0,
        "strict": 0.6667,
        "loose": 1.0,
    }
    assert s["cap_hit"] == {"count": 1, "share": 0.3333}
    assert s["loops"] == {"count": 0, "share": 0.0}
    assert ifeval.score(rows, answers)["cap_hit"] is None
    with pytest.raises(ValueError, match="3 prompts but 2 answers"):
        ifeval.score(rows, answers[:2])


def test_missing_punkt_reports_unscored(monkeypatch, tmp_path):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])  # an nltk_data without punkt_tab
    monkeypatch.delenv("NLTK_DATA", raising=False)
    assert not ifeval.punkt_tab_available()
    sentences = row("length_constraints:number_sentences", key=5, relation="at least", num_sentences=1)
    s = ifeval.score([sentences, NO_COMMA], ["One sentence.", "No commas."])
    assert s["unscored"]["instructions"] == 1 and s["unscored"]["prompts"] == 1
    assert "punkt_tab" in s["unscored"]["reasons"][0]
    assert s["by_instruction"]["length_constraints:number_sentences"]["unscored"] == 1
    # left out of every accuracy, not counted as a pass or a fail
    assert (s["prompt_level_strict_acc"]["k"], s["prompt_level_strict_acc"]["n"]) == (1, 1)
    assert (s["inst_level_strict_acc"]["k"], s["inst_level_strict_acc"]["n"]) == (1, 1)


def test_install_punkt_tab_is_reproducible(tmp_path):
    a, b = ifeval.install_punkt_tab(tmp_path / "a"), ifeval.install_punkt_tab(tmp_path / "b")
    names = sorted(p.name for p in a.iterdir())
    assert names == ["abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt"]
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert "dr" in (a / "abbrev_types.txt").read_text().split("\n")


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        # by hand: centre = (p + z²/2n) / (1 + z²/n), half = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²), z = 1.96
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (80, 100, 0.7112, 0.8666),
        (0, 0, 0.0, 1.0),
    ],
)
def test_wilson_interval(k, n, lo, hi):
    assert wilson_interval(k, n) == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_load_prompts(tmp_path):
    assert ifeval.load_prompts(tmp_path / "absent.jsonl") is None
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (NO_COMMA, LOWERCASE, UNDER_300_WORDS)) + "\n")
    assert ifeval.load_prompts(path) == [NO_COMMA, LOWERCASE, UNDER_300_WORDS]
    assert ifeval.load_prompts(path, max_prompts=2) == [NO_COMMA, LOWERCASE]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"key": 1, "prompt": "p"}))
    with pytest.raises(ValueError, match="lacks"):
        ifeval.load_prompts(bad)


def test_load_prompts_parquet_with_hub_style_kwargs(tmp_path):
    """The Hub's google/IFEval stores kwargs as structs with every field, None where unused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "ifeval.parquet"
    pq.write_table(pa.Table.from_pylist([NO_COMMA, UNDER_300_WORDS]), path)
    rows = ifeval.load_prompts(path)
    assert rows[0]["kwargs"] == [{"relation": None, "num_words": None}]
    assert ifeval.score(rows, ["short, with a comma", "short"])["inst_level_strict_acc"]["k"] == 1


def test_shared_file_when_present():
    rows = ifeval.load_prompts(SHARED_DATA / "ifeval" / "input_data.jsonl")
    if rows is None:
        pytest.skip("no ../shared/data/ifeval beside the checkout")
    assert len(rows) == 541 and sum(len(r["instruction_id_list"]) for r in rows) == 834
    assert {r["key"]: r for r in rows}[3615] == NO_COMMA


def test_paired_difference_interval():
    from stages.measure.stats import difference_interval, paired_difference_interval

    # Newcombe (1998) example (a): 12 both, 9 A only, 2 B only, 21 neither
    a = [True] * 12 + [True] * 9 + [False] * 2 + [False] * 21
    b = [True] * 12 + [False] * 9 + [True] * 2 + [False] * 21
    got = paired_difference_interval(a, b)
    assert got["diff"] == round(7 / 44, 4) and got["n"] == 44 and (got["a_only"], got["b_only"]) == (9, 2)
    lo, hi = got["ci95"]
    assert lo < got["diff"] < hi and -0.1 < lo < 0.05 and 0.25 < hi < 0.35
    # correlated outcomes: narrower than the independent (Newcombe hybrid) interval on the same counts
    ilo, ihi = difference_interval(21, 44, 14, 44)
    assert hi - lo < ihi - ilo
    swapped = paired_difference_interval(b, a)
    assert swapped["diff"] == -got["diff"] and swapped["ci95"] == [-hi, -lo]
    # unknown verdicts are left out; identical models: 0 with an interval around it
    same = paired_difference_interval([True, False, None] * 20, [True, False, True] * 20)
    assert same["n"] == 40 and same["diff"] == 0 and same["ci95"][0] <= 0 <= same["ci95"][1]
    assert paired_difference_interval([None], [True]) is None
