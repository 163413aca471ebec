"""Is a self-made prompt one request? Hand-made prompts in the shapes SmolLM2-135M wrote (BENCHMARKS.md), and the
prompts@t filter that cuts or drops them."""

import pytest

from stages.judging import prompt_content as C
from stages.prompts import cut_multi_requests, filter_prompts

from .conftest import knobs

CASES = [
    # one request, including lists and numbers that belong to it
    ("How do magnets work?", "ok"),
    ("Write a haiku about rain in Kyoto.", "ok"),
    ("Sort these fruits by sugar content: 1. pears 2. figs 3. limes", "ok"),
    ("Sort these fruits by sugar content:\n1. pears\n2. figs\n3. limes", "ok"),
    ("Explain Python 3.12's new f-string syntax in 2 sentences.", "ok"),
    ("Rank the top 3 cities to visit in Spain and say why.", "ok"),
    # several requests run together: the few-shot numbering resumes
    ("What is a prime number? 2. How do magnets work? 3. Name a planet.", "multi_request"),
    ("Explain tides. 9. Write a limerick. 10. Define entropy.", "multi_request"),
    ("What has keys but can't open locks?\n2. You're right, you're right.\n3. I'm glad to hear it.", "multi_request"),
    ("The number of feet in a mile\n2. Creation of the universe\n3. Codebreaking with RSA", "multi_request"),
    ('Rewrite this formally: "Hey, can\'t make it."\n2. Write a new request: "When it comes', "multi_request"),
    ("Give me five ideas for a team-building activity.\n**2. Translate 'Where is the station?'", "multi_request"),
    # few-shot scaffolding: no request in it
    ("/ 2. 2. / 3. 3.", "scaffolding"),
    ("1. 2. 3.", "scaffolding"),
    ("This new request is:", "scaffolding"),
    ("Here's an example of a long request:", "scaffolding"),
    ("Write one new request that a person might send to an AI assistant.", "scaffolding"),
    ("Here are some requests that people have sent to an AI assistant:\n1. What is a Roth IRA?", "scaffolding"),
    ("A person might send to an AI assistant a question about dinner.", "scaffolding"),
    ("", "scaffolding"),
    (None, "scaffolding"),
]


@pytest.mark.parametrize(("text", "label"), CASES)
def test_classify_hand_made_prompts(text, label):
    assert C.classify(text) == label


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("What is a prime number? 2. How do magnets work? 3. Name a planet.", "What is a prime number?"),
        ("The number of feet in a mile\n2. Creation of the universe", "The number of feet in a mile"),
        ("Explain tides. 9. Write a limerick.", "Explain tides."),
        ("Sort these: 1. pears 2. figs", "Sort these: 1. pears 2. figs"),  # the request's own list stays
        ("How do magnets work?", "How do magnets work?"),
    ],
)
def test_cut_at_first_continuation_marker(text, cut):
    assert C.cut_at_continuation(text) == cut
    assert C.classify(C.cut_at_continuation(text)) == "ok"


def test_numbered_raw_generation():
    assert C.numbered("9. Write a poem about the sea.") and C.numbered("  1) Explain tides")
    assert C.numbered("- a bullet") and not C.numbered("Write 3 poems.") and not C.numbered(None)


def test_a_shared_word_run_is_not_a_template_copy():
    # a run of 4 template words ("of the requests above") is allowed; 5 make a copy
    assert not C.copies_template("Answer the last of the requests above the line.")
    assert C.copies_template("Make it different from all of the requests above.")


PARSED = [
    "What is a prime number? 2. How do magnets work? 3. Name a planet.",
    "1. 2. 3.",
    "Write one new request that a person might send to an AI assistant.",
    "Explain how tides work.",
]


def test_prompts_stage_cuts_multi_requests_and_drops_scaffolding():
    cfg = knobs("prompts", multi_request="cut")
    texts, cut = cut_multi_requests(PARSED, cfg.multi_request)
    assert cut == 1 and texts[0] == "What is a prime number?"
    kept, reasons = filter_prompts(texts, pool=[], cfg=cfg)
    assert kept == [0, 3] and reasons == {"scaffolding": 1, "too_short": 1}  # "1. 2. 3." is too short first


def test_prompts_stage_drop_mode_drops_multi_requests():
    cfg = knobs("prompts", multi_request="drop")
    texts, cut = cut_multi_requests(PARSED, cfg.multi_request)
    assert cut == 0 and texts == PARSED
    kept, reasons = filter_prompts(texts, pool=[], cfg=cfg)
    assert kept == [3] and reasons == {"multi_request": 1, "scaffolding": 1, "too_short": 1}
