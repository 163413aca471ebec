"""srlm diff: how one dataset moved between two iterations or two revisions, row by row and as a distribution.

    srlm diff 1 2                                       preferences of iteration 1 vs 2 (workspace)
    srlm diff HEAD~1:2 2 --kind judgments               iteration 2 at the previous commit vs now
    srlm diff v0.1:1 main:1 --format markdown -o d.md   a PR / card section, plot PNGs written beside d.md

A side is ITER (data/iter<ITER>/<kind>.parquet in the workspace) or REV:ITER (a commit, tag or
branch: read through dvc.api from the DVC cache or remote, no checkout).

  rows          by content id: added (only in B), removed (only in A), unchanged, changed
                (same id, different score or text: the columns in COMPARED)
  scores        judge scores (judgments) or chosen / rejected scores and margin (preferences; meta_judgments:
                the judgments' meta scores):
                mean, histogram in whole points side by side, Wasserstein-1 distance, KS test
  rates         parse rate (from judgments, else metrics/iter<t>/judge.json), tie rate (pairs.json)
  lengths       characters of prompts, responses, chosen and rejected: mean and median drift
  novelty       share of B's prompts that are in A (same id) or a near-duplicate of one of A's
                (word-level LCS similarity >= prompts.max_similarity, as the prompts@t filter),
                on a seeded sample of at most --sample prompts per side; exact overlap on all rows
  pairs         preferences: for prompts paired in both, the share whose pair changed (churn)
                and whose chosen and rejected swapped sides (flipped)
  lineage       fields of the two lineage records that differ (params, input md5s, packages)
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from stages.commands import workspace
from stages.core import lineage, rows
from stages.core.errors import SrlmError, brief
from stages.core.rows import DATASETS
from stages.judging.text import near_duplicate, words
from stages.measure import metrics

COMPARED = {
    "prompts": ["prompt"],
    "responses": ["prompt", "response"],
    "judgments": ["score", "raw"],
    "preferences": ["prompt", "chosen", "rejected", "score_chosen", "score_rejected"],
    "meta_judgments": ["prompt", "chosen", "rejected", "score_chosen", "score_rejected"],
}
PAIRED = ("preferences", "meta_judgments")  # chosen/rejected datasets: scores, lengths and churn as pairs
STATUSES = ("added", "removed", "changed", "unchanged")


@dataclass(frozen=True)
class Side:
    spec: str
    rev: str | None
    iteration: str

    def path(self, name: str) -> str:
        return f"data/iter{self.iteration}/{name}"


def parse_side(spec: str) -> Side:
    rev, _, it = spec.rpartition(":")  # git refs cannot hold ':'
    if not it.isdigit() or (":" in spec and not rev):
        raise SrlmError(f"error: {spec!r}: expected ITER or REV:ITER (e.g. 2, HEAD~1:2, v0.1:1)")
    return Side(spec, rev or None, it)


def load(side: Side, kind: str, repo: str | None = None) -> pl.DataFrame:
    path = side.path(f"{kind}.parquet")
    root = Path(repo or ".")
    if side.rev is None:
        workspace.need(path, f"side {side.spec}", root)  # a fresh clone: names the `dvc pull` and its remote
        return rows.read(root / path, kind)
    import dvc.api

    try:
        with dvc.api.open(path, repo=repo, rev=side.rev, mode="rb") as f:
            data = f.read()
    except Exception as e:  # unknown revision, path not tracked there, object missing from cache and remote
        # DVC says "does not exist ... neither as a DVC output nor as a Git-tracked file" also when the revision's
        # dvc.lock names the file but its bytes are in no cache or remote here: tell the two apart
        missing = workspace.missing_at(side.rev, path, root)
        if missing:
            raise SrlmError(f"error: {side.spec}: {missing}") from None
        raise SrlmError(f"error: {side.spec}: cannot read {path} at revision {side.rev!r}: {brief(e)}") from None
    return rows.conform(pl.read_parquet(io.BytesIO(data)), kind, f"{path} at {side.rev}")


# ---------------------------------------------------------------- comparisons


def row_diff(a: pl.DataFrame, b: pl.DataFrame, kind: str, examples: int = 5) -> dict:
    def keyed(df):
        return df.lazy().select("id", h=pl.struct(COMPARED[kind]).hash(0)).unique("id", keep="first")

    status = (
        pl.when(pl.col("h").is_null())
        .then(pl.lit("added"))
        .when(pl.col("h_b").is_null())
        .then(pl.lit("removed"))
        .when(pl.col("h") == pl.col("h_b"))
        .then(pl.lit("unchanged"))
        .otherwise(pl.lit("changed"))
    )
    joined = (
        keyed(a).join(keyed(b), on="id", how="full", coalesce=True, suffix="_b").select("id", status=status).collect()
    )
    counts = dict(joined.group_by("status").len().iter_rows())
    out = {s: int(counts.get(s, 0)) for s in STATUSES}
    out.update(
        rows_a=len(a),
        rows_b=len(b),
        duplicate_ids_a=len(a) - a["id"].n_unique(),
        duplicate_ids_b=len(b) - b["id"].n_unique(),
    )
    out["examples"] = {
        s: joined.filter(pl.col("status") == s)["id"].sort().head(examples).to_list()
        for s in ("added", "removed", "changed")
    }
    scored = [c for c in COMPARED[kind] if c.startswith("score")]
    if scored and out["examples"]["changed"]:  # before -> after of the scores of a few changed rows
        ids = pl.Series(out["examples"]["changed"])
        before = a.filter(pl.col("id").is_in(ids)).unique("id").select("id", *scored)
        after = b.filter(pl.col("id").is_in(ids)).unique("id").select("id", *scored)
        pairs = before.join(after, on="id", suffix="_b").sort("id")
        out["changed_scores"] = [
            {"id": r["id"], **{c: [r[c], r[f"{c}_b"]] for c in scored}} for r in pairs.iter_rows(named=True)
        ]
    return out


def score_series(df: pl.DataFrame, kind: str) -> dict[str, pl.Series]:
    if kind == "judgments":
        return {"score": df["score"].drop_nulls()}
    if kind in PAIRED:
        return {
            "chosen": df["score_chosen"].drop_nulls(),
            "rejected": df["score_rejected"].drop_nulls(),
            "margin": (df["score_chosen"] - df["score_rejected"]).drop_nulls(),
        }
    return {}


def histogram(s: pl.Series) -> dict[str, int]:
    """Counts per whole point 0..5 (as metrics/iter*/judge.json `score_hist`)."""
    counts = dict(s.round(0).cast(pl.Int64).value_counts().iter_rows())
    return {str(k): int(counts.get(k, 0)) for k in range(0, 6)}


def _stats(s: pl.Series) -> dict:
    return {"n": len(s), "mean": _r(s.mean()), "median": _r(s.median()), "std": _r(s.std())}


def shift(a: pl.Series, b: pl.Series) -> dict:
    """Summary of both sides, side-by-side histograms, Wasserstein-1 distance and the two-sample KS test."""
    out = {
        "a": _stats(a),
        "b": _stats(b),
        "hist_a": histogram(a),
        "hist_b": histogram(b),
        "mean_delta": _r(b.mean() - a.mean()) if len(a) and len(b) else None,
        "wasserstein": None,
        "ks_statistic": None,
        "ks_pvalue": None,
    }
    if len(a) and len(b):
        from scipy.stats import ks_2samp, wasserstein_distance

        x, y = a.to_numpy(), b.to_numpy()
        ks = ks_2samp(x, y)
        out.update(
            wasserstein=_r(wasserstein_distance(x, y)),
            ks_statistic=_r(ks.statistic),
            ks_pvalue=float(f"{ks.pvalue:.4g}"),
        )
    return out


def _content(col: str) -> pl.Expr:
    return pl.col(col).list.first().struct.field("content")


LENGTHS = {
    "prompts": {"prompt": pl.col("prompt")},
    "responses": {"response": pl.col("response")},
    "judgments": {},
    "preferences": {"chosen": _content("chosen"), "rejected": _content("rejected")},
    "meta_judgments": {"chosen": _content("chosen"), "rejected": _content("rejected")},
}


def lengths(a: pl.DataFrame, b: pl.DataFrame, kind: str) -> dict:
    out = {}
    for name, expr in LENGTHS[kind].items():
        la, lb = (df.select(expr.str.len_chars())[:, 0] for df in (a, b))
        ma, mb = la.mean(), lb.mean()
        out[name] = {
            "mean_a": _r(ma, 1),
            "mean_b": _r(mb, 1),
            "median_a": _r(la.median(), 1),
            "median_b": _r(lb.median(), 1),
            "mean_drift": _r((mb - ma) / ma) if ma and mb is not None else None,
        }
    if kind in PAIRED and out["chosen"]["mean_a"] is not None and out["chosen"]["mean_b"] is not None:
        out["chosen_over_rejected"] = {
            side: _r(out["chosen"][f"mean_{side}"] / max(out["rejected"][f"mean_{side}"], 1)) for side in ("a", "b")
        }
    return out


def _prompt_text(kind: str) -> pl.Expr:
    return {
        "prompts": pl.col("prompt"),
        "responses": pl.col("prompt"),
        "preferences": _content("prompt"),
        "meta_judgments": pl.lit(None, pl.String),  # judge prompts: the shared rubric would make all near-duplicates
        "judgments": pl.lit(None, pl.String),
    }[kind]


def _sample_ids(ids: pl.Series, size: int, seed: int) -> pl.Series:
    """A seeded sample of distinct ids that does not depend on row order: the `size` smallest id hashes."""
    return pl.DataFrame({"id": ids}).with_columns(h=pl.col("id").hash(seed)).bottom_k(size, by=["h", "id"])["id"]


def _texts(df: pl.DataFrame, kind: str, ids: pl.Series) -> dict[str, str]:
    pid = "id" if kind == "prompts" else "prompt_id"
    hit = df.filter(pl.col(pid).is_in(ids.implode())).select(pl.col(pid), _prompt_text(kind)).unique(pid)
    return dict(hit.iter_rows())


def novelty(a: pl.DataFrame, b: pl.DataFrame, kind: str, threshold: float, sample: int, seed: int = 0) -> dict:
    pid = "id" if kind == "prompts" else "prompt_id"
    ids_a, ids_b = a[pid].unique(), b[pid].unique()
    out = {
        "prompts_a": len(ids_a),
        "prompts_b": len(ids_b),
        "exact_overlap": _r(ids_b.is_in(ids_a.implode()).mean()) if len(ids_b) else None,
        "near_duplicate_share": None,
        "novelty": None,
        "similarity": threshold,
        "sample": None,
    }
    if kind in ("judgments", "meta_judgments") or not len(ids_b):  # no prompt text of their own
        return out
    sb = _sample_ids(ids_b, sample, seed)
    exact = set(sb.filter(sb.is_in(ids_a.implode())).to_list())
    new_texts = _texts(b, kind, sb.filter(~sb.is_in(ids_a.implode())))  # LCS only for prompts A lacks by id
    choices = [words(t or "") for t in _texts(a, kind, _sample_ids(ids_a, sample, seed)).values()]
    near = len(exact) + sum(near_duplicate(words(t or ""), choices, threshold) for t in new_texts.values())
    share = near / len(sb)
    out.update(near_duplicate_share=_r(share), novelty=_r(1 - share), sample=len(sb))
    return out


def pair_churn(a: pl.DataFrame, b: pl.DataFrame) -> dict:
    cols = ["prompt_id", "chosen_id", "rejected_id"]
    j = a.select(cols).join(b.select(cols), on="prompt_id", how="inner", suffix="_b")
    same = (
        ((pl.col("chosen_id") == pl.col("chosen_id_b")) & (pl.col("rejected_id") == pl.col("rejected_id_b")))
        .sum()
        .alias("same")
    )
    flipped = (
        ((pl.col("chosen_id") == pl.col("rejected_id_b")) | (pl.col("rejected_id") == pl.col("chosen_id_b")))
        .sum()
        .alias("flip")
    )
    n_same, n_flip = j.select(same, flipped).row(0) if len(j) else (0, 0)
    return {
        "prompts_paired_in_both": len(j),
        "same_pair": int(n_same),
        "flipped": int(n_flip),
        "churn": _r(1 - n_same / len(j)) if len(j) else None,
        "prompts_paired_only_in_a": len(a) - len(j),
        "prompts_paired_only_in_b": len(b) - len(j),
    }


def rates(side: Side, kind: str, df: pl.DataFrame, repo: str | None) -> dict:
    met = f"metrics/iter{side.iteration}"
    judge = metrics.load(f"{met}/judge.json", metrics.JudgeMetrics, side.rev, repo) or metrics.JudgeMetrics()
    pairs = metrics.load(f"{met}/pairs.json", metrics.PairsMetrics, side.rev, repo) or metrics.PairsMetrics()
    parse = _r(df["score"].is_not_null().mean()) if kind == "judgments" and len(df) else judge.parse_rate
    return {"parse_rate": parse, "tie_rate": pairs.tie_rate}


def lineage_diff(la: dict | None, lb: dict | None) -> dict:
    def flat(d, prefix=""):
        out = {}
        for k, v in (d or {}).items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    fa, fb = flat(la), flat(lb)
    differs = {
        k: [fa.get(k), fb.get(k)]
        for k in sorted(set(fa) | set(fb))
        if fa.get(k) != fb.get(k) and k not in ("dataset.path", "stage")
    }
    return {"a": la is not None, "b": lb is not None, "differs": differs}


def compare(
    a_spec: str,
    b_spec: str,
    kind: str = "preferences",
    similarity: float = 0.7,
    sample: int = 2000,
    repo: str | None = None,
) -> dict:
    """Every comparison of one dataset kind between two sides, as a JSON-ready dict."""
    sa, sb = parse_side(a_spec), parse_side(b_spec)
    a, b = load(sa, kind, repo), load(sb, kind, repo)
    ra, rb = rates(sa, kind, a, repo), rates(sb, kind, b, repo)
    ds = f"{kind}.parquet"
    return {
        "a": a_spec,
        "b": b_spec,
        "kind": kind,
        "rows": row_diff(a, b, kind),
        "scores": {name: shift(s, score_series(b, kind)[name]) for name, s in score_series(a, kind).items()},
        "rates": {
            k: {"a": ra[k], "b": rb[k], "delta": _r(rb[k] - ra[k]) if None not in (ra[k], rb[k]) else None} for k in ra
        },
        "lengths": lengths(a, b, kind),
        "novelty": novelty(a, b, kind, similarity, sample),
        "pairs": pair_churn(a, b) if kind in PAIRED else None,
        "lineage": lineage_diff(lineage.read(sa.path(ds), sa.rev, repo), lineage.read(sb.path(ds), sb.rev, repo)),
    }


def _r(x, digits: int = 4):
    return None if x is None else round(float(x), digits)


# ---------------------------------------------------------------- CLI


def add_arguments(ap) -> None:
    ap.add_argument("a", help="ITER or REV:ITER (e.g. 1, HEAD~1:2, v0.1:1)")
    ap.add_argument("b", help="ITER or REV:ITER")
    ap.add_argument("--kind", choices=DATASETS, default="preferences")
    ap.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    ap.add_argument("-o", "--out", type=Path, help="write here instead of stdout (markdown: plot PNGs go beside it)")
    ap.add_argument("--similarity", type=float, help="near-duplicate threshold (default: prompts.max_similarity)")
    ap.add_argument("--sample", type=int, default=2000, help="prompts per side for the near-duplicate search")


def main_args(args, params) -> None:
    from stages.commands import diff_report

    sim = args.similarity if args.similarity is not None else params.prompts.max_similarity
    result = compare(args.a, args.b, args.kind, sim, args.sample)
    if args.format == "json":
        text = json.dumps(result, indent=2) + "\n"
    elif args.format == "markdown":
        out = args.out or Path("srlm-diff.md")
        text = diff_report.markdown(result, images=diff_report.plots(result, out.with_suffix("")))
    else:
        text = diff_report.table(result, file=None if args.out is None else io.StringIO())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"srlm diff: wrote {args.out}", file=sys.stderr)
    elif text:
        sys.stdout.write(text)
