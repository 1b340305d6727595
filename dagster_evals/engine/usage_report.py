"""What an eval run's model calls added up to: the report's `usage` and its materialization metadata.

`UsageTotals` sums the `RowResult.usage` of every row of a run (see `dagster_evals.engine.usage`);
`usage_metadata` flattens a report's usage into numeric Dagster metadata, plotted over time.
"""

from __future__ import annotations

from typing import Any

from dagster_evals.engine.stats import percentile
from dagster_evals.engine.usage import TASK_SCOPE, ScopeUsage


class UsageTotals:
    """Sums the `RowResult.usage` of a run into the report's `usage` (see `report`)."""

    def __init__(self) -> None:
        self.scopes: dict[str, ScopeUsage] = {}
        self.rows_not_run = 0
        self.budget_message: str | None = None

    def add(self, row_usage: dict[str, Any], error: str | None = None) -> None:
        if row_usage.get("not_run"):
            self.rows_not_run += 1
            self.budget_message = error
            return
        for name, values in row_usage.get("scopes", {}).items():
            self.scopes.setdefault(name, ScopeUsage()).merge(values)

    def report(self) -> dict[str, Any]:
        """`{"total": {...}, "scopes": {name: {...}}, "judge_latency_p50_ms", "judge_latency_p95_ms",
        "rows_not_run", "budget_message"}`; empty when the run made no model call and ran every row."""
        if not self.scopes and not self.rows_not_run:
            return {}
        total = ScopeUsage()
        judge_latencies: list[float] = []
        for name, scope_usage in self.scopes.items():
            total.merge(scope_usage.as_dict())
            if name != TASK_SCOPE:
                judge_latencies.extend(scope_usage.latencies_s)

        def plain(s: ScopeUsage) -> dict[str, Any]:
            values = s.as_dict()
            values.pop("latencies_s")
            values["cost_usd"] = round(values["cost_usd"], 8)
            return values

        result: dict[str, Any] = {
            "total": plain(total),
            "scopes": {name: plain(s) for name, s in sorted(self.scopes.items())},
            "rows_not_run": self.rows_not_run,
        }
        p50, p95 = percentile(judge_latencies, 0.5), percentile(judge_latencies, 0.95)
        if p50 is not None and p95 is not None:
            result["judge_latency_p50_ms"] = round(p50 * 1000, 3)
            result["judge_latency_p95_ms"] = round(p95 * 1000, 3)
        if self.budget_message:
            result["budget_message"] = self.budget_message
        return result


def usage_metadata(report_usage: dict[str, Any]) -> dict[str, Any]:
    """Flat materialization metadata (numbers, plotted over time) of a report's `usage`.

    Keys: `tokens/prompt`, `tokens/completion`, `tokens/total`, `cost_usd`, `model_calls`,
    `model_calls_unpriced` (calls without a known price: not in `cost_usd`), `judge/cache_hits`, `judge/latency_p50_ms`, `judge/latency_p95_ms`, `rows_not_run`, and per scope
    (`task` or a scorer name) `tokens/<scope>/<prompt|completion|total>`, `cost_usd/<scope>`,
    `model_calls/<scope>`, `judge/cache_hits/<scope>`; `budget_stop` (text) when the budget stopped the run.
    """
    if not report_usage:
        return {}
    total = report_usage.get("total", {})
    metadata: dict[str, Any] = {
        "tokens/prompt": int(total.get("prompt_tokens", 0)),
        "tokens/completion": int(total.get("completion_tokens", 0)),
        "tokens/total": int(total.get("total_tokens", 0)),
        "cost_usd": float(total.get("cost_usd", 0.0)),
        "model_calls": int(total.get("calls", 0)),
        "model_calls_unpriced": int(total.get("unpriced_calls", 0)),
        "judge/cache_hits": int(total.get("cache_hits", 0)),
        "rows_not_run": int(report_usage.get("rows_not_run", 0)),
    }
    for key in ("judge_latency_p50_ms", "judge_latency_p95_ms"):
        if key in report_usage:
            metadata[f"judge/{key.removeprefix('judge_')}"] = float(report_usage[key])
    for name, values in report_usage.get("scopes", {}).items():
        metadata[f"tokens/{name}/prompt"] = int(values.get("prompt_tokens", 0))
        metadata[f"tokens/{name}/completion"] = int(values.get("completion_tokens", 0))
        metadata[f"tokens/{name}/total"] = int(values.get("total_tokens", 0))
        metadata[f"cost_usd/{name}"] = float(values.get("cost_usd", 0.0))
        metadata[f"model_calls/{name}"] = int(values.get("calls", 0))
        if name != TASK_SCOPE:
            metadata[f"judge/cache_hits/{name}"] = int(values.get("cache_hits", 0))
    if report_usage.get("budget_message"):
        metadata["budget_stop"] = str(report_usage["budget_message"])
    return metadata
