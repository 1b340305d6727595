"""What a Keywords AI server was seen to accept where the published sources disagree, remembered by one
platform (one resource's connection, e.g. for a run): learnt again by the next, so a server that changes is
followed, at the cost of a few requests.

- Dataset-log metadata filters. The datasets workflow removes logs with
  `{"filters": {"metadata.custom_identifier": ...}}` (the seed workflow page, "Delete logs"), while the
  filters reference spells custom metadata `metadata__<key>`
  (Keywords-AI/docs@71815dd53e0a88e37d8fe3308b8f9635ebf6b850:apis/observe/logs/logs-list-endpoint.mdx). A
  spelling the server does not honour is taken as an unknown field and matches nothing, silently: a removal
  would remove nothing and the wait after it would see nothing left, and a listing would report rows
  missing that are there. So before the first metadata filter, a log known to be there is counted with
  `metadata.<key>`, then with `metadata__<key>`: the dataset's first log, when it carries the key, else
  the values the caller expects to match. The first spelling that matches is remembered (a few requests,
  once per platform). While nothing can be matched (no log carries the key yet) nothing is remembered and
  `metadata.<key>` is used.
- `eval-reports/create`'s evaluators: `evaluator_slugs` or `evaluator_ids`, whichever the server accepted
  (see `eval_runs.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from dagster_evals.backends.keywordsai.client import KeywordsAIClient
from dagster_evals.backends.keywordsai.models import where

MetadataSyntax = Literal["dotted", "double_underscore"]
METADATA_SYNTAXES: tuple[MetadataSyntax, ...] = ("dotted", "double_underscore")
logger = logging.getLogger("dagster_evals.keywordsai")


def metadata_field(key: str, syntax: MetadataSyntax) -> str:
    """The filter field of metadata `key` in `syntax`: `metadata.<key>` or `metadata__<key>`."""
    return f"metadata.{key}" if syntax == "dotted" else f"metadata__{key}"


class ServerShapes:
    """The shapes one Keywords AI server accepts, as far as they were seen (see the module docstring)."""

    def __init__(self) -> None:
        self.metadata_syntax: MetadataSyntax | None = None
        self.evaluator_field: str | None = None  # "evaluator_slugs" or "evaluator_ids", once one worked

    def metadata_field(self, key: str) -> str:
        """The filter field of `key` in the spelling known to work (`metadata.<key>` until one is known)."""
        return metadata_field(key, self.metadata_syntax or "dotted")

    def metadata_field_for(
        self, client: KeywordsAIClient, dataset_id: str, key: str, values: Sequence[str]
    ) -> str:
        """The filter field of `key` for logs of `dataset_id` expected to hold some of `values`: the
        remembered spelling, else the first that matches any of them (remembered from then on)."""
        if self.metadata_syntax is not None:
            return self.metadata_field(key)
        first = client.dataset_logs_page(dataset_id, page_size=1).results
        present = (first[0].metadata or {}).get(key) if first else None
        probes = [[present]] if isinstance(present, str) else []
        if values:
            probes.append(list(values))
        for probe in probes:
            for syntax in METADATA_SYNTAXES:
                field = metadata_field(key, syntax)
                if client.count_dataset_logs(dataset_id, filters=where(field, "in", probe)) > 0:
                    if syntax != "dotted":
                        logger.info(
                            "Keywords AI matched no dataset log with metadata.%s; metadata__%s matches: using it",
                            key, key,
                        )  # fmt: skip
                    self.metadata_syntax = syntax
                    return field
        return self.metadata_field(key)
