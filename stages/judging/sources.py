"""Readers of the data sources that `seed` (IFT, EFT) and `evaluate` (held-out human rankings) take.

A source is a params entry {path, format, limit, optional, split}:
  jsonl | parquet  columns instruction, response (+ score 0..5 for EFT)
  oasst_tree       oasst1/oasst2 message trees (message_id, parent_id, role, text, rank): first-turn replies
  ranked           question, answer, rank (0 = best), several answers per question
  quality          prompt_text, response_text, quality_score in 0..1
  rank_pairs       prompt, chosen, rejected, chosen_rank, rejected_rank (evaluation only, e.g. oasst1 validation pairs)
  hub              a Hugging Face dataset id; oasst trees if it has message_id, else as jsonl
Every error names the file and, for JSONL, the line.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from stages.core import params as P
from stages.core.errors import SrlmError, brief
from stages.core.rows import RepeatedKey, absent, unique_keys


class SourceError(SrlmError):
    """A seed or evaluation source that cannot be read as its format says."""


LINE = "_srlm_line"  # the JSONL line of each row (read_jsonl), so a bad value can be named by file and line


def _shape(value: object) -> str | None:
    """What a JSON value is, in the words of an error; None for null. Numbers are one shape (1 and 2.5 mix),
    but text, numbers and true/false do not: polars would quietly turn 5 and "five" into the text "5"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"


def read_jsonl(path: Path) -> pl.DataFrame:
    """The file's objects as rows (columns: the union of their keys, plus LINE)."""
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
                rec = json.loads(line, object_pairs_hook=unique_keys)
            except json.JSONDecodeError as e:
                raise SourceError(f"error: {path}:{lineno}: invalid JSON ({e.msg})") from None
            except RepeatedKey as e:  # json would keep the last value without a word
                raise SourceError(f"error: {path}:{lineno}: key {e.args[0]!r} appears twice in one object") from None
            if not isinstance(rec, dict):
                raise SourceError(f"error: {path}:{lineno}: expected a JSON object")
            for key, value in rec.items():  # a column must not switch between text, list and object
                shape = _shape(value)
                if shape and shapes.setdefault(key, (shape, lineno))[0] != shape:
                    raise SourceError(
                        f"error: {path}:{lineno}: key {key!r} is {shape} here but "
                        f"{shapes[key][0]} on line {shapes[key][1]}"
                    )
            records.append({**rec, LINE: lineno})
    return pl.DataFrame(records, infer_schema_length=None) if records else pl.DataFrame()


def load_source(src: P.Source) -> pl.DataFrame | None:
    path = Path(src.path)
    if src.format == "hub":
        from datasets import load_dataset

        try:
            return pl.from_arrow(load_dataset(src.path, split=src.split).data.table)
        except Exception as e:  # offline, no such dataset or split: datasets raises many types
            raise SourceError(f"error: {src.path} (hub): could not load the dataset: {brief(e)}") from None
    if not path.exists():
        why = absent(path)
        if src.optional and "loop" not in why:  # a loop is a mistake, not an absent file
            print(f"skipping optional source {path} (not found)")
            return None
        raise SourceError(f"error: seed source {path} {why}")
    if path.is_dir():
        raise SourceError(f"error: seed source {path} is a folder, not a file")
    if src.format == "parquet" or path.suffix == ".parquet":
        try:
            return pl.read_parquet(path)
        except Exception as e:  # polars raises several types for a corrupt file
            raise SourceError(f"error: {path} is not a readable parquet file: {brief(e)}") from None
    try:
        return read_jsonl(path)
    except OSError as e:
        raise SourceError(f"error: could not read seed source {path}: {e.strerror or e}") from None


def need(df: pl.DataFrame, cols: list[str], src: P.Source) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        has = [c for c in df.columns if c != LINE]
        raise SourceError(f"error: {src.path} ({src.format}): missing column(s) {missing}; has {has}")


def where(df: pl.DataFrame, i: int, src: P.Source) -> str:
    """Row i of a source as a user finds it: `file:line` for JSONL, `file row N` otherwise."""
    return f"{src.path}:{df[LINE][i]}" if LINE in df.columns else f"{src.path} row {i + 1}"


def _first(mask: pl.Series) -> int | None:
    hits = mask.arg_true()
    return int(hits[0]) if len(hits) else None


def check_plain(df: pl.DataFrame, src: P.Source, kind: str) -> None:
    """jsonl/parquet rows: instruction and response are text on every row, and an EFT score is an integer
    0..5 on every row (3.7 is not silently 3, "five" is not a crash). The error names the first bad row."""
    for col in ("instruction", "response"):
        dtype = df.schema[col]
        if dtype.is_nested():  # polars would happily turn a list or an object into its text
            raise SourceError(
                f"error: {src.path}: columns instruction and response must be text "
                f"(got {df.schema['instruction']}, {df.schema['response']})"
            )
        if dtype not in (pl.String, pl.Null):
            i = _first(df[col].is_not_null())
            raise SourceError(f"error: {where(df, i, src)}: {col} must be text, got {df[col][i]!r}")
        i = _first(df[col].is_null())
        if i is not None:
            keys = [k for k, v in df.row(i, named=True).items() if v is not None and k != LINE]
            raise SourceError(f"error: {where(df, i, src)}: no {col!r} (this row has {keys})")
    if kind != "eft":
        return
    score = df["score"]
    if score.dtype.is_numeric():
        x = score.cast(pl.Float64)
        i = _first(x.is_null() | ~x.is_between(0, 5) | (x != x.round(0)))
    else:  # text or true/false on every row (read_jsonl refuses a mix)
        i = 0
    if i is not None:
        got = "it has none" if score[i] is None else f"got {score[i]!r}"
        raise SourceError(f"error: {where(df, i, src)}: score must be an integer 0..5, {got}")


def oasst_first_turn(df: pl.DataFrame) -> pl.DataFrame:
    """(instruction, response, rank, group) for ranked replies to the root prompts of oasst trees."""
    if "lang" in df.columns:
        df = df.filter(pl.col("lang").is_null() | (pl.col("lang") == "en"))
    roots = df.filter(pl.col("parent_id").is_null() & (pl.col("role") == "prompter"))
    replies = df.filter((pl.col("role") == "assistant") & pl.col("rank").is_not_null())
    joined = replies.join(
        roots.select(pl.col("message_id").alias("parent_id"), pl.col("text").alias("instruction")), on="parent_id"
    )
    return joined.select("instruction", pl.col("text").alias("response"), "rank", pl.col("parent_id").alias("group"))


def ranked_rows(df: pl.DataFrame, kind: str) -> pl.DataFrame:
    """(instruction, response, rank, group) -> IFT: the best answer per group; EFT: every answer, scored by rank.

    Ranks are re-counted within the answers present (0..m-1), so gaps left by filtering do not matter.
    """
    rel = (pl.col("rank").rank("dense").over("group") - 1).cast(pl.Int64)
    m = pl.col("rank").n_unique().over("group")
    df = df.with_columns(rel.alias("rel"), m.alias("m"))
    if kind == "ift":
        return (
            df.filter(pl.col("rel") == 0)
            .unique("group", keep="first", maintain_order=True)
            .select("instruction", "response")
        )
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
        return ranked_rows(
            df.select(
                pl.col("question").alias("instruction"),
                pl.col("answer").alias("response"),
                pl.col("rank").cast(pl.Int64),
                pl.col("question").alias("group"),
            ),
            kind,
        )
    if fmt == "quality":
        need(df, ["prompt_text", "response_text", "quality_score"], src)
        df = df.filter(pl.col("quality_score").is_not_null()).select(  # unlabelled answers carry no grade
            pl.col("prompt_text").alias("instruction"),
            pl.col("response_text").alias("response"),
            (pl.col("quality_score").cast(pl.Float64) * 5).round(0).clip(0, 5).cast(pl.Int64).alias("score"),
        )
        return df if kind == "eft" else df.select("instruction", "response")
    cols = ["instruction", "response"] + (["score"] if kind == "eft" else [])
    need(df, cols, src)
    check_plain(df, src, kind)
    df = df.select(cols + [c for c in (LINE,) if c in df.columns])  # the line, to name a dropped row by
    return df.with_columns(pl.col("score").cast(pl.Int64)) if kind == "eft" else df


def ranked_groups(df: pl.DataFrame, src: P.Source, first_turn_only: bool) -> pl.DataFrame:
    """Human rankings as (group, instruction, response, rank) rows, 0 = best, groups in file order."""
    try:
        return _ranked_groups(df, src, first_turn_only)
    except pl.exceptions.PolarsError as e:  # e.g. a rank that is not a number
        raise SourceError(f"error: {src.path} ({src.format}): {brief(e)}") from None


def _ranked_groups(df: pl.DataFrame, src: P.Source, first_turn_only: bool) -> pl.DataFrame:
    fmt = "oasst_tree" if src.format == "hub" and "message_id" in df.columns else src.format
    if fmt == "rank_pairs":
        need(df, ["prompt", "chosen", "rejected", "chosen_rank", "rejected_rank"], src)
        if first_turn_only and "first_turn" in df.columns:
            df = df.filter(pl.col("first_turn"))
        key = pl.col("message_tree_id").cast(pl.String) + "/" if "message_tree_id" in df.columns else pl.lit("")
        df = df.with_columns((key + pl.col("prompt")).alias("group"))
        sides = [
            df.select(
                "group",
                pl.col("prompt").alias("instruction"),
                pl.col(s).alias("response"),
                pl.col(f"{s}_rank").cast(pl.Int64).alias("rank"),
            )
            for s in ("chosen", "rejected")
        ]
        return pl.concat(sides).unique(["group", "response"], keep="first", maintain_order=True)
    if fmt == "oasst_tree":
        need(df, ["message_id", "parent_id", "role", "text", "rank"], src)
        return oasst_first_turn(df)
    if fmt == "ranked":
        need(df, ["question", "answer", "rank"], src)
        return df.select(
            pl.col("question").alias("group"),
            pl.col("question").alias("instruction"),
            pl.col("answer").alias("response"),
            pl.col("rank").cast(pl.Int64),
        )
    raise SourceError(f"error: evaluate.human.format must be rank_pairs, oasst_tree, ranked or hub, got {src.format}")
