"""`dagster-evals rows`, `diff`, `html` and `report REPORT_ID`: every row of a report, from any backend.

Rows stream from the backend (memory stays flat in the report's size). The local backend keeps each row's
input, output, expected value and the scorers' reasons; Braintrust and Keywords AI give the scores of each
scored row (their own views show the rest: the report's `url`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from dagster_evals.backends.base import EvalPlatform
from dagster_evals.engine.errors import ConfigError, NotFoundError
from dagster_evals.engine.models import EvalReport
from dagster_evals.engine.review import FULL_CHARS, ReviewedRow, as_text, paired_rows
from dagster_evals.engine.summary import ROW_CHANGE_EPSILON
from dagster_evals.metadata import format_number, report_markdown

# Characters of each value on a row's line (the full values: --json).
LINE_CHARS = 60


def add_rows_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", help="the eval report's id (or, on the local backend, its name)")
    parser.add_argument("--scorer", help="only rows this scorer scored; --below then applies to it")
    parser.add_argument("--below", type=_fraction, help="only rows with a score below this (0 to 1)")
    parser.add_argument("--errored", action="store_true", help="only rows whose task or a scorer errored")
    parser.add_argument(
        "--regressed", action="store_true", help="only rows that scored lower than in the report's baseline"
    )
    parser.add_argument("--baseline", help="compare with this report instead of the report's own baseline")
    parser.add_argument("--limit", type=_count, default=None, help="at most this many rows (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, full values")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a score between 0 and 1")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def get_report(platform: EvalPlatform, report_id: str) -> EvalReport:
    """The report, or a `ConfigError` naming the id and the backend."""
    try:
        return platform.get_eval_report(report_id)
    except NotFoundError:
        raise ConfigError(f"no eval report {report_id!r} on {platform.platform}") from None


def regressed(row: ReviewedRow, base: ReviewedRow | None, scorer: str | None = None) -> bool:
    """The row scored lower than the baseline's same row (on `scorer`, else on any scorer)."""
    if base is None:
        return False
    names = [scorer] if scorer else list(row.scores)
    return any(
        n in row.scores and n in base.scores and row.scores[n] < base.scores[n] - ROW_CHANGE_EPSILON
        for n in names
    )


def selected(args: argparse.Namespace, row: ReviewedRow, base: ReviewedRow | None) -> bool:
    """Whether a row passes the command's filters."""
    if args.scorer and args.scorer not in row.scores and not (args.errored and row.errored):
        return False
    if args.errored and not row.errored:
        return False
    if args.below is not None:
        values = [row.scores[args.scorer]] if args.scorer in row.scores else list(row.scores.values())
        if not any(value < args.below for value in values):
            return False
    return not args.regressed or regressed(row, base, args.scorer)


def row_line(row: ReviewedRow, base: ReviewedRow | None, scorers: list[str]) -> str:
    """One row on one line: id, status, each scorer's score (baseline → now), values and reasons."""
    scores = []
    for name in scorers:
        now = format_number(row.scores.get(name))
        if base is not None and name in base.scores:
            scores.append(f"{name}={format_number(base.scores[name])}→{now}")
        else:
            scores.append(f"{name}={now}")
    status = "errored" if row.errored else "scored"
    parts = [row.row_id, status, " ".join(scores)]
    for label, value in (("input", row.input), ("output", row.output), ("expected", row.expected)):
        if value:
            parts.append(f"{label}={as_text(value, LINE_CHARS)}")
    if row.error:
        parts.append(f"error: {as_text(row.error, LINE_CHARS)}")
    parts += [f"{name}: {as_text(text, LINE_CHARS)}" for name, text in row.reasons.items()]
    return "  ".join(parts)


def rows_command(args: argparse.Namespace, platform: EvalPlatform, out: TextIO | None = None) -> int:
    """Print the rows of a report that pass the filters; exit 1 when none does."""
    stream: TextIO = out or sys.stdout
    report = get_report(platform, args.report)
    baseline_id = args.baseline or report.baseline_id
    if args.regressed and baseline_id is None:
        raise ConfigError(f"report {report.id} has no baseline: give --baseline REPORT_ID with --regressed")
    if args.scorer and args.scorer not in report.scores:
        raise ConfigError(
            f"report {report.id} has no scorer {args.scorer!r}; its scorers: {', '.join(report.scores)}"
        )
    baseline = get_report(platform, baseline_id).id if baseline_id else None
    shown = 0
    scorers = list(report.scores)
    for row, base in paired_rows(platform, report.id, baseline, FULL_CHARS):
        if row is None or not selected(args, row, base):
            continue
        if args.json:
            entry = row.as_dict()
            if base is not None:
                entry["baseline"] = base.scores
            stream.write(json.dumps(entry, ensure_ascii=False) + "\n")
        else:
            stream.write(row_line(row, base, scorers) + "\n")
        shown += 1
        if args.limit is not None and shown >= args.limit:
            break
    if not shown:
        print(f"no row of report {report.id} matches", file=sys.stderr)
        return 1
    return 0


def diff_lines(a: EvalReport, b: EvalReport, pairs: Iterator[tuple[ReviewedRow | None, ReviewedRow | None]],
               show_all: bool) -> Iterator[tuple[str, dict[str, object]]]:  # fmt: skip
    """`(text line, JSON entry)` per row that differs between `a` and `b` (every row with `show_all`)."""
    scorers = list(dict.fromkeys([*a.scores, *b.scores]))
    for row_a, row_b in pairs:
        shown = row_a or row_b
        assert shown is not None
        if row_a is None or row_b is None:
            change = "only in " + (a.id if row_b is None else b.id)
        else:
            fell = regressed(row_b, row_a)
            rose = regressed(row_a, row_b)
            change = "regressed" if fell and not rose else "improved" if rose and not fell else "changed"
            if not fell and not rose and row_a.errored == row_b.errored:
                if not show_all:
                    continue
                change = "same"
        scores = {
            n: [row_a.scores.get(n) if row_a else None, row_b.scores.get(n) if row_b else None]
            for n in scorers
        }
        text = "  ".join(
            [
                shown.row_id,
                change,
                *(f"{n}={format_number(x)}→{format_number(y)}" for n, (x, y) in scores.items()),
            ]
            + (
                [f"error in {b.id}: {as_text(row_b.error, LINE_CHARS)}"]
                if row_b is not None and row_b.error
                else []
            )
            + ([f"output={as_text(row_b.output, LINE_CHARS)}"] if row_b is not None and row_b.output else [])
        )
        entry: dict[str, object] = {
            "row_id": shown.row_id, "change": change, "scores": scores,
            "a": row_a.as_dict() if row_a else None, "b": row_b.as_dict() if row_b else None,
        }  # fmt: skip
        yield text, entry


def diff_command(args: argparse.Namespace, platform: EvalPlatform, out: TextIO | None = None) -> int:
    """Compare two reports row by row: the scorers' means, then each row that changed."""
    stream: TextIO = out or sys.stdout
    a = get_report(platform, args.report_a)
    b = get_report(platform, args.report_b)
    counts: dict[str, int] = {}
    if not args.json:
        stream.write(f"{a.id} ({a.name}) → {b.id} ({b.name})\n")
        for name in dict.fromkeys([*a.scores, *b.scores]):
            mean_a = a.scores[name].mean if name in a.scores else None
            mean_b = b.scores[name].mean if name in b.scores else None
            diff = mean_b - mean_a if mean_a is not None and mean_b is not None else None
            stream.write(
                f"  {name}: {format_number(mean_a)} → {format_number(mean_b)} ({format_number(diff, signed=True)})\n"
            )
    for text, entry in diff_lines(a, b, paired_rows(platform, a.id, b.id, FULL_CHARS), args.all):
        change = str(entry["change"])
        counts[change] = counts.get(change, 0) + 1
        stream.write((json.dumps(entry, ensure_ascii=False) if args.json else text) + "\n")
    if not args.json:
        summary = ", ".join(f"{n} {c}" for c, n in sorted(counts.items())) or "no row changed"
        stream.write(f"rows: {summary}\n")
    return 0


def report_command(args: argparse.Namespace, platform: EvalPlatform, out: TextIO | None = None) -> int:
    """Print the reports named by id (any backend)."""
    stream: TextIO = out or sys.stdout
    for report_id in args.report_ids:
        report = get_report(platform, report_id)
        stream.write(f"report {report.id}  created {report.created_at:%Y-%m-%d %H:%M:%S} UTC\n")
        stream.write(report_markdown(report) + "\n")
        if report.url:
            stream.write(f"\n{report.url}\n")
        stream.write("\n")
    return 0


def html_command(args: argparse.Namespace, platform: EvalPlatform, out: TextIO | None = None) -> int:
    """Write a report's static HTML page (every row, beside its baseline)."""
    stream: TextIO = out or sys.stdout
    from dagster_evals.html_report import reports_dir, write_report_file

    report = get_report(platform, args.report)
    path = Path(args.out) if args.out else reports_dir(platform) / f"{report.id}.html"
    written = write_report_file(platform, report, path)
    stream.write(f"wrote {written} rows to {path}\n")
    return 0
