"""A fake Braintrust server built from Braintrust's published OpenAPI spec (see `openapi.py`, `spec/`).

`BraintrustFake` serves the REST API and the official SDK's write path over real HTTP; it never imports
the dagster-evals client.
"""

from dagster_evals.testing.braintrust.fake import BraintrustFake
from dagster_evals.testing.braintrust.store import parse_version, prettify_xact

__all__ = ["BraintrustFake", "parse_version", "prettify_xact"]
