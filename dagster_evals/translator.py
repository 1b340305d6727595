"""`DagsterEvalsTranslator`: how an eval suite's assets look in Dagster (keys, groups, kinds, owners, …).

Every asset of a suite — the dataset, its pinned snapshot, the eval report and the observed prompt — is
described by one `AssetSpec` that the translator returns for an `EvalAssetProps` (suite, backend, role).
Subclass it and override `get_asset_spec` to change any of it, as with dagster-fivetran or dagster-dbt:

    import dagster as dg
    from dagster_evals import DagsterEvalsTranslator, EvalAssetProps, EvalSuite, build_eval_suite_definitions

    class TeamTranslator(DagsterEvalsTranslator):
        def get_asset_spec(self, props: EvalAssetProps) -> dg.AssetSpec:
            spec = super().get_asset_spec(props)
            return spec.replace_attributes(group_name="llm_quality").merge_attributes(owners=["team:ml"])

    suite = EvalSuite(name="bot", source="rows.jsonl", task=str.upper, scorers=["exact_match"])
    defs = build_eval_suite_definitions(suite, translator=TeamTranslator())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import dagster as dg

from dagster_evals.engine.errors import ConfigError, InputError
from dagster_evals.engine.models import DatasetRow
from dagster_evals.engine.sources import as_source, row_from_mapping

if TYPE_CHECKING:
    from dagster_evals.suite import EvalSuite

AssetRole = Literal["dataset", "snapshot", "eval_report", "prompt"]
ASSET_ROLES: tuple[AssetRole, ...] = ("dataset", "snapshot", "eval_report", "prompt")
BACKENDS = ("local", "braintrust", "keywordsai")
KIND = "evals"
KIND_TAG_PREFIX = "dagster/kind/"
# The kind of a suite whose LLM judges or prompt task call an OpenAI-compatible endpoint (the UI has its icon).
MODEL_KIND = "openai"


def calls_models(suite: EvalSuite) -> bool:
    """Whether the suite's scorers include an LLM judge or its task is a `prompt_task()`.

    Example:
        >>> from dagster_evals import EvalSuite
        >>> calls_models(EvalSuite(name="b", source="r.jsonl", task=str.upper, scorers=["factuality"]))
        True
        >>> calls_models(EvalSuite(name="b", source="r.jsonl", task=str.upper, scorers=["exact_match"]))
        False
    """
    from dagster_evals.judges.catalog import JUDGE_NAMES
    from dagster_evals.judges.judge import Judge

    if getattr(suite.task, "model_kind", None) == MODEL_KIND:
        return True
    for scorer in suite.scorers:
        if isinstance(scorer, str) and scorer in JUDGE_NAMES:
            return True
        fn = getattr(scorer, "fn", None)
        if isinstance(getattr(fn, "__self__", None), Judge):
            return True
    return False


def source_label(described: str, base: Path | None = None) -> str:
    """How a suite's source shows in metadata: a file path relative to the project (the working
    directory) when it is inside it, else the file's name; anything else as described.

    Example:
        >>> source_label("/home/ci/project/data/rows.jsonl", Path("/home/ci/project"))
        'data/rows.jsonl'
        >>> source_label("/mnt/shared/rows.jsonl", Path("/home/ci/project"))
        'rows.jsonl'
    """
    path = Path(described)
    if not path.is_absolute():
        return described
    try:
        return path.relative_to(base or Path.cwd()).as_posix()
    except ValueError:
        return path.name


@dataclass(frozen=True)
class EvalAssetProps:
    """What the translator knows about one asset of a suite.

    Args:
        suite: The suite the asset belongs to.
        backend: `local`, `braintrust` or `keywordsai` (None when the suite does not say).
        role: `dataset`, `snapshot`, `eval_report` or `prompt` (the prompt under evaluation).
    """

    suite: EvalSuite
    backend: str | None
    role: AssetRole


@dataclass(frozen=True)
class AssetSource:
    """Rows read from an existing Dagster asset (a dbt model, a warehouse table, …).

    The suite's dataset asset then depends on `asset_key`, so the lineage graph runs from the upstream
    table to the eval report. `loader` returns the rows (dicts with `input`, `expected`, …) when the
    dataset asset runs; it is any callable, e.g. a query against the table the asset materializes.

    Examples:
        >>> source = AssetSource("analytics/support_tickets", lambda: [{"input": "hi", "expected": "HI"}])
        >>> source.asset_key
        AssetKey(['analytics', 'support_tickets'])
        >>> [row.input for _, row in source.read()]
        ['hi']
    """

    asset_key: dg.AssetKey | str | Sequence[str]
    loader: Callable[[], Iterable[Any]]
    key_field: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "asset_key", as_asset_key(self.asset_key))
        if not callable(self.loader):
            raise ConfigError(f"AssetSource {self.describe()}: loader must be a callable returning rows")

    @property
    def key(self) -> dg.AssetKey:
        key = self.asset_key
        assert isinstance(key, dg.AssetKey)
        return key

    def describe(self) -> str:
        """`asset <key>`, as errors and metadata name the source."""
        return f"asset {as_asset_key(self.asset_key).to_user_string()}"

    def read(self) -> Iterator[tuple[str, DatasetRow]]:
        """Every row the loader returns, with its position; an `InputError` when the loader returns None or a bad
        row."""
        records = self.loader()
        if records is None:
            raise InputError(f"{self.describe()}: the loader returned None instead of rows")
        for index, record in enumerate(records, start=1):
            where = f"{self.describe()} row {index}"
            yield where, row_from_mapping(record, where, self.key_field)


def as_asset_key(value: dg.AssetKey | str | Sequence[str]) -> dg.AssetKey:
    """An `AssetKey` from a key, a `/`-separated string or a sequence of parts."""
    if isinstance(value, dg.AssetKey):
        return value
    if isinstance(value, str):
        return dg.AssetKey.from_user_string(value)
    return dg.AssetKey(list(value))


def backend_of(resource: Any) -> str | None:
    """The backend name of an eval resource (`local`, `braintrust`, `keywordsai`), or None.

    Examples:
        >>> from dagster_evals import LocalResource
        >>> backend_of(LocalResource(path=":memory:"))
        'local'
    """
    from dagster_evals.backends.braintrust import BraintrustResource
    from dagster_evals.backends.keywordsai import KeywordsAIResource
    from dagster_evals.backends.local import LocalEvalResource

    for cls, name in (
        (LocalEvalResource, "local"),
        (BraintrustResource, "braintrust"),
        (KeywordsAIResource, "keywordsai"),
    ):
        if isinstance(resource, cls):
            return name
    return None


def _role_key(suite: EvalSuite, role: AssetRole) -> dg.AssetKey:
    if role == "dataset":
        return suite.dataset_key
    if role == "snapshot":
        return suite.snapshot_key
    if role == "eval_report":
        return suite.eval_report_key
    return dg.AssetKey([*suite.prefix, "prompt"])


class DagsterEvalsTranslator:
    """Turns the props of each asset of an eval suite into its `AssetSpec`.

    Defaults: keys `evals/<suite>/{dataset,dataset_snapshot,eval_report,prompt}` (or the suite's
    `key_prefix`), group = the suite's `group_name` or name, kinds `{"evals", <backend>}` (plus `openai` on
    the eval report of a suite with LLM judges or a `prompt_task()`), description: the suite's
    `description` on the eval report, a generic one elsewhere, the suite's
    `owners`, `asset_tags`, `code_version` and `automation_condition` (the latter on the dataset, snapshot
    and report, not on the observed prompt), and lineage: dataset ← upstream asset (an `AssetSource`),
    snapshot ← dataset, report ← snapshot (+ prompt when the suite names one).

    Override `get_asset_spec` in a subclass to change any attribute; call `super()` and use
    `spec.replace_attributes(...)` / `spec.merge_attributes(...)`.

    Examples:
        >>> from dagster_evals import EvalSuite
        >>> suite = EvalSuite(name="bot", source="rows.jsonl", task=str.upper, scorers=["exact_match"],
        ...                   backend="braintrust")
        >>> spec = DagsterEvalsTranslator().get_asset_spec(EvalAssetProps(suite, "braintrust", "eval_report"))
        >>> spec.key.to_user_string(), sorted(spec.kinds)
        ('evals/bot/eval_report', ['braintrust', 'evals'])
    """

    def get_asset_spec(self, props: EvalAssetProps) -> dg.AssetSpec:
        """The spec of one asset of a suite."""
        suite = props.suite
        role = props.role
        if role not in ASSET_ROLES:
            raise ConfigError(f"unknown asset role {role!r}; expected one of {', '.join(ASSET_ROLES)}")
        kinds = {KIND, props.backend} if props.backend else {KIND}
        if role == "eval_report" and calls_models(suite):
            kinds.add(MODEL_KIND)
        deps: list[dg.AssetKey] = []
        metadata: dict[str, Any] = {}
        source = suite.source
        if role == "dataset":
            described = as_source(source, suite.key_field)
            label = source_label(described.describe()) if not isinstance(source, AssetSource) else None
            description = (
                f"Curated rows of eval suite {suite.name!r}, read from {label or described.describe()}."
            )
            metadata["source"] = label or described.describe()
            if isinstance(source, AssetSource):
                deps.append(source.key)
        elif role == "snapshot":
            description = f"Pinned version of the {suite.name!r} dataset that evals run against."
            deps.append(suite.dataset_key)
        elif role == "eval_report":
            description = suite.description or (
                f"Eval report of suite {suite.name!r}: per-scorer scores over the pinned dataset snapshot."
            )
            deps.append(suite.snapshot_key)
            if suite.prompt is not None:
                deps.append(_role_key(suite, "prompt"))
        else:
            description = (
                f"Prompt {suite.prompt!r} evaluated by suite {suite.name!r}, observed on "
                f"{props.backend or 'the eval platform'}; its data version is the prompt version."
            )
        return dg.AssetSpec(
            key=_role_key(suite, role),
            deps=deps,
            description=description,
            group_name=suite.group_name or suite.name,
            kinds=kinds,
            owners=list(suite.owners),
            tags=dict(suite.asset_tags),
            code_version=suite.code_version if role != "prompt" else None,
            automation_condition=suite.automation_condition if role != "prompt" else None,
            metadata=metadata,
        )


def suite_asset_spec(suite: EvalSuite, role: AssetRole) -> dg.AssetSpec:
    """The spec of one asset of `suite`, from the suite's translator (default `DagsterEvalsTranslator`)."""
    translator = suite.translator or DagsterEvalsTranslator()
    spec = translator.get_asset_spec(EvalAssetProps(suite=suite, backend=suite.backend, role=role))
    expected = _role_key(suite, role)
    if spec.key != expected:
        raise ConfigError(
            f"suite {suite.name!r}: the translator changed the {role} key to {spec.key.to_user_string()!r}; "
            f"a suite's keys are set with EvalSuite(key_prefix=...) (default evals/{suite.name}) so that "
            "snapshots, baselines and sensors find the same assets"
        )
    return spec


class AssetSpecKwargs(TypedDict):
    """The `@dg.asset` arguments carrying an `AssetSpec`'s attributes."""

    key: dg.AssetKey
    deps: list[dg.AssetDep]
    description: str | None
    group_name: str | None
    kinds: set[str]
    owners: list[str]
    tags: dict[str, str]
    code_version: str | None
    automation_condition: dg.AutomationCondition | None
    metadata: dict[str, Any]


def spec_kwargs(spec: dg.AssetSpec) -> AssetSpecKwargs:
    """The `@dg.asset` arguments that carry an `AssetSpec`'s attributes (kinds kept apart from tags)."""
    return AssetSpecKwargs(
        **{
            "key": spec.key,
            "deps": list(spec.deps),
            "description": spec.description,
            "group_name": spec.group_name,
            "kinds": set(spec.kinds),
            "owners": list(spec.owners),
            "tags": {k: v for k, v in spec.tags.items() if not k.startswith(KIND_TAG_PREFIX)},
            "code_version": spec.code_version,
            "automation_condition": spec.automation_condition,
            "metadata": dict(spec.metadata),
        }
    )
