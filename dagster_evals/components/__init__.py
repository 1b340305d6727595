"""Dagster components (YAML `defs.yaml`) of dagster-evals: `EvalSuiteComponent` and its scaffolder.

- `dagster_evals.components.eval_suite`: `EvalSuiteComponent`, one eval suite declared in YAML;
- `dagster_evals.components.fields`: the YAML form of the suite's fields;
- `dagster_evals.components.scaffolder`: `dg scaffold defs dagster_evals.EvalSuiteComponent <path>`.

The component is registered with `dg` as `dagster_evals.EvalSuiteComponent`. The former modules
`dagster_evals.component`, `dagster_evals.component_fields` and `dagster_evals.component_scaffolder` import
as these, with a DeprecationWarning.
"""

from dagster_evals.components.eval_suite import EvalSuiteComponent
from dagster_evals.components.scaffolder import EvalSuiteScaffolder, EvalSuiteScaffoldParams

__all__ = ["EvalSuiteComponent", "EvalSuiteScaffoldParams", "EvalSuiteScaffolder"]
