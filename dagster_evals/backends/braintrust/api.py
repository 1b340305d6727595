"""The Braintrust wire shapes in one namespace, for `from dagster_evals.backends.braintrust import api`.

`models` holds projects, datasets, experiments and their events; `eval_models` (built on it) holds
`POST /v1/eval`, prompts and functions. Each is cited there from braintrustdata/braintrust-openapi
`openapi/spec.json` and the `braintrust` SDK.
"""

from dagster_evals.backends.braintrust.eval_models import *  # noqa: F403
from dagster_evals.backends.braintrust.models import *  # noqa: F403
