"""Eval-report, evaluator and prompt routes of the Keywords AI fake (a mixin of `KeywordsAIFake`).

Eval runs come in two published shapes, and the fake serves either (`eval_report_shape`):
- docs — Keywords-AI/docs@71815dd53e0a88e37d8fe3308b8f9635ebf6b850:apis/evaluate/datasets/
  eval-reports-create.mdx and eval-reports-list.mdx: `{id, dataset_id, status, evaluator_slugs, created_at}`;
- spec — respanai/respan-python-api src/respan/datasets/types/run_eval_on_dataset_response.py (+
  `_created_tasks_item.py`) and list_dataset_eval_runs_response_results_item.py: one task per evaluator
  `{task_id, name, dataset_id, evaluator_slug, status, started_at, completed_at, error_message,
  evaluated_logs_count, score}`.

The sources also disagree on how `eval-reports/create` names the evaluators, and the fake accepts either or
both (`eval_report_evaluators`): `"slugs"` — `{"evaluator_slugs": [...]}` (the docs page and the datasets
workflow: `payload = {"evaluator_slugs": ["char_count_eval"]}`); `"ids"` — `{"evaluator_ids": [...]}`
(the generated client's `run_eval_on_dataset`); a request in the other form is refused with 400. A new run
may also be listed only some polls after its create (`eval_report_list_lag`: list requests that do not show
it yet), as an eventually consistent listing would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request

from dagster_evals.testing.keywordsai.evaluators import FakeEvaluator


class EvalRoutes:
    datasets: dict[str, dict[str, Any]]
    logs: dict[str, dict[str, dict[str, Any]]]
    reports: dict[str, list[dict[str, Any]]]
    evaluators: dict[str, FakeEvaluator]
    prompts: dict[str, dict[str, Any]]
    prompt_versions: dict[str, list[dict[str, Any]]]
    eval_statuses: list[str]
    eval_report_shape: str
    eval_report_evaluators: str
    eval_report_list_lag: int
    hold_evals: bool
    fail_next_evals: int
    lock: Any
    _now: Any
    _page: Any
    _dataset: Any
    error: Any

    # -- eval reports --------------------------------------------------------------------------------------
    def _create_report(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        by_id = {e.id: e for e in self.evaluators.values()}
        slugs = body.get("evaluator_slugs")
        ids = body.get("evaluator_ids")
        accepted = self.eval_report_evaluators
        if accepted == "slugs" and slugs is None:
            raise self.error(400, "evaluator_slugs: This field is required.")
        if accepted == "ids" and ids is None:
            raise self.error(400, "evaluator_ids: This field is required.")
        if (slugs is None) == (ids is None):
            raise self.error(400, "evaluator_ids: pass evaluator_ids (or evaluator_slugs), not both")
        wanted = list(slugs if slugs is not None else ids)
        if not wanted or not all(isinstance(s, str) for s in wanted):
            raise self.error(400, "a non-empty list of evaluators is required")
        table = self.evaluators if slugs is not None else by_id
        unknown = [s for s in wanted if s not in table]
        if unknown:
            raise self.error(400, f"evaluator(s) not found: {', '.join(unknown)}")
        now = self._now()
        report = {
            "id": uuid.uuid4().hex,
            "dataset_id": dataset_id,
            "evaluator_slugs": [table[s].slug for s in wanted],
            "status": self.eval_statuses[0],
            "created_at": now,
            "tasks": [
                {"task_id": uuid.uuid4().hex, "evaluator_slug": table[s].slug, "name": table[s].name}
                for s in wanted
            ],
            "step": 0,
            "unlisted_polls": self.eval_report_list_lag,
            "error": None,
            "summary": {},
        }
        self.reports.setdefault(dataset_id, []).insert(0, report)
        if self.eval_report_shape == "docs":
            return 200, self._render_docs(report)
        return 200, {
            "created_tasks": self._render_tasks(report),
            "errors": {},
            "experiment_updated": False,
            "experiment_evaluator_ids": [],
        }

    def _render_docs(self, report: Mapping[str, Any]) -> dict[str, Any]:
        keys = ("id", "dataset_id", "status", "evaluator_slugs", "created_at")
        return {k: report[k] for k in keys}

    def _render_tasks(self, report: Mapping[str, Any]) -> list[dict[str, Any]]:
        final = report["step"] >= len(self.eval_statuses) - 1
        tasks = []
        for task in report["tasks"]:
            summary = report["summary"].get(task["evaluator_slug"], {})
            tasks.append(
                {
                    **task,
                    "dataset_id": report["dataset_id"],
                    "status": report["status"],
                    "started_at": report["created_at"],
                    "completed_at": self._now() if final else None,
                    "error_message": report["error"],
                    "evaluated_logs_count": summary.get("count", 0),
                    "score": summary.get("mean"),
                }
            )
        return tasks

    def _advance(self, report: dict[str, Any]) -> None:
        last = len(self.eval_statuses) - 1
        if report["step"] >= last or (self.hold_evals and report["step"] >= last - 1):
            return
        report["step"] += 1
        report["status"] = self.eval_statuses[report["step"]]
        if report["step"] < last:
            return
        if self.fail_next_evals > 0:
            self.fail_next_evals -= 1
            report["status"] = "failed"
            report["error"] = "Evaluation failed: evaluator raised an error"
            return
        for slug in report["evaluator_slugs"]:
            report["summary"][slug] = self._score_logs(report["dataset_id"], self.evaluators[slug])

    def _score_logs(self, dataset_id: str, evaluator: FakeEvaluator) -> dict[str, Any]:
        values: list[float] = []
        for log in self.logs.get(dataset_id, {}).values():
            value = evaluator.fn(log["input"], log["output"], log["expected_output"], log["metadata"])
            if value is None:
                continue
            # Scores keyed by evaluator id; fields from Keywords-AI/docs@71815dd:
            # apis/observe/logs/logs-list-endpoint.mdx ("Evaluation Scores") and the scores API.
            log["scores"][evaluator.id] = {
                "evaluator_id": evaluator.id,
                "evaluator_slug": evaluator.slug,
                "evaluator_name": evaluator.name,
                "score_value": float(value),
                "numerical_value": None if isinstance(value, bool) else float(value),
                "boolean_value": value if isinstance(value, bool) else None,
                "is_passed": bool(value),
            }
            values.append(float(value))
        return {"count": len(values), "mean": sum(values) / len(values) if values else None}

    def _list_reports(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        reports = []
        for report in self.reports.get(dataset_id, []):
            if report.get("unlisted_polls", 0) > 0:  # not listed yet
                report["unlisted_polls"] -= 1
                continue
            self._advance(report)
            reports.append(report)
        if self.eval_report_shape == "docs":
            items = [self._render_docs(r) for r in reports]
        else:
            items = [task for r in reports for task in self._render_tasks(r)]
        return 200, self._page(request, items, default_size=10)

    # -- evaluators and prompts ----------------------------------------------------------------------------
    def _list_evaluators(self, request: Request, body: Any) -> tuple[int, Any]:
        search = (request.query_params.get("search") or "").lower()
        kind = request.query_params.get("type")
        if kind is not None and kind not in ("llm", "human", "code"):
            raise self.error(400, f"type: {kind!r} is not one of llm, human, code")
        items = [
            e.as_json()
            for e in self.evaluators.values()
            if (search in e.slug.lower() or search in e.name.lower()) and (kind is None or e.type == kind)
        ]
        return 200, self._page(request, items, default_size=20)

    def add_prompt(
        self, name: str, versions: Iterable[Mapping[str, Any]] = (), slug: str | None = None
    ) -> str:
        """Create a prompt with these versions (message lists etc.); returns its id."""
        with self.lock:
            prompt_id = uuid.uuid4().hex
            self.prompts[prompt_id] = {
                "id": prompt_id,
                "name": name,
                "description": "",
                "prompt_slug": slug or name.lower().replace(" ", "-"),
                "tags": [],
                "created_at": self._now(),
                "updated_at": self._now(),
            }
            self.prompt_versions[prompt_id] = []
            for content in versions:
                self.add_prompt_version(prompt_id, content)
            return prompt_id

    def add_prompt_version(self, prompt_id: str, content: Mapping[str, Any]) -> int:
        with self.lock:
            versions = self.prompt_versions[prompt_id]
            number = len(versions) + 1
            # src/respan/prompts/types/list_prompt_versions_response_results_item.py
            versions.append(
                {
                    "id": uuid.uuid4().hex,
                    "prompt_version_id": uuid.uuid4().hex,
                    "version": number,
                    "description": "",
                    "created_at": self._now(),
                    "updated_at": self._now(),
                    "messages": content.get("messages", []),
                    "model": content.get("model", "gpt-4o-mini"),
                    "temperature": content.get("temperature", 1.0),
                    "variables": content.get("variables", {}),
                    "readonly": False,
                    "is_deployed": False,
                }
            )
            self.prompts[prompt_id]["updated_at"] = self._now()
            return number

    def _list_prompts(self, request: Request, body: Any) -> tuple[int, Any]:
        # src/respan/prompts/types/list_prompts_response_results_item.py: `id`, `current_version.version`
        items = []
        for prompt_id, prompt in self.prompts.items():
            versions = self.prompt_versions[prompt_id]
            current = versions[-1] if versions else None
            summary = (
                {
                    "version": current["version"],
                    "model": current["model"],
                    "updated_at": current["updated_at"],
                }
                if current
                else None
            )
            items.append({**prompt, "current_version": summary, "live_version": summary})
        return 200, self._page(request, items)

    def _list_prompt_versions(self, request: Request, body: Any, prompt_id: str) -> tuple[int, Any]:
        if prompt_id not in self.prompts:
            raise self.error(404, "Prompt not found.")
        versions = sorted(self.prompt_versions[prompt_id], key=lambda v: v["version"], reverse=True)
        return 200, self._page(request, versions)
