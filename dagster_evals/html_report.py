"""A self-contained static HTML page per eval report: every row, side by side with the baseline.

One file, no server and no network (styles and the sort/filter script are inline): a table of every row
with its input, output and expected value, each scorer's score (and the baseline's, with the baseline's
output beside the current one) and the scorers' reasons; click a column header to sort, type to filter,
pick a status (errored, below 1, regressed). Rows are written as they stream from the backend, so memory
stays flat in the report's size.

Where: `$DAGSTER_EVALS_REPORTS_DIR` when set, else an `eval_reports` folder beside the local backend's
SQLite file, else `$DAGSTER_HOME/eval_reports`, else `./.dagster_evals/eval_reports`; the file is
`<report id>.html`. Written for reports of the local backend (SQLite or PostgreSQL); Braintrust and Keywords
AI reports link to their platform's own views instead.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dagster_evals.engine.errors import DagsterEvalsError
from dagster_evals.engine.models import EvalReport
from dagster_evals.engine.review import ReviewedRow, paired_rows
from dagster_evals.metadata import format_number

if TYPE_CHECKING:
    import dagster as dg

    from dagster_evals.backends.base import EvalPlatform

REPORTS_DIR_ENV = "DAGSTER_EVALS_REPORTS_DIR"
# Rows written to one page at most (a browser table past this is unusable; `dagster-evals rows` lists all).
MAX_ROWS = 20_000
# Characters of one value on the page.
PAGE_CHARS = 2_000

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24}
h1{font-size:1.3em}table{border-collapse:collapse;width:100%}
th,td{border:1px solid #d0d7de;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f6f8fa;cursor:pointer;position:sticky;top:0}
td.num{text-align:right;white-space:nowrap}td.text{max-width:28em;white-space:pre-wrap;word-break:break-word}
tr.errored{background:#ffebe9}tr.regressed td.num.fell{background:#fff8c5}
table.summary{width:auto;margin-bottom:1em}table.summary th{cursor:default;position:static}
.controls{margin:1em 0}.controls input{width:24em}pre{white-space:pre-wrap}
"""

_SCRIPT = """
(function(){
var table=document.getElementById('rows'),body=table.tBodies[0];
var filter=document.getElementById('filter'),status=document.getElementById('status');
var count=document.getElementById('count');
function apply(){var q=filter.value.toLowerCase(),s=status.value,n=0;
 for(var r of body.rows){var ok=(!q||r.textContent.toLowerCase().indexOf(q)>=0)&&
  (s==='all'||(' '+r.dataset.status+' ').indexOf(' '+s+' ')>=0);r.hidden=!ok;if(ok)n++;}
 count.textContent=n+' of '+body.rows.length+' rows shown';}
filter.addEventListener('input',apply);status.addEventListener('change',apply);
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
 th.addEventListener('click',function(){var asc=th.dataset.dir!=='asc';th.dataset.dir=asc?'asc':'desc';
  var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=a.cells[i].dataset.sort,y=b.cells[i].dataset.sort;
   var nx=parseFloat(x),ny=parseFloat(y),c;
   if(!isNaN(nx)&&!isNaN(ny))c=nx-ny;else if(isNaN(nx)!==isNaN(ny))c=isNaN(nx)?1:-1;
   else c=String(x).localeCompare(String(y));return asc?c:-c;});
  rows.forEach(function(r){body.appendChild(r);});});});
apply();})();
"""


def reports_dir(platform: Any = None) -> Path:
    """Where HTML reports are written (see the module docstring)."""
    configured = os.environ.get(REPORTS_DIR_ENV, "").strip()
    if configured:
        return Path(configured)
    engine = getattr(platform, "engine", None)
    url = getattr(engine, "url", None)
    if url is not None and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).resolve().parent / "eval_reports"
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) / "eval_reports" if home else Path.cwd() / ".dagster_evals" / "eval_reports"


def _statuses(row: ReviewedRow | None, base: ReviewedRow | None) -> str:
    if row is None:
        return "missing"
    tags = ["errored"] if row.errored else []
    if row.needs_review and not row.errored:
        tags.append("below")
    if base is not None and any(
        value < base.scores.get(name, value) - 1e-9 for name, value in row.scores.items()
    ):
        tags.append("regressed")
    return " ".join(tags) or "ok"


def _td(text: str, *, sort: Any = None, css: str = "text") -> str:
    key = text if sort is None else sort
    return f'<td class="{css}" data-sort="{html.escape(str(key), quote=True)}">{html.escape(text)}</td>'


def _score_td(row: ReviewedRow | None, name: str, fell: bool = False) -> str:
    value = row.scores.get(name) if row is not None else None
    css = "num fell" if fell else "num"
    return _td(format_number(value), sort="" if value is None else repr(value), css=css)


def _reasons(row: ReviewedRow | None) -> str:
    if row is None:
        return "(not in this report)"
    parts = [f"error: {row.error}"] if row.error else []
    parts += [f"{name}: {text}" for name, text in row.reasons.items()]
    return "\n".join(parts)


def render_html(
    report: EvalReport,
    rows: Iterable[tuple[ReviewedRow | None, ReviewedRow | None]],
    out: TextIO,
    *,
    baseline: EvalReport | None = None,
    max_rows: int | None = None,
) -> int:
    """Write the page of `report` (rows paired with the baseline's, as `paired_rows` gives them) to `out`,
    at most `max_rows` of them (default `MAX_ROWS`); returns the number of rows written."""
    limit = MAX_ROWS if max_rows is None else max_rows
    scorers = list(report.scores) or []
    compared = baseline is not None
    title = f"Eval report {report.name}"
    out.write(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>report id <code>{html.escape(report.id)}</code> on {html.escape(report.platform)}, created "
        f"{report.created_at:%Y-%m-%d %H:%M:%S} UTC"
        + (
            f"; baseline <code>{html.escape(baseline.name)}</code> (<code>{html.escape(baseline.id)}</code>)"
            if baseline is not None
            else "; no baseline"
        )
        + "</p>\n"
        f"{_summary(report)}\n"
        '<div class="controls"><input id="filter" type="search" placeholder="filter rows (any text)"> '
        '<select id="status"><option value="all">all rows</option><option value="errored">errored</option>'
        '<option value="below">below 1</option>'
        + (
            '<option value="regressed">regressed</option><option value="missing">missing</option>'
            if compared
            else ""
        )
        + '</select> <span id="count"></span></div>\n<table id="rows"><thead><tr>'
    )
    head = ["row", "status", "input", "expected", "output"]
    if compared:
        head.append("baseline output")
    for name in scorers:
        head.append(name)
        if compared:
            head.append(f"{name} (baseline)")
    head.append("reasons / errors")
    if compared:
        head.append("baseline reasons / errors")
    out.write("".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>\n<tbody>\n")
    written = 0
    cut = False
    for row, base in rows:
        if written >= limit:
            cut = True
            break
        shown = row or base
        assert shown is not None
        status = _statuses(row, base)
        cells = [
            _td(shown.row_id),
            _td(status),
            _td(shown.input),
            _td(shown.expected),
            _td(row.output if row is not None else ""),
        ]
        if compared:
            cells.append(_td(base.output if base is not None else ""))
        for name in scorers:
            now = row.scores.get(name) if row is not None else None
            before = base.scores.get(name) if base is not None else None
            fell = now is not None and before is not None and now < before - 1e-9
            cells.append(_score_td(row, name, fell))
            if compared:
                cells.append(_score_td(base, name))
        cells.append(_td(_reasons(row)))
        if compared:
            cells.append(_td(_reasons(base) if base is not None else "(not in the baseline)"))
        out.write(f'<tr class="{status}" data-status="{status}">' + "".join(cells) + "</tr>\n")
        written += 1
    out.write("</tbody></table>\n")
    if cut:
        out.write(
            f"<p>Only the first {written} rows are on this page; list every row with "
            f"<code>dagster-evals rows {html.escape(report.id)}</code>.</p>\n"
        )
    out.write(
        f'<script type="application/json" id="report-data">{_json_for_script(report)}</script>\n'
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )
    return written


def _summary(report: EvalReport) -> str:
    """The per-scorer means, baseline means and diffs as a small table, with the row counts above it."""
    head = ["scorer", "mean", "baseline", "diff", "improved rows", "regressed rows", "scorer errors"]
    rows = "".join(
        "<tr>"
        + f"<td>{html.escape(s.name)}</td>"
        + "".join(
            f'<td class="num">{html.escape(text)}</td>'
            for text in (
                format_number(s.mean),
                format_number(s.baseline_mean),
                format_number(s.diff, signed=True),
                str(s.improvements),
                str(s.regressions),
                str(s.errors),
            )
        )
        + "</tr>"
        for s in report.scores.values()
    )
    counts = (
        f"<p>dataset version {html.escape(str(report.dataset_version))}: {report.rows_scored} of "
        f"{report.rows_in_snapshot} rows scored, {report.rows_errored} errored</p>"
    )
    heading = "".join(f"<th>{h}</th>" for h in head)
    return f'{counts}<table class="summary"><thead><tr>{heading}</tr></thead><tbody>{rows}</tbody></table>'


def _json_for_script(report: EvalReport) -> str:
    data = {"id": report.id, "name": report.name, "scores": {n: s.mean for n, s in report.scores.items()}}
    return json.dumps(data).replace("<", "\\u003c")


def write_report_file(platform: EvalPlatform, report: EvalReport, path: Path) -> int:
    """Write the HTML page of `report` (with its baseline, when it has one) to `path`; returns rows written."""
    baseline = platform.get_eval_report(report.baseline_id) if report.baseline_id else None
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        written = render_html(
            report, paired_rows(platform, report.id, report.baseline_id, PAGE_CHARS), out, baseline=baseline
        )
    partial.replace(path)  # a reader never sees half a page
    return written


def write_html_report(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, platform: EvalPlatform, report: EvalReport
) -> Path | None:
    """The report's HTML page written to `reports_dir()`, or None where the platform keeps no rows here
    (Braintrust, Keywords AI) or the page could not be written (a warning says why)."""
    if getattr(platform, "iter_report_rows", None) is None:
        return None
    path = reports_dir(platform) / f"{report.id}.html"
    try:
        written = write_report_file(platform, report, path)
    except OSError as exc:
        context.log.warning(
            f"could not write the HTML report to {path}: {exc.strerror or exc}; set {REPORTS_DIR_ENV} "
            "to a writable folder"
        )
        return None
    except (
        DagsterEvalsError
    ) as exc:  # the page is an extra: a backend that cannot list rows never fails the eval
        context.log.warning(f"could not write the HTML report of {report.id}: {exc}")
        return None
    context.log.info(f"HTML report of {written} rows: {path}")
    return path
