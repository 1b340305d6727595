"""The fake Braintrust server and the low-level client, checked against each other over real HTTP and both
checked against Braintrust's published OpenAPI spec (the vendored extract in
`dagster_evals/testing/braintrust/spec/`), so fake and client cannot agree on a wrong shape."""

from __future__ import annotations

import importlib
import json
import typing
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dagster_evals.backends.braintrust import api
from dagster_evals.backends.braintrust.client import BraintrustClient
from dagster_evals.engine.errors import AuthError, NotFoundError, PlatformError
from dagster_evals.engine.http import HttpClient, RetryPolicy
from dagster_evals.testing.braintrust import BraintrustFake, openapi, parse_version, prettify_xact
from dagster_evals.testing.server import ServerThread, in_process_transport
from tests.braintrust_spec_rules import SPEC_RULES, our_fields, spec_node

KEY = "test-key"
PY = {"runtime": "python", "version": "3.11"}


def test_models_match_the_published_types() -> None:
    """Every field the client sends exists in the published spec (or, where the sources disagree, in the
    pinned SDK's types); every spec field the client leaves out is listed as supported elsewhere or
    deliberately unsupported (`tests/braintrust_spec_rules.py`)."""
    problems = []
    for rule in SPEC_RULES:
        if rule.schema is None:
            continue
        sent, _ = our_fields(rule.model)
        published = set(openapi.properties(spec_node(rule.schema), published=True))
        unknown = sent - published - rule.sdk_only
        if unknown:
            problems.append(f"{rule.model.__name__} sends {sorted(unknown)}, not in spec {rule.schema}")
        left_out, declared = published - sent, set(rule.unused)
        if left_out != declared:
            problems.append(
                f"{rule.model.__name__} vs {rule.schema}: spec fields neither sent nor listed "
                f"{sorted(left_out - declared)}; listed but gone from the spec {sorted(declared - left_out)}"
            )
    assert not problems, "\n".join(problems)


def sdk_fields(qualified: str) -> set[str]:
    module, _, name = qualified.partition(":")
    return set(typing.get_type_hints(getattr(importlib.import_module(module), name)))


def test_models_against_the_pinned_sdk_types() -> None:
    """Fields the client sends only because the SDK publishes them must still be in the SDK; fields a new
    SDK release adds are reported as a readable warning to classify, never a failure."""
    pytest.importorskip("braintrust")
    problems, news = [], []
    for rule in SPEC_RULES:
        if rule.sdk_type is None:
            continue
        theirs = sdk_fields(rule.sdk_type)
        sent, _ = our_fields(rule.model)
        if not rule.sdk_only <= theirs:
            problems.append(f"{rule.sdk_type} no longer has {sorted(rule.sdk_only - theirs)}")
        spec_fields = (
            set(openapi.properties(spec_node(rule.schema), published=True)) if rule.schema else set()
        )
        if sent - theirs - spec_fields:
            problems.append(
                f"{rule.model.__name__} sends {sorted(sent - theirs - spec_fields)}, in no source"
            )
        new = theirs - sent - set(rule.unused) - set(rule.sdk_unused)
        if new:
            news.append(f"{rule.sdk_type}: {sorted(new)} (classify in tests/braintrust_spec_rules.py)")
    assert not problems, "\n".join(problems)
    if news:
        warnings.warn("SDK fields not yet classified:\n" + "\n".join(news), stacklevel=1)


# Request bodies the fake records, and the published operation each must satisfy.
BODY_ROUTES = {
    "POST /v1/project": ("post", "/v1/project"),
    "POST /v1/dataset": ("post", "/v1/dataset"),
    "PATCH /v1/dataset/{id}": ("patch", "/v1/dataset/{dataset_id}"),
    "POST /v1/dataset/{id}/insert": ("post", "/v1/dataset/{dataset_id}/insert"),
    "POST /v1/dataset/{id}/fetch": ("post", "/v1/dataset/{dataset_id}/fetch"),
    "POST /v1/experiment": ("post", "/v1/experiment"),
    "POST /v1/experiment/{id}/insert": ("post", "/v1/experiment/{experiment_id}/insert"),
    "POST /v1/experiment/{id}/fetch": ("post", "/v1/experiment/{experiment_id}/fetch"),
    "POST /v1/project_logs/{id}/insert": ("post", "/v1/project_logs/{project_id}/insert"),
    "POST /v1/project_logs/{id}/fetch": ("post", "/v1/project_logs/{project_id}/fetch"),
    "POST /v1/eval": ("post", "/v1/eval"),
    "POST /v1/prompt": ("post", "/v1/prompt"),
    "PATCH /v1/prompt/{id}": ("patch", "/v1/prompt/{prompt_id}"),
    "POST /v1/function": ("post", "/v1/function"),
}


@pytest.fixture
def fake() -> BraintrustFake:
    return BraintrustFake(api_key=KEY)


def make_client(url: str, key: str = KEY, **kwargs: Any) -> BraintrustClient:
    http = HttpClient(
        platform="braintrust",
        base_url=url,
        api_key=key,
        env_var=api.ENV_API_KEY,
        retry=RetryPolicy(max_retries=4, backoff_base_s=0.01),
        **kwargs,
    )
    return BraintrustClient(http)


@pytest.fixture
def client(server: ServerThread) -> Iterator[BraintrustClient]:
    c = make_client(server.url)
    yield c
    c.close()


def inline(code: str, name: str | None = None) -> api.InlineCodeRef:
    return api.InlineCodeRef(
        inline_context=api.InlineContext(**PY), code=code, **({"name": name} if name else {})
    )


def exercise_every_endpoint(client: BraintrustClient) -> dict[str, Any]:
    """One call to each endpoint family; returns the objects made."""
    project = client.create_project(api.CreateProject(name="spec", description="d"))
    dataset = client.create_dataset(
        api.CreateDataset(project_id=project.id, name="ds", metadata={"a": 1}, tags=["t"])
    )
    client.patch_dataset(dataset.id, api.PatchDataset(description="new"))
    client.insert_dataset_events(
        dataset.id,
        [
            api.InsertDatasetEvent(id="r1", input={"q": 1}, expected="2", metadata={"m": 1}, tags=["x"]),
            api.InsertDatasetEvent(id="r2", input={"q": 2}, expected="3"),
            api.InsertDatasetEvent(id="r2", is_merge=True, merge_paths=[["input"]], input={"extra": True}),
            api.InsertDatasetEvent(
                id="r1", is_merge=True, array_delete=[api.ArrayDelete(path=["tags"], delete=["x"])]
            ),
        ],
    )
    list(client.iter_dataset_events(dataset.id, page_size=1))
    experiment = client.create_experiment(
        api.CreateExperiment(
            project_id=project.id,
            name="exp",
            ensure_new=True,
            dataset_id=dataset.id,
            repo_info=api.RepoInfo(commit="abc", dirty=False),
            metadata={"k": "v"},
            tags=["t"],
        )
    )
    client.insert_experiment_events(
        experiment.id,
        [
            api.InsertExperimentEvent(
                id="e1",
                input={"q": 1},
                output="2",
                expected="2",
                scores={"acc": 1.0},
                metrics={"start": 1.0, "end": 2.0},
                span_attributes=api.SpanAttributes(name="eval", type="eval"),
                origin=api.ObjectReference(object_type="dataset", object_id=dataset.id, id="r1"),
            )
        ],
    )
    list(client.iter_experiment_events(experiment.id))
    prompt = client.create_prompt(
        api.CreatePrompt(
            project_id=project.id,
            name="P",
            slug="p",
            prompt_data={
                "prompt": {"type": "chat", "messages": [{"role": "user", "content": "Say {{input.q}}"}]}
            },
        )
    )
    client.patch_prompt(prompt.id, api.PatchPrompt(description="v2"))
    function = client.create_function(
        api.CreateFunction(
            project_id=project.id,
            name="Double",
            slug="double",
            function_type="task",
            function_data={
                "type": "code",
                "data": {
                    "type": "inline",
                    "runtime_context": PY,
                    "code": "def handler(input):\n    return input * 2",
                },
            },
        )
    )
    client.insert_project_logs(project.id, [api.InsertProjectLogsEvent(id="l1", input="hi", output="yo")])
    list(client.iter_project_logs(project.id))
    return {
        "project": project,
        "dataset": dataset,
        "experiment": experiment,
        "prompt": prompt,
        "function": function,
    }


def test_every_body_the_client_sends_validates_against_the_published_types(fake, client) -> None:
    made = exercise_every_endpoint(client)
    client.run_eval(full_run_eval(made["project"].id, made["dataset"].id, made["function"].id))
    for route, (method, path) in BODY_ROUTES.items():
        bodies = list(fake.bodies[route])
        assert bodies, f"no request recorded for {route}"
        schema = openapi.request_schema(method, path)
        assert schema is not None, route
        for body in bodies:
            openapi.validate(body, schema)


def response_schema(method: str, path: str) -> dict[str, Any]:
    operation = openapi.spec()["paths"][path][method]
    return operation["responses"]["200"]["content"]["application/json"]["schema"]


def test_responses_validate_against_the_published_types(fake, client, server) -> None:
    made = exercise_every_endpoint(client)
    raw = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"})
    checks = [
        (f"/v1/project/{made['project'].id}", "/v1/project/{project_id}"),
        (f"/v1/dataset/{made['dataset'].id}", "/v1/dataset/{dataset_id}"),
        (f"/v1/experiment/{made['experiment'].id}", "/v1/experiment/{experiment_id}"),
        (f"/v1/prompt/{made['prompt'].id}", "/v1/prompt/{prompt_id}"),
        (f"/v1/function/{made['function'].id}", "/v1/function/{function_id}"),
        (
            f"/v1/dataset/{made['dataset'].id}/summarize?summarize_data=true",
            "/v1/dataset/{dataset_id}/summarize",
        ),
        (f"/v1/experiment/{made['experiment'].id}/summarize", "/v1/experiment/{experiment_id}/summarize"),
        (f"/v1/dataset/{made['dataset'].id}/fetch?limit=10", "/v1/dataset/{dataset_id}/fetch"),
        (f"/v1/experiment/{made['experiment'].id}/fetch", "/v1/experiment/{experiment_id}/fetch"),
        ("/v1/project", "/v1/project"),
        ("/v1/dataset", "/v1/dataset"),
        ("/v1/prompt", "/v1/prompt"),
        ("/v1/function", "/v1/function"),
    ]
    for url, path in checks:
        response = raw.get(url)
        assert response.status_code == 200, url
        openapi.validate(response.json(), response_schema("get", path), closed=False)


def full_run_eval(project_id: str, dataset_id: str, function_id: str) -> api.RunEval:
    return api.RunEval(
        project_id=project_id,
        data=api.DatasetIdData(dataset_id=dataset_id, internal_btql={"filter": None}),
        task=inline("def handler(input, expected, metadata):\n    return str(input)"),
        scores=[
            api.GlobalFunctionRef(global_function="Levenshtein"),
            api.FunctionIdRef(function_id=function_id),
            api.InlineFunctionRef(
                inline_function={
                    "type": "code",
                    "data": {"type": "inline", "runtime_context": PY, "code": "def f(output):\n    return 1"},
                },
                name="always",
            ),
        ],
        name="eval-name",
        parameters={"temperature": 0},
        experiment_name="all-fields",
        metadata={"model": "m"},
        parent=api.Parent(
            object_type="experiment",
            object_id="parent-exp",
            row_ids=api.ParentRowIds(id="r", span_id="s", root_span_id="root"),
            propagated_event={"metadata": {"a": 1}},
        ),
        stream=False,
        trial_count=2,
        is_public=True,
        timeout=60_000,
        max_concurrency=4,
        base_experiment_name=None,
        git_metadata_settings=api.GitMetadataSettings(collect="some", fields=["commit", "branch"]),
        repo_info=api.RepoInfo(
            commit="abc",
            branch="main",
            tag="v1",
            dirty=True,
            author_name="A",
            author_email="a@x",
            commit_message="m",
            commit_time="2024-01-01T00:00:00Z",
            git_diff="diff",
        ),
        strict=True,
        stop_token="STOP",
        extra_messages="{{messages}}",
        tags=["t1", "t2"],
        mcp_auth={"https://mcp.example": api.McpAuth(oauth_token="tok")},
        endpoint_name="openai",
    )


def test_eval_with_every_field_round_trips_and_runs(fake, client) -> None:
    made = exercise_every_endpoint(client)
    project_id, dataset_id = made["project"].id, made["dataset"].id
    fn = client.create_function(
        api.CreateFunction(
            project_id=project_id,
            name="len_score",
            slug="len-score",
            function_type="scorer",
            function_data={
                "type": "code",
                "data": {
                    "type": "inline",
                    "runtime_context": PY,
                    "code": "def handler(output):\n    return min(1, len(output) / 100)",
                },
            },
        )
    )
    body = full_run_eval(project_id, dataset_id, fn.id)
    summary = client.run_eval(body)
    assert fake.bodies["POST /v1/eval"][-1] == body.body()
    assert summary.experiment_name == "all-fields"
    assert set(summary.scores or {}) == {"Levenshtein", "len_score", "always"}
    assert summary.scores["always"].score == 1.0
    experiment = client.list_experiments(project_id=project_id, experiment_name="all-fields")[0]
    assert experiment.public is True and experiment.tags == ["t1", "t2"]
    assert experiment.repo_info["commit"] == "abc"
    events = list(client.iter_experiment_events(experiment.id))
    rows = [e for e in events if e["is_root"]]
    assert len(rows) == 4, "2 dataset rows x trial_count 2"
    score_spans = [e for e in events if not e["is_root"]]
    assert len(score_spans) == 4 * 3, "one child score span per scorer, as Braintrust's eval framework logs"
    assert {e["span_attributes"]["type"] for e in score_spans} == {"score"}
    assert {r["origin"]["id"] for r in rows} == {"r1", "r2"}


@pytest.mark.parametrize(
    ("task", "expected_output"),
    [
        (lambda ids: api.FunctionIdRef(function_id=ids["function"].id), 6),
        (lambda ids: api.ProjectSlugRef(project_name="spec", slug="double"), 6),
        (lambda ids: inline("def handler(input):\n    return input + 1"), 4),
        (
            lambda ids: api.InlinePromptRef(
                inline_prompt={"prompt": {"type": "completion", "content": "n={{input}}"}}
            ),
            "n=3",
        ),
        (
            lambda ids: api.InlineFunctionRef(
                inline_function={"type": "prompt"},
                inline_prompt={"prompt": {"type": "completion", "content": "{{input}}!"}},
            ),
            "3!",
        ),
        (lambda ids: api.FunctionIdRef(function_id=ids["prompt"].id), "Say "),
        (lambda ids: api.GlobalFunctionRef(global_function="ExactMatch"), {"name": "ExactMatch", "score": 0}),
    ],
)
def test_eval_runs_each_function_reference(client, task, expected_output) -> None:
    made = exercise_every_endpoint(client)
    body = api.RunEval(
        project_id=made["project"].id,
        data=api.DatasetRowsData(data=[{"input": 3, "expected": 6}]),
        task=task(made),
        scores=[api.GlobalFunctionRef(global_function="ExactMatch")],
    )
    summary = client.run_eval(body)
    experiment = client.list_experiments(experiment_name=summary.experiment_name)[0]
    [row] = [e for e in client.iter_experiment_events(experiment.id) if e["is_root"]]
    if isinstance(expected_output, dict):
        assert expected_output.items() <= row["output"].items()
    else:
        assert row["output"] == expected_output


def test_eval_streams_server_sent_events(client) -> None:
    made = exercise_every_endpoint(client)
    body = api.RunEval(
        project_id=made["project"].id,
        data=api.ProjectDatasetNameData(project_name="spec", dataset_name="ds"),
        task=inline("def handler(expected):\n    return expected"),
        scores=[api.GlobalFunctionRef(global_function="ExactMatch")],
        stream=True,
    )
    result = client.run_eval_stream(body)
    assert [e.event for e in result.events] == ["start", "summary", "done"]
    assert result.summary.scores["ExactMatch"].score == 1.0
    assert client.run_eval(body).experiment_name != result.summary.experiment_name


def test_eval_over_an_earlier_experiment(client) -> None:
    made = exercise_every_endpoint(client)
    body = api.RunEval(
        project_id=made["project"].id,
        data=api.ExperimentNameData(experiment_name="exp"),
        task=inline("def handler(input):\n    return input"),
        scores=[api.GlobalFunctionRef(global_function="ExactMatch")],
    )
    summary = client.run_eval(body)
    assert summary.scores["ExactMatch"].score == 0.0
    assert summary.comparison_experiment_name == "exp"


def test_eval_errors_are_clear(client) -> None:
    made = exercise_every_endpoint(client)
    base = {"project_id": made["project"].id, "data": api.DatasetRowsData(data=[{"input": 1}])}
    with pytest.raises(NotFoundError, match="prompt session"):
        client.run_eval(
            api.RunEval(
                **base,
                task=api.PromptSessionRef(prompt_session_id="s", prompt_session_function_id="f"),
                scores=[],
            )
        )
    with pytest.raises(PlatformError, match="needs a model provider") as llm:
        client.run_eval(
            api.RunEval(
                **base,
                task=inline("def handler(input): return input"),
                scores=[api.GlobalFunctionRef(global_function="Factuality")],
            )
        )
    assert llm.value.status == 400
    with pytest.raises(PlatformError, match="not allowed"):
        client.run_eval(
            api.RunEval(**base, task=inline("import os\ndef handler(input): return 1"), scores=[])
        )
    summary = client.run_eval(
        api.RunEval(**base, task=inline("def handler(input):\n    raise ValueError('boom')"), scores=[])
    )
    experiment = client.list_experiments(experiment_name=summary.experiment_name)[0]
    assert "boom" in next(iter(client.iter_experiment_events(experiment.id)))["error"]


def test_malformed_bodies_get_400_with_a_message(server, client) -> None:
    project = client.create_project(api.CreateProject(name="p"))
    raw = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"})
    cases = [
        ("/v1/dataset", {"project_id": project.id}, "name"),
        ("/v1/dataset", {"project_id": project.id, "name": "d", "colour": "red"}, "colour"),
        ("/v1/dataset", {"project_id": project.id, "name": 5}, "name"),
        ("/v1/project", {"name": "x", "orgname": "y"}, "orgname"),
        (
            "/v1/eval",
            {"project_id": project.id, "data": {"data": []}, "task": {"function_id": 1}, "scores": []},
            "task",
        ),
        (
            "/v1/eval",
            {"project_id": project.id, "data": {"rows": []}, "task": {"global_function": "X"}, "scores": []},
            "data",
        ),
    ]
    for path, body, field in cases:
        response = raw.post(path, json=body)
        assert response.status_code == 400, (path, body)
        assert field in response.json()["error"]
    assert raw.post("/v1/project", content=b"{not json").json() == {"error": "request body is not valid JSON"}
    dataset = client.create_dataset(api.CreateDataset(project_id=project.id, name="d"))
    bad_fetch = raw.post(f"/v1/dataset/{dataset.id}/fetch", json={"limit": "many"})
    assert bad_fetch.status_code == 400 and "limit" in bad_fetch.json()["error"]
    assert (
        raw.post(
            f"/v1/dataset/{dataset.id}/insert", json={"events": [{"id": "a", "_is_merge": "yes"}]}
        ).status_code
        == 400
    )
    sdk_style = {"project_id": project.id, "name": "e", "ensure_new": True, "ancestor_commits": ["abc"]}
    assert raw.post("/v1/experiment", json=sdk_style).status_code == 200, "the SDK's extra field is accepted"


def test_auth_and_not_found(server, client) -> None:
    response = httpx.post(server.url + "/v1/project", json={"name": "x"})
    assert response.status_code == 401 and "error" in response.json()
    bad = make_client(server.url, key="wrong-key")
    with pytest.raises(AuthError) as raised:
        bad.create_project(api.CreateProject(name="x"))
    assert "BRAINTRUST_API_KEY" in str(raised.value) and "wrong-key" not in str(raised.value)
    for call in (
        lambda: client.get_dataset("missing"),
        lambda: client.get_experiment("missing"),
        lambda: client.get_prompt("missing"),
        lambda: client.get_function("missing"),
        lambda: client.fetch_dataset("missing", api.FetchEventsRequest()),
        lambda: client.insert_project_logs("missing", []),
    ):
        with pytest.raises(NotFoundError) as missing:
            call()
        assert missing.value.status == 404 and "missing" in str(missing.value)


def test_fetch_pages_with_cursor_and_pins_versions(client, fake) -> None:
    project = client.create_project(api.CreateProject(name="p"))
    dataset = client.create_dataset(api.CreateDataset(project_id=project.id, name="d"))
    assert client.create_dataset(api.CreateDataset(project_id=project.id, name="d")).id == dataset.id
    client.insert_dataset_events(dataset.id, [api.InsertDatasetEvent(id=f"r{i}", input=i) for i in range(25)])
    first = client.fetch_dataset(dataset.id, api.FetchEventsRequest(limit=10))
    version = first.events[0]["_xact_id"]
    client.insert_dataset_events(dataset.id, [api.InsertDatasetEvent(id="r0", object_delete=True)])
    client.insert_dataset_events(dataset.id, [api.InsertDatasetEvent(id="r1", input="changed")])

    pages, cursor = [first], first.cursor
    while cursor:
        page = client.fetch_dataset(dataset.id, api.FetchEventsRequest(limit=10, cursor=cursor))
        pages.append(page)
        cursor = page.cursor if page.events else None
    assert [len(p.events) for p in pages] == [10, 10, 7, 0], "each later page repeats the boundary row"
    assert sum(len(p.events) for p in pages) - 25 == 2
    assert pages[-1].cursor is None, "an empty page carries no cursor"
    assert len({e["id"] for p in pages for e in p.events}) == 25, (
        "a paginated read stays on its first version"
    )

    latest = {e["id"]: e for e in client.iter_dataset_events(dataset.id, page_size=7)}
    assert len(latest) == 24 and latest["r1"]["input"] == "changed"
    assert next(iter(latest)) == "r1", "newest first"
    pinned = {e["id"]: e for e in client.iter_dataset_events(dataset.id, version=version)}
    assert len(pinned) == 25 and pinned["r1"]["input"] == 1
    pretty = {e["id"] for e in client.iter_dataset_events(dataset.id, version=prettify_xact(version))}
    assert pretty == set(pinned)
    assert parse_version(prettify_xact(version)) == int(version)
    assert client.summarize_dataset(dataset.id).data_summary.total_records == 24
    assert fake.events_written["dataset"] == 27


def test_lists_filter_and_paginate(client) -> None:
    project = client.create_project(api.CreateProject(name="p"))
    assert client.create_project(api.CreateProject(name="p")).id == project.id
    for i in range(7):
        client.create_dataset(api.CreateDataset(project_id=project.id, name=f"d{i}"))
    page = client.list_datasets(project_id=project.id, limit=3)
    rest = client.list_datasets(project_id=project.id, starting_after=page[-1].id)
    assert len(page) == 3 and len(rest) == 4 and not {d.id for d in page} & {d.id for d in rest}
    assert [d.name for d in client.list_datasets(project_name="p", dataset_name="d4")] == ["d4"]
    assert client.list_projects(project_name="p")[0].id == project.id
    assert client.get_project(project.id).name == "p"
    deleted = client.delete_dataset(page[0].id)
    assert deleted.deleted_at
    assert len(client.list_datasets(project_id=project.id)) == 6
    assert len(list(client.iter_objects("/v1/dataset", {"project_id": project.id}, page_size=2))) == 6


def test_prompts_versions_functions_and_invoke(client) -> None:
    made = exercise_every_endpoint(client)
    prompt = client.get_prompt_by_slug("spec", "p")
    assert prompt.description == "v2"
    first_version = str(int(prompt.xact_id) - 1)
    old = client.get_prompt(prompt.id, version=first_version)
    assert old.description is None and old.xact_id != prompt.xact_id
    assert client.get_prompt_by_slug("spec", "p", version=prettify_xact(first_version)).description is None
    assert [p.slug for p in client.list_prompts(project_name="spec")] == ["p"]
    functions_listed = client.list_functions(project_id=made["project"].id)
    assert {f.slug for f in functions_listed} == {"p", "double"}
    function = client.get_function(made["function"].id)
    assert function.function_data["type"] == "code"
    assert client.invoke_function(function.id, api.InvokeFunction(input=21)) == 42
    streamed = client.invoke_function(function.id, api.InvokeFunction(input=2, stream=True))
    assert [e.event for e in streamed] == ["json_delta", "done"] and json.loads(streamed[0].data) == 4
    assert client.invoke_function(prompt.id, api.InvokeFunction(input={"q": "hi"})) == "Say hi"


def test_experiment_summary_compares_with_the_base_experiment(client) -> None:
    project = client.create_project(api.CreateProject(name="p"))

    def experiment(name: str, scores: list[float], base: str | None = None) -> api.Experiment:
        created = client.create_experiment(
            api.CreateExperiment(
                project_id=project.id, name=name, ensure_new=True, **({"base_exp_id": base} if base else {})
            )
        )
        client.insert_experiment_events(
            created.id,
            [api.InsertExperimentEvent(id=f"e{i}", input=i, scores={"acc": s}) for i, s in enumerate(scores)],
        )
        return created

    base = experiment("base", [1.0, 0.0, 0.5, 0.5])
    new = experiment("new", [1.0, 1.0, 0.0, 0.5], base=base.id)
    assert (
        client.create_experiment(
            api.CreateExperiment(project_id=project.id, name="new", ensure_new=True)
        ).name
        != "new"
    )
    summary = client.summarize_experiment(new.id)
    acc = summary.scores["acc"]
    assert acc.score == pytest.approx(0.625) and acc.diff == pytest.approx(0.125)
    assert (acc.improvements, acc.regressions) == (1, 1)
    assert summary.comparison_experiment_name == "base"
    no_scores = client.summarize_experiment(new.id, summarize_scores=False)
    assert no_scores.scores is None and no_scores.experiment_url.endswith("/experiments/new")


def test_request_size_limit_and_in_process_use(fake) -> None:
    small = BraintrustFake(api_key=KEY, max_request_bytes=2000)
    client = BraintrustClient(
        HttpClient(
            platform="braintrust",
            base_url="http://fake",
            api_key=KEY,
            env_var=api.ENV_API_KEY,
            transport=in_process_transport(small.app),
        )
    )
    project = client.create_project(api.CreateProject(name="p"))
    dataset = client.create_dataset(api.CreateDataset(project_id=project.id, name="d"))
    with pytest.raises(PlatformError) as too_big:
        client.insert_dataset_events(dataset.id, [api.InsertDatasetEvent(id="x", input="y" * 5000)])
    assert too_big.value.status == 413
    assert small.requests["POST /v1/dataset/{id}/insert"] == 1, "a 413 is not retried"


def test_the_fake_never_imports_the_client() -> None:
    """The fake comes from the vendor's spec, never from the client: no module of
    `dagster_evals.testing.braintrust` imports `dagster_evals.backends` (or anything else client-side)."""
    import ast
    from pathlib import Path

    import dagster_evals.testing.braintrust as fake_package

    allowed = ("dagster_evals.testing",)
    for path in Path(fake_package.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("dagster_evals"):
                    assert name.startswith(allowed), f"{path.name} imports {name}"
