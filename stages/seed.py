"""seed: build the instruction set (IFT) and the judge-training set (EFT).

    python -m stages.seed --ift data/seed/ift.parquet --eft data/seed/eft.parquet --metrics metrics/seed.json

Sources (params `seed_data.ift` / `seed_data.eft`, each a list of {path, format}):
  jsonl | parquet  columns instruction, response (+ score 0..5 for EFT)
  oasst_tree       oasst1/oasst2 message trees: first-turn prompt; IFT takes the rank-0 reply,
                   EFT every ranked reply with a score from its rank
  ranked           question, answer, rank (0 = best), several answers per question
  quality          prompt_text, response_text, quality_score in 0..1
  hub              a Hugging Face dataset id; oasst trees if it has message_id, else as jsonl
EFT rows get a rubric judgment: "Score: N", then a one-line justification (stages/judging/prompting.py).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import polars as pl

from stages.core import params as P
from stages.core import rows
from stages.core.errors import brief, entry
from stages.judging.prompting import judgment_text
from stages.judging.sources import LINE, SourceError, convert, load_source, where

# the params this stage reads: dvc.yaml's params list and the lineage record (python -m stages.commands.dag write)
PARAMS = ("seed", "seed_data")


def build(sources: list[P.Source], kind: str, counts: dict | None = None) -> pl.DataFrame:
    """The rows of `sources` as one `kind` (ift/eft) frame. Rows with a blank instruction or response are
    dropped and so are repeated rows; `counts`, if given, gets how many of each ({"blank", "duplicates"})."""
    parts, blank = [], 0
    for src in sources:
        df = load_source(src)
        if df is None:
            continue
        if df.is_empty():
            raise SourceError(f"error: seed source {src.path} is empty")
        # jsonl and parquet rows are the file's own, so a dropped one can be named by line or row
        plain = src.format in ("jsonl", "parquet") or (src.format == "hub" and "message_id" not in df.columns)
        try:
            df = convert(df, src, kind)
        except pl.exceptions.PolarsError as e:  # a value of the wrong type in a format without its own check
            raise SourceError(f"error: {src.path} ({src.format}): {brief(e)}") from None
        nested = [c for c in ("instruction", "response") if df.schema[c].is_nested()]
        if nested:  # polars would happily turn a list or an object into its text
            raise SourceError(
                f"error: {src.path}: columns instruction and response must be text "
                f"(got {df.schema['instruction']}, {df.schema['response']})"
            )
        n = len(df)
        filled = [pl.col(c).str.strip_chars().str.len_chars().fill_null(0) > 0 for c in ("instruction", "response")]
        dropped = df.select(~(filled[0] & filled[1])).to_series().arg_true()
        if len(dropped) == n:
            why = f"all {n} rows have a blank instruction or response" if n else f"it gives no {kind.upper()} rows"
            raise SourceError(f"error: seed source {src.path} ({src.format}): {why}")
        say_dropped(df, dropped, src, plain)
        df = df.filter(*filled).drop(LINE, strict=False)
        blank += len(dropped)
        if src.limit:
            df = df.head(src.limit)
        parts.append(df.with_columns(pl.lit(src.path).alias("source")))
    if not parts:
        if counts is not None:
            counts.update(blank=0, duplicates=0)
        return rows.empty(kind)
    df = pl.concat(parts, how="diagonal_relaxed")
    if kind == "ift":
        df = df.with_columns(
            pl.struct("instruction", "response")
            .map_elements(lambda r: rows.content_id(r["instruction"], r["response"]), return_dtype=pl.String)
            .alias("id")
        )
    else:
        df = df.with_columns(pl.col("score").cast(pl.Int8))
        df = df.with_columns(
            pl.struct("instruction", "response", "score")
            .map_elements(
                lambda r: rows.content_id(r["instruction"], r["response"], r["score"]), return_dtype=pl.String
            )
            .alias("id"),
            pl.col("score").map_elements(judgment_text, return_dtype=pl.String).alias("judgment"),
        )
    unique = df.unique("id", keep="first", maintain_order=True)
    if counts is not None:
        counts.update(blank=blank, duplicates=len(df) - len(unique))
    return rows.conform(unique, kind)


SAY_AT_MOST = 5  # dropped rows named one per line, per source


def say_dropped(df: pl.DataFrame, dropped: pl.Series, src: P.Source, plain: bool) -> None:
    """Name the rows with a blank instruction or response (they are dropped and counted) on stderr: by line
    (`x.jsonl:3`) or row (`x.parquet row 3`); a converted format's rows are not the file's, so only a count."""
    if not len(dropped):
        return
    if not plain:
        print(
            f"seed: {src.path} ({src.format}): {len(dropped)} rows with a blank instruction or response dropped",
            file=sys.stderr,
        )
        return
    for i in dropped[:SAY_AT_MOST]:
        print(f"seed: {where(df, i, src)}: blank instruction or response; row dropped", file=sys.stderr)
    if len(dropped) > SAY_AT_MOST:
        more = len(dropped) - SAY_AT_MOST
        print(f"seed: {src.path}: {more} more rows with a blank instruction or response dropped", file=sys.stderr)


@entry
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ift", type=Path, required=True, help="IFT parquet to write")
    ap.add_argument("--eft", type=Path, required=True, help="EFT parquet to write")
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = P.load(args.params)
    rows.all_or_none(args.ift, args.eft, args.metrics)  # never a new ift.parquet beside an old or no eft.parquet
    ift_counts, eft_counts = {}, {}
    ift = build(p.seed_data.ift, "ift", ift_counts)
    if ift.is_empty():
        raise SourceError("error: seed_data.ift produced no rows")
    eft = build(p.seed_data.eft, "eft", eft_counts)
    if p.seed_data.eft_max and len(eft) > p.seed_data.eft_max:
        keep = sorted(random.Random(p.seed).sample(range(len(eft)), p.seed_data.eft_max))
        eft = eft[keep]
    rows.write(ift, args.ift, "ift")
    rows.write(eft, args.eft, "eft")
    hist = {str(s): int(c) for s, c in eft.group_by("score").len().sort("score").iter_rows()}
    metrics = {
        "ift_rows": len(ift),
        "eft_rows": len(eft),
        "eft_score_hist": hist,
        **{f"{k}_{c}": n for k, counts in (("ift", ift_counts), ("eft", eft_counts)) for c, n in counts.items()},
    }
    if args.metrics:
        rows.write_json(metrics, args.metrics)
    print(
        f"seed: {len(ift)} IFT rows, {len(eft)} EFT rows (scores {hist}; dropped: blank "
        f"{metrics['ift_blank']} IFT / {metrics['eft_blank']} EFT, duplicates {metrics['ift_duplicates']} IFT / "
        f"{metrics['eft_duplicates']} EFT)"
    )


if __name__ == "__main__":
    main()
