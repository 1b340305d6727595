"""The web-app links of the fake Braintrust server (a mixin of `BraintrustFake`).

The summaries' `project_url`, `experiment_url` and `dataset_url` point at `/app/<org>/p/<project>[/
experiments|datasets/<name>]` (the real app's link shape, braintrustdata/braintrust-openapi
openapi/spec.json `SummarizeExperimentResponse`). The real app is a web UI; the fake answers those links
with a minimal page of its own, so a link in Dagster's UI leads somewhere:

- a project: its experiments and datasets, each linked;
- an experiment: the summary (scores, diffs against the comparison experiment, as `summarize` computes
  them) and its rows (input, output, expected, scores, error);
- a dataset: its rows at the newest version.

A browser (`Accept: text/html`) gets HTML; anything else gets the same content as JSON. These pages need
no API key (a link opened from the UI carries none) and are not part of Braintrust's API.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from dagster_evals.testing.asgi import Route
from dagster_evals.testing.braintrust.experiments import ExperimentRoutes
from dagster_evals.testing.braintrust.store import HttpError, Obj

# Longest cell shown on a page; the JSON form keeps whole values.
CELL_MAX_CHARS = 300
ROW_FIELDS = ("id", "input", "output", "expected", "scores", "error")


class AppPageRoutes(ExperimentRoutes):
    def _app_page_routes(self) -> list[Route]:
        base = "/app/{org}/p/{project}"
        return [
            Route("GET", base, self._project_page, public=True),
            Route("GET", base + "/experiments/{name}", self._experiment_page, public=True),
            Route("GET", base + "/datasets/{name}", self._dataset_page, public=True),
        ]

    def _app_project(self, org: str, project_name: str) -> Obj:
        if org != self.org_name:
            raise HttpError(404, f"organization {org!r} not found")
        return self._project_by_name(project_name)

    def _named(self, kind: str, project: Obj, name: str) -> Obj:
        for obj in self._live(kind):
            if obj.data["project_id"] == project.id and obj.data["name"] == name:
                return obj
        raise HttpError(404, f"{kind} {name!r} not found in project {project.data['name']!r}")

    def _project_page(self, request: Request, body: Any, org: str, project_name: str) -> Response:
        with self.lock:
            project = self._app_project(org, project_name)
            url = self._project_url(request, project)
            content = {
                "project": project.data["name"],
                "experiments": self._links(url, "experiments", self._in_project("experiment", project)),
                "datasets": self._links(url, "datasets", self._in_project("dataset", project)),
            }
        return self._page(request, f"Project {project.data['name']}", content)

    def _experiment_page(
        self, request: Request, body: Any, org: str, project_name: str, name: str
    ) -> Response:
        with self.lock:
            project = self._app_project(org, project_name)
            experiment = self._named("experiment", project, name)
            summary = self._summary(request, experiment, None, True)
            assert experiment.store is not None
            rows = [self._row(event) for event in self._rolled_up(experiment.store)]
        content = {
            "experiment": experiment.data["name"],
            "id": experiment.id,
            "summary": summary,
            "rows": rows,
        }
        return self._page(request, f"Experiment {experiment.data['name']}", content)

    def _dataset_page(self, request: Request, body: Any, org: str, project_name: str, name: str) -> Response:
        with self.lock:
            project = self._app_project(org, project_name)
            dataset = self._named("dataset", project, name)
            assert dataset.store is not None
            rows = [self._row(event) for event in dataset.store.rows()]
        content = {"dataset": dataset.data["name"], "id": dataset.id, "rows": rows}
        return self._page(request, f"Dataset {dataset.data['name']}", content)

    def _in_project(self, kind: str, project: Obj) -> list[Obj]:
        return sorted(
            (o for o in self._live(kind) if o.data["project_id"] == project.id), key=lambda o: o.seq
        )

    @staticmethod
    def _links(project_url: str, section: str, objects: list[Obj]) -> list[dict[str, str]]:
        return [
            {"name": o.data["name"], "url": f"{project_url}/{section}/{quote(o.data['name'])}"}
            for o in objects
        ]

    @staticmethod
    def _row(event: dict[str, Any]) -> dict[str, Any]:
        return {name: event.get(name) for name in ROW_FIELDS if event.get(name) is not None}

    @staticmethod
    def _page(request: Request, title: str, content: dict[str, Any]) -> Response:
        if "text/html" not in request.headers.get("accept", ""):
            return JSONResponse(content)
        return HTMLResponse(render_page(title, content))


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > CELL_MAX_CHARS:
        text = text[:CELL_MAX_CHARS] + "…"
    return html.escape(text)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_page(title: str, content: dict[str, Any]) -> str:
    """A plain HTML page of a project, experiment or dataset (the fake's own, not Braintrust's app)."""
    parts = [f"<h1>{html.escape(title)}</h1>", "<p>Braintrust fake (dagster_evals.testing)</p>"]
    for section in ("experiments", "datasets"):
        if section in content:
            items = "".join(
                f'<li><a href="{html.escape(link["url"])}">{html.escape(link["name"])}</a></li>'
                for link in content[section]
            )
            parts.append(f"<h2>{section.capitalize()}</h2><ul>{items or '<li>none</li>'}</ul>")
    summary = content.get("summary")
    if summary:
        scores = [
            {"scorer": s["name"], "mean": round(s["score"], 4), "diff": s.get("diff"), **_changes(s)}
            for s in summary.get("scores", {}).values()
        ]
        compared = summary.get("comparison_experiment_name") or "none"
        parts.append(f"<h2>Scores</h2><p>compared with: {html.escape(compared)}</p>")
        parts.append(_table(scores, ["scorer", "mean", "diff", "improvements", "regressions"]))
    if "rows" in content:
        parts.append(f"<h2>Rows ({len(content['rows'])})</h2>")
        parts.append(_table(content["rows"], list(ROW_FIELDS)))
    style = "body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )


def _changes(summary: dict[str, Any]) -> dict[str, Any]:
    return {"improvements": summary.get("improvements", 0), "regressions": summary.get("regressions", 0)}
