"""What a person reads of validate@t: the one line per failed check, and the HTML report (the datasets' checks,
then the judge's: stages/measure/judge_gate.py)."""

from __future__ import annotations

import html

from stages.core.rows import DATASETS
from stages.measure.metrics import rounded

# suite parameters that are not validate knobs (stages/validate.py suite_parameters)
OTHER_KNOBS = {"responses_n": "responses.n", "meta_judge_max_share": "meta_judge.max_share"}


def knob_names(params: list[str]) -> list[str]:
    return [OTHER_KNOBS.get(k, f"validate.{k}") for k in params]


def observed_text(c: dict) -> str:
    """The observed value, with its 95% interval and count where the check has them (the judge's); rounded here
    too, as a record from a writer other than stages/measure/gx.py may not be."""
    ci = f" [{rounded(c['ci95'][0])}, {rounded(c['ci95'][1])}]" if c.get("ci95") else ""
    n = f" (n={c['n']})" if c.get("n") is not None else ""
    return f"{rounded(c['observed'])}{ci}{n}"


def failure_line(iteration: int, c: dict, word: str = "FAILED") -> str:
    on = f"({c['column']})" if c["column"] else ""
    what = f"share of rows breaking '{c['rule']}'" if c.get("rule") else "value"
    eg = f" (e.g. {c['examples']})" if c["examples"] else ""
    knobs = ", ".join(knob_names(c["params"]))
    return (
        f"validate@{iteration}: {word} {c['dataset']}.{c['check']}: {c['expectation']}{on}: "
        f"observed {what} {observed_text(c)}{eg}, threshold {c['threshold']}"
        + (f"; knobs: {knobs}" if knobs else "")
        + (f"; {c['hint']}" if c["hint"] else "")
    )


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%;
margin-bottom:2em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#f3f3f3}.ok{color:#176f2c}.bad{color:#b00020;font-weight:bold}.skip{color:#777}
.banner{padding:10px 14px;border-radius:6px;font-size:18px;margin-bottom:1em}
.pass{background:#e6f4ea}.fail{background:#fde7e9}.over{background:#fff4ce}code{font-size:13px}"""


def _rows(checks: list[dict]) -> list[str]:
    e = html.escape
    out = [
        "<table><tr><th></th><th>check</th><th>expectation</th><th>observed</th>"
        "<th>threshold</th><th>knobs</th><th>what it means</th></tr>"
    ]
    for c in checks:
        mark = "<span class='ok'>&#10003;</span>" if c["passed"] else "<span class='bad'>&#10007;</span>"
        eg = f"<br>e.g. {e(str(c['examples']))}" if c.get("examples") and not c["passed"] else ""
        col = f" ({e(c['column'])})" if c.get("column") else ""
        rule = f" of rows break <i>{e(c['rule'])}</i>" if c.get("rule") else ""
        out.append(
            f"<tr><td>{mark}</td><td>{e(c['check'])}</td><td><code>{e(c['expectation'])}</code>{col}</td>"
            f"<td>{e(observed_text(c))}{rule}{eg}</td><td>{e(str(c['threshold']))}</td>"
            f"<td>{'<br>'.join(e(k) for k in knob_names(c.get('params', [])))}</td>"
            f"<td>{e(c.get('description', ''))}{'<br><i>' + e(c['hint']) + '</i>' if c.get('hint') else ''}"
            "</td></tr>"
        )
    out.append("</table>")
    return out


def judge_html(judge: dict | None, iteration: int) -> list[str]:
    """The judge's section: which model labelled the iteration, what the gate did with its checks, the checks."""
    if not judge:
        return []
    e, status, gate = html.escape, judge["status"], judge["gate"]
    head = f"<h2>judge: {e(judge.get('judge') or 'the model')}, which labelled iteration {iteration}</h2>"
    source = f" (from <code>{e(judge['eval'])}</code>)" if judge.get("eval") else ""
    if status in ("skipped", "off"):
        return [head, f"<p class='skip'>Judge checks {e(status)}: {e(str(judge['reason']))}{source}.</p>"]
    pairs = f"; {judge['judge_pairs']} pairs decided by the judge" if judge.get("judge_pairs") is not None else ""
    if status == "passed":
        line = ("ok", f"Judge checks passed{pairs}.")
    elif gate == "fail":
        line = ("bad", f"Judge checks FAILED (validate.judge_gate: fail): {', '.join(judge['failures'])}{pairs}.")
    else:
        line = (
            "bad",
            f"Judge checks failed, recorded only (validate.judge_gate: warn): {', '.join(judge['failures'])}; "
            f"they do not stop dpo@{iteration}{pairs}.",
        )
    out = [head, f"<p class='{line[0]}'>{e(line[1])}{source}</p>", *_rows(judge["checks"])]
    if judge.get("skipped"):
        out.append(f"<p class='skip'>Skipped: {e('; '.join(f'{k}: {v}' for k, v in judge['skipped'].items()))}</p>")
    return out


def report_html(result: dict, iteration: int) -> str:
    e = html.escape
    judge = result.get("judge") or {}
    if result["passed"]:
        warned = judge.get("status") == "failed" and judge.get("gate") == "warn"
        banner = (
            "over" if warned else "pass",
            f"PASSED: all {result['evaluated']} checks passed; dpo@{iteration} may train"
            + ("; the judge checks failed, recorded only (validate.judge_gate: warn)" if warned else ""),
        )
    elif result["overridden"]:
        banner = (
            "over",
            f"OVERRIDDEN: {result['failed']} check(s) failed, validate.allow_failure is true; "
            f"dpo@{iteration} trains anyway",
        )
    else:
        banner = ("fail", f"FAILED: {result['failed']} check(s) failed; dpo@{iteration} will not run")
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>validate@{iteration}</title>"
        f"<style>{_CSS}</style></head><body><h1>Validation gate, iteration {iteration}</h1>",
        f"<div class='banner {banner[0]}'>{e(banner[1])}</div>",
    ]
    out += [f"<p class='skip'>{e(w)}</p>" for w in result["warnings"]]
    for kind in DATASETS + ("schema",):
        checks = [c for c in result["checks"] if c["dataset"] == kind]
        if checks:
            out += [f"<h2>{e(kind)}</h2>", *_rows(checks)]
    out += judge_html(result.get("judge"), iteration)
    if result["skipped"]:
        out.append(f"<p class='skip'>Skipped: {e(', '.join(result['skipped']))}</p>")
    out.append(
        "<p class='skip'>Suites: validations/*.json (Great Expectations); judge checks: "
        "stages/measure/judge_gate.py. Knobs: the validate section of params.yaml.</p></body></html>"
    )
    return "\n".join(out) + "\n"
