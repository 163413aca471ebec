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

PROMPT_ROW = {"id": "p1", "prompt": "Say hi.", "fewshot_ids": ["a"], "iteration": 1, "model": "m", "seed": 0}
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
    (d / "validate.json").write_text('{"passed": true, "overridden": false}')


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
