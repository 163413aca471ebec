"""seed: build the instruction set (IFT) and the judge-training set (EFT).

    python -m stages.seed --ift data/seed/ift.parquet --eft data/seed/eft.parquet --metrics metrics/seed.json

Sources (params `seed_data.ift` / `seed_data.eft`, each a list of {path, format}):
  jsonl | parquet  columns instruction, response (+ score 0..5 for EFT)
  oasst_tree       oasst1/oasst2 message trees: first-turn prompt; IFT takes the rank-0 reply,
                   EFT every ranked reply with a score from its rank
  ranked           question, answer, rank (0 = best), several answers per question
  quality          prompt_text, response_text, quality_score in 0..1
  hub              a Hugging Face dataset id; oasst trees if it has message_id, else as jsonl
EFT rows get a rubric judgment: "Score: N", then a one-line justification (stages/prompting.py).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import polars as pl

from . import params as P
from . import rows
from .prompting import judgment_text


class SourceError(SystemExit):
    pass


def _shape(value: object) -> str | None:
    if value is None:
        return None
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else "a scalar"


def read_jsonl(path: Path) -> pl.DataFrame:
    records, shapes = [], {}
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SourceError(f"error: {path}:{lineno}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SourceError(f"error: {path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise SourceError(f"error: {path}:{lineno}: expected a JSON object")
            for key, value in rec.items():  # a column must not switch between text, list and object
                shape = _shape(value)
                if shape and shapes.setdefault(key, (shape, lineno))[0] != shape:
                    raise SourceError(f"error: {path}:{lineno}: key {key!r} is {shape} here but "
                                      f"{shapes[key][0]} on line {shapes[key][1]}")
            records.append(rec)
    return pl.DataFrame(records, infer_schema_length=None) if records else pl.DataFrame()


def load_source(src: P.Source) -> pl.DataFrame | None:
    path = Path(src.path)
    if src.format == "hub":
        from datasets import load_dataset

        return pl.from_arrow(load_dataset(src.path, split=src.split).data.table)
    if not path.exists():
        if src.optional:
            print(f"seed: skipping optional source {path} (not found)")
            return None
        raise SourceError(f"error: seed source {path} does not exist")
    if src.format == "parquet" or path.suffix == ".parquet":
        try:
            return pl.read_parquet(path)
        except Exception as e:  # polars raises several types for a corrupt file
            raise SourceError(f"error: {path} is not a readable parquet file: {e}") from None
    return read_jsonl(path)


def need(df: pl.DataFrame, cols: list[str], src: P.Source) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SourceError(f"error: {src.path} ({src.format}): missing column(s) {missing}; has {df.columns}")


def oasst_first_turn(df: pl.DataFrame) -> pl.DataFrame:
    """(instruction, response, rank, group) for ranked replies to the root prompts of oasst trees."""
    if "lang" in df.columns:
        df = df.filter(pl.col("lang").is_null() | (pl.col("lang") == "en"))
    roots = df.filter(pl.col("parent_id").is_null() & (pl.col("role") == "prompter"))
    replies = df.filter((pl.col("role") == "assistant") & pl.col("rank").is_not_null())
    joined = replies.join(roots.select(pl.col("message_id").alias("parent_id"), pl.col("text").alias("instruction")), on="parent_id")
    return joined.select("instruction", pl.col("text").alias("response"), "rank", pl.col("parent_id").alias("group"))


def ranked_rows(df: pl.DataFrame, kind: str) -> pl.DataFrame:
    """(instruction, response, rank, group) -> IFT: the best answer per group; EFT: every answer, scored by rank.

    Ranks are re-counted within the answers present (0..m-1), so gaps left by filtering do not matter.
    """
    rel = (pl.col("rank").rank("dense").over("group") - 1).cast(pl.Int64)
    m = pl.col("rank").n_unique().over("group")
    df = df.with_columns(rel.alias("rel"), m.alias("m"))
    if kind == "ift":
        return df.filter(pl.col("rel") == 0).unique("group", keep="first", maintain_order=True).select("instruction", "response")
    # best of m -> 5, worst -> 1, linear between. A lone answer has no rank to learn from: it is dropped
    # (it used to get 3, and 61% of the oasst2 ranked file is lone answers, so the judge learnt "always 3").
    score = (5 - 4 * pl.col("rel") / (pl.col("m") - 1)).round(0)
    return df.filter(pl.col("m") >= 2).select("instruction", "response", score.cast(pl.Int64).alias("score"))


def convert(df: pl.DataFrame, src: P.Source, kind: str) -> pl.DataFrame:
    """One source as (instruction, response[, score]) rows."""
    fmt = src.format
    if fmt == "hub":
        fmt = "oasst_tree" if "message_id" in df.columns else "jsonl"
    if fmt == "oasst_tree":
        need(df, ["message_id", "parent_id", "role", "text", "rank"], src)
        return ranked_rows(oasst_first_turn(df), kind)
    if fmt == "ranked":
        need(df, ["question", "answer", "rank"], src)
        return ranked_rows(df.select(pl.col("question").alias("instruction"), pl.col("answer").alias("response"),
                                     pl.col("rank").cast(pl.Int64), pl.col("question").alias("group")), kind)
    if fmt == "quality":
        need(df, ["prompt_text", "response_text", "quality_score"], src)
        df = df.filter(pl.col("quality_score").is_not_null()).select(  # unlabelled answers carry no grade
                       pl.col("prompt_text").alias("instruction"), pl.col("response_text").alias("response"),
                       (pl.col("quality_score").cast(pl.Float64) * 5).round(0).clip(0, 5).cast(pl.Int64).alias("score"))
        return df if kind == "eft" else df.select("instruction", "response")
    cols = ["instruction", "response"] + (["score"] if kind == "eft" else [])
    need(df, cols, src)
    df = df.select(cols)
    if kind == "eft":
        bad = df.filter(pl.col("score").is_null() | ~pl.col("score").cast(pl.Int64, strict=False).is_between(0, 5))
        if len(bad):
            raise SourceError(f"error: {src.path}: score must be an integer 0..5 (first bad row: {bad.row(0)})")
    return df


def build(sources: list[P.Source], kind: str) -> pl.DataFrame:
    parts = []
    for src in sources:
        df = load_source(src)
        if df is None:
            continue
        if df.is_empty():
            raise SourceError(f"error: seed source {src.path} is empty")
        df = convert(df, src, kind)
        nested = [c for c in ("instruction", "response") if df.schema[c].is_nested()]
        if nested:  # polars would happily turn a list or an object into its text
            raise SourceError(f"error: {src.path}: columns instruction and response must be text "
                              f"(got {df.schema['instruction']}, {df.schema['response']})")
        df = df.filter(pl.col("instruction").str.strip_chars().str.len_chars() > 0,
                       pl.col("response").str.strip_chars().str.len_chars() > 0)
        if src.limit:
            df = df.head(src.limit)
        parts.append(df.with_columns(pl.lit(src.path).alias("source")))
    if not parts:
        return rows.empty(kind)
    df = pl.concat(parts, how="diagonal_relaxed")
    if kind == "ift":
        df = df.with_columns(pl.struct("instruction", "response").map_elements(
            lambda r: rows.content_id(r["instruction"], r["response"]), return_dtype=pl.String).alias("id"))
    else:
        df = df.with_columns(pl.col("score").cast(pl.Int8))
        df = df.with_columns(
            pl.struct("instruction", "response", "score").map_elements(
                lambda r: rows.content_id(r["instruction"], r["response"], r["score"]), return_dtype=pl.String).alias("id"),
            pl.col("score").map_elements(judgment_text, return_dtype=pl.String).alias("judgment"),
        )
    return rows.conform(df.unique("id", keep="first", maintain_order=True), kind)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ift", type=Path, required=True, help="IFT parquet to write")
    ap.add_argument("--eft", type=Path, required=True, help="EFT parquet to write")
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    ift = build(p.seed_data.ift, "ift")
    if ift.is_empty():
        raise SourceError("error: seed_data.ift produced no rows")
    eft = build(p.seed_data.eft, "eft")
    if p.seed_data.eft_max and len(eft) > p.seed_data.eft_max:
        keep = sorted(random.Random(p.seed).sample(range(len(eft)), p.seed_data.eft_max))
        eft = eft[keep]
    rows.write(ift, args.ift, "ift")
    rows.write(eft, args.eft, "eft")
    hist = {str(s): int(c) for s, c in eft.group_by("score").len().sort("score").iter_rows()}
    metrics = {"ift_rows": len(ift), "eft_rows": len(eft), "eft_score_hist": hist}
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    print(f"seed: {len(ift)} IFT rows, {len(eft)} EFT rows (scores {hist})")


if __name__ == "__main__":
    main()
