"""`dg scaffold defs dagster_evals.EvalSuiteComponent <name>`: a commented `defs.yaml` and sample rows.

The template is valid as written (`dg check yaml` and `dg check defs` pass) on the embedded local backend,
and runs once `task` names the application under test; its comments show LLM judges and their endpoint
(`judge_resource`), and how to point it at Braintrust or Keywords AI with env-var secrets.
"""

from __future__ import annotations

import json
import re
from typing import Literal

import dagster as dg
from dagster.components import Scaffolder, ScaffoldRequest
from pydantic import Field

SAMPLE_ROWS = [
    {"id": "greeting", "input": "hello", "expected": "HELLO"},
    {"id": "farewell", "input": "goodbye", "expected": "GOODBYE"},
]

TEMPLATE = """\
type: {type_name}

attributes:
  # Suite name: dataset name, asset keys evals/<name>/..., group and job names.
  name: {name}
  # Rows (.jsonl / .csv) relative to this folder; each row has input, expected, metadata, tags.
  # Or read them from an upstream asset (a dbt model, a table):
  #   source_asset: {{asset_key: analytics/support_tickets, loader: "my_project.rows:load_tickets"}}
  source: rows.jsonl
  key_field: id
  # The application under test, as "module:attribute" of a Python callable taking the row's input
  # (e.g. my_project/bot.py defining answer(question)); set it before `dg launch`. Without a task, the
  # suite evaluates platform functions only (Braintrust functions, Keywords AI evaluators).
  # task: my_project.bot:answer
  # Built-in scorers ({scorers}), LLM judges by name
  # (sql, factuality, closed_qa, summary, ...; they call the judge_resource below) or "module:attribute".
  scorers: [exact_match]
  #   scorers: [exact_match, sql]
  # Minimum mean score per scorer; each becomes a blocking asset check.
  # thresholds: {{exact_match: 0.9}}
  # max_regression: 0.05
  # The OpenAI-compatible endpoint of the LLM judges, bound under judge_resource_key (default "judge");
  # the key is read from the api_key_env variable at run time. Without it, judges read OPENAI_API_KEY
  # and OPENAI_BASE_URL (which ends in /v1).
  # judge_resource:
  #   api_key_env: OPENAI_API_KEY
  #   base_url: https://api.openai.com/v1
  #   model: gpt-4o-mini
  # The backend resource, bound under resource_key (default "evals"):
  resource:
    type: {backend}
    config: {config}
  #   type: braintrust
  #   config: {{api_key: "{{{{ env.BRAINTRUST_API_KEY }}}}", project: my-project}}
  #   type: keywordsai
  #   config: {{api_key: "{{{{ env.KEYWORDSAI_API_KEY }}}}"}}
  # The prompt under evaluation: an observable asset the eval report depends on.
  # prompt: my_prompt_slug
  # Shape the assets (owners, tags, group, automation); template vars: props.suite, props.role, props.backend.
  # translation:
  #   owners: [team:ml]
  #   automation_condition: "{{{{ dg.AutomationCondition.eager() }}}}"
  # partitions: {name}_versions          # one partition per prompt version / release
  # prompt_sensor: {{prompt_slugs: [my_prompt_slug]}}
  # release_sensor: {{repo: "https://github.com/acme/bot.git", tag_pattern: "v*"}}
  # schedule: {{cron_schedule: "0 2 * * *"}}
"""


class EvalSuiteScaffoldParams(dg.Model):
    """Options of `dg scaffold defs dagster_evals.EvalSuiteComponent <path>`."""

    backend: Literal["local", "braintrust", "keywordsai"] = Field(
        default="local", description="Backend resource to declare (secrets as env vars)."
    )
    name: str | None = Field(default=None, description="Suite name; default: the folder name.")


def _suite_name(folder: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", folder) or "evals"
    return name


class EvalSuiteScaffolder(Scaffolder[EvalSuiteScaffoldParams]):
    """Writes a commented `defs.yaml` and a two-row `rows.jsonl` sample."""

    @classmethod
    def get_scaffold_params(cls) -> type[EvalSuiteScaffoldParams]:
        return EvalSuiteScaffoldParams

    def scaffold(self, request: ScaffoldRequest[EvalSuiteScaffoldParams]) -> None:
        from dagster_evals.engine.scorers import BUILTIN_SCORERS

        params = request.params or EvalSuiteScaffoldParams()
        folder = request.target_path
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "local": "{}",
            "braintrust": '{api_key: "{{ env.BRAINTRUST_API_KEY }}"}',
            "keywordsai": '{api_key: "{{ env.KEYWORDSAI_API_KEY }}"}',
        }[params.backend]
        text = TEMPLATE.format(
            type_name=request.type_name,
            name=params.name or _suite_name(folder.name),
            scorers=", ".join(sorted(BUILTIN_SCORERS)),
            backend=params.backend,
            config=config,
        )
        (folder / "defs.yaml").write_text(text, encoding="utf-8")
        rows = folder / "rows.jsonl"
        if not rows.exists():
            rows.write_text("".join(json.dumps(r) + "\n" for r in SAMPLE_ROWS), encoding="utf-8")
