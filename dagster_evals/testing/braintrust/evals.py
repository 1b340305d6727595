"""`POST /v1/eval` on the fake Braintrust server: a real run (a mixin of `BraintrustFake`).

Request: `RunEval` of braintrustdata/braintrust-openapi openapi/spec.json (vendored in `spec/`, plus the
SDK-only fields in `openapi.SDK_ADDITIONS`). Data from `dataset_rows`, a dataset (by id or project/name, at a
version) or an experiment; tasks and scorers from any function reference `functions.py` can run. Each row's
trace is written as Braintrust's eval framework logs it (braintrust SDK 0.48.1 `framework.py`): a root
`eval` span, a child `score` span per scorer, scorer failures in the root's `metadata.scorer_errors`.

With `stream: true` it answers `text/event-stream`: `event: start` (summary without scores), `event:
summary` (the final summary) and `event: done` (empty data); an `event: error` carries a message if the run
fails. The real event names are not published (unconfirmed; the fake's choice).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from dagster_evals.testing.asgi import Route
from dagster_evals.testing.braintrust.experiments import ExperimentRoutes
from dagster_evals.testing.braintrust.functions import FunctionRoutes
from dagster_evals.testing.braintrust.openapi import Body
from dagster_evals.testing.braintrust.runtime import _Fn, _jsonable
from dagster_evals.testing.braintrust.store import HttpError, Obj, parse_version


@dataclass
class _EvalRun:
    experiment: Obj
    rows: list[dict[str, Any]]
    task: _Fn
    scorers: list[_Fn]
    trials: int
    base_id: str | None
    timeout_ms: float | None


class EvalRoutes(ExperimentRoutes, FunctionRoutes):
    def _eval_routes(self) -> list[Route]:
        return [Route("POST", "/v1/eval", self._run_eval)]

    async def _run_eval(self, request: Request, body: Any) -> Any:
        req = self._validate("RunEval", body)
        gate = self.hold_evals
        if gate is not None:  # a slow network: the request reaches the server only when released
            await asyncio.to_thread(gate.wait)
        with self.lock:
            run = self._prepare_eval(req)
        if not req.stream:
            await asyncio.to_thread(self._execute_eval, run)
            with self.lock:
                return self._summary(request, run.experiment, run.base_id, True)
        return StreamingResponse(self._stream_eval(request, run), media_type="text/event-stream")

    def _prepare_eval(self, req: Body) -> _EvalRun:
        project = self._get("project", req.project_id)
        rows, dataset_id = self._eval_rows(req)
        task = self._callable_from_ref(req.task)
        scorers = [self._callable_from_ref(s) for s in req.scores]
        base_id = req.base_experiment_id
        if base_id:
            self._get("experiment", base_id)
        elif req.base_experiment_name:
            matches = [
                e
                for e in self._live("experiment")
                if e.data["project_id"] == project.id and e.data["name"] == req.base_experiment_name
            ]
            if not matches:
                raise HttpError(404, f"experiment {req.base_experiment_name!r} not found")
            base_id = matches[0].id
        dataset_version = None
        if "dataset_id" in req.data or "dataset_name" in req.data:
            dataset_version = req.data.dataset_version
        create = Body(
            project_id=project.id,
            name=req.experiment_name or req.name or "eval",
            ensure_new=True,
            metadata=None if self.eval_drops_metadata else req.metadata,
            tags=req.tags,
            repo_info=req.repo_info,
            base_exp_id=base_id,
            dataset_id=dataset_id,
            dataset_version=dataset_version,
            public=bool(req.is_public),
        )
        experiment = self._create_experiment(create)
        trials = int(req.trial_count or 1)
        if trials < 1:
            raise HttpError(400, "trial_count must be at least 1")
        return _EvalRun(experiment, rows, task, scorers, trials, base_id, req.timeout)

    def _eval_rows(self, req: Body) -> tuple[list[dict[str, Any]], str | None]:
        data = req.data
        if "data" in data:
            rows = []
            for i, item in enumerate(data.data):
                if not isinstance(item, dict):
                    raise HttpError(400, f"data.data[{i}] must be an object with input/expected/metadata")
                rows.append(item)
            return rows, None
        if "experiment_name" in data:
            for experiment in self._live("experiment"):
                if (
                    experiment.data["project_id"] == req.project_id
                    and experiment.data["name"] == data.experiment_name
                ):
                    assert experiment.store is not None
                    return experiment.store.rows(), None
            raise HttpError(404, f"experiment {data.experiment_name!r} not found")
        if "dataset_id" in data:
            dataset = self._get("dataset", data.dataset_id)
        else:
            project = self._project_by_name(data.project_name)
            found = [
                d
                for d in self._live("dataset")
                if d.data["project_id"] == project.id and d.data["name"] == data.dataset_name
            ]
            if not found:
                raise HttpError(404, f"dataset {data.dataset_name!r} not found in {data.project_name!r}")
            dataset = found[0]
        assert dataset.store is not None
        version = parse_version(data.dataset_version) if data.dataset_version else None
        rows = dataset.store.rows(version)
        for row in rows:
            row["origin"] = {
                "object_type": "dataset",
                "object_id": dataset.id,
                "id": row["id"],
                "_xact_id": row["_xact_id"],
            }
        return rows, dataset.id

    def _execute_eval(self, run: _EvalRun) -> None:
        """Run the eval row by row; each row's spans are written as they finish (one transaction per row),
        so a reader sees the experiment fill up as on the real platform."""
        started = time.monotonic()
        done = 0
        for row in run.rows:
            for trial in range(run.trials):
                if run.timeout_ms is not None and (time.monotonic() - started) * 1000 > run.timeout_ms:
                    return
                events = self._eval_one(run, row, trial)
                with self.lock:
                    assert run.experiment.store is not None
                    run.experiment.store.apply(events, self._next_xact())
                    self.events_written["experiment"] += len(events)
                done += 1
                if self.eval_row_hook is not None:
                    self.eval_row_hook(done)

    @staticmethod
    def _eval_one(run: _EvalRun, row: dict[str, Any], trial: int) -> list[dict[str, Any]]:
        """One row's trace as Braintrust's eval framework logs it: a root `eval` span, one child `score`
        span per scorer carrying its score, and failed scorers in the root's `metadata.scorer_errors`
        (braintrust SDK 0.48.1 `braintrust/framework.py`)."""
        args = {
            "input": row.get("input"),
            "expected": row.get("expected"),
            "metadata": row.get("metadata") or {},
        }
        start = time.time()
        root_id = str(uuid.uuid4())
        metadata = {**args["metadata"], "trial": trial} if run.trials > 1 else dict(args["metadata"])
        event: dict[str, Any] = {
            "id": root_id,
            "span_id": root_id,
            "root_span_id": root_id,
            "input": args["input"],
            "expected": args["expected"],
            "metadata": metadata,
            "tags": row.get("tags"),
            "span_attributes": {"name": "eval", "type": "eval"},
        }
        if row.get("origin"):
            event["origin"] = row["origin"]
        try:
            output = _jsonable(run.task.call(output=None, **args))
        except Exception as exc:
            event.update(error=f"{type(exc).__name__}: {exc}", metrics={"start": start, "end": time.time()})
            return [event]
        children: list[dict[str, Any]] = []
        errors: dict[str, str] = {}
        for scorer in run.scorers:
            span_id = str(uuid.uuid4())
            try:
                name, value = scorer.score(output=output, **args)
            except Exception as exc:
                errors[scorer.name] = f"{type(exc).__name__}: {exc}"
                continue
            children.append(
                {
                    "id": span_id,
                    "span_id": span_id,
                    "root_span_id": root_id,
                    "span_parents": [root_id],
                    "span_attributes": {"name": name, "type": "score", "purpose": "scorer"},
                    "scores": {name: value},
                    "metrics": {"start": time.time(), "end": time.time()},
                }
            )
        if errors:
            metadata["scorer_errors"] = errors
        event.update(output=output, metrics={"start": start, "end": time.time()})
        return [event, *children]

    async def _stream_eval(self, request: Request, run: _EvalRun) -> AsyncIterator[bytes]:
        with self.lock:
            start = self._summary(request, run.experiment, None, False)
        yield f"event: start\ndata: {json.dumps(start)}\n\n".encode()
        try:
            await asyncio.to_thread(self._execute_eval, run)
            with self.lock:
                summary = self._summary(request, run.experiment, run.base_id, True)
        except Exception as exc:
            yield f"event: error\ndata: {json.dumps(str(exc))}\n\n".encode()
        else:
            yield f"event: summary\ndata: {json.dumps(summary)}\n\n".encode()
        yield b"event: done\ndata: \n\n"
