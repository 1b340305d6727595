"""Where judge and prompt-task calls go: one OpenAI-compatible endpoint, its model and its limits.

`JudgeSettings.from_env()` reads the standard `OPENAI_BASE_URL` / `OPENAI_API_KEY` (and optionally
`OPENAI_ORG_ID`, `DAGSTER_EVALS_JUDGE_MODEL`); `OpenAIJudgeResource` builds settings from Dagster config.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

from dagster_evals.engine.errors import ConfigError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"
API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
ORG_ENV = "OPENAI_ORG_ID"
MODEL_ENV = "DAGSTER_EVALS_JUDGE_MODEL"
CACHE_ENV = "DAGSTER_EVALS_JUDGE_CACHE"
# A judge, embedding or moderation answer is a few KiB; 16 MiB leaves room for large embedding batches.
DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024
MIN_MAX_ANSWER_BYTES = 1024


def _is_money(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )


def check_prices(per_million_input: object, per_million_output: object) -> None:
    """Both prices finite and at least 0 (USD per million tokens), or both None; else a `ConfigError`."""
    prices = (per_million_input, per_million_output)
    if (prices[0] is None) != (prices[1] is None) or not all(p is None or _is_money(p) for p in prices):
        raise ConfigError(
            "price_per_million_input_usd and price_per_million_output_usd must both be finite numbers of 0 "
            f"or more (USD per million tokens), or both None; got {prices[0]!r} and {prices[1]!r}"
        )


@dataclass(frozen=True)
class JudgeSettings:
    """An OpenAI-compatible endpoint and how to call it. The API key never appears in a repr.

    Args:
        base_url: API root including `/v1` (OpenAI, the Braintrust AI proxy, the Keywords AI gateway, a
            local server).
        api_key: The bearer key. `api_key_env` names where it came from, for error messages.
        model: Chat model of LLM judges and the default model of prompt tasks.
        embedding_model: Model of embedding-based scorers.
        moderation_model: Model of the moderation scorer.
        organization: Optional `OpenAI-Organization` header.
        max_concurrency: Calls in flight at once, per process and event loop.
        requests_per_minute: Client-side pacing (None: no pacing).
        timeout_s: Per-attempt timeout.
        max_retries: Retries of 408/429/5xx and connection errors (Retry-After honoured).
        cache: Whether judge scores are cached (see `dagster_evals.judges.cache`).
        max_cost_usd: Budget per run; once spent, rows not yet run are recorded as not run. With a budget,
            a call whose cost is unknown (a model the genai-prices table does not know, and no price
            override) stops the run the same way.
        price_per_million_input_usd: USD per million input (prompt) tokens of this endpoint's calls; with
            `price_per_million_output_usd`, prices calls instead of the genai-prices table (a self-hosted,
            fine-tuned or newer model). Give both or neither.
        price_per_million_output_usd: USD per million output (completion) tokens.
        max_answer_bytes: Largest answer body read (decoded); reading stops past it and the call fails
            with an error naming the setting (the row's error, or the scorer's entry in `scorer_errors`).
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: str = field(default="", repr=False)
    model: str = DEFAULT_MODEL
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    moderation_model: str = DEFAULT_MODERATION_MODEL
    organization: str | None = None
    max_concurrency: int = 10
    requests_per_minute: float | None = None
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    cache: bool = True
    max_cost_usd: float | None = None
    api_key_env: str = API_KEY_ENV
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    price_per_million_input_usd: float | None = None
    price_per_million_output_usd: float | None = None

    def __post_init__(self) -> None:
        limit = self.max_answer_bytes
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < MIN_MAX_ANSWER_BYTES:
            raise ConfigError(
                f"judge max_answer_bytes must be a whole number of bytes, at least {MIN_MAX_ANSWER_BYTES}, "
                f"got {limit!r}"
            )
        if self.max_concurrency < 1:
            raise ConfigError(f"judge max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.requests_per_minute is not None and self.requests_per_minute <= 0:
            raise ConfigError(f"judge requests_per_minute must be positive, got {self.requests_per_minute}")
        if self.max_cost_usd is not None and not _is_money(self.max_cost_usd):
            raise ConfigError(f"max_cost_usd must be a finite number of 0 or more, got {self.max_cost_usd!r}")
        check_prices(self.price_per_million_input_usd, self.price_per_million_output_usd)

    @property
    def price_per_million(self) -> tuple[float, float] | None:
        """(input, output) USD per million tokens when the endpoint overrides the price table, else None."""
        a, b = self.price_per_million_input_usd, self.price_per_million_output_usd
        return None if a is None or b is None else (float(a), float(b))

    @classmethod
    def from_env(cls, **overrides: Any) -> JudgeSettings:
        """Settings from `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `OPENAI_ORG_ID`, `DAGSTER_EVALS_JUDGE_MODEL`
        and `DAGSTER_EVALS_JUDGE_CACHE` (`0` disables the cache); `overrides` win."""
        values: dict[str, Any] = {
            "base_url": os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL,
            "api_key": os.environ.get(API_KEY_ENV, ""),
            "organization": os.environ.get(ORG_ENV) or None,
            "model": os.environ.get(MODEL_ENV) or DEFAULT_MODEL,
            "cache": os.environ.get(CACHE_ENV, "1").strip().lower() not in ("0", "false", "no", "off"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_options(self, **changes: Any) -> JudgeSettings:
        """A copy with the given fields changed (a None value leaves its field as it is)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def require_key(self) -> str:
        """The API key; a `ConfigError` naming the environment variable to set when there is none."""
        if not self.api_key:
            raise ConfigError(
                f"no API key for the judge endpoint {self.base_url}: set the {self.api_key_env} environment "
                "variable (or pass api_key=dg.EnvVar(...) to OpenAIJudgeResource)"
            )
        return self.api_key


def endpoint_settings(endpoint: Any) -> JudgeSettings | None:
    """The settings of a judge endpoint: an `OpenAIJudgeResource` (its `settings()`), `JudgeSettings`, or None."""
    if endpoint is None:
        return None
    if isinstance(endpoint, JudgeSettings):
        return endpoint
    settings = getattr(endpoint, "settings", None)
    if callable(settings):
        resolved = settings()
        if isinstance(resolved, JudgeSettings):
            return resolved
    raise ConfigError(
        f"a judge endpoint must be an OpenAIJudgeResource or JudgeSettings, got {type(endpoint).__name__}"
    )
