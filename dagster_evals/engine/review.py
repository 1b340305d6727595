"""The rows of an eval report a reviewer looks at first, found by streaming the report's results.

Two lists, each with the row's input, output and expected value, every scorer's score and the scorers'
reasons (an LLM judge's rationale):

- **rows to review**: rows that errored or scored below 1 on some scorer, errored rows first, then the
  lowest mean score (ties by row id);
- **regressed rows** (with a baseline): rows whose score on some scorer fell below the baseline's for the
  same row, the biggest total drop first, with the baseline's score beside each current one.

Memory is bounded by the number of rows shown, not by the report's size: per-row means go through a
`ResultSpill` (a temporary SQLite file) where regressions are ranked, and the rows to review are kept in a
list cut back to `limit` as the results stream past.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dagster_evals.engine.models import EvalReport, RowResult
from dagster_evals.engine.platform import EvalPlatform
from dagster_evals.engine.report_spill import ResultSpill
from dagster_evals.engine.row_index import SpillFile
from dagster_evals.engine.summary import ROW_CHANGE_EPSILON

# Rows listed in each table of a report's metadata.
REVIEW_ROWS = 10
# Characters of an input, output, expected value or reason kept per row in the metadata tables.
SHORT_CHARS = 120
# An error keeps more: the fix is usually at the end of the message.
ERROR_CHARS = 400
# Characters kept per value for the CLI's JSON and the HTML report (a row is never unbounded).
FULL_CHARS = 4_000


def as_text(value: Any, chars: int) -> str:
    """A value as one line of at most `chars` characters (`…` marks a cut; JSON for non-strings).

    Example:
        >>> as_text({"q": "2+2"}, 80), as_text("a" * 10, 5), as_text(None, 5)
        ('{"q": "2+2"}', 'aaaa…', '')
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: max(chars - 1, 0)] + "…"


@dataclass
class ReviewedRow:
    """One dataset row of a report: its values (as text), scores averaged over trials, reasons and error.

    `baseline` holds the baseline's mean of each scorer for the same row (only for regressed rows, or
    when a diff asked for it).
    """

    row_id: str
    input: str = ""
    output: str = ""
    expected: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    trials: int = 0
    baseline: dict[str, float] = field(default_factory=dict)

    @property
    def errored(self) -> bool:
        return self.error is not None

    @property
    def mean_score(self) -> float | None:
        """The mean of the row's scores over its scorers, None when nothing scored it."""
        return sum(self.scores.values()) / len(self.scores) if self.scores else None

    @property
    def needs_review(self) -> bool:
        """The row errored or scored below 1 on some scorer."""
        return self.errored or any(value < 1.0 - ROW_CHANGE_EPSILON for value in self.scores.values())

    def rank(self) -> tuple[int, float, str]:
        """Sort key of the rows to review: errored first, then the lowest mean score, then the row id."""
        mean = self.mean_score
        return (0 if self.errored else 1, mean if mean is not None else 1.0, self.row_id)

    def as_dict(self) -> dict[str, Any]:
        """The row as plain JSON-ready values (the CLI's `--json` lines and the HTML report's data)."""
        entry: dict[str, Any] = {
            "row_id": self.row_id,
            "status": "errored" if self.errored else "scored",
            "input": self.input,
            "output": self.output,
            "expected": self.expected,
            "scores": self.scores,
            "reasons": self.reasons,
            "error": self.error,
            "trials": self.trials,
        }
        if self.baseline:
            entry["baseline"] = self.baseline
        return entry


def error_text(result: RowResult) -> str | None:
    """A result's task error, else its scorer errors as `name: text; …`, else None."""
    if result.error:
        return result.error
    if result.scorer_errors:
        return "; ".join(f"{name}: {text}" for name, text in result.scorer_errors.items())
    return None


def collapse_rows(results: Iterable[RowResult], chars: int = SHORT_CHARS) -> Iterator[ReviewedRow]:
    """One `ReviewedRow` per dataset row from a stream of results in which a row's trials come together
    (as `iter_report_rows` gives them): scores averaged over trials, the first trial's values, the first
    error and the first reason each scorer gave.

    Example:
        >>> rows = list(collapse_rows([RowResult(row_id="q1", trial=0, scores={"em": 1.0}),
        ...                            RowResult(row_id="q1", trial=1, scores={"em": 0.0})]))
        >>> [(r.row_id, r.scores, r.trials) for r in rows]
        [('q1', {'em': 0.5}, 2)]
    """
    current: ReviewedRow | None = None
    sums: dict[str, list[float]] = {}

    def finish(row: ReviewedRow) -> ReviewedRow:
        row.scores = {name: sum(values) / len(values) for name, values in sums.items()}
        return row

    for result in results:
        if current is None or result.row_id != current.row_id:
            if current is not None:
                yield finish(current)
            current = ReviewedRow(
                row_id=result.row_id,
                input=as_text(result.input, chars),
                output=as_text(result.output, chars),
                expected=as_text(result.expected, chars),
            )
            sums = {}
        current.trials += 1
        error = error_text(result)
        if error is not None and current.error is None:
            current.error = as_text(error, max(chars, ERROR_CHARS))
        for name, value in result.scores.items():
            if value is not None:
                sums.setdefault(name, []).append(float(value))
        for name, reason in result.reasons.items():
            current.reasons.setdefault(name, as_text(reason, chars))
    if current is not None:
        yield finish(current)


def report_rows(platform: EvalPlatform, report_id: str) -> Iterator[RowResult]:
    """Every result of a report, a row's trials together: with input/output/expected where the platform
    keeps them (`iter_report_rows`), else each scored row's scores averaged over its trials (grouped in a
    `ResultSpill`, since a platform may return a row's trials apart)."""
    iter_report_rows = getattr(platform, "iter_report_rows", None)
    if iter_report_rows is not None:
        yield from iter_report_rows(report_id)
        return
    spill = ResultSpill()
    try:
        for row_id, scores in platform.iter_report_row_scores(report_id):
            spill.add_scores("current", row_id, scores)
        for row_id, means in spill.row_means("current"):
            yield RowResult(row_id=row_id, scores=dict(means))
    finally:
        spill.close()


@dataclass
class Review:
    """What the report's review tables show, and the counts behind their "N of M" headings."""

    rows_total: int = 0
    to_review: list[ReviewedRow] = field(default_factory=list)
    rows_to_review: int = 0
    compared: bool = False
    regressed: list[ReviewedRow] = field(default_factory=list)
    rows_regressed: int = 0
    pairs_regressed: int = 0
    has_outputs: bool = False


class WorstRows:
    """The `limit` rows that rank first by `ReviewedRow.rank`, kept in bounded memory (at most 2×limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rows: list[ReviewedRow] = []
        self.seen = 0

    def add(self, row: ReviewedRow) -> None:
        self.seen += 1
        self.rows.append(row)
        if len(self.rows) >= 2 * max(self.limit, 1):
            self._cut()

    def _cut(self) -> None:
        self.rows.sort(key=ReviewedRow.rank)
        del self.rows[self.limit :]

    def worst(self) -> list[ReviewedRow]:
        self._cut()
        return self.rows


def review_report(platform: EvalPlatform, report: EvalReport, limit: int = REVIEW_ROWS) -> Review:
    """The rows to review and the regressed rows of `report` on `platform` (see the module docstring)."""
    review = Review(compared=report.baseline_id is not None)
    wanted: dict[str, dict[str, tuple[float, float]]] = {}
    if report.baseline_id is not None:
        spill = ResultSpill()
        try:
            for row_id, scores in platform.iter_report_row_scores(report.baseline_id):
                spill.add_scores("baseline", row_id, scores)
            for row_id, scores in platform.iter_report_row_scores(report.id):
                spill.add_scores("current", row_id, scores)
            review.rows_regressed, review.pairs_regressed, top = spill.regressed_rows(
                ROW_CHANGE_EPSILON, limit
            )
        finally:
            spill.close()
        wanted = dict(top)
    worst = WorstRows(limit)
    found: dict[str, ReviewedRow] = {}
    for row in collapse_rows(report_rows(platform, report.id)):
        review.rows_total += 1
        review.has_outputs = review.has_outputs or bool(row.output or row.input)
        if row.needs_review:
            worst.add(row)
        if row.row_id in wanted:
            found[row.row_id] = row
    review.to_review = worst.worst()
    review.rows_to_review = worst.seen
    for row_id, pairs in wanted.items():
        row = found.get(row_id) or ReviewedRow(row_id=row_id)
        review.regressed.append(
            dataclasses.replace(
                row,
                baseline={scorer: before for scorer, (before, _) in pairs.items()},
                scores={**row.scores, **{scorer: now for scorer, (_, now) in pairs.items()}},
            )
        )
    return review


def paired_rows(
    platform: EvalPlatform, report_id: str, other_id: str | None, chars: int = FULL_CHARS
) -> Iterator[tuple[ReviewedRow | None, ReviewedRow | None]]:
    """`(row of report, same row of other)` for every row of either report (None where a report lacks
    it), the report's rows first in its order, then the rows only the other has.

    The other report's rows wait in a temporary SQLite file (`row_index.SpillFile`), so memory is one row,
    whatever the reports' sizes.
    """
    if other_id is None:
        for row in collapse_rows(report_rows(platform, report_id), chars):
            yield row, None
        return
    with SpillFile() as spill:
        spill.conn.execute("CREATE TABLE other (row_id TEXT PRIMARY KEY, row TEXT NOT NULL, seen INTEGER)")
        batch: list[tuple[str, str]] = []
        for row in collapse_rows(report_rows(platform, other_id), chars):
            batch.append((row.row_id, json.dumps(row.__dict__)))
            if len(batch) >= 1_000:
                spill.conn.executemany("INSERT OR REPLACE INTO other VALUES (?, ?, 0)", batch)
                batch = []
        spill.conn.executemany("INSERT OR REPLACE INTO other VALUES (?, ?, 0)", batch)
        for row in collapse_rows(report_rows(platform, report_id), chars):
            found = spill.conn.execute("SELECT row FROM other WHERE row_id = ?", (row.row_id,)).fetchone()
            if found is not None:
                spill.conn.execute("UPDATE other SET seen = 1 WHERE row_id = ?", (row.row_id,))
            yield row, ReviewedRow(**json.loads(found[0])) if found is not None else None
        for (text,) in spill.fetch("SELECT row FROM other WHERE seen = 0 ORDER BY row_id"):
            yield None, ReviewedRow(**json.loads(str(text)))
