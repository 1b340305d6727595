"""Tokens, cost and latency of the model calls an eval run makes, and its cost budget.

Every call through a judge client (`dagster_evals.judges`) or a prompt-version task is recorded against
the row being run and the *scope* making it: a scorer's name, or `task`. The runner collects a row's usage
on its `RowResult.usage`; the report builder sums it per report and per scope. Cost comes from the
`genai-prices` table when it knows the model, or from a price override (`price_per_million_input_usd` /
`price_per_million_output_usd` on the judge endpoint); other calls count as `unpriced_calls`.

A task that calls a model itself (the `openai` SDK, or any OpenAI-compatible HTTP API) is metered by
sending its calls through `metered_http_client()` / `metered_async_http_client()`, or by passing each
answer to `record_answer`. Sync and async tasks alike: a sync task runs in a thread that sees the row's
context (`dagster_evals.engine.isolation.DaemonThreads`).

A run's budget (`max_cost_usd` on a judge or prompt task, or `DAGSTER_EVALS_MAX_COST_USD`) stops the run
cleanly once spent: rows already in flight finish, every later row is recorded as not run. With a budget,
an unpriced call stops the run the same way: its cost is unknown, so it never counts as free.

Example:
    .. code-block:: python

        import openai
        from dagster_evals.engine.usage import metered_http_client

        client = openai.OpenAI(http_client=metered_http_client())

        def answer(input: str) -> str:  # a sync task: its tokens and cost land under `task`
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": input}]
            )
            return reply.choices[0].message.content or ""
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

TASK_SCOPE = "task"
BUDGET_ENV = "DAGSTER_EVALS_MAX_COST_USD"
NOT_RUN_PREFIX = "not run: "
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")

_row: contextvars.ContextVar[RowUsage | None] = contextvars.ContextVar(
    "dagster_evals_row_usage", default=None
)
_run: contextvars.ContextVar[RunMeter | None] = contextvars.ContextVar(
    "dagster_evals_run_meter", default=None
)
_scope: contextvars.ContextVar[str] = contextvars.ContextVar("dagster_evals_usage_scope", default=TASK_SCOPE)


@lru_cache(maxsize=512)
def cost_usd(
    model: str, prompt_tokens: int, completion_tokens: int, api_url: str | None = None
) -> float | None:
    """USD price of one call from the genai-prices table, or None when it does not know the model."""
    from genai_prices import Usage, calc_price

    usage = Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens)
    for url in (api_url, None) if api_url else (None,):
        try:
            return float(calc_price(usage, model_ref=model, provider_api_url=url).total_price)
        except LookupError:
            continue
    return None


@dataclass
class ScopeUsage:
    """Usage of one scope (a scorer or the task) on one row, or summed over a report."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    calls: int = 0
    cache_hits: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    latencies_s: list[float] = field(default_factory=list)

    def merge(self, other: dict[str, Any]) -> None:
        for name in (*TOKEN_FIELDS, "calls", "cache_hits", "unpriced_calls"):
            setattr(self, name, getattr(self, name) + int(other.get(name, 0)))
        self.cost_usd += float(other.get("cost_usd", 0.0))
        self.latencies_s.extend(other.get("latencies_s", ()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "cost_usd": self.cost_usd,
            "unpriced_calls": self.unpriced_calls,
            "latencies_s": list(self.latencies_s),
        }


class RowUsage:
    """The calls made while one row (one trial) runs, per scope."""

    def __init__(self) -> None:
        self.scopes: dict[str, ScopeUsage] = {}
        self._lock = threading.Lock()

    def add(self, scope: str, **values: Any) -> None:
        with self._lock:
            self.scopes.setdefault(scope, ScopeUsage()).merge(values)

    def as_dict(self) -> dict[str, Any]:
        return {"scopes": {name: s.as_dict() for name, s in self.scopes.items()}} if self.scopes else {}


class RunMeter:
    """Money spent by one run, against an optional budget.

    With a budget, a call that cannot be priced (a model the price table does not know, and no price
    override) stops the run like a spent budget: its cost is unknown, so it never counts as free.
    """

    def __init__(self, max_cost_usd: float | None = None) -> None:
        self.max_cost_usd = max_cost_usd
        self.spent_usd = 0.0
        self.unpriced_model: str | None = None
        self._lock = threading.Lock()

    def add(self, cost: float) -> None:
        with self._lock:
            self.spent_usd += cost

    def add_unpriced(self, model: str | None) -> None:
        """Record a call whose cost is unknown; with a budget, no further row starts."""
        with self._lock:
            if self.unpriced_model is None:
                self.unpriced_model = model or "(no model named)"

    @property
    def exhausted(self) -> bool:
        if self.max_cost_usd is None:
            return False
        return self.unpriced_model is not None or self.spent_usd >= self.max_cost_usd

    def stop_message(self) -> str:
        if self.unpriced_model is not None and self.spent_usd < (self.max_cost_usd or 0.0):
            return (
                f"{NOT_RUN_PREFIX}a call to model {self.unpriced_model!r} could not be priced (the "
                f"genai-prices table does not know it), so the run's cost budget max_cost_usd="
                f"{self.max_cost_usd:g} cannot be kept (${self.spent_usd:.6f} spent on priced calls); set "
                "price_per_million_input_usd and price_per_million_output_usd on the judge endpoint "
                "(OpenAIJudgeResource), or set max_cost_usd to None"
            )
        return (
            f"{NOT_RUN_PREFIX}the run's cost budget max_cost_usd={self.max_cost_usd:g} was reached "
            f"(${self.spent_usd:.6f} spent); raise max_cost_usd or set it to None to score every row"
        )


def budget_for(task: Any, scorers: Iterable[Any]) -> float | None:
    """The smallest budget of the task, the scorers (their `run_budget()`), or `DAGSTER_EVALS_MAX_COST_USD`."""
    budgets: list[float] = []
    raw = os.environ.get(BUDGET_ENV)
    if raw:
        budgets.append(float(raw))
    for item in (task, *(getattr(s, "fn", s) for s in scorers)):
        owner = getattr(item, "__self__", item)
        hook = getattr(owner, "run_budget", None)
        value = hook() if callable(hook) else None
        if isinstance(value, int | float):
            budgets.append(float(value))
    return min(budgets) if budgets else None


def current_run() -> RunMeter | None:
    return _run.get()


def set_run(meter: RunMeter) -> None:
    """Make `meter` the run meter of the current context (call inside the run's event loop task)."""
    _run.set(meter)


@contextlib.contextmanager
def row_scope() -> Iterator[RowUsage]:
    """Collect the usage of the calls made inside the block (one row trial)."""
    usage = RowUsage()
    token = _row.set(usage)
    try:
        yield usage
    finally:
        _row.reset(token)


@contextlib.contextmanager
def scope(name: str) -> Iterator[None]:
    """Attribute the calls made inside the block to `name` (a scorer name, or `task`)."""
    token = _scope.set(name)
    try:
        yield
    finally:
        _scope.reset(token)


def record_call(
    model: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    latency_s: float,
    api_url: str | None = None,
    price_per_million: tuple[float, float] | None = None,
) -> None:
    """Record one model call against the current row, scope and run.

    `price_per_million` (USD per million input and output tokens) prices the call instead of the
    genai-prices table; without it, a model the table does not know is an unpriced call.
    """
    if price_per_million is not None:
        cost: float | None = (
            prompt_tokens * price_per_million[0] + completion_tokens * price_per_million[1]
        ) / 1e6
    else:
        cost = cost_usd(model, prompt_tokens, completion_tokens, api_url) if model else None
    row = _row.get()
    if row is not None:
        row.add(
            _scope.get(),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            calls=1,
            cost_usd=cost or 0.0,
            unpriced_calls=0 if cost is not None else 1,
            latencies_s=[latency_s],
        )
    run = _run.get()
    if run is not None and cost:
        run.add(cost)
    elif run is not None and cost is None:
        run.add_unpriced(model)


def record_answer(
    answer: Any,
    latency_s: float = 0.0,
    api_url: str | None = None,
    model: str | None = None,
    *,
    require_usage: bool = True,
    price_per_million: tuple[float, float] | None = None,
) -> bool:
    """Record one OpenAI-compatible answer (a JSON dict, or an `openai` SDK object) by its `usage` and
    `model`: chat completions and embeddings (`prompt_tokens` / `completion_tokens`) or responses
    (`input_tokens` / `output_tokens`). An answer without `usage` is recorded as a call with no tokens only
    when `require_usage` is False. Returns whether a call was recorded.

    The usage shapes are openai-python@v3.57.0 `types/completion_usage.py`,
    `types/create_embedding_response.py` (`Usage`) and `types/responses/response_usage.py`.
    """
    if not isinstance(answer, dict):
        dump = getattr(answer, "model_dump", None)
        answer = dump() if callable(dump) else None
    if not isinstance(answer, dict):
        return False
    raw = answer.get("usage")
    if not isinstance(raw, dict):
        if require_usage:
            return False
        raw = {}
    prompt = int(raw.get("prompt_tokens", raw.get("input_tokens", 0)) or 0)
    completion = int(raw.get("completion_tokens", raw.get("output_tokens", 0)) or 0)
    name = answer.get("model") or model
    record_call(str(name) if name else None, prompt, completion, latency_s, api_url, price_per_million)
    return True


_STARTED = "dagster_evals.started"


def _on_request(request: Any) -> None:
    request.extensions[_STARTED] = time.perf_counter()


def _record_http(response: Any) -> None:
    """Record a JSON answer's usage; streamed (`text/event-stream`) and error answers are left alone."""
    if response.status_code >= 400 or "json" not in response.headers.get("content-type", ""):
        return
    try:
        answer = json.loads(response.content)
    except ValueError:
        return
    started = response.request.extensions.get(_STARTED)
    latency = time.perf_counter() - started if started is not None else 0.0
    url = response.request.url
    record_answer(answer, latency, f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}")


async def _on_request_async(request: Any) -> None:
    _on_request(request)


def _hooks(kwargs: dict[str, Any], on_request: Any, on_response: Any) -> dict[str, list[Any]]:
    hooks = {name: list(fns) for name, fns in (kwargs.pop("event_hooks", None) or {}).items()}
    hooks.setdefault("request", []).insert(0, on_request)
    hooks.setdefault("response", []).append(on_response)
    return hooks


def metered_http_client(**kwargs: Any) -> Any:
    """An `httpx.Client` that records the usage of every OpenAI-compatible JSON answer against the row and
    scope being run, e.g. `openai.OpenAI(http_client=metered_http_client())`. `kwargs` go to `httpx.Client`."""
    import httpx

    def on_response(response: httpx.Response) -> None:
        if "json" in response.headers.get("content-type", ""):
            response.read()
            _record_http(response)

    return httpx.Client(event_hooks=_hooks(kwargs, _on_request, on_response), **kwargs)


def metered_async_http_client(**kwargs: Any) -> Any:
    """The `httpx.AsyncClient` twin of `metered_http_client`, e.g. for `openai.AsyncOpenAI(http_client=...)`."""
    import httpx

    async def on_response(response: httpx.Response) -> None:
        if "json" in response.headers.get("content-type", ""):
            await response.aread()
            _record_http(response)

    return httpx.AsyncClient(event_hooks=_hooks(kwargs, _on_request_async, on_response), **kwargs)


def absorb(row_usage: dict[str, Any]) -> None:
    """Add usage recorded elsewhere (a `RowUsage.as_dict()` from a task's worker process) to the current
    row and run."""
    row = _row.get()
    run = _run.get()
    for name, values in row_usage.get("scopes", {}).items():
        if row is not None:
            row.add(name, **values)
        if run is not None and values.get("cost_usd"):
            run.add(float(values["cost_usd"]))
        if run is not None and values.get("unpriced_calls"):
            run.add_unpriced(None)


def record_cache_hit() -> None:
    """Record that a judge answered from its cache (no call made)."""
    row = _row.get()
    if row is not None:
        row.add(_scope.get(), cache_hits=1)


def not_run_usage() -> dict[str, Any]:
    return {"not_run": True}


_MOVED = {"UsageTotals", "usage_metadata"}


def __getattr__(name: str) -> Any:
    """`UsageTotals` and `usage_metadata` moved to `dagster_evals.engine.usage_report` (deprecated aliases)."""
    if name in _MOVED:
        import importlib
        import warnings

        # Imported by name (not an import statement) so the deprecated alias adds no usage -> usage_report
        # dependency: usage_report builds on usage.
        usage_report = importlib.import_module("dagster_evals.engine.usage_report")
        warnings.warn(
            f"dagster_evals.engine.usage.{name} moved: import dagster_evals.engine.usage_report.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(usage_report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
