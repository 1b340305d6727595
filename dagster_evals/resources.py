"""The backend resources, named alike: `LocalResource`, `BraintrustResource`, `KeywordsAIResource`."""

from dagster_evals.backends.braintrust import BraintrustResource
from dagster_evals.backends.keywordsai import KeywordsAIResource
from dagster_evals.backends.local import LocalEvalResource


class LocalResource(LocalEvalResource):
    """The embedded local backend: datasets, evals and prompts in a SQLite file. Needs no API key.

    Same fields as `LocalEvalResource` (its former name, still importable with a deprecation warning).

    Examples:
        >>> import dagster as dg
        >>> from dagster_evals import LocalResource
        >>> defs = dg.Definitions(resources={"evals": LocalResource(path=":memory:")})
        >>> type(defs.resources["evals"]).__name__
        'LocalResource'
    """


__all__ = ["BraintrustResource", "KeywordsAIResource", "LocalResource"]
