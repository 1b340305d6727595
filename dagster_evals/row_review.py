"""The rows of a report worth a look (errored rows, then the biggest drops against the baseline), found by
streaming the report's and the baseline's per-row results: memory is bounded by the table's length, not
by the number of rows.

Per-row means go through a `ResultSpill` (a temporary SQLite file) where the drops are ranked; of the
errored rows only the first `limit` by row id are kept (the table lists errored rows in row-id order).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from dagster_evals.backends.base import EvalPlatform
from dagster_evals.models import EvalReport, RowResult
from dagster_evals.report_spill import ResultSpill


@dataclass
class RowsToReview:
    """What the `rows_to_review` table shows: the first errored rows, the biggest drops, and counts.

    `row_scores` and `baseline_scores` hold only the (row, scorer) pairs of the `limit` biggest drops;
    `regressed` counts every (row, scorer) whose mean fell below the baseline's.
    """

    row_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    baseline_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    regressed: int = 0


class FirstErrors:
    """The errors of the `limit` smallest row ids seen (a row's last error wins), in bounded memory.

    Example:
        >>> first = FirstErrors(2)
        >>> for row_id in ("c", "a", "d", "b", "a"):
        ...     first.add(row_id, f"error of {row_id}")
        >>> first.errors()
        {'a': 'error of a', 'b': 'error of b'}
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: list[str] = []
        self._errors: dict[str, str] = {}

    def add(self, row_id: str, error: str) -> None:
        if row_id in self._errors:
            self._errors[row_id] = error
            return
        if self.limit <= 0 or (len(self._ids) >= self.limit and row_id > self._ids[-1]):
            return
        bisect.insort(self._ids, row_id)
        self._errors[row_id] = error
        if len(self._ids) > self.limit:
            del self._errors[self._ids.pop()]

    def errors(self) -> dict[str, str]:
        return {row_id: self._errors[row_id] for row_id in self._ids}


def error_text(row: RowResult) -> str:
    """A row's task error, else its scorer errors as `name: text; …`."""
    return row.error or "; ".join(f"{name}: {text}" for name, text in row.scorer_errors.items())


def rank_drops(
    current: Iterable[tuple[str, dict[str, float]]],
    baseline: Iterable[tuple[str, dict[str, float]]],
    limit: int,
) -> RowsToReview:
    """The `limit` biggest per-row drops of `current` against `baseline` (each a stream of per-result
    `(row id, scores)`, averaged per row), and how many (row, scorer) pairs dropped at all.

    Example:
        >>> review = rank_drops([("q1", {"em": 0.0}), ("q2", {"em": 1.0})], [("q1", {"em": 1.0})], 10)
        >>> review.regressed, review.row_scores, review.baseline_scores
        (1, {'q1': {'em': 0.0}}, {'q1': {'em': 1.0}})
    """
    spill = ResultSpill()
    try:
        for row_id, scores in baseline:
            spill.add_scores("baseline", row_id, scores)
        for row_id, scores in current:
            spill.add_scores("current", row_id, scores)
        regressed, top = spill.drops(limit)
    finally:
        spill.close()
    review = RowsToReview(regressed=regressed)
    for row_id, scorer, value, before in top:
        review.row_scores.setdefault(row_id, {})[scorer] = value
        review.baseline_scores.setdefault(row_id, {})[scorer] = before
    return review


def rows_to_review(platform: EvalPlatform, report: EvalReport, limit: int) -> RowsToReview:
    """The errored rows and biggest drops of `report` on `platform` (see the module docstring)."""
    review = RowsToReview()
    if report.baseline_id:
        review = rank_drops(
            platform.iter_report_row_scores(report.id),
            platform.iter_report_row_scores(report.baseline_id),
            limit,
        )
    iter_report_rows = getattr(platform, "iter_report_rows", None)
    if report.rows_errored and iter_report_rows is not None:
        first = FirstErrors(limit)
        for row in iter_report_rows(report.id):
            if not row.ok:
                first.add(row.row_id, error_text(row))
        review.errors = first.errors()
    return review
