"""Example code location: eval suites for a small support bot, on the embedded local backend.

Runs with no keys and no network:

    dg launch --job support_bot_release_job -f definitions.py
    dg dev -w workspace.yaml

- `support_bot`: syncs data/support_bot.jsonl into a local dataset, pins a snapshot, runs the bot over every
  row, scores it, and gates `release_approved` on the blocking checks.
- `support_bot_versions`: the same rows, evaluated once per prompt version of `support_bot_system` and per
  release tag (`v*`) of this repository — each a partition of its eval report — plus a nightly run of the
  newest partition; `version_approved` is the per-version gate.
- `support_bot_llm`: an LLM suite — each new version of the prompt `support_bot_answer` becomes a
  partition whose task runs that prompt (`prompt_task`) and whose answers are graded by LLM judges
  (`factuality` and the rubric in example/judges.yaml). Offline against a scripted fake OpenAI server when
  OPENAI_API_KEY is unset; against OPENAI_BASE_URL (default api.openai.com) when it is set:

      dagster-evals push-prompt support_bot_answer "$(python -c 'import json, example.llm_endpoint as e; print(json.dumps(e.STARTER_PROMPT))')"
      dg dev -w workspace.yaml   # the support_bot_llm prompt-version sensor runs the new version
- `support_bot_lineage`: the rows read from an upstream asset (`support_tickets`), the prompt
  `support_bot_system` as an observable asset, and declarative automation instead of sensors: when the
  tickets are rematerialized or a new prompt version is observed (`observe_support_bot_prompt_job`, every
  15 minutes once its schedule is on), the eval runs again. A translator adds owners and a tier tag.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import dagster as dg

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from dagster_evals import (  # noqa: E402
    AssetSource,
    BraintrustResource,
    ConfigError,
    DagsterEvalsTranslator,
    EvalAssetProps,
    EvalPlatformResource,
    EvalSuite,
    KeywordsAIResource,
    LocalResource,
    backend_of,
    build_eval_schedule,
    build_eval_suite_definitions,
    build_prompt_version_sensor,
    build_release_sensor,
    judge,
    prompt_task,
    require_passing_gates,
    rubric_judges_from_yaml,
)
from example.llm_endpoint import STARTER_PROMPT, example_endpoint  # noqa: E402
from example.support_bot_evals import (  # noqa: E402
    SCORERS,
    THRESHOLDS,
    mentions_required_facts,
    support_bot_task,
    support_bot_with_prompt,
)

DATA = HERE / "data" / "support_bot.jsonl"
PLATFORMS = ("local", "braintrust", "keywordsai")


def evals_resource() -> EvalPlatformResource:
    """The backend the example runs on: `DAGSTER_EVALS_PLATFORM` = local (default), braintrust or keywordsai.

    Braintrust reads BRAINTRUST_API_KEY (and BRAINTRUST_API_URL, e.g. a fake server's URL); Keywords AI
    reads KEYWORDSAI_API_KEY (and KEYWORDSAI_BASE_URL).
    """
    platform = os.environ.get("DAGSTER_EVALS_PLATFORM", "local")
    if platform == "braintrust":
        return BraintrustResource(
            api_key=dg.EnvVar("BRAINTRUST_API_KEY"),
            api_url=os.environ.get("BRAINTRUST_API_URL", "https://api.braintrust.dev"),
            project="support-bot",
        )
    if platform == "keywordsai":
        return KeywordsAIResource(
            api_key=dg.EnvVar("KEYWORDSAI_API_KEY"),
            base_url=os.environ.get("KEYWORDSAI_BASE_URL", "https://api.keywordsai.co"),
        )
    if platform != "local":
        raise ConfigError(f"DAGSTER_EVALS_PLATFORM={platform!r}: use one of {', '.join(PLATFORMS)}")
    return LocalResource()


support_bot_suite = EvalSuite(
    name="support_bot",
    source=DATA,
    key_field="id",
    task=support_bot_task,
    scorers=SCORERS,
    thresholds=THRESHOLDS,
    max_regression=0.05,
    max_errored_rows=0,
    max_concurrency=8,
    row_tags=["example"],
    git_repo=HERE,
    description="Customer-support questions with the answers the bot should give.",
)

versions = dg.DynamicPartitionsDefinition(name="support_bot_versions")

versioned_suite = EvalSuite(
    name="support_bot_versions",
    source=DATA,
    key_field="id",
    task=support_bot_with_prompt,
    scorers=SCORERS,
    thresholds=THRESHOLDS,
    max_regression=0.05,
    baseline="last_passing",
    partitions_def=versions,
    git_repo=HERE,
    row_tags=["example", "versions"],
    description="The support-bot rows, evaluated per prompt version and per release.",
)


llm_endpoint = example_endpoint()
llm_prompts = dg.DynamicPartitionsDefinition(name="support_bot_llm_prompts")

llm_suite = EvalSuite(
    name="support_bot_llm",
    source=DATA,
    key_field="id",
    # Runs the prompt version of the partition (STARTER_PROMPT for a run about no prompt version).
    task=prompt_task(endpoint=llm_endpoint, default=STARTER_PROMPT),
    scorers=[
        judge("factuality", endpoint=llm_endpoint, fields={"input": "input.question"}),
        *rubric_judges_from_yaml(HERE / "example" / "judges.yaml", endpoint=llm_endpoint),
        mentions_required_facts,
    ],
    thresholds={"factuality": 0.6, "mentions_required_facts": 0.75},
    max_regression=0.1,
    max_concurrency=10,
    baseline="last_passing",
    partitions_def=llm_prompts,
    tags=["example", "llm"],
    description="The support-bot rows answered by each version of the support_bot_answer prompt, LLM-judged.",
)


@dg.asset(
    deps=[support_bot_suite.eval_report_key],
    group_name="support_bot",
    description="Marks the support bot as releasable. Runs only when every blocking eval check passed.",
    kinds={"evals"},
)
def release_approved(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    # Refuses unless the report's blocking checks passed in this run, on any executor (even dagster-dask,
    # which runs the dependents of a failed step).
    approval = require_passing_gates(context, support_bot_suite.eval_report_key)
    context.log.info("all blocking eval checks passed: the support bot is approved for release")
    return dg.MaterializeResult(metadata={"approved": True, **approval.metadata})


@dg.asset(
    deps=[versioned_suite.eval_report_key],
    partitions_def=versions,
    group_name="support_bot_versions",
    description="Approves one prompt version / release. Runs only when its blocking eval checks passed.",
    kinds={"evals"},
)
def version_approved(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    approval = require_passing_gates(context, versioned_suite.eval_report_key)  # this partition's checks
    context.log.info(f"{context.partition_key} passed every blocking eval check: approved")
    return dg.MaterializeResult(
        metadata={"approved": True, "version": context.partition_key, **approval.metadata}
    )


@dg.asset(
    key=["support", "support_tickets"],
    group_name="support",
    description="Curated support tickets (stands in for a dbt model or a warehouse table).",
    kinds={"python"},
)
def support_tickets() -> dg.MaterializeResult:
    rows = DATA.read_text(encoding="utf-8").splitlines()
    return dg.MaterializeResult(metadata={"dagster/row_count": len(rows)})


def load_support_tickets() -> list[dict[str, Any]]:
    """The rows behind the `support_tickets` asset (here: its JSONL file)."""
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


class ExampleTranslator(DagsterEvalsTranslator):
    """Owners and a tier tag on every eval asset, on top of the default specs."""

    def get_asset_spec(self, props: EvalAssetProps) -> dg.AssetSpec:
        spec = super().get_asset_spec(props)
        return spec.merge_attributes(owners=["team:support-ml"], tags={"tier": "gold"})


evals = evals_resource()
lineage_suite = EvalSuite(
    name="support_bot_lineage",
    source=AssetSource(support_tickets.key, load_support_tickets, key_field="id"),
    task=support_bot_with_prompt,
    scorers=["exact_match", "levenshtein", mentions_required_facts],
    thresholds={"levenshtein": 0.7},
    prompt="support_bot_system",
    backend=backend_of(evals),
    translator=ExampleTranslator(),
    automation_condition=dg.AutomationCondition.eager(),
    description="The support-bot rows read from the support_tickets asset, re-evaluated on every change.",
)
observe_prompt_job = dg.define_asset_job(
    "observe_support_bot_prompt_job",
    selection=dg.AssetSelection.assets(dg.AssetKey(["evals", "support_bot_lineage", "prompt"])),
    description="Observe the newest version of the support bot's prompt.",
)

release_job = dg.define_asset_job(
    "support_bot_release_job",
    selection=dg.AssetSelection.assets(release_approved).upstream(),
    description="Evaluate the support bot and approve the release when the gate passes.",
)

versions_job = dg.define_asset_job(
    "support_bot_versions_job",
    selection=dg.AssetSelection.assets(version_approved).upstream(),
    description="Evaluate one prompt version / release of the support bot and approve it when the gate passes.",
)

defs = dg.Definitions.merge(
    build_eval_suite_definitions(support_bot_suite),
    build_eval_suite_definitions(versioned_suite),
    build_eval_suite_definitions(llm_suite),
    build_eval_suite_definitions(lineage_suite),
    dg.Definitions(
        assets=[release_approved, version_approved, support_tickets],
        jobs=[release_job, versions_job, observe_prompt_job],
        sensors=[
            build_prompt_version_sensor(
                versioned_suite, prompt_slugs=["support_bot_system"], job_name=versions_job.name
            ),
            build_release_sensor(
                versioned_suite,
                repo=os.environ.get("SUPPORT_BOT_RELEASE_REPO", str(HERE)),
                tag_pattern="v*",
                job_name=versions_job.name,
            ),
            build_prompt_version_sensor(llm_suite, prompt_slugs=["support_bot_answer"]),
        ],
        schedules=[
            build_eval_schedule(support_bot_suite, job_name=release_job.name),
            build_eval_schedule(versioned_suite, job_name=versions_job.name),
            dg.ScheduleDefinition(job=observe_prompt_job, cron_schedule="*/15 * * * *"),
        ],
        resources={"evals": evals},
    ),
)
