"""Table-driven bad input: every case ends with one clear error naming the file, line or key,
and no output file (and no temporary file) is left behind."""

import errno

import polars as pl
import pytest

from stages import base, judge, responses, rows, seed

from .conftest import write_params

PROMPT_ROW = {"id": "p1", "prompt": "Say hi.", "fewshot_ids": ["a"], "iteration": 1, "model": "m", "seed": 0}


def jsonl(text: bytes):
    return lambda d: (d / "src.jsonl").write_bytes(text)


def parquet(df: pl.DataFrame, name: str = "in.parquet"):
    return lambda d: df.write_parquet(d / name)


def seed_run(d, model):
    seed.main(
        ["--ift", str(d / "out.parquet"), "--eft", str(d / "eft_out.parquet"), "--params", str(d / "params.yaml")]
    )


def responses_run(d, model):
    responses.main(
        [
            "--iteration",
            "1",
            "--model",
            str(model),
            "--prompts",
            str(d / "in.parquet"),
            "--out",
            str(d / "out.parquet"),
            "--params",
            str(d / "params.yaml"),
        ]
    )


def judge_run(d, model):
    judge.main(
        [
            "--iteration",
            "1",
            "--model",
            str(model),
            "--responses",
            str(d / "in.parquet"),
            "--out",
            str(d / "out.parquet"),
            "--params",
            str(d / "params.yaml"),
        ]
    )


def gguf_run(d, model):
    base.main(["--out", str(d / "out"), "--params", str(d / "params.yaml")])


SEED_FROM_SRC = "seed_data: {ift: [{path: SRC}], eft: []}"
CASES = [
    # (name, files to make, params override, stage, expected message)
    (
        "invalid json",
        jsonl(b'{"instruction": "a", "response": "b"}\n{"instruction": "a",\n'),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl:2: invalid JSON",
    ),
    (
        "not utf-8",
        jsonl(b'{"instruction": "a", "response": "b"}\n{"instruction": "caf\xe9", "response": "b"}\n'),
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
        "column switches type",
        jsonl(b'{"instruction": "a", "response": "b"}\n{"instruction": ["a"], "response": "b"}\n'),
        SEED_FROM_SRC,
        seed_run,
        r"src.jsonl:2: key 'instruction' is a list here but a scalar on line 1",
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
        "corrupt parquet source",
        lambda d: (d / "src.parquet").write_text("no"),
        "seed_data: {ift: [{path: SRC_PQ, format: parquet}], eft: []}",
        seed_run,
        r"src.parquet is not a readable parquet",
    ),
    (
        "params typo",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "responses: {nn: 2}",
        responses_run,
        r"responses\.nn: Extra inputs are not permitted",
    ),
    (
        "params out of range",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "responses: {n: 1}",
        responses_run,
        r"responses\.n: Input should be greater than or equal to 2",
    ),
    (
        "work_dir escapes the repo",
        parquet(pl.DataFrame([PROMPT_ROW])),
        "shards: {work_dir: ../elsewhere}",
        responses_run,
        r"shards\.work_dir: Value error, must be a relative path inside the repo",
    ),
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
    (
        "input without rows",
        lambda d: rows.write(rows.empty("prompts"), d / "in.parquet", "prompts"),
        "",
        responses_run,
        r"in.parquet has no rows to work on",
    ),
    (
        "judge input without rows",
        lambda d: rows.write(rows.empty("responses"), d / "in.parquet", "responses"),
        "",
        judge_run,
        r"in.parquet has no rows to work on",
    ),
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
        "gguf that is not a model",
        lambda d: (d / "fake.gguf").write_bytes(b"GGUF\x03\x00\x00\x00junk"),
        "base: {source: FAKE_GGUF}",
        gguf_run,
        r"could not load a model from .*fake.gguf: error",
    ),
]


@pytest.mark.parametrize("make, override, stage, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_no_output(make, override, stage, message, tmp_path, in_tmp, tiny_model):
    make(tmp_path)
    model = tiny_model
    if override.startswith("MODEL="):
        model = tmp_path / override[6:]
        if override.endswith("corrupt"):
            model.mkdir()
            (model / "config.json").write_text("{ not json")
        override = ""
    override = (
        override.replace("SRC_PQ", str(tmp_path / "src.parquet"))
        .replace("SRC", str(tmp_path / "src.jsonl"))
        .replace("FAKE_GGUF", str(tmp_path / "fake.gguf"))
    )
    write_params(tmp_path / "params.yaml", override)
    with pytest.raises(SystemExit, match=message) as e:
        stage(tmp_path, model)
    assert str(e.value).count("\n") < 12 and "Traceback" not in str(e.value)
    assert not any(p.name.startswith("out") or p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_disk_full_is_a_clear_error_and_leaves_no_file(tmp_path, monkeypatch):
    def full(self, path, **kw):
        open(path, "wb").write(b"PAR1 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    with pytest.raises(rows.WriteError, match=r"could not write .*out.parquet: No space left on device \(disk full\)"):
        rows.write(rows.frame([PROMPT_ROW], "prompts"), tmp_path / "out.parquet", "prompts")
    assert list(tmp_path.iterdir()) == []
