"""Both engines cut prompts longer than the context from the left and count them (prompts_cut_to_context);
the vLLM backend's engine arguments, model link and prompt cutting, checked against a stand-in `vllm`
module, so they are tested where vLLM is not installed."""

import json
import sys
import types
from pathlib import Path

import pytest

from stages import judge, responses
from stages.core import rows
from stages.core.errors import SrlmError
from stages.engine import backend as B
from stages.engine.backend.interface import prompt_budget
from stages.engine.backend.vllm import cut_prompts, link_model

from .conftest import knobs, write_params


def test_prompt_budget_leaves_room_for_the_answer():
    assert prompt_budget(2048, 256) == 1792
    assert prompt_budget(100, 99) == 8  # never less than 8 prompt tokens


def test_cut_prompts_keeps_the_end_and_counts():
    encoded = [list(range(5)), list(range(12)), list(range(30))]
    prompts, cut = cut_prompts(encoded, context=16, room=4)  # 12 prompt tokens fit
    assert cut == 1
    assert [p["prompt_token_ids"] for p in prompts] == [list(range(5)), list(range(12)), list(range(18, 30))]


def test_link_model_points_one_path_at_each_model(tmp_path):
    a, b = tmp_path / "M0", tmp_path / "M1"
    a.mkdir(), b.mkdir()
    link = tmp_path / ".srlm/vllm/model"
    assert link_model(a, str(link)) == link and link.resolve() == a.resolve()
    assert link_model(b, str(link)) == link and link.resolve() == b.resolve()  # repointed, same path
    assert link_model(a, None) == a
    blocker = tmp_path / "real-folder"
    blocker.mkdir()
    with pytest.raises(SrlmError, match="not a symlink"):
        link_model(a, str(blocker))


def _rendered_lengths(model: Path, questions: list[str]) -> list[int]:
    from stages.engine.models import load_tokenizer

    tok = load_tokenizer(model)
    texts = [
        tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in questions
    ]
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


QUESTIONS = ["hi", "What is two plus two?", "Explain, in detail and with examples, " + "why the sky is blue " * 12]


def test_transformers_backend_counts_prompts_cut_to_context(tiny_model, tmp_path):
    lengths = _rendered_lengths(tiny_model, QUESTIONS)
    context, room = sorted(lengths)[1] + 6, 6  # the middle prompt just fits; the long one does not
    cfg = knobs("backend", max_model_len=context)
    be = B.make_backend(cfg, tiny_model)
    texts = [be.chat([{"role": "user", "content": q}]) for q in QUESTIONS]
    outs = be.generate(texts, n=1, sampling=knobs("responses", max_new_tokens=room, batch_size=4), seed=0)
    assert len(outs) == 3 and be.truncated_prompts == sum(n > context - room for n in lengths) == 1
    be.next_token_probs(texts, ["0", "1"], batch_size=2)  # room 1: the long prompt is cut again
    assert be.truncated_prompts == 1 + sum(n > context - 1 for n in lengths)


def test_stage_metrics_report_prompts_cut_to_context(tiny_model, tmp_path):
    lengths = _rendered_lengths(tiny_model, QUESTIONS)
    context = sorted(lengths)[1] + 8
    cfg = write_params(
        tmp_path / "params.yaml",
        f"backend: {{max_model_len: {context}}}\nresponses: {{n: 2, max_new_tokens: 8, batch_size: 4}}\n"
        "judge: {mode: logprob, batch_size: 4}\nshards: {work_dir: work}\n",
    )
    prompts = rows.frame(
        [
            {"id": rows.content_id(q), "prompt": q, "fewshot_ids": [], "iteration": 1, "model": "x", "seed": 0}
            for q in QUESTIONS
        ],
        "prompts",
    )
    rows.write(prompts, tmp_path / "prompts.parquet", "prompts")
    common = ["--iteration", "1", "--model", str(tiny_model), "--params", str(cfg)]
    responses.main(
        [
            *common,
            "--prompts",
            str(tmp_path / "prompts.parquet"),
            "--out",
            str(tmp_path / "r.parquet"),
            "--metrics",
            str(tmp_path / "r.json"),
        ]
    )
    assert json.loads((tmp_path / "r.json").read_text())["prompts_cut_to_context"] == sum(
        n > context - 8 for n in lengths
    )
    judge.main(
        [
            *common,
            "--responses",
            str(tmp_path / "r.parquet"),
            "--out",
            str(tmp_path / "j.parquet"),
            "--metrics",
            str(tmp_path / "j.json"),
        ]
    )
    # every judge prompt (rubric + question + answer) is longer than this context
    n_responses = len(rows.read(tmp_path / "r.parquet", "responses"))
    assert json.loads((tmp_path / "j.json").read_text())["prompts_cut_to_context"] == n_responses


# ---- the vLLM backend against a stand-in vllm module -------------------------------------------------------


class _Out:
    def __init__(self, ids, finish, logprobs=None):
        self.token_ids, self.finish_reason, self.logprobs = ids, finish, logprobs


class _FakeLLM:
    made: list[dict] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        _FakeLLM.made.append(kwargs)
        engine = types.SimpleNamespace(
            model_config=types.SimpleNamespace(max_model_len=kwargs.get("max_model_len", 64)),
            engine_core=types.SimpleNamespace(shutdown=lambda: None),
        )
        self.llm_engine = engine
        self.prompts: list = []

    def generate(self, prompts, params, use_tqdm=None):
        self.prompts.append(prompts)
        params = params if isinstance(params, list) else [params] * len(prompts)
        res = []
        for p, sp in zip(prompts, params):
            if sp.kw.get("logprob_token_ids"):
                step = {
                    i: types.SimpleNamespace(logprob=-float(k + 1)) for k, i in enumerate(sp.kw["logprob_token_ids"])
                }
                res.append(types.SimpleNamespace(outputs=[_Out([sp.kw["logprob_token_ids"][0]], "length", [step])]))
            else:  # token-id prompts (srlm) or text prompts (the raw side of benchmarks/vllm_gpu.py)
                n, cap = sp.kw["n"], sp.kw["max_tokens"]
                ids = p["prompt_token_ids"] if isinstance(p, dict) else [7] * len(p)
                outs = [_Out(ids[-3:], "stop") for _ in range(n - 1)] + [_Out([42] * cap, "length")]
                res.append(types.SimpleNamespace(outputs=outs))
        return res

    def reset_prefix_cache(self):
        return True


class _SamplingParams:
    def __init__(self, **kw):
        self.kw = kw


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams = _FakeLLM, _SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", mod)
    _FakeLLM.made = []
    return mod


def test_vllm_backend_engine_arguments_link_and_cutting(fake_vllm, tiny_model, in_tmp, monkeypatch):
    monkeypatch.delenv("SRLM_TEST_FLAG", raising=False)
    cfg = knobs(
        "backend",
        name="vllm",
        max_model_len=48,
        model_link=".srlm/vllm/model",
        vllm_args={"kv_cache_memory_bytes": 2**30, "compilation_config": {"cudagraph_capture_sizes": [1, 2, 4]}},
        vllm_env={"SRLM_TEST_FLAG": "1"},
    )
    be = B.make_backend(cfg, tiny_model)
    import os

    kw = _FakeLLM.made[-1]
    link = in_tmp / ".srlm/vllm/model"
    assert kw["model"] == str(link) == kw["tokenizer"] and link.resolve() == tiny_model.resolve()
    assert kw["max_model_len"] == 48 and kw["kv_cache_memory_bytes"] == 2**30 and kw["dtype"] == "bfloat16"
    assert kw["compilation_config"] == {"cudagraph_capture_sizes": [1, 2, 4]}
    assert os.environ["SRLM_TEST_FLAG"] == "1"
    assert be.model_name == tiny_model.as_posix()  # rows name the model, not the link

    lengths = _rendered_lengths(tiny_model, QUESTIONS)
    texts = [be.chat([{"role": "user", "content": q}]) for q in QUESTIONS]
    outs = be.generate(texts, n=2, sampling=knobs("responses", max_new_tokens=8), seed=3)
    assert be.truncated_prompts == sum(n > 48 - 8 for n in lengths) >= 1
    sent = be.llm.prompts[-1]
    assert max(len(p["prompt_token_ids"]) for p in sent) == 40  # cut from the left to fit 8 new tokens
    assert [[c.truncated for c in o] for o in outs] == [[False, True]] * 3
    assert all(c.n_tokens == 8 for o in outs for c in o if c.truncated)

    before = be.truncated_prompts
    probs = be.next_token_probs(texts, ["0", "1"], batch_size=4)
    assert all(abs(sum(p) - 1) < 1e-9 and p[0] > p[1] for p in probs)
    assert be.truncated_prompts - before == sum(n > 48 - 1 for n in lengths)  # room for one token
    be.close()


def test_vllm_backend_names_an_unknown_engine_argument(fake_vllm, tiny_model, in_tmp, monkeypatch):
    def refuse(**kwargs):
        raise TypeError("EngineArgs.__init__() got an unexpected keyword argument 'no_such_arg'")

    monkeypatch.setattr(fake_vllm, "LLM", refuse)
    with pytest.raises(SrlmError, match=r"backend.vllm_args.*no_such_arg"):
        B.make_backend(knobs("backend", name="vllm", vllm_args={"no_such_arg": 1}), tiny_model)


def test_raw_vs_srlm_harness_runs_against_the_stand_in(fake_vllm, tiny_model, in_tmp):
    """benchmarks/vllm_gpu.py as the device runner calls it (generation only, the run's params)."""
    import argparse

    from benchmarks import vllm_gpu

    params = write_params(in_tmp / "params.yaml", "backend: {name: vllm, max_model_len: 512}")
    pool = in_tmp / "pool.jsonl"
    pool.write_text("".join(json.dumps({"instruction": f"Question {i}?"}) + "\n" for i in range(6)))
    out = in_tmp / "r.jsonl"
    args = argparse.Namespace(part="vllm", params=str(params), model=tiny_model, prompts=pool, n_prompts=4,
                              rounds=2, tp=1, judge=False, work=in_tmp / "w", out=out)  # fmt: skip
    vllm_gpu.part_vllm(args, out)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["engine"] for r in rows if r["part"] == "generate"] == ["raw", "srlm", "srlm", "raw"]
    summary = rows[-1]
    assert summary["part"] == "generate_summary" and summary["ratio"] > 0 and summary["max_model_len"] == 512
    assert _FakeLLM.made[-1]["model"].endswith(".srlm/vllm/model")  # the run's engine settings


def test_trained_models_are_saved_with_the_base_config(tiny_model, tmp_path):
    """TRL turns the KV cache off for training; a saved model with use_cache false would not share vLLM's
    compile cache with the base model (its key includes the config)."""
    import json as _json

    from transformers import AutoModelForCausalLM

    from stages.engine.models import load_tokenizer, save_model

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.config.use_cache = False  # as after TRL's trainers
    save_model(model, load_tokenizer(tiny_model), tmp_path / "M1")
    saved, base = (_json.loads((d / "config.json").read_text()) for d in (tmp_path / "M1", tiny_model))
    assert saved == base
