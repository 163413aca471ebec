"""What a person reads of validate@t: the one line per failed check, and the HTML report."""

from __future__ import annotations

import html

from stages.core.rows import DATASETS

# suite parameters that are not validate knobs (stages/validate.py suite_parameters)
OTHER_KNOBS = {"responses_n": "responses.n", "meta_judge_max_share": "meta_judge.max_share"}


def knob_names(params: list[str]) -> list[str]:
    return [OTHER_KNOBS.get(k, f"validate.{k}") for k in params]


def failure_line(iteration: int, c: dict) -> str:
    on = f"({c['column']})" if c["column"] else ""
    what = f"share of rows breaking '{c['rule']}'" if c.get("rule") else "value"
    eg = f" (e.g. {c['examples']})" if c["examples"] else ""
    knobs = ", ".join(knob_names(c["params"]))
    return (
        f"validate@{iteration}: FAILED {c['dataset']}.{c['check']}: {c['expectation']}{on}: "
        f"observed {what} {c['observed']}{eg}, threshold {c['threshold']}"
        + (f"; knobs: {knobs}" if knobs else "")
        + (f"; {c['hint']}" if c["hint"] else "")
    )


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
        if not checks:
            continue
        out.append(
            f"<h2>{e(kind)}</h2><table><tr><th></th><th>check</th><th>expectation</th><th>observed</th>"
            "<th>threshold</th><th>knobs</th><th>what it means</th></tr>"
        )
        for c in checks:
            mark = "<span class='ok'>&#10003;</span>" if c["passed"] else "<span class='bad'>&#10007;</span>"
            eg = f"<br>e.g. {e(str(c['examples']))}" if c.get("examples") and not c["passed"] else ""
            col = f" ({e(c['column'])})" if c.get("column") else ""
            rule = f" of rows break <i>{e(c['rule'])}</i>" if c.get("rule") else ""
            out.append(
                f"<tr><td>{mark}</td><td>{e(c['check'])}</td><td><code>{e(c['expectation'])}</code>{col}</td>"
                f"<td>{e(str(c['observed']))}{rule}{eg}</td><td>{e(str(c['threshold']))}</td>"
                f"<td>{'<br>'.join(e(k) for k in knob_names(c.get('params', [])))}</td>"
                f"<td>{e(c.get('description', ''))}{'<br><i>' + e(c['hint']) + '</i>' if c.get('hint') else ''}"
                "</td></tr>"
            )
        out.append("</table>")
    if result["skipped"]:
        out.append(f"<p class='skip'>Skipped: {e(', '.join(result['skipped']))}</p>")
    out.append(
        "<p class='skip'>Suites: validations/*.json (Great Expectations). Knobs: the validate section of "
        "params.yaml.</p></body></html>"
    )
    return "\n".join(out) + "\n"
