"""Renderings of a `stages.commands.diff.compare` result: a rich table for a terminal, markdown with plot PNGs.

Both are built from the same `sections()`; the plots are Vega-Lite specs (the grammar DVC's
plots use) rendered to PNG by vl-convert, no browser needed.
"""

from __future__ import annotations

import io
from pathlib import Path

Section = tuple[str, list[str], list[list[str]]]


def _f(x, pct: bool = False) -> str:
    if x is None:
        return "-"
    if pct:
        return f"{x:.1%}"
    return f"{x:,}" if isinstance(x, int) else f"{x:.4g}"


def _delta(x, pct: bool = False) -> str:
    return "-" if x is None else ("+" if x > 0 else "") + _f(x, pct)


def sections(r: dict) -> list[Section]:
    rw = r["rows"]
    out: list[Section] = [
        (
            "Rows (by content id)",
            ["rows A", "rows B", "added", "removed", "changed", "unchanged"],
            [
                [
                    _f(rw["rows_a"]),
                    _f(rw["rows_b"]),
                    _f(rw["added"]),
                    _f(rw["removed"]),
                    _f(rw["changed"]),
                    _f(rw["unchanged"]),
                ]
            ],
        )
    ]
    if r["scores"]:
        out.append(
            (
                "Scores",
                ["series", "n A", "n B", "mean A", "mean B", "Δ mean", "Wasserstein", "KS", "KS p"],
                [
                    [
                        name,
                        _f(s["a"]["n"]),
                        _f(s["b"]["n"]),
                        _f(s["a"]["mean"]),
                        _f(s["b"]["mean"]),
                        _delta(s["mean_delta"]),
                        _f(s["wasserstein"]),
                        _f(s["ks_statistic"]),
                        _f(s["ks_pvalue"]),
                    ]
                    for name, s in r["scores"].items()
                ],
            )
        )
        names = list(r["scores"])
        hist_rows = []
        for point in map(str, range(6)):
            row = [point]
            for name in names:
                s = r["scores"][name]
                for side in ("a", "b"):
                    n, total = s[f"hist_{side}"][point], s[side]["n"]
                    row.append(f"{n:,} ({n / total:.0%})" if total else "-")
            hist_rows.append(row)
        out.append(
            ("Score histogram (whole points)", ["score"] + [f"{n} {s}" for n in names for s in ("A", "B")], hist_rows)
        )
    out.append(
        (
            "Rates",
            ["rate", "A", "B", "Δ"],
            [[k, _f(v["a"], True), _f(v["b"], True), _delta(v["delta"], True)] for k, v in r["rates"].items()],
        )
    )
    lens = {k: v for k, v in r["lengths"].items() if k != "chosen_over_rejected"}
    if lens:
        body = [
            [k, _f(v["mean_a"]), _f(v["mean_b"]), _f(v["median_a"]), _f(v["median_b"]), _delta(v["mean_drift"], True)]
            for k, v in lens.items()
        ]
        if "chosen_over_rejected" in r["lengths"]:
            c = r["lengths"]["chosen_over_rejected"]
            body.append(["chosen / rejected", _f(c["a"]), _f(c["b"]), "", "", ""])
        out.append(("Lengths (characters)", ["text", "mean A", "mean B", "median A", "median B", "mean drift"], body))
    nv = r["novelty"]
    out.append(
        (
            "Prompt novelty (B against A)",
            ["prompts A", "prompts B", "same prompt", "near-duplicate", "novel", "sample"],
            [
                [
                    _f(nv["prompts_a"]),
                    _f(nv["prompts_b"]),
                    _f(nv["exact_overlap"], True),
                    _f(nv["near_duplicate_share"], True),
                    _f(nv["novelty"], True),
                    _f(nv["sample"]),
                ]
            ],
        )
    )
    if r["pairs"]:
        p = r["pairs"]
        out.append(
            (
                "Pair churn (prompts paired in both)",
                ["paired in both", "same pair", "flipped", "churn", "only A", "only B"],
                [
                    [
                        _f(p["prompts_paired_in_both"]),
                        _f(p["same_pair"]),
                        _f(p["flipped"]),
                        _f(p["churn"], True),
                        _f(p["prompts_paired_only_in_a"]),
                        _f(p["prompts_paired_only_in_b"]),
                    ]
                ],
            )
        )
    lin = r["lineage"]
    if not (lin["a"] and lin["b"]):
        out.append(("Lineage", ["note"], [[f"no lineage record for {'A' if not lin['a'] else 'B'}"]]))
    elif lin["differs"]:
        out.append(
            (
                "Lineage: what differs upstream",
                ["field", "A", "B"],
                [[k, _short(a), _short(b)] for k, (a, b) in lin["differs"].items()],
            )
        )
    return out


def _short(v, n: int = 40) -> str:
    s = "-" if v is None else str(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def title(r: dict) -> str:
    return f"srlm diff {r['a']} → {r['b']} ({r['kind']})"


def table(r: dict, file: io.StringIO | None = None) -> str:
    """Print rich tables to the terminal (or into `file`, whose text is returned)."""
    import sys

    from rich.console import Console
    from rich.table import Table

    # a pipe or file gets wide rows rather than wrapped cells; a terminal uses its own width
    console = Console(file=file, width=None if file is None and sys.stdout.isatty() else 140)
    console.print(f"[bold]{title(r)}[/bold]")
    for name, headers, body in sections(r):
        t = Table(title=name, title_justify="left")
        for i, h in enumerate(headers):
            t.add_column(h, justify="left" if i == 0 else "right")
        for row in body:
            t.add_row(*row)
        console.print(t)
    return file.getvalue() if file is not None else ""


def markdown(r: dict, images: list[tuple[str, str]] = ()) -> str:
    lines = [f"## {title(r)}", ""]
    for name, headers, body in sections(r):
        lines += [f"### {name}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        lines.append("")
    for alt, src in images:
        lines += [f"![{alt}]({src})", ""]
    return "\n".join(lines)


def plot_specs(r: dict) -> dict[str, dict]:
    """Vega-Lite specs: score histograms side by side (share per whole point) and mean lengths."""
    schema = "https://vega.github.io/schema/vega-lite/v5.json"
    a, b = r["a"], r["b"]
    specs = {}
    if r["scores"]:
        values = [
            {
                "series": name,
                "side": side_name,
                "score": int(p),
                "share": s[f"hist_{k}"][p] / s[k]["n"] if s[k]["n"] else 0,
            }
            for name, s in r["scores"].items()
            for k, side_name in (("a", a), ("b", b))
            for p in s[f"hist_{k}"]
        ]
        specs["scores"] = {
            "$schema": schema,
            "title": f"{r['kind']} scores: {a} vs {b}",
            "data": {"values": values},
            "mark": "bar",
            "width": 160,
            "height": 140,
            "encoding": {
                "column": {"field": "series", "type": "nominal", "sort": list(r["scores"]), "title": None},
                "x": {"field": "score", "type": "ordinal", "axis": {"labelAngle": 0}},
                "xOffset": {"field": "side", "type": "nominal", "sort": [a, b]},
                "y": {"field": "share", "type": "quantitative", "axis": {"format": "%"}},
                "color": {"field": "side", "type": "nominal", "sort": [a, b], "title": None},
            },
        }
    lens = {k: v for k, v in r["lengths"].items() if k != "chosen_over_rejected"}
    if lens:
        values = [
            {"text": k, "side": side_name, "chars": v[f"mean_{s}"]}
            for k, v in lens.items()
            for s, side_name in (("a", a), ("b", b))
            if v[f"mean_{s}"] is not None
        ]
        specs["lengths"] = {
            "$schema": schema,
            "title": "mean length (characters)",
            "data": {"values": values},
            "mark": "bar",
            "width": 80 * len(lens),
            "height": 140,
            "encoding": {
                "x": {"field": "text", "type": "nominal", "title": None, "axis": {"labelAngle": 0}},
                "xOffset": {"field": "side", "type": "nominal", "sort": [a, b]},
                "y": {"field": "chars", "type": "quantitative"},
                "color": {"field": "side", "type": "nominal", "sort": [a, b], "title": None},
            },
        }
    return specs


def plots(r: dict, stem: Path) -> list[tuple[str, str]]:
    """Write `<stem>-<name>.png` per plot; return (alt text, file name relative to the markdown) pairs."""
    import vl_convert as vlc

    out = []
    for name, spec in plot_specs(r).items():
        path = stem.with_name(f"{stem.name}-{name}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(vlc.vegalite_to_png(spec, scale=2))
        out.append((spec["title"], path.name))
    return out
