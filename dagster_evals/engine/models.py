"""Platform-neutral models shared by every platform, the runner and the Dagster objects."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from dagster_evals.engine.limits import MAX_CONCURRENCY_LIMIT, MAX_TRIAL_COUNT

PlatformName = Literal["local", "braintrust", "keywordsai"]


# One encoder for every call: `json.dumps` with these options would build a new one each time.
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
# The C encoder under it, made once: `JSONEncoder.encode` makes a new one (with a fresh table of the
# containers it is inside, against circular references) on every call, most of the cost of encoding a small
# value. This one has no such table: a value that contains itself ends in a RecursionError instead.
_make_c_encoder = getattr(json.encoder, "c_make_encoder", None)  # json's C accelerator, where it is built
# Its arguments: no circular-reference table, `default`, the string encoder, indent, key and item
# separators, sort_keys, skipkeys, allow_nan (as `_CANONICAL_ENCODER`).
_C_ENCODER = (
    None
    if _make_c_encoder is None
    else _make_c_encoder(None, str, json.encoder.encode_basestring, None, ":", ",", True, False, True)
)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form every digest is computed over.

    Example:
        >>> canonical_json({"b": 0.5, "a": [1, None], "c": "é"})
        '{"a":[1,null],"b":0.5,"c":"é"}'
    """
    if type(value) is str:
        return json.encoder.encode_basestring(value)
    if _C_ENCODER is None:
        return _CANONICAL_ENCODER.encode(value)
    return "".join(_C_ENCODER(value, 0))


def content_hash(input: Any, expected: Any, metadata: dict[str, Any], tags: list[str]) -> str:
    """Digest of a row's content; equal content always gives the same hash."""
    payload = canonical_json({"input": input, "expected": expected, "metadata": metadata, "tags": tags})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetRow(_Model):
    """One curated test case: an input, optionally the expected output, metadata and tags.

    `id` is derived from the content (or from a user key field), so re-reading the same source always
    produces the same ids and a sync can be repeated without duplicating anything.
    """

    id: str
    input: Any
    expected: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    content_hash: str

    @classmethod
    def build(
        cls,
        input: Any,
        expected: Any = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        id: str | None = None,
    ) -> DatasetRow:
        """Make a row, hashing its content; `id` defaults to a prefix of the content hash."""
        metadata = dict(metadata or {})
        tags = list(tags or [])
        digest = content_hash(input, expected, metadata, tags)
        return cls(
            id=id if id is not None else digest[:32],
            input=input,
            expected=expected,
            metadata=metadata,
            tags=tags,
            content_hash=digest,
        )


class RunRow:
    """What an eval run reads of a dataset row: its id, input, expected output and metadata.

    A backend that reads a snapshot's rows from its own store (already validated when they were written)
    hands them to the runner as `RunRow`s rather than `DatasetRow`s: one object per row instead of a model
    with its field set, tags list and validation. Every row the runner makes during a run is garbage for the
    collector to track; at concurrency 200 the difference shows in throughput (`benchmarks/RESULTS.md`).
    The runner takes either (`EvalRow`).

    Example:
        >>> row = RunRow("r1", "What is 2+2?", "4", {"topic": "math"})
        >>> row.id, row.input, row.expected, row.metadata
        ('r1', 'What is 2+2?', '4', {'topic': 'math'})
    """

    __slots__ = ("expected", "id", "input", "metadata")

    def __init__(self, id: str, input: Any, expected: Any, metadata: dict[str, Any]) -> None:
        self.id = id
        self.input = input
        self.expected = expected
        self.metadata = metadata

    def __repr__(self) -> str:
        return f"RunRow(id={self.id!r})"


# A row as the runner takes it: a `DatasetRow`, or a `RunRow` read from a backend's own store.
EvalRow = DatasetRow | RunRow


class DatasetRef(_Model):
    """A dataset on a platform."""

    platform: PlatformName
    id: str
    name: str
    project: str | None = None
    url: str | None = None


class Snapshot(_Model):
    """An immutable, pinned version of a dataset's rows."""

    dataset: DatasetRef
    version: str
    row_count: int
    digest: str
    created_at: datetime = Field(default_factory=utcnow)


class SyncResult(_Model):
    """What a dataset sync did: counts of rows per outcome and the version it left behind."""

    dataset: DatasetRef
    version: str
    rows_total: int
    added: int
    updated: int
    removed: int
    unchanged: int
    rows_sent: int
    requests_sent: int = 0


class PromptVersion(_Model):
    """One version of a prompt managed on a platform."""

    platform: PlatformName
    project: str | None
    prompt_id: str
    slug: str
    version: str
    created_at: datetime | None = None
    content: dict[str, Any] = Field(default_factory=dict)

    @property
    def partition_key(self) -> str:
        """Key used for the prompt-version dynamic partition."""
        return f"{self.slug}@{self.version}"


class RowResult(_Model):
    """The outcome of one trial of the task on one dataset row, with its scores."""

    row_id: str
    trial: int = 0
    input: Any = None
    expected: Any = None
    output: Any = None
    scores: dict[str, float | None] = Field(default_factory=dict)
    scorer_errors: dict[str, str] = Field(default_factory=dict)
    # Why a scorer gave its score, when it said (an LLM judge's rationale), per scorer name.
    reasons: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    latency_s: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Tokens, cost and latency of the model calls made for this row, per scope (see dagster_evals.engine.usage).
    usage: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.scorer_errors


class ScoreSummary(_Model):
    """Aggregate of one scorer over an eval, compared with the baseline when there is one."""

    name: str
    mean: float | None
    count: int
    errors: int = 0
    # Results where the scorer returned None: skipped by design, neither in `mean` nor in `errors`.
    skipped: int = 0
    baseline_mean: float | None = None
    diff: float | None = None
    improvements: int = 0
    regressions: int = 0


EvalStatus = Literal["pending", "running", "completed", "failed"]


class EvalReport(_Model):
    """An eval run over a snapshot: per-scorer summary, counts, timings, baseline comparison and links."""

    id: str
    name: str
    platform: PlatformName
    status: EvalStatus = "completed"
    dataset: DatasetRef | None = None
    dataset_version: str | None = None
    rows_in_snapshot: int = 0
    trial_count: int = 1
    rows_scored: int = 0
    rows_errored: int = 0
    task_errors: int = 0
    scorer_errors: int = 0
    scores: dict[str, ScoreSummary] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    baseline_id: str | None = None
    baseline_name: str | None = None
    url: str | None = None
    project_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    # Model usage summed over the report and per scope (see dagster_evals.engine.usage.report_usage).
    usage: dict[str, Any] = Field(default_factory=dict)


class PlatformFunction(_Model):
    """A task or scorer that runs on the platform itself (a Braintrust function / prompt, a Keywords AI
    evaluator), referenced instead of a Python callable. `spec` is the platform's own reference object."""

    platform: PlatformName
    name: str
    spec: dict[str, Any] = Field(default_factory=dict)


class EvalRequest(BaseModel):
    """Everything a platform needs to run an eval over a pinned snapshot."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    name: str
    snapshot: Snapshot
    task: Any
    scorers: list[Any]
    trial_count: int = Field(default=1, ge=1, le=MAX_TRIAL_COUNT)
    max_concurrency: int | None = Field(default=10, ge=1, le=MAX_CONCURRENCY_LIMIT)
    row_timeout_s: float | None = Field(default=None, gt=0)
    # "auto": the row timeout when set, at most 300 s (see dagster_evals.engine.timeouts).
    scorer_timeout_s: Annotated[float, Field(gt=0)] | Literal["auto"] | None = "auto"
    isolation: Literal["thread", "process"] = "thread"
    baseline_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    prompt: PromptVersion | None = None
    repo_info: dict[str, Any] | None = None
    # Where a Python task's scored rows are checkpointed and found again on resume (a
    # `dagster_evals.engine.runner.Checkpoints`, e.g. `dagster_evals.engine.checkpoints.RowCheckpoints`); None: none.
    checkpoints: Any = Field(default=None, exclude=True)
    # The same token on a request sent again (a retried task that resumes from `checkpoints`) continues the
    # experiment the earlier try started on platforms that create one per run (Braintrust); None: a new one.
    run_token: str | None = Field(default=None, min_length=1, max_length=128)

    #: The run settings an eval request takes from what declares the eval: an `EvalSuite` (Dagster) or a
    #: `RunEvalOperator` (Airflow) holds each of them under the same name.
    RUN_SETTINGS: ClassVar[tuple[str, ...]] = (
        "task",
        "scorers",
        "trial_count",
        "max_concurrency",
        "row_timeout_s",
        "scorer_timeout_s",
        "isolation",
        "tags",
    )

    @classmethod
    def with_run_settings_of(cls, declaration: Any, **fields: Any) -> EvalRequest:
        """A request with the `RUN_SETTINGS` of `declaration` (the suite or operator) and the other `fields`.

        Examples:
            >>> from types import SimpleNamespace
            >>> from dagster_evals.engine.models import DatasetRef, EvalRequest, Snapshot
            >>> declared = SimpleNamespace(task=str.upper, scorers=["exact_match"], trial_count=2,
            ...     max_concurrency=4, row_timeout_s=None, scorer_timeout_s="auto", isolation="thread", tags=())
            >>> snapshot = Snapshot(dataset=DatasetRef(platform="local", id="d", name="d"), version="1",
            ...     row_count=0, digest="")
            >>> EvalRequest.with_run_settings_of(declared, name="run", snapshot=snapshot).trial_count
            2
        """
        settings = {name: getattr(declaration, name) for name in cls.RUN_SETTINGS}
        settings["scorers"], settings["tags"] = list(settings["scorers"]), list(settings["tags"])
        return cls(**settings, **fields)
