import pytest

from stages.judging.prompting import (
    JUSTIFICATIONS,
    judge_messages,
    judgment_text,
    parse_instruction,
    self_instruct_messages,
)
from stages.judging.scoring import parse_score


@pytest.mark.parametrize(
    "text,score",
    [
        ("Relevant and clear.\nScore: 4", 4.0),
        ("score:3", 3.0),
        ("**Score:** 5", 5.0),  # markdown bold around the label
        ("Score: 2/5", 2.0),
        ("First Score: 1 then corrected. Score: 3", 3.0),
        ("Score: 4.5", 4.5),
        ("Score: 7", None),
        ("I would give it a four.", None),
        ("", None),
    ],
)
def test_parse_score(text, score):
    assert parse_score(text) == score


def test_unparseable_is_none_never_zero():
    assert parse_score("no score here") is None
    assert parse_score("Score: 0") == 0.0


def test_judgment_text_starts_with_parseable_score():
    for s in range(6):
        text = judgment_text(s)  # score first: logprob mode reads the token after "Score: "
        assert text.startswith(f"Score: {s}\n") and parse_score(text) == s
        assert JUSTIFICATIONS[s] in text
    with pytest.raises(ValueError):
        judgment_text(6)


def test_judge_prompt_carries_question_answer_and_rubric():
    (msg,) = judge_messages("  What is 2+2? ", "4")
    assert msg["role"] == "user"
    assert "<question>\nWhat is 2+2?\n</question>" in msg["content"]
    assert "<answer>\n4\n</answer>" in msg["content"]
    assert "Score: N" in msg["content"] and "Expert" in msg["content"]


@pytest.mark.parametrize(
    "raw,want",
    [
        ("Write a haiku about rain.", "Write a haiku about rain."),
        ('"Explain photosynthesis simply."', "Explain photosynthesis simply."),
        ("9. Plan a trip to Rome.\n\nSure! Here is more.", "Plan a trip to Rome."),
        ("Request: Summarise this paragraph.", "Summarise this paragraph."),
        ("   ", ""),
    ],
)
def test_parse_instruction(raw, want):
    assert parse_instruction(raw) == want


def test_self_instruct_lists_examples_on_one_line_each():
    (msg,) = self_instruct_messages(["first\nline", "second"])
    assert "1. first line\n2. second" in msg["content"]
