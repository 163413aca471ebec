"""Table-driven bad input and faults: every case ends with one line naming the file and line or the params key,
a non-zero exit and no traceback, and leaves no output file (and no temporary file) behind.

Failures are real wherever this machine can produce them: a full disk is a small tmpfs, a read-only folder
is a read-only tmpfs (root ignores permission bits), a second run holds the stage's real lock. Mounting
needs root or CAP_SYS_ADMIN; where mount fails, those tests skip and say so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from stages import base, dpo, judge, pairs, responses, seed, sft
from stages.core import lineage, rows
from stages.core import params as P
from stages.core.errors import SrlmError, entry

from .conftest import ROOT, write_params
from .test_release import project, template  # noqa: F401  (fixtures: a tiny DVC project with iteration 1)

PROMPT_ROW = {
    "id": "p1",
    "prompt": "Say hi.",
    "fewshot_ids": ["a"],
    "constraints": [{"id": "case.lower", "n": None, "relation": None, "words": [], "text": None}],
    "iteration": 1,
    "model": "m",
    "seed": 0,
}
RESPONSE_ROW = {
    "id": "r1",
    "prompt_id": "p1",
    "prompt": "Say hi.",
    "response": "Hi.",
    "sample": 0,
    "n_tokens": 2,
    "truncated": False,
    "loops": False,
    "model": "m",
    "seed": 0,
}
JUDGMENT_ROW = {
    "id": "j1",
    "response_id": "r1",
    "prompt_id": "p1",
    "sample": 0,
    "score": 4.0,
    "raw": "Score: 4",
    "probs": [],
    "mode": "sample",
    "model": "m",
    "seed": 0,
}
PAIR_ROW = {
    "id": "x1",
    "prompt_id": "p1",
    "prompt": [{"role": "user", "content": "Say hi."}],
    "chosen": [{"role": "assistant", "content": "Hi there!"}],
    "rejected": [{"role": "assistant", "content": "no"}],
    "chosen_id": "r1",
    "rejected_id": "r2",
    "score_chosen": 4.0,
    "score_rejected": 1.0,
    "iteration": 1,
}


# ---- what a case makes in its folder (after params.yaml is written) ----


def jsonl(text: bytes):
    return lambda d: (d / "src.jsonl").write_bytes(text)


def parquet(df: pl.DataFrame, name: str = "in.parquet"):
    return lambda d: df.write_parquet(d / name)


def dataset(kind: str, records: list[dict], name: str = "in.parquet"):
    return lambda d: rows.write(rows.frame(records, kind), d / name, kind)


def both(*makers):
    def make(d):
        for m in makers:
            m(d)

    return make


def params_text(text: bytes):
    return lambda d: (d / "params.yaml").write_bytes(text)


def iterations(value: dict):
    def make(d):
        raw = yaml.safe_load((d / "params.yaml").read_text())
        raw["iterations"] = value
        (d / "params.yaml").write_text(yaml.safe_dump(raw))

    return make


def validation(text: str):
    return lambda d: (d / "validate.json").write_text(text)


def training_inputs(d):
    rows.write(
        rows.frame([{"id": "i1", "instruction": "Say hi.", "response": "Hi.", "source": "t"}], "ift"),
        d / "ift.parquet",
        "ift",
    )
    eft = {"id": "e1", "instruction": "Say hi.", "response": "Hi.", "score": 4, "judgment": "Score: 4", "source": "t"}
    rows.write(rows.frame([eft], "eft"), d / "eft.parquet", "eft")
    rows.write(rows.frame([PAIR_ROW], "preferences"), d / "prefs.parquet", "preferences")
    verdict = {"passed": True, "overridden": False, "preferences_md5": lineage.md5(d / "prefs.parquet")}
    (d / "validate.json").write_text(json.dumps(verdict))


def no_eft(d):
    training_inputs(d)
    rows.write(rows.empty("eft"), d / "eft.parquet", "eft")


def scores(*values):
    """responses r1, r2 of one prompt, and a judgment of each with the given scores."""
    return both(
        dataset("responses", [RESPONSE_ROW, {**RESPONSE_ROW, "id": "r2", "response": "Hello."}]),
        dataset(
            "judgments",
            [{**JUDGMENT_ROW, "id": f"j{i}", "response_id": f"r{i}", "score": v} for i, v in enumerate(values, 1)],
            "judged.parquet",
        ),
    )


def loop(name: str):
    return lambda d: (d / name).symlink_to(name)  # a symlink to itself


# ---- how a case runs its stage ----


def seed_run(d, model, out="."):
    seed.main(
        [
            *("--ift", str(d / out / "out_ift.parquet"), "--eft", str(d / out / "out_eft.parquet")),
            *("--metrics", str(d / out / "out_seed.json"), "--params", str(d / "params.yaml")),
        ]
    )


def gen_run(module, flag):
    def run(d, model):
        module.main(
            [
                *("--iteration", "1", "--model", str(model), flag, str(d / "in.parquet")),
                *(
                    "--out",
                    str(d / "out.parquet"),
                    "--metrics",
                    str(d / "out.json"),
                    "--params",
                    str(d / "params.yaml"),
                ),
            ]
        )

    return run


responses_run, judge_run = gen_run(responses, "--prompts"), gen_run(judge, "--responses")


def pairs_run(d, model):
    pairs.main(
        [
            *("--iteration", "1", "--responses", str(d / "in.parquet"), "--judgments", str(d / "judged.parquet")),
            *("--out", str(d / "out.parquet"), "--metrics", str(d / "out.json"), "--params", str(d / "params.yaml")),
        ]
    )


def sft_run(d, model):
    sft.main(
        [
            *("--base", str(model), "--ift", str(d / "ift.parquet"), "--eft", str(d / "eft.parquet")),
            *("--out", str(d / "out_model"), "--metrics", str(d / "out.json"), "--params", str(d / "params.yaml")),
        ]
    )


def dpo_run(d, model):
    dpo.main(
        [
            *("--iteration", "1", "--model", str(model), "--preferences", str(d / "prefs.parquet")),
            *("--validation", str(d / "validate.json"), "--out", str(d / "out_model")),
            *("--metrics", str(d / "out.json"), "--params", str(d / "params.yaml")),
        ]
    )


def base_run(d, model):
    base.main(["--out", str(d / "out"), "--params", str(d / "params.yaml")])


def params_folder_run(d, model):
    seed.main(["--ift", str(d / "out_ift.parquet"), "--eft", str(d / "out_eft.parquet"), "--params", str(d)])


def into_a_file_run(d, model):
    (d / "blocker").write_text("a file where the output folder should be")
    seed_run(d, model, out="blocker")


SEED_FROM_SRC = "seed_data: {ift: [{path: SRC}], eft: []}"
EFT_FROM_SRC = "seed_data: {eft: [{path: SRC}]}"  # IFT stays the repo's seed file
GOOD = b'{"instruction": "a", "response": "b"}\n'
CASES = [
    # (name, what to make, params override, stage, expected message)
    # -- seed sources --
    ("invalid json", jsonl(GOOD + b'{"instruction": "a",\n'), SEED_FROM_SRC, seed_run, r"src.jsonl:2: invalid JSON"),
    (
        "not utf-8",
        jsonl(GOOD + b'{"instruction": "caf\xe9", "response": "b"}\n'),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl:2: not UTF-8",
    ),
    (
        "missing column",
        jsonl(b'{"instruction": "a"}\n'),
        SEED_FROM_SRC,
        seed_run,
        r"missing column\(s\) \['response'\]",
    ),
    (
        "a line with other keys",
        jsonl(GOOD + b'{"prompt_text": "c", "answer": "d"}\n' + GOOD),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl:2: no 'instruction' \(this row has \['prompt_text', 'answer'\]\)",
    ),
    (
        "a line with an explicit null",
        jsonl(GOOD + b'{"instruction": "c", "response": null}\n'),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl:2: no 'response'",
    ),
    (
        "column switches type",
        jsonl(GOOD + b'{"instruction": ["a"], "response": "b"}\n'),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl:2: key 'instruction' is a list here but text on line 1",
    ),
    (
        "text and numbers mixed",
        jsonl(GOOD + b'{"instruction": 5, "response": "b"}\n'),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl:2: key 'instruction' is a number here but text on line 1",
    ),
    (
        "a number where text belongs",
        jsonl(b'{"instruction": 5, "response": "b"}\n'),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl:1: instruction must be text, got 5",
    ),
    (
        "column of objects",
        jsonl(b'{"instruction": {"x": 1}, "response": "b"}\n'),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl: columns instruction and response must be text",
    ),
    ("empty source", jsonl(b""), SEED_FROM_SRC, seed_run, r"src.jsonl is empty"),
    (
        "source is a folder",
        lambda d: (d / "src.jsonl").mkdir(),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl is a folder, not a file",
    ),
    (
        "IFT rows all blank",
        jsonl(b'{"instruction": " ", "response": "b"}\n{"instruction": "a", "response": ""}\n'),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl \(jsonl\): all 2 rows have a blank instruction or response",
    ),
    (
        "EFT rows all blank",
        jsonl(b'{"instruction": " ", "response": "b", "score": 3}\n'),
        EFT_FROM_SRC,
        seed_run,
        r"src.jsonl \(jsonl\): all 1 rows have a blank instruction or response",
    ),
    (
        "EFT source with no ranked answers",
        jsonl(b'{"question": "q", "answer": "a", "rank": 0}\n'),
        "seed_data: {eft: [{path: SRC, format: ranked}]}",
        seed_run,
        r"src.jsonl \(ranked\): it gives no EFT rows",
    ),
    (
        "EFT score 3.7",
        jsonl(
            b'{"instruction": "a", "response": "b", "score": 4}\n{"instruction": "a", "response": "c", "score": 3.7}\n'
        ),
        EFT_FROM_SRC,
        seed_run,
        r"src.jsonl:2: score must be an integer 0..5, got 3.7",
    ),
    (
        "EFT score five",
        jsonl(b'{"instruction": "a", "response": "b", "score": "five"}\n'),
        EFT_FROM_SRC,
        seed_run,
        r"src.jsonl:1: score must be an integer 0..5, got 'five'",
    ),
    (
        "EFT score 5 then five",
        jsonl(
            b'{"instruction": "a", "response": "b", "score": 5}\n'
            b'{"instruction": "a", "response": "c", "score": "five"}\n'
        ),
        EFT_FROM_SRC,
        seed_run,
        r"src.jsonl:2: key 'score' is text here but a number on line 1",
    ),
    (
        "EFT score true",
        jsonl(b'{"instruction": "a", "response": "b", "score": true}\n'),
        EFT_FROM_SRC,
        seed_run,
        r"src.jsonl:1: score must be an integer 0..5, got True",
    ),
    (
        "EFT score missing on a line",
        jsonl(b'{"instruction": "a", "response": "b", "score": 4}\n{"instruction": "a", "response": "c"}\n'),
        EFT_FROM_SRC,
        seed_run,
        r"src.jsonl:2: score must be an integer 0..5, it has none",
    ),
    (
        "EFT score out of range in parquet",
        parquet(pl.DataFrame({"instruction": ["a"], "response": ["b"], "score": [9]}), "src.parquet"),
        "seed_data: {eft: [{path: SRC_PQ, format: parquet}]}",
        seed_run,
        r"src.parquet row 1: score must be an integer",
    ),
    (
        "rank that is not a number",
        jsonl(b'{"question": "q", "answer": "a", "rank": "first"}\n'),
        "seed_data: {ift: [{path: SRC, format: ranked}], eft: []}",
        seed_run,
        r"src.jsonl \(ranked\): .*first",
    ),
    (
        "corrupt parquet source",
        lambda d: (d / "src.parquet").write_text("no"),
        "seed_data: {ift: [{path: SRC_PQ, format: parquet}], eft: []}",
        seed_run,
        r"src.parquet is not a readable parquet",
    ),
    # -- params --
    (
        "params typo",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "responses: {nn: 2}",
        responses_run,
        r"params.yaml is invalid: responses\.nn: Extra inputs are not permitted",
    ),
    (
        "params out of range",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "responses: {n: 1}",
        responses_run,
        r"responses\.n: Input should be greater than or equal to 2",
    ),
    (
        "a bool for an int",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "judge: {k: true}",
        responses_run,
        r"judge\.k: must be a number, not true/false \(got True\)",
    ),
    (
        "a bool for a float",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "pairs: {min_margin: false}",
        responses_run,
        r"pairs\.min_margin: must be a number, not true/false",
    ),
    (
        "an infinite temperature",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "responses: {temperature: .inf}",
        responses_run,
        r"responses\.temperature: Input should be a finite number \(got inf\)",
    ),
    (
        "a NaN learning rate",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "dpo: {learning_rate: .nan}",
        responses_run,
        r"dpo\.learning_rate: Input should be a finite number",
    ),
    (
        "an iteration built from a missing one",
        iterations({"1": {"prev": 0}, "3": {"prev": 2}}),
        "",
        seed_run,
        r"iterations\.3\.prev is 2, but there is no iteration 2",
    ),
    ("params path is a folder", lambda d: None, "", params_folder_run, r"is a folder, not a params file"),
    ("params not utf-8", params_text(b"seed: 0\n# caf\xe9\n"), "", seed_run, r"params.yaml:2: not UTF-8 text"),
    ("params not a mapping", params_text(b"- seed\n"), "", seed_run, r"params.yaml must be a mapping of sections"),
    (
        "work_dir escapes the repo",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "shards: {work_dir: ../elsewhere}",
        responses_run,
        r"shards\.work_dir: must be a relative path inside the repo",
    ),
    # -- stage inputs --
    (
        "input missing a column",
        parquet(pl.DataFrame([PROMPT_ROW]).drop("seed")),
        "",
        responses_run,
        r"prompts in .*in.parquet: missing columns \['seed'\]",
    ),
    (
        "input column mistyped",
        parquet(pl.DataFrame([{**PROMPT_ROW, "iteration": "one"}])),
        "",
        responses_run,
        r"prompts in .*in.parquet: a column has the wrong type",
    ),
    (
        "input not parquet",
        lambda d: (d / "in.parquet").write_text("id,prompt\n"),
        "",
        responses_run,
        r"in.parquet is not a readable parquet file",
    ),
    ("input without rows", dataset("prompts", []), "", responses_run, r"in.parquet has no rows to work on"),
    ("judge input without rows", dataset("responses", []), "", judge_run, r"in.parquet has no rows to work on"),
    (
        "pairs without responses",
        both(dataset("responses", []), dataset("judgments", [], "judged.parquet")),
        "",
        pairs_run,
        r"in.parquet has no responses to pair",
    ),
    (
        "judgments of other responses",
        both(
            dataset("responses", [RESPONSE_ROW]),
            dataset("judgments", [{**JUDGMENT_ROW, "response_id": "r9"}], "judged.parquet"),
        ),
        "",
        pairs_run,
        r"1 of 1 judgments in .*judged.parquet grade no response in .*in.parquet",
    ),
    (
        "no judgments",
        both(dataset("responses", [RESPONSE_ROW]), dataset("judgments", [], "judged.parquet")),
        "",
        pairs_run,
        r"judged.parquet has no judgments; run judge on .*in.parquet",
    ),
    ("empty validation JSON", both(training_inputs, validation("")), "", dpo_run, r"validate.json: not valid JSON"),
    (
        "validation JSON a list",
        both(training_inputs, validation("[]")),
        "",
        dpo_run,
        r"validate.json: expected a JSON object \(\{...\}\), got list",
    ),
    (
        "validation JSON without a verdict",
        both(training_inputs, validation("{}")),
        "",
        dpo_run,
        r"validate.json is not a validate@1 result",
    ),
    # -- models --
    (
        "missing model folder",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "MODEL=missing",
        responses_run,
        r"is not a model folder",
    ),
    (
        "corrupt model",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "MODEL=corrupt",
        responses_run,
        r"could not load the model in .*corrupt",
    ),
    (
        "sft on a truncated model.safetensors",
        training_inputs,
        "MODEL=truncated",
        sft_run,
        r"could not load the model in .*truncated: ",
    ),
    (
        "dpo on a truncated model.safetensors",
        training_inputs,
        "MODEL=truncated",
        dpo_run,
        r"could not load the model in .*truncated: ",
    ),
    (
        "gguf that is not a model",
        lambda d: (d / "fake.gguf").write_bytes(b"GGUF\x03\x00\x00\x00junk"),
        "base: {source: FAKE_GGUF}",
        base_run,
        r"could not load a model from .*fake.gguf: error",
    ),
    # -- bad input, part three --
    (
        "judge input with a null response",
        dataset("responses", [RESPONSE_ROW, {**RESPONSE_ROW, "id": "r2", "response": None}]),
        "",
        judge_run,
        r"responses in .*in.parquet: row 2 has a null 'response'$",
    ),
    (
        "pairs input with a null response among good ones",  # it used to count as a tie and exit 0
        both(
            dataset("responses", [RESPONSE_ROW, {**RESPONSE_ROW, "id": "r2", "response": None}]),
            dataset("judgments", [JUDGMENT_ROW, {**JUDGMENT_ROW, "id": "j2", "response_id": "r2"}], "judged.parquet"),
        ),
        "",
        pairs_run,
        r"responses in .*in.parquet: row 2 has a null 'response'$",
    ),
    (
        "a null prompt",
        dataset("prompts", [PROMPT_ROW, {**PROMPT_ROW, "id": "p2", "prompt": None}]),
        "",
        responses_run,
        r"prompts in .*in.parquet: row 2 has a null 'prompt'$",
    ),
    (
        "a preference without the chosen text",
        both(
            training_inputs,
            dataset(
                "preferences", [{**PAIR_ROW, "chosen": [{"role": "assistant", "content": None}]}], "prefs.parquet"
            ),
        ),
        "",
        dpo_run,
        r"preferences in .*prefs.parquet: row 1 has a message without role or content in 'chosen'$",
    ),
    (
        "sft with no EFT rows and train_on eft",
        no_eft,
        "sft: {train_on: eft}",
        sft_run,
        r"sft has nothing to train on: sft.train_on is eft .* .*eft.parquet has no rows",
    ),
    (
        "a params key given twice",
        params_text(b"seed: 0\nresponses:\n  n: 4\n  n: 8\n"),
        "",
        seed_run,
        r"params.yaml:4: key 'n' is given twice in one mapping \(first on line 3\)",
    ),
    (
        "an empty params file",
        params_text(b""),
        "",
        seed_run,
        r"params.yaml is empty; it must hold every params section",
    ),
    (
        "a params file of comments",
        params_text(b"# nothing yet\n"),
        "",
        seed_run,
        r"params.yaml is empty",
    ),
    (
        "a JSONL key given twice in one line",
        jsonl(GOOD + b'{"instruction": "a", "response": "b", "response": "c"}\n'),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl:2: key 'response' appears twice in one object$",
    ),
    (
        "an EFT score given twice in one line",
        jsonl(b'{"instruction": "a", "response": "b", "score": 3, "score": 4}\n'),
        EFT_FROM_SRC,
        seed_run,
        r"src.jsonl:1: key 'score' appears twice in one object$",
    ),
    ("a judgment score of 9", scores(4.0, 9.0), "", pairs_run, r"judged.parquet row 2: score must be 0..5 .*got 9.0"),
    (
        "a judgment score of -3",
        scores(-3.0, 4.0),
        "",
        pairs_run,
        r"judged.parquet row 1: score must be 0..5 .*got -3.0",
    ),
    (
        "a NaN judgment score",
        scores(4.0, float("nan")),
        "",
        pairs_run,
        r"judged.parquet row 2: score must be .*got nan",
    ),
    (
        "repeated response ids (judge)",
        dataset("responses", [RESPONSE_ROW, {**RESPONSE_ROW, "response": "Hello."}]),
        "",
        judge_run,
        r"responses in .*in.parquet: id 'r1' is on rows 1 and 2; ids must be unique$",
    ),
    (
        "repeated response ids (pairs)",
        both(
            dataset("responses", [{**RESPONSE_ROW, "sample": 1}, RESPONSE_ROW]),
            dataset("judgments", [JUDGMENT_ROW], "judged.parquet"),
        ),
        "",
        pairs_run,
        r"responses in .*in.parquet: id 'r1' is on rows 1 and 2; ids must be unique$",
    ),
    (
        "repeated judgment ids",
        both(dataset("responses", [RESPONSE_ROW]), dataset("judgments", [JUDGMENT_ROW] * 2, "judged.parquet")),
        "",
        pairs_run,
        r"judgments in .*judged.parquet: id 'j1' is on rows 1 and 2",
    ),
    (
        "a verdict on another preferences file",
        both(training_inputs, validation('{"passed": true, "overridden": false, "preferences_md5": "0123"}')),
        "",
        dpo_run,
        r"validate.json is not a verdict on .*prefs.parquet: it checked a file with md5 0123; rerun validate@1",
    ),
    (
        "a verdict that names no preferences file",
        both(training_inputs, validation('{"passed": true, "overridden": false}')),
        "",
        dpo_run,
        r"validate.json is not a verdict on .*prefs.parquet: it names no preferences_md5; rerun validate@1",
    ),
    (
        "a verdict key given twice",
        both(training_inputs, validation('{"passed": false, "passed": true}')),
        "",
        dpo_run,
        r"validate.json: key 'passed' appears twice in one object$",
    ),
    (
        "a seed source that is a symlink loop",
        loop("src.jsonl"),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl is a symlink loop",
    ),
    (
        "an optional seed source that is a symlink loop",
        loop("src.jsonl"),
        "seed_data: {ift: [{path: SRC, optional: true}], eft: []}",
        seed_run,
        r"seed source .*src.jsonl is a symlink loop",
    ),
    ("a stage input that is a symlink loop", loop("in.parquet"), "", responses_run, r"in.parquet is a symlink loop"),
    # -- outputs --
    (
        "output folder is a file",
        lambda d: None,
        "",
        into_a_file_run,
        r"blocker is not a folder \(a file is in the way\)",
    ),
]


def leftovers(d: Path) -> list[str]:
    """Output or temporary files (outputs are named out*; temporaries .out*.tmp, .<name>.<hex>)."""
    return [
        str(p.relative_to(d))
        for p in d.rglob("*")
        if p.name.startswith(("out", ".out")) or p.name.endswith((".tmp", ".old"))
    ]


def one_clear_line(e: pytest.ExceptionInfo, message: str) -> None:
    text = str(e.value)
    assert e.value.code != 0 and text.startswith("error: ") and "\n" not in text, text
    assert "Traceback" not in text


@pytest.mark.parametrize("make, override, stage, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_no_output(make, override, stage, message, tmp_path, in_tmp, tiny_model):
    model = tiny_model
    if override.startswith("MODEL="):
        model = tmp_path / override[6:]
        if override.endswith("corrupt"):
            model.mkdir()
            (model / "config.json").write_text("{ not json")
        elif override.endswith("truncated"):
            shutil.copytree(tiny_model, model)
            weights = model / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a download cut short
        override = ""
    override = (
        override.replace("SRC_PQ", str(tmp_path / "src.parquet"))
        .replace("SRC", str(tmp_path / "src.jsonl"))
        .replace("FAKE_GGUF", str(tmp_path / "fake.gguf"))
    )
    write_params(tmp_path / "params.yaml", override)
    make(tmp_path)
    with pytest.raises(SystemExit, match=message) as e:
        stage(tmp_path, model)
    one_clear_line(e, message)
    assert leftovers(tmp_path) == []


def test_a_stage_process_prints_one_line_and_exits_1(tmp_path):
    """The same promise seen from the shell: stderr is the one line, the exit status is 1."""
    (tmp_path / "src.jsonl").write_bytes(GOOD + b'{"prompt_text": "c", "answer": "d"}\n')
    write_params(tmp_path / "params.yaml", SEED_FROM_SRC.replace("SRC", str(tmp_path / "src.jsonl")))
    cmd = [sys.executable, "-m", "stages.seed", "--ift", "out_ift.parquet", "--eft", "out_eft.parquet"]
    r = subprocess.run([*cmd, "--params", "params.yaml"], cwd=tmp_path, capture_output=True, text=True, env=_env())
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"error: {tmp_path}/src.jsonl:2: no 'instruction' (this row has ['prompt_text', 'answer'])"
    ]
    assert leftovers(tmp_path) == []


def test_a_base_model_without_a_chat_template_is_refused_at_base(tmp_path, in_tmp, tiny_model):
    """A base (not instruction-tuned) model folder passes every file check but cannot render chat turns: base
    says so in one line, before prompts@1 would fail deep inside transformers."""
    model = tmp_path / "no-chat"
    shutil.copytree(tiny_model, model)
    (model / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    write_params(tmp_path / "params.yaml", f"base: {{source: {model}}}")
    with pytest.raises(SystemExit) as e:
        base_run(tmp_path, model)
    one_clear_line(e, "")
    assert str(e.value).startswith(f"error: base.source {model} has no chat template"), e.value
    assert leftovers(tmp_path) == []
    write_params(tmp_path / "params.yaml", f"base: {{source: {tiny_model}}}")  # the same folder with its template
    base_run(tmp_path, model)
    assert (tmp_path / "out/config.json").is_file()


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# ---- bad input, part three: what the table cannot hold ----


def test_seed_with_an_absent_optional_eft_source_then_sft_on_eft_is_refused(tmp_path, in_tmp, tiny_model):
    """seed may make 0 EFT rows (the only EFT source is optional and absent); sft.train_on eft then refuses
    in one line before it loads the model, not with TRL's StopIteration."""
    absent = tmp_path / "nowhere.jsonl"
    write_params(
        tmp_path / "params.yaml", f"seed_data: {{eft: [{{path: {absent}, optional: true}}]}}\nsft: {{train_on: eft}}"
    )
    seed_run(tmp_path, None)
    assert json.loads((tmp_path / "out_seed.json").read_text())["eft_rows"] == 0
    with pytest.raises(SystemExit, match=r"sft has nothing to train on: sft.train_on is eft") as e:
        sft.main(
            [
                *("--base", str(tiny_model), "--ift", str(tmp_path / "out_ift.parquet")),
                *("--eft", str(tmp_path / "out_eft.parquet"), "--out", str(tmp_path / "model")),
                *("--params", str(tmp_path / "params.yaml")),
            ]
        )
    one_clear_line(e, "")
    assert not (tmp_path / "model").exists()


def test_srlm_params_refuses_a_key_given_twice(tmp_path, capsys):
    from stages.commands import cli

    write_params(tmp_path / "params.yaml", "")
    text = (tmp_path / "params.yaml").read_text()
    lines = text.splitlines()
    at = lines.index("responses:") + 1  # the first key of the section, given again with another value
    lines.insert(at + 1, lines[at].split(":")[0] + ": 8")
    (tmp_path / "params.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit) as e:
        cli.main(["--params", str(tmp_path / "params.yaml"), "params"])
    key = lines[at].split(":")[0].strip()
    assert str(e.value) == (
        f"error: {tmp_path}/params.yaml:{at + 2}: key {key!r} is given twice in one mapping (first on line {at + 1}); "
        "keep one (DVC refuses such a file)"
    )
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_ctrl_c_during_training_is_one_line_and_exit_130(stage, tmp_path, in_tmp, tiny_model, monkeypatch, capsys):
    """A real SIGINT arrives while the trainer trains: one line, exit 130, no model folder or metrics. SIGINT is
    ignored before the stage starts (as polars' own handler would swallow it), so the stage must put Python's
    handler back for training and restore the one it found."""
    import signal

    import trl

    def train(self, *a, **kw):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):  # the handler runs between two bytecodes
            time.sleep(0.01)
        pytest.fail("SIGINT did not interrupt training")

    trainer = {"sft": trl.SFTTrainer, "dpo": trl.DPOTrainer}[stage]
    monkeypatch.setattr(trainer, "train", train)
    knobs = "{max_steps: 1, batch_size: 1, grad_accum: 1, max_length: 64, lora: false}"
    write_params(tmp_path / "params.yaml", f"{stage}: {knobs}")
    training_inputs(tmp_path)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(SystemExit) as e:
            (sft_run if stage == "sft" else dpo_run)(tmp_path, tiny_model)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    err = capsys.readouterr().err.strip().splitlines()
    name = "sft" if stage == "sft" else "dpo@1"
    assert e.value.code == 130 and err[-1] == f"{name}: interrupted; no model written, rerun to train again"
    assert not any("Traceback" in line for line in err)
    assert leftovers(tmp_path) == []


def test_a_keyboard_interrupt_anywhere_in_a_stage_is_one_line_and_exit_130(capsys):
    @entry
    def main(argv):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 130 and capsys.readouterr().err == "test_bad_input: interrupted\n"


def test_a_blank_row_beside_good_ones_is_named_by_line(tmp_path, capsys):
    blank = b'{"instruction": "  ", "response": "b"}\n'
    (tmp_path / "src.jsonl").write_bytes(GOOD + blank + b"\n" + GOOD + blank)  # a blank line is no row
    pl.DataFrame({"instruction": ["a", "b"], "response": ["c", " "]}).write_parquet(tmp_path / "src.parquet")
    counts = {}
    seed.build(
        [P.Source(path=str(tmp_path / "src.jsonl")), P.Source(path=str(tmp_path / "src.parquet"))], "ift", counts
    )
    assert counts["blank"] == 3
    assert capsys.readouterr().err.splitlines() == [
        f"seed: {tmp_path}/src.jsonl:2: blank instruction or response; row dropped",
        f"seed: {tmp_path}/src.jsonl:5: blank instruction or response; row dropped",
        f"seed: {tmp_path}/src.parquet row 2: blank instruction or response; row dropped",
    ]


@pytest.mark.parametrize("persist", [True, False], ids=["as dvc.yaml has it", "without persist"])
def test_a_params_error_under_dvc_repro_keeps_the_tracked_seed_metrics(tmp_path, persist):
    """DVC deletes a stage's outputs before it runs the command, unless they persist. metrics/seed.json is
    tracked by git (cache: false): with dvc.yaml's `persist: true` a seed run that refuses bad params leaves it
    as it was; without it, DVC would have deleted it."""
    root = tmp_path / "proj"
    shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data/seed").mkdir(parents=True)
    for name in ("ift.jsonl", "eft.jsonl"):
        shutil.copy(ROOT / "data/seed" / name, root / "data/seed" / name)
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["seed"]
    metric = next(o for o in stage["outs"] if isinstance(o, dict) and "metrics/seed.json" in o)
    assert metric["metrics/seed.json"] == {"cache": False, "persist": True}
    if not persist:
        del metric["metrics/seed.json"]["persist"]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"seed": stage}}))
    write_params(root / "params.yaml", "seed_data: {nope: 1}")
    (root / "metrics").mkdir()
    (root / "metrics/seed.json").write_text('{"ift_rows": 1}\n')  # the last run's, as git has it
    env = {**_env(), "PYTHONPATH": str(root), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=root, env=env, check=True)
    r = subprocess.run([*dvc, "repro", "seed"], cwd=root, env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "params.yaml is invalid: seed_data.nope" in r.stderr + r.stdout
    if persist:
        assert (root / "metrics/seed.json").read_text() == '{"ift_rows": 1}\n'
    else:
        assert not (root / "metrics/seed.json").exists()
    assert not [p for p in (root / "metrics").iterdir() if p.name.startswith(".")]


def test_release_names_the_stale_stage(project, tmp_path):  # noqa: F811
    """evaluate@1 is stale: the hint names it (`dvc repro validate@1` would not rerun it)."""
    from stages.commands import cli

    from .test_release import dvc_commit

    with open(project / "dvc.yaml", "a") as f:
        f.write(
            "  evaluate:\n"
            '    foreach: {"1": {prev: 0}}\n'
            "    do:\n"
            "      cmd: python -c \"print('evaluate')\"\n"
            "      deps:\n"
            "        - data/iter${key}/preferences.parquet\n"
            "      metrics:\n"
            "        - metrics/iter${key}/eval.json:\n"
            "            cache: false\n"
        )
    rows.write_json({"win": 0.5}, project / "metrics/iter1/eval.json")
    dvc_commit(project, "evaluate@1")
    rows.write_json({"win": 0.6}, project / "metrics/iter1/eval.json")  # changed since dvc.lock
    with pytest.raises(SystemExit) as e:
        cli.main(["release", "--iteration", "1", "--repo-id", "org/name", "--dry-run", str(tmp_path / "out")])
    lines = str(e.value).splitlines()
    assert "stale against dvc.lock" in lines[0] and lines[1].startswith("  evaluate@1: ")
    assert lines[-1] == "run `dvc repro evaluate@1` (and commit dvc.lock) before releasing"


# ---- silently dropped rows are counted ----


def test_held_out_rank_that_is_not_a_number_is_one_line():
    from stages.judging.sources import SourceError, ranked_groups

    df = pl.DataFrame(
        {"prompt": ["q"], "chosen": ["a"], "rejected": ["b"], "chosen_rank": ["first"], "rejected_rank": [1]}
    )
    with pytest.raises(
        SourceError, match=r"^error: h.jsonl \(rank_pairs\): InvalidOperationError: .*'chosen_rank'[^\n]*$"
    ):
        ranked_groups(df, P.Source(path="h.jsonl", format="rank_pairs"), True)


def test_blank_and_repeated_rows_are_counted(tmp_path):
    blank = b'{"instruction": "  ", "response": "b"}\n'
    (tmp_path / "src.jsonl").write_bytes(GOOD + blank + GOOD + b'{"instruction": "c", "response": "d"}\n')
    write_params(tmp_path / "params.yaml", SEED_FROM_SRC.replace("SRC", str(tmp_path / "src.jsonl")))
    seed_run(tmp_path, None)
    metrics = json.loads((tmp_path / "out_seed.json").read_text())
    assert (metrics["ift_rows"], metrics["ift_blank"], metrics["ift_duplicates"]) == (2, 1, 1)
    assert (metrics["eft_rows"], metrics["eft_blank"], metrics["eft_duplicates"]) == (0, 0, 0)


def test_eft_scores_written_as_whole_floats_are_integers(tmp_path):
    (tmp_path / "src.jsonl").write_bytes(b'{"instruction": "a", "response": "b", "score": 4.0}\n')
    eft = seed.build([P.Source(path=str(tmp_path / "src.jsonl"))], "eft")
    assert eft["score"].to_list() == [4]


# ---- params: what is allowed ----


@pytest.mark.parametrize(
    "override, key, value",
    [
        ("sft: {learning_rate: 1e-4}", "learning_rate", 1e-4),  # YAML reads 1e-4 as the string "1e-4"
        ("sft: {learning_rate: 1.0e-4}", "learning_rate", 1e-4),
        ("sft: {lora_r: 8.0}", "lora_r", 8),  # a whole float is an int
        ("sft: {lora: 1}", "lora", True),
    ],
)
def test_params_take_numbers_as_users_write_them(tmp_path, override, key, value):
    p = P.load(write_params(tmp_path / "params.yaml", override))
    assert getattr(p.sft, key) == value and type(getattr(p.sft, key)) is type(value)


def test_lineage_and_metrics_are_strict_json(tmp_path):
    """NaN and infinity have no JSON spelling: they are written as null (and params refuse them)."""

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))

    rows.write_json({"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -float("inf")}}, tmp_path / "m.json")
    assert strict((tmp_path / "m.json").read_text()) == {"a": None, "b": [None, 1.5], "c": {"d": None}}
    df = rows.write(rows.frame([RESPONSE_ROW], "responses"), tmp_path / "r.parquet", "responses")
    p = P.load(write_params(tmp_path / "params.yaml", ""))
    lineage.write(tmp_path / "r.parquet", "responses", stage="x", inputs={}, params=p, sections=("responses",))
    rec = strict(lineage.path_for(tmp_path / "r.parquet").read_text())
    assert rec["dataset"]["rows"] == len(df) and rec["params"]["responses"]["temperature"] == 0.7


# ---- outputs: all or none, file modes ----


def test_a_failing_stage_leaves_its_earlier_outputs_and_the_previous_files_alone(tmp_path):
    @entry
    def stage(argv):
        rows.all_or_none(tmp_path / "a.json", tmp_path / "b.json", None)
        rows.write_json({"new": 1}, tmp_path / "a.json")
        assert not (tmp_path / "a.json").exists()  # held back until the stage ends
        raise SrlmError("error: the second output failed")

    rows.write_json({"old": 1}, tmp_path / "b.json")
    with pytest.raises(SystemExit, match="second output failed"):
        stage([])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]
    assert json.loads((tmp_path / "b.json").read_text()) == {"old": 1}


def test_a_stage_that_succeeds_renames_all_its_outputs_in(tmp_path):
    @entry
    def stage(argv):
        rows.all_or_none(tmp_path / "d.parquet", lineage.path_for(tmp_path / "d.parquet"), tmp_path / "m")
        rows.write(rows.frame([PROMPT_ROW], "prompts"), tmp_path / "d.parquet", "prompts")
        p = P.load(write_params(tmp_path / "params.yaml", ""))
        lineage.write(tmp_path / "d.parquet", "prompts", stage="x", inputs={}, params=p, sections=("prompts",))
        with rows.atomic_dir(tmp_path / "m") as tmp:
            (tmp / "config.json").write_text("{}")

    stage([])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.lineage.json", "d.parquet", "m", "params.yaml"]
    # the lineage record hashed the dataset while it still had its temporary name
    assert lineage.read(tmp_path / "d.parquet")["dataset"]["md5"] == lineage.md5(tmp_path / "d.parquet")


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_get_the_mode_of_any_new_file(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        rows.write(rows.frame([PROMPT_ROW], "prompts"), tmp_path / "p.parquet", "prompts")
        rows.write_json({"a": 1}, tmp_path / "m.json")
        with rows.atomic_dir(tmp_path / "model") as tmp:
            (tmp / "config.json").write_text("{}")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"p.parquet": file_mode, "m.json": file_mode, "model": dir_mode}


# ---- real full disks and read-only folders ----


@contextlib.contextmanager
def tmpfs(where: Path, size: int, readonly: bool = False):
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(
            "a real full disk or read-only folder needs a small tmpfs, and mount failed here (needs root or "
            f"CAP_SYS_ADMIN): {r.stderr.strip()}"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


PAGE = 4096


def test_disk_full_during_a_parquet_write(tmp_path):
    big = rows.frame([{**PROMPT_ROW, "id": str(i), "prompt": os.urandom(400).hex()} for i in range(200)], "prompts")
    with tmpfs(tmp_path / "disk", 16 * PAGE) as disk:
        rows.write_json({"a": 1}, disk / "small.json")
        with pytest.raises(rows.WriteError) as e:
            rows.write(big, disk / "out.parquet", "prompts")
        assert str(e.value) == f"error: could not write {disk}/out.parquet: No space left on device (disk full)"
        assert sorted(p.name for p in disk.iterdir()) == ["small.json"]


def test_disk_full_between_seed_outputs_leaves_neither(tmp_path, in_tmp):
    """ift.parquet fits on the disk and eft.parquet no longer does: the stage writes all of them or none."""
    write_params(tmp_path / "params.yaml", "")
    seed_run(tmp_path, None)  # on a normal disk, to learn the sizes
    ift, eft = ((tmp_path / f"out_{k}.parquet").stat().st_size for k in ("ift", "eft"))
    room = -(-ift // PAGE) * PAGE + PAGE
    assert room < -(-ift // PAGE) * PAGE + -(-eft // PAGE) * PAGE, "the EFT file must not fit beside the IFT file"
    with tmpfs(tmp_path / "disk", room):
        with pytest.raises(SystemExit) as e:
            seed_run(tmp_path, None, out="disk")
        one_clear_line(e, "")
        assert str(e.value) == (
            f"error: could not write {tmp_path}/disk/out_eft.parquet: No space left on device (disk full)"
        )
        assert list((tmp_path / "disk").iterdir()) == []


def test_read_only_output_folder(tmp_path, in_tmp):
    write_params(tmp_path / "params.yaml", "")
    with tmpfs(tmp_path / "ro", PAGE, readonly=True):
        with pytest.raises(SystemExit, match=r"could not write .*ro/out_ift.parquet: Read-only file system") as e:
            seed_run(tmp_path, None, out="ro")
        one_clear_line(e, "")
        with pytest.raises(SystemExit, match=r"could not write .*ro/sub/out_ift.parquet: Read-only file system"):
            seed_run(tmp_path, None, out="ro/sub")  # a folder that cannot be made


def test_release_dry_run_into_a_read_only_folder(project, tmp_path):  # noqa: F811
    from stages.commands import cli

    with tmpfs(tmp_path / "ro", PAGE, readonly=True) as ro:
        for target in (ro, ro / "sub"):
            with pytest.raises(SystemExit, match=rf"could not write {target}: ") as e:
                cli.main(["release", "--iteration", "1", "--repo-id", "org/name", "--dry-run", str(target)])
            assert "\n" not in str(e.value)
        assert list(ro.iterdir()) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ro")]


def test_release_dry_run_never_replaces_a_file(project, tmp_path):  # noqa: F811
    from stages.commands import cli

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match=r"could not write .*notes.txt: .*notes.txt is a file, not a folder$"):
        cli.main(["release", "--iteration", "1", "--repo-id", "org/name", "--dry-run", str(tmp_path / "notes.txt")])
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "project"]


# ---- one run of a generation stage at a time; the work folder vanishing ----


GEN = "responses: {n: 2, max_new_tokens: 4, batch_size: 4}\nshards: {size: 1}"


def two_prompts(d: Path) -> None:
    dataset("prompts", [PROMPT_ROW, {**PROMPT_ROW, "id": "p2", "prompt": "Say bye."}])(d)


def test_a_second_run_of_a_stage_is_refused_at_once(tmp_path, in_tmp, tiny_model):
    write_params(tmp_path / "params.yaml", GEN)
    two_prompts(tmp_path)
    lock = tmp_path / ".srlm/work/responses@1.lock"
    lock.parent.mkdir(parents=True)
    # another process holds the stage's lock, exactly as a running responses@1 does
    hold = "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); f.write('4242'); "
    hold += "f.flush(); print('locked', flush=True); time.sleep(120)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            SystemExit, match=r"responses@1 is already running \(process 4242 holds .*responses@1.lock\)"
        ):
            responses_run(tmp_path, tiny_model)
        assert leftovers(tmp_path) == []
    finally:
        holder.kill()
        holder.wait()
    responses_run(tmp_path, tiny_model)  # the lock died with its process
    assert (tmp_path / "out.parquet").exists() and not (tmp_path / ".srlm/work").exists()


def test_work_folder_removed_mid_run_is_named(tmp_path, in_tmp, tiny_model, monkeypatch):
    from stages.engine import shards

    write_params(tmp_path / "params.yaml", GEN)
    two_prompts(tmp_path)
    real, calls = shards._run_shard, []

    def remove_after_first_shard(*args, **kw):
        calls.append(1)
        if len(calls) == 2:  # someone deletes .srlm/work while shard 2 is generated
            shutil.rmtree(tmp_path / ".srlm/work")
        return real(*args, **kw)

    monkeypatch.setattr(shards, "_run_shard", remove_after_first_shard)
    with pytest.raises(
        SystemExit, match=r"responses@1: work folder .*\.srlm/work/responses@1/\w+ removed; rerun to resume"
    ):
        responses_run(tmp_path, tiny_model)
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(shards, "_run_shard", real)
    responses_run(tmp_path, tiny_model)
    assert len(rows.read(tmp_path / "out.parquet", "responses")) > 0
