"""Example code location: an eval suite for a small support bot, on the embedded local backend.

Runs with no keys and no network:

    dagster job execute -f definitions.py -j support_bot_eval_job
    dagster dev            # workspace.yaml loads this file

The job syncs data/support_bot.jsonl into a local dataset, pins a snapshot, runs the bot over every row,
scores it, and gates `release_approved` on the blocking checks.
"""

import sys
from pathlib import Path
from typing import Any

import dagster as dg

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from dagster_evals import EvalSuite, LocalEvalResource, build_eval_suite_definitions  # noqa: E402
from example.support_bot import answer  # noqa: E402


def support_bot_task(input: dict[str, Any]) -> str:
    """The application under test: answer the row's question."""
    return answer(input["question"])


def mentions_required_facts(output: str, metadata: dict[str, Any]) -> float | None:
    """Share of the row's `must_mention` facts that appear in the answer (None when the row lists none)."""
    facts = metadata.get("must_mention") or []
    if not facts:
        return None
    return sum(fact.lower() in output.lower() for fact in facts) / len(facts)


support_bot_suite = EvalSuite(
    name="support_bot",
    source=HERE / "data" / "support_bot.jsonl",
    key_field="id",
    task=support_bot_task,
    scorers=["exact_match", "levenshtein", mentions_required_facts],
    thresholds={"levenshtein": 0.7, "mentions_required_facts": 0.75},
    max_regression=0.05,
    max_errored_rows=0,
    max_concurrency=8,
    tags=["example"],
    description="Customer-support questions with the answers the bot should give.",
)


@dg.asset(
    deps=[support_bot_suite.eval_report_key],
    group_name="support_bot",
    description="Marks the support bot as releasable. Runs only when every blocking eval check passed.",
    kinds={"evals"},
)
def release_approved(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.log.info("all blocking eval checks passed: the support bot is approved for release")
    return dg.MaterializeResult(metadata={"approved": True})


release_job = dg.define_asset_job(
    "support_bot_release_job",
    selection=dg.AssetSelection.assets(release_approved).upstream(),
    description="Evaluate the support bot and approve the release when the gate passes.",
)

defs = dg.Definitions.merge(
    build_eval_suite_definitions(support_bot_suite),
    dg.Definitions(
        assets=[release_approved],
        jobs=[release_job],
        resources={"evals": LocalEvalResource()},
    ),
)
