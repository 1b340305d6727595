"""Experiments of the fake Braintrust server and their summaries (a mixin of `BraintrustFake`).

Shapes: `CreateExperiment`, `PatchExperiment`, `Experiment` and `SummarizeExperimentResponse` of
braintrustdata/braintrust-openapi openapi/spec.json (vendored in `spec/`). Summaries are computed from the
stored rows as `summarize` does: each trace's scores rolled up from all its spans (braintrust SDK 0.48.1
`framework.py` logs scores on child `score` spans), compared with `comparison_experiment_id`, else
`base_exp_id`, else the project's previous experiment; rows matched by `origin.id`, else by input.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any

from starlette.requests import Request

from dagster_evals.testing.asgi import Route
from dagster_evals.testing.braintrust.objects import FAKE_USER_ID, ObjectRoutes
from dagster_evals.testing.braintrust.openapi import Body
from dagster_evals.testing.braintrust.store import EventStore, Obj, now_iso


class ExperimentRoutes(ObjectRoutes):
    def _experiment_routes(self) -> list[Route]:
        return [
            Route("POST", "/v1/experiment", self._post_experiment),
            self._list_route("experiment", "experiment_name"),
            *self._object_routes("experiment", "PatchExperiment", empty_patch=True),
            Route("GET", "/v1/experiment/{id}/summarize", self._summarize_experiment),
        ]

    def _post_experiment(self, request: Request, body: Any) -> dict:
        # The SDK sends fields outside the spec here (e.g. `ancestor_commits`); they are ignored.
        req = self._validate("CreateExperiment", body, closed=False)
        with self.lock:
            return dict(self._create_experiment(req).data)

    def _summarize_experiment(self, request: Request, body: Any, experiment_id: str) -> dict:
        query = request.query_params
        with_scores = query.get("summarize_scores", "true") == "true"
        with self.lock:
            experiment = self._get("experiment", experiment_id)
            comparison = query.get("comparison_experiment_id") if with_scores else None
            return self._summary(request, experiment, comparison, with_scores)

    def _create_experiment(self, req: Body) -> Obj:
        project = self._get("project", req.project_id)
        existing = [e for e in self._live("experiment") if e.data["project_id"] == project.id]
        name = req.name or f"experiment-{len(existing) + 1}"
        taken = {e.data["name"] for e in existing}
        if name in taken:
            if not req.ensure_new:
                return next(e for e in existing if e.data["name"] == name)
            name = f"{name}-{uuid.uuid4().hex[:8]}"
        if req.base_exp_id:
            self._get("experiment", req.base_exp_id)
        if req.dataset_id:
            self._get("dataset", req.dataset_id)
        repo_info = dict(req.repo_info) if req.repo_info else None
        data = {
            "id": str(uuid.uuid4()),
            "project_id": project.id,
            "name": name,
            "description": req.description,
            "created": now_iso(),
            "repo_info": repo_info,
            "commit": (repo_info or {}).get("commit"),
            "base_exp_id": req.base_exp_id,
            "deleted_at": None,
            "dataset_id": req.dataset_id,
            "dataset_version": req.dataset_version,
            "parameters_id": req.parameters_id,
            "parameters_version": req.parameters_version,
            "public": bool(req.public),
            "user_id": FAKE_USER_ID,
            "metadata": req.metadata,
            "tags": req.tags,
        }
        obj = self._new("experiment", data)
        obj.store = EventStore("experiment", {"experiment_id": obj.id, "project_id": project.id})
        return obj

    @staticmethod
    def _rolled_up(store: EventStore) -> list[dict[str, Any]]:
        """Root spans, each with the scores of every span of its trace (as `summarize` rolls them up)."""
        events = store.rows()
        roots = {
            e["root_span_id"]: {**e, "scores": dict(e.get("scores") or {})} for e in events if e["is_root"]
        }
        for event in events:
            root = roots.get(event["root_span_id"])
            if root is not None and not event["is_root"]:
                root["scores"].update(event.get("scores") or {})
        return list(roots.values())

    @staticmethod
    def _row_key(event: dict[str, Any]) -> str:
        origin = event.get("origin")
        if isinstance(origin, dict) and origin.get("id"):
            return f"origin:{origin['id']}"
        return "input:" + json.dumps(event.get("input"), sort_keys=True, default=str)

    @classmethod
    def _per_row(cls, rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
        sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            for name, value in (row.get("scores") or {}).items():
                if isinstance(value, int | float):
                    sums[cls._row_key(row)][name].append(float(value))
        return {k: {n: sum(v) / len(v) for n, v in s.items()} for k, s in sums.items()}

    def _summary(
        self, request: Request, experiment: Obj, comparison_id: str | None, with_scores: bool
    ) -> dict[str, Any]:
        out = {**self._summary_head(request, "experiment", experiment), "comparison_experiment_name": None}
        project = self._get("project", experiment.data["project_id"])
        if not with_scores:
            return out
        comparison = None
        if comparison_id:
            comparison = self._get("experiment", comparison_id)
        elif experiment.data.get("base_exp_id"):
            comparison = self.objects["experiment"].get(experiment.data["base_exp_id"])
        else:
            earlier = [
                e
                for e in self._live("experiment")
                if e.data["project_id"] == project.id and e.seq < experiment.seq
            ]
            comparison = max(earlier, key=lambda e: e.seq) if earlier else None
        assert experiment.store is not None
        rows = self._rolled_up(experiment.store)
        base_rows = self._rolled_up(comparison.store) if comparison and comparison.store else []
        if comparison is not None:
            out["comparison_experiment_name"] = comparison.data["name"]
        out["scores"] = self._score_summaries(rows, base_rows if comparison else None)
        out["metrics"] = self._metric_summaries(rows, base_rows if comparison else None)
        return out

    def _score_summaries(self, rows: list[dict], base_rows: list[dict] | None) -> dict[str, Any]:
        def means(items: list[dict]) -> dict[str, float]:
            values: dict[str, list[float]] = defaultdict(list)
            for row in items:
                for name, value in (row.get("scores") or {}).items():
                    if isinstance(value, int | float):
                        values[name].append(float(value))
            return {n: sum(v) / len(v) for n, v in values.items()}

        current, per_row = means(rows), self._per_row(rows)
        base = means(base_rows) if base_rows is not None else {}
        base_per_row = self._per_row(base_rows) if base_rows is not None else {}
        out = {}
        for name, score in sorted(current.items()):
            summary: dict[str, Any] = {"name": name, "score": score, "improvements": 0, "regressions": 0}
            if name in base:
                summary["diff"] = score - base[name]
                for key, scores in per_row.items():
                    before = base_per_row.get(key, {}).get(name)
                    if before is None or name not in scores:
                        continue
                    if scores[name] > before + 1e-9:
                        summary["improvements"] += 1
                    elif scores[name] < before - 1e-9:
                        summary["regressions"] += 1
            out[name] = summary
        return out

    @staticmethod
    def _metric_summaries(rows: list[dict], base_rows: list[dict] | None) -> dict[str, Any]:
        def durations(items: list[dict]) -> list[float]:
            out = []
            for row in items:
                metrics = row.get("metrics") or {}
                if isinstance(metrics.get("start"), int | float) and isinstance(
                    metrics.get("end"), int | float
                ):
                    out.append(metrics["end"] - metrics["start"])
            return out

        current = durations(rows)
        if not current:
            return {}
        summary: dict[str, Any] = {
            "name": "duration",
            "metric": sum(current) / len(current),
            "unit": "s",
            "improvements": 0,
            "regressions": 0,
        }
        base = durations(base_rows) if base_rows else []
        if base:
            summary["diff"] = summary["metric"] - sum(base) / len(base)
        return {"duration": summary}
