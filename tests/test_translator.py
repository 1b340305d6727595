"""`DagsterEvalsTranslator`: asset specs of a suite (keys, groups, kinds, owners, tags, automation), subclass
overrides, Dagster step settings, upstream asset sources and the observable prompt asset."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import (
    AssetSource,
    DagsterEvalsTranslator,
    EvalAssetProps,
    EvalSuite,
    LocalResource,
    build_eval_suite_definitions,
)
from dagster_evals.engine.errors import ConfigError
from tests.conftest import add_task, materialization, qa_rows, write_jsonl


def suite(**overrides: Any) -> EvalSuite:
    fields: dict[str, Any] = {
        "name": "bot",
        "source": "rows.jsonl",
        "task": add_task,
        "scorers": ["exact_match"],
        "key_field": "id",
    }
    fields.update(overrides)
    return EvalSuite(**fields)


def specs(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    with_resource = dg.Definitions.merge(defs, dg.Definitions(resources={"evals": LocalResource()}))
    return {s.key.to_user_string(): s for s in with_resource.resolve_all_asset_specs()}


def observed_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    record = instance.get_latest_data_version_record(key, is_source=True)
    assert record is not None and record.asset_observation is not None
    return record.asset_observation.tags.get("dagster/data_version")


def dep_keys(spec: dg.AssetSpec) -> set[str]:
    return {d.asset_key.to_user_string() for d in spec.deps}


def test_default_specs_keep_keys_and_groups_and_add_the_backend_kind() -> None:
    found = specs(build_eval_suite_definitions(suite(backend="braintrust")))
    assert set(found) == {"evals/bot/dataset", "evals/bot/dataset_snapshot", "evals/bot/eval_report"}
    for spec in found.values():
        assert spec.group_name == "bot"
        assert spec.kinds == {"evals", "braintrust"}
        assert spec.owners == []
        assert spec.automation_condition is None
    assert dep_keys(found["evals/bot/dataset"]) == set()
    assert dep_keys(found["evals/bot/dataset_snapshot"]) == {"evals/bot/dataset"}
    assert dep_keys(found["evals/bot/eval_report"]) == {"evals/bot/dataset_snapshot"}
    assert found["evals/bot/dataset"].description == "Curated rows of eval suite 'bot', read from rows.jsonl."
    assert found["evals/bot/dataset"].metadata["source"] == "rows.jsonl"


def test_without_a_backend_the_kind_is_evals_only() -> None:
    found = specs(build_eval_suite_definitions(suite()))
    assert {frozenset(s.kinds) for s in found.values()} == {frozenset({"evals"})}


def test_suite_fields_reach_every_spec_and_step() -> None:
    eager = dg.AutomationCondition.eager()
    defs = build_eval_suite_definitions(
        suite(
            backend="keywordsai",
            owners=["team:ml", "ann@example.com"],
            asset_tags={"tier": "gold"},
            code_version="3",
            automation_condition=eager,
            op_tags={"team": "ml"},
            pool="keywordsai",
            retry_policy=dg.RetryPolicy(max_retries=2),
            group_name="quality",
        )
    )
    found = specs(defs)
    for spec in found.values():
        assert spec.owners == ["team:ml", "ann@example.com"]
        assert spec.tags["tier"] == "gold"
        assert spec.group_name == "quality"
        assert spec.code_version == "3"
        assert spec.automation_condition == eager
    for assets_def in defs.assets or []:
        assert isinstance(assets_def, dg.AssetsDefinition)
        assert assets_def.op.tags["team"] == "ml"
        assert assets_def.op.pool == "keywordsai"
        assert assets_def.op.retry_policy == dg.RetryPolicy(max_retries=2)


class TeamTranslator(DagsterEvalsTranslator):
    def get_asset_spec(self, props: EvalAssetProps) -> dg.AssetSpec:
        spec = super().get_asset_spec(props)
        extra = {"role": props.role, "backend": props.backend or "none"}
        return spec.replace_attributes(
            group_name=f"llm_{props.suite.name}", description=f"{props.role} of {props.suite.name}"
        ).merge_attributes(owners=["team:ml"], tags=extra)


def test_a_subclass_overrides_any_attribute_through_the_builder() -> None:
    found = specs(build_eval_suite_definitions(suite(backend="local"), translator=TeamTranslator()))
    report = found["evals/bot/eval_report"]
    assert report.group_name == "llm_bot"
    assert report.description == "eval_report of bot"
    assert report.owners == ["team:ml"]
    assert report.tags["role"] == "eval_report"
    assert report.tags["backend"] == "local"
    assert found["evals/bot/dataset"].tags["role"] == "dataset"


def test_a_translator_that_moves_a_key_is_refused_naming_key_prefix() -> None:
    class Moving(DagsterEvalsTranslator):
        def get_asset_spec(self, props: EvalAssetProps) -> dg.AssetSpec:
            return super().get_asset_spec(props).replace_attributes(key=["elsewhere", props.role])

    with pytest.raises(ConfigError, match=r"key_prefix"):
        build_eval_suite_definitions(suite(), translator=Moving())


def test_unknown_backend_and_wrong_translator_type_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match=r"backend 'respan' is not one of local, braintrust, keywordsai"):
        suite(backend="respan")
    with pytest.raises(ConfigError, match=r"translator must be a DagsterEvalsTranslator"):
        suite(translator=object())


def test_tags_is_a_deprecated_alias_of_row_tags() -> None:
    with pytest.warns(DeprecationWarning, match=r"use row_tags="):
        old = suite(tags=["nightly"])
    assert list(old.row_tags) == ["nightly"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = suite(row_tags=["nightly"])
    assert list(new.tags) == ["nightly"]
    with pytest.raises(ConfigError, match=r"give row_tags only"):
        suite(tags=["a"], row_tags=["b"])


def test_an_upstream_asset_source_is_a_dependency_and_feeds_the_dataset(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    rows = qa_rows(4)

    @dg.asset(key=["analytics", "support_tickets"])
    def support_tickets() -> None:
        return None

    source = AssetSource(["analytics", "support_tickets"], lambda: rows, key_field="id")
    evals = suite(source=source)
    defs = build_eval_suite_definitions(evals)
    found = specs(dg.Definitions.merge(defs, dg.Definitions(assets=[support_tickets])))
    assert dep_keys(found["evals/bot/dataset"]) == {"analytics/support_tickets"}
    assert found["evals/bot/dataset"].description == (
        "Curated rows of eval suite 'bot', read from asset analytics/support_tickets."
    )
    result = dg.materialize(
        [support_tickets, *(defs.assets or [])],  # type: ignore[list-item]
        resources={"evals": LocalResource(path=str(tmp_path / "evals.sqlite"))},
        instance=instance,
        selection=["analytics/support_tickets", "evals/bot/dataset"],
    )
    assert materialization(result, evals.dataset_key)["rows_total"] == 4


def test_an_asset_source_without_rows_names_the_asset() -> None:
    source = AssetSource("analytics/t", lambda: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(Exception, match=r"asset analytics/t: the loader returned None"):
        list(source.read())


def test_the_prompt_is_an_observable_asset_whose_data_version_is_the_prompt_version(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    resource = LocalResource(path=str(tmp_path / "evals.sqlite"))
    platform = resource.get_platform()
    platform.push_prompt_version("bot_system", {"messages": [{"role": "system", "content": "add"}]})
    evals = suite(prompt="bot_system", backend="local")
    defs = build_eval_suite_definitions(evals)
    found = specs(defs)
    assert dep_keys(found["evals/bot/eval_report"]) == {"evals/bot/dataset_snapshot", "evals/bot/prompt"}
    assert found["evals/bot/prompt"].kinds == {"evals", "local"}
    prompt_key = dg.AssetKey(["evals", "bot", "prompt"])
    observe = dg.Definitions.merge(
        defs,
        dg.Definitions(
            resources={"evals": resource}, jobs=[dg.define_asset_job("observe", selection=[prompt_key])]
        ),
    ).resolve_job_def("observe")
    observe.execute_in_process(instance=instance)
    version = platform.list_prompt_versions(slug="bot_system")[-1].version
    assert observed_version(instance, prompt_key) == version
    platform.push_prompt_version("bot_system", {"messages": [{"role": "system", "content": "add two"}]})
    observe.execute_in_process(instance=instance)
    newer = platform.list_prompt_versions(slug="bot_system")[-1].version
    assert newer != version
    assert observed_version(instance, prompt_key) == newer


def test_eager_automation_reruns_the_eval_on_a_new_prompt_version_and_records_lineage(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    write_jsonl(tmp_path / "rows.jsonl", qa_rows(3))
    resource = LocalResource(path=str(tmp_path / "evals.sqlite"))
    platform = resource.get_platform()
    platform.push_prompt_version("bot_system", {"text": "add"})
    evals = suite(
        source=tmp_path / "rows.jsonl",
        prompt="bot_system",
        backend="local",
        automation_condition=dg.AutomationCondition.eager(),
    )
    prompt_key = dg.AssetKey(["evals", "bot", "prompt"])
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(evals),
        dg.Definitions(
            resources={"evals": resource}, jobs=[dg.define_asset_job("observe", selection=[prompt_key])]
        ),
    )
    observe = defs.resolve_job_def("observe")
    observe.execute_in_process(instance=instance)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    result = defs.resolve_job_def("bot_eval_job").execute_in_process(instance=instance)
    report = materialization(result, evals.eval_report_key)
    assert report["details"]["prompt"]["slug"] == "bot_system"  # the observed version is the one evaluated
    assert report["prompt_version"] == "1"
    assert report["dataset_version"] == "1"
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert settled.get_num_requested(evals.eval_report_key) == 0
    platform.push_prompt_version("bot_system", {"text": "add two numbers"})
    observe.execute_in_process(instance=instance)
    changed = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
    assert changed.get_num_requested(evals.eval_report_key) == 1
    assert changed.get_num_requested(evals.dataset_key) == 0


def test_the_example_lineage_suite_runs_from_upstream_asset_and_observed_prompt(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy

    from tests.conftest import REPO

    db = tmp_path / "evals.sqlite"
    monkeypatch.setenv("DAGSTER_EVALS_LOCAL_DB", str(db))
    LocalResource(path=str(db)).get_platform().push_prompt_version("support_bot_system", {"sign_off": ""})
    defs: dg.Definitions = runpy.run_path(str(REPO / "definitions.py"))["defs"]
    report_spec = next(
        s
        for s in defs.resolve_all_asset_specs()
        if s.key.to_user_string() == "evals/support_bot_lineage/eval_report"
    )
    assert report_spec.owners == ["team:support-ml"] and report_spec.tags["tier"] == "gold"
    assert report_spec.kinds == {"evals", "local"}
    dataset_spec = next(
        s
        for s in defs.resolve_all_asset_specs()
        if s.key.to_user_string() == "evals/support_bot_lineage/dataset"
    )
    assert dep_keys(dataset_spec) == {"support/support_tickets"}
    defs.resolve_job_def("observe_support_bot_prompt_job").execute_in_process(instance=instance)
    job = dg.define_asset_job(
        "lineage",
        selection=dg.AssetSelection.groups("support_bot_lineage", "support")
        - dg.AssetSelection.assets(dg.AssetKey(["evals", "support_bot_lineage", "prompt"])),
    )
    result = (
        dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
        .resolve_job_def("lineage")
        .execute_in_process(instance=instance)
    )
    report = materialization(result, dg.AssetKey(["evals", "support_bot_lineage", "eval_report"]))
    assert (report["details"]["prompt"]["slug"], report["prompt_version"]) == ("support_bot_system", "1")
    assert report["dataset_version"] == "1"


def test_releases_are_an_observable_asset_whose_data_version_is_the_newest_tag(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    import subprocess

    from dagster_evals import build_release_asset

    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    subprocess.run([*git, "tag", "v1.0.0"], check=True)
    asset = build_release_asset(suite(backend="local"), repo=repo)
    key = dg.AssetKey(["evals", "bot", "release"])
    observe = dg.Definitions(
        assets=[asset], jobs=[dg.define_asset_job("observe", selection=[key])]
    ).resolve_job_def("observe")
    observe.execute_in_process(instance=instance)
    sha = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert observed_version(instance, key) == f"v1.0.0@{sha}"
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "two"], check=True)
    subprocess.run([*git, "tag", "v1.1.0"], check=True)
    observe.execute_in_process(instance=instance)
    newer = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert observed_version(instance, key) == f"v1.1.0@{newer}"


class GroupTranslator(DagsterEvalsTranslator):
    def get_asset_spec(self, props: EvalAssetProps) -> dg.AssetSpec:
        return super().get_asset_spec(props).replace_attributes(group_name="llm_quality")


@pytest.mark.parametrize("shards", [1, 3])
def test_the_report_has_the_suites_description_group_and_kinds_and_the_source_no_host_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shards: int
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    source = write_jsonl(tmp_path / "data" / "rows.jsonl", qa_rows(3))
    options: dict[str, Any] = {
        "source": source, "task": add_task, "key_field": "id", "shards": shards,
        "description": "Nightly answer quality of the support bot.",
    }  # fmt: skip
    plain = EvalSuite(name="described", scorers=["exact_match"], **options)
    judged = EvalSuite(name="judged", scorers=["exact_match", "factuality"], group_name="g", **options)
    translated = build_eval_suite_definitions(
        EvalSuite(name="translated", scorers=["exact_match"], **options), translator=GroupTranslator()
    )
    graph = dg.Definitions.merge(
        build_eval_suite_definitions(plain),
        build_eval_suite_definitions(judged),
        translated,
        dg.Definitions(resources={"evals": LocalResource(path=str(tmp_path / "e.sqlite"))}),
    ).resolve_asset_graph()
    report, dataset = graph.get(plain.eval_report_key), graph.get(plain.dataset_key)
    assert report.description == "Nightly answer quality of the support bot."
    assert dataset.description == "Curated rows of eval suite 'described', read from data/rows.jsonl."
    assert dataset.metadata["source"] == "data/rows.jsonl"  # relative to the project, not /tmp/…
    assert report.group_name == "described" and graph.get(judged.eval_report_key).group_name == "g"
    assert graph.get(dg.AssetKey(["evals", "translated", "eval_report"])).group_name == "llm_quality"
    assert set(report.kinds) == {"evals"} and set(graph.get(judged.eval_report_key).kinds) == {
        "evals",
        "openai",
    }
    assert set(graph.get(judged.dataset_key).kinds) == {"evals"}
    elsewhere = EvalSuite(name="elsewhere", scorers=["exact_match"], **{**options, "source": source})
    monkeypatch.chdir(tmp_path / "data")
    spec = DagsterEvalsTranslator().get_asset_spec(EvalAssetProps(elsewhere, None, "dataset"))
    assert spec.metadata["source"] == "rows.jsonl"
