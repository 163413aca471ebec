"""One typed schema for params.yaml.

Names, types and bounds only: what each knob means is written once, beside it in params.yaml (a test checks
every field has its comment there), so editing that prose reruns no stage.

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

from stages.core import rows
from stages.core.errors import SrlmError


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
    name: Literal["transformers", "vllm"]
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    trust_remote_code: bool
    gpu_memory_utilization: float = Field(gt=0, le=1)
    tensor_parallel_size: int = Field(ge=1)
    max_model_len: int | None = Field(ge=16)
    model_link: str | None
    vllm_args: dict[str, Any]
    vllm_env: dict[str, str]


class Base(Strict):
    source: str
    gguf_file: str | None


class Source(Strict):
    path: str
    format: Literal["jsonl", "parquet", "oasst_tree", "ranked", "quality", "hub", "rank_pairs"] = "jsonl"
    limit: int | None = Field(None, ge=1)
    optional: bool = False
    split: str = "train"


class Seed(Strict):
    ift: list[Source] = Field(min_length=1)
    eft: list[Source]
    eft_max: int | None = Field(ge=1)


class Train(Strict):
    epochs: float = Field(gt=0)
    max_steps: int = Field(ge=-1)
    learning_rate: float = Field(gt=0, le=1)
    batch_size: int = Field(ge=1)
    grad_accum: int = Field(ge=1)
    max_length: int = Field(ge=16)
    lora: bool
    lora_r: int = Field(ge=1)
    lora_alpha: int = Field(ge=1)
    num_processes: int = Field(ge=1)
    accelerate_config: str | None


class Sft(Train):
    learning_rate: float = Field(gt=0, le=1)
    compare_pairs: int = Field(ge=0)
    balance: Literal["none", "score", "length"]
    contrastive: int = Field(ge=0)
    batching: Literal["padded", "grouped", "packed"]
    train_on: Literal["ift_eft", "eft", "none"]


class Dpo(Train):
    learning_rate: float = Field(gt=0, le=1)
    beta: float = Field(gt=0)
    nll_weight: float = Field(ge=0)
    reference: Literal["previous", "m0"]
    ld_alpha: float | None = Field(ge=0, le=1)


class Sampling(Strict):
    temperature: float = Field(ge=0)
    top_p: float = Field(gt=0, le=1)
    max_new_tokens: int = Field(ge=1)
    batch_size: int = Field(ge=1)


class Prompts(Sampling):
    n: int = Field(ge=1)
    fewshot: int = Field(ge=1)
    min_chars: int = Field(ge=1)
    max_chars: int = Field(ge=1)
    max_similarity: float = Field(ge=0, le=1)
    multi_request: Literal["cut", "drop"]

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_chars > self.max_chars:
            raise ValueError("prompts.min_chars must be <= prompts.max_chars")
        return self


class Responses(Sampling):
    n: int = Field(ge=2)


class Judge(Sampling):
    mode: Literal["sample", "logprob", "compare"]
    k: int = Field(ge=1)


class Pairs(Strict):
    min_margin: float = Field(ge=0)
    length_control: float = Field(ge=0, lt=0.5)
    length_residual: bool
    skip_degenerate: bool
    degenerate_last: bool
    temporal: bool
    reward: Literal["judge", "checks", "both"]

    @model_validator(mode="after")
    def _degenerate(self):
        if self.degenerate_last and not self.skip_degenerate:
            raise ValueError(
                "pairs.degenerate_last: true needs pairs.skip_degenerate: true "
                "(a degenerate answer ranked last must never be chosen)"
            )
        return self


class MetaJudge(Strict):
    enabled: bool
    max_share: float = Field(ge=0, lt=1)
    min_margin: float = Field(ge=0, lt=5)
    batch_size: int = Field(ge=1)


class IFEval(Strict):
    source: Source
    max_prompts: int | None = Field(ge=1)
    generation: Sampling


class Checks(Strict):
    share: float = Field(ge=0, le=1)
    per_prompt: int = Field(ge=1, le=5)
    kinds: list[str]  # checked against the library by prompts@t (core never imports judging/)


class HeldoutChecks(Strict):
    sources: list[Source]
    max_prompts: int | None = Field(ge=1)
    per_prompt: int = Field(ge=1, le=5)
    generation: Sampling


class Evaluate(Strict):
    human: Source
    first_turn_only: bool
    max_prompts: int | None = Field(ge=1)
    max_response_chars: int = Field(ge=100)
    prompts: Source
    max_heldout_prompts: int | None = Field(ge=1)
    judge: str
    generation: Sampling
    compare_batch_size: int = Field(ge=1)
    ifeval: IFEval
    constraints: HeldoutChecks


class Validate(Strict):
    min_prompts: int = Field(ge=0)
    prompt_min_chars: int = Field(ge=0)
    prompt_max_chars: int = Field(ge=1)
    min_unique_prompts: float = Field(ge=0, le=1)
    near_dup_similarity: float = Field(gt=0, le=1)
    max_near_dup_rate: float = Field(ge=0, le=1)
    max_flawed_prompt_rate: float = Field(ge=0, le=1)
    min_distinct_1: float = Field(ge=0, le=1)
    min_distinct_2: float = Field(ge=0, le=1)
    seed_similarity: float = Field(gt=0, le=1)
    max_seed_overlap_rate: float = Field(ge=0, le=1)
    embed: bool
    embed_dup_cosine: float = Field(gt=0, le=1)
    max_embed_dup_rate: float = Field(ge=0, le=1)
    max_mean_cosine: float = Field(ge=-1, le=1)
    sample_size: int = Field(ge=2)
    min_multi_response_rate: float = Field(ge=0, le=1)
    response_min_median_chars: int = Field(ge=0)
    response_max_median_chars: int = Field(ge=1)
    max_truncated_rate: float = Field(ge=0, le=1)
    min_parse_rate: float = Field(ge=0, le=1)
    max_score_share: float = Field(gt=0, le=1)
    max_grade_span: float = Field(ge=0, le=5)
    min_grade_agreement: float = Field(ge=0, le=1)
    min_pairs: int = Field(ge=0)
    min_margin: float = Field(ge=0)
    min_length_ratio: float = Field(ge=0)
    max_length_ratio: float = Field(gt=0)
    max_chosen_longer_rate: float = Field(ge=0, le=1)
    min_pair_prompt_unique: float = Field(ge=0, le=1)
    min_pair_distinct_2: float = Field(ge=0, le=1)
    min_judge_pairs: int = Field(ge=0)
    max_generous_rate: float = Field(ge=0, le=1)
    judge_gate: Literal["fail", "warn", "off"]
    judge_min_accuracy: float = Field(ge=0, le=1)
    judge_min_shorter_preferred: float = Field(ge=0, le=1)
    judge_min_answer1_rate: float = Field(ge=0, le=1)
    judge_max_answer1_rate: float = Field(ge=0, le=1)
    allow_failure: bool

    @model_validator(mode="after")
    def _bounds(self):
        for lo, hi in [
            ("prompt_min_chars", "prompt_max_chars"),
            ("response_min_median_chars", "response_max_median_chars"),
            ("min_length_ratio", "max_length_ratio"),
            ("judge_min_answer1_rate", "judge_max_answer1_rate"),
        ]:
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f"validate.{lo} must be <= validate.{hi}")
        return self


class Shards(Strict):
    size: int = Field(ge=1)
    workers: int = Field(ge=1)
    work_dir: str

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
    license: str
    pretty_name: str | None
    language: list[str]
    task_categories: list[str]
    tags: list[str]
    test_fraction: float = Field(ge=0, lt=1)
    shard_rows: int = Field(ge=1)
    retries: int = Field(ge=0)
    retry_wait: float = Field(ge=0)


class Params(Strict):
    seed: int = Field(ge=0)
    replicate: int = Field(ge=0)
    backend: Backend
    base: Base
    seed_data: Seed
    sft: Sft
    iterations: dict[str, Iteration]
    prompts: Prompts
    responses: Responses
    judge: Judge
    checks: Checks
    pairs: Pairs
    meta_judge: MetaJudge
    validate_: Validate = Field(alias="validate")
    dpo: Dpo
    release: Release
    shards: Shards
    evaluate: Evaluate

    def loop_seed(self, stage: str, iteration: int) -> int:
        """The seed of an iteration stage's sampling (prompts, responses, judge, meta_judge, DPO's shuffling).
        Replicate 0 is the seed every run had before the knob; another number is another draw of the loop from
        the same M0 (SFT and evaluation keep `seed`)."""
        return rows.derive_seed(self.seed, stage, iteration, *((self.replicate,) if self.replicate else ()))

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


class RepeatedKey(yaml.YAMLError):
    def __init__(self, key, line: int, first: int):
        super().__init__(f"key {key!r} given twice")
        self.key, self.line, self.first = key, line, first


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (`n: 4` then `n: 8`): PyYAML keeps the
    last value, DVC refuses the file, so a stage run by hand and `dvc repro` would disagree."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden, as YAML intends
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: SafeLoader's own error says so
                    continue
                if first != key_node.start_mark.line + 1:
                    raise RepeatedKey(key, key_node.start_mark.line + 1, first)
        return super().construct_mapping(node, deep)


def load(path: str | Path = "params.yaml") -> Params:
    """Parse and validate params.yaml; exit with a message naming the key on error."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except FileNotFoundError:
        raise ParamsError(f"error: {path} not found (run from the repo root)") from None
    except IsADirectoryError:
        raise ParamsError(f"error: {path} is a folder, not a params file") from None
    except OSError as e:
        raise ParamsError(f"error: could not read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ParamsError(f"error: {path}:{line}: not UTF-8 text") from None
    except RepeatedKey as e:
        raise ParamsError(
            f"error: {path}:{e.line}: key {e.key!r} is given twice in one mapping (first on line {e.first}); "
            "keep one (DVC refuses such a file)"
        ) from None
    except yaml.YAMLError as e:
        raise ParamsError(f"error: {path} is not valid YAML: {' '.join(str(e).split())}") from None
    if raw is None or raw == {}:  # not one line per missing section
        raise ParamsError(f"error: {path} is empty; it must hold every params section (seed, backend, ...)")
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


if __name__ == "__main__":  # `python -m stages.core.params` checks the file
    print(dump(load(sys.argv[1] if len(sys.argv) > 1 else "params.yaml")), end="")
