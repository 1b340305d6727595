"""Where a platform resource sends its requests: the explicit field, else the vendor SDK's env var.

The official SDKs read their base URL from the environment, so a self-hosted deployment or a fake server
is chosen without code changes; the resources here do the same, and an explicit field always wins:

- Braintrust: `BRAINTRUST_API_URL` (REST API) and `BRAINTRUST_APP_URL` (web app links), as the
  `braintrust` SDK reads them (braintrust 0.48.1 `env.py`: `BraintrustEnv.API_URL`, `resolve_app_url`;
  `logger.py` `login` prefers `BRAINTRUST_API_URL` over the URL the login answer gives).
- Keywords AI: `KEYWORDSAI_BASE_URL`, as the Keywords AI SDKs read it
  (pypi-data/pypi-mirror-391@5ca0415cbb8de1ed1d76e23a5197c83a466fc700:packages/keywordsai-tracing/
  keywordsai_tracing-0.0.49.tar.gz/keywordsai_tracing-0.0.49/src/keywordsai_tracing/constants/
  keywordsai_config.py, default `https://api.keywordsai.co/api`), then `RESPAN_BASE_URL` (the Respan
  SDK's name for the same setting).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.http import shown_url

BRAINTRUST_API_URL_ENV = "BRAINTRUST_API_URL"
BRAINTRUST_APP_URL_ENV = "BRAINTRUST_APP_URL"
KEYWORDSAI_BASE_URL_ENVS = ("KEYWORDSAI_BASE_URL", "RESPAN_BASE_URL")


@dataclass(frozen=True)
class ResolvedUrl:
    """A base URL and the setting it came from (`api_url`, `BRAINTRUST_API_URL`, or `default`)."""

    url: str
    source: str


def resolve_base_url(
    explicit: str | None, env_vars: Sequence[str], default: str, *, field: str, resource: str
) -> ResolvedUrl:
    """The base URL to use: `explicit` when set, else the first env var that is set, else `default`.

    Raises:
        ConfigError: The chosen value is not an http(s) URL; the message names the field or env var.
    """
    if explicit is not None and explicit.strip():
        chosen = ResolvedUrl(explicit.strip(), field)
    else:
        found = next(
            ((name, os.environ[name]) for name in env_vars if os.environ.get(name, "").strip()), None
        )
        chosen = ResolvedUrl(found[1].strip(), found[0]) if found else ResolvedUrl(default, "default")
    if not chosen.url.lower().startswith(("http://", "https://")):
        where = (
            f"{resource}.{field}" if chosen.source == field else f"the {chosen.source} environment variable"
        )
        raise ConfigError(
            f"{where} must be an http:// or https:// URL, got {shown_url(chosen.url)!r} "
            f"(set {resource}.{field} or {' / '.join(env_vars)})"
        )
    return ResolvedUrl(chosen.url.rstrip("/"), chosen.source)


def without_api_suffix(url: str) -> str:
    """A Keywords AI base URL without a trailing `/api`: the SDKs' convention includes it
    (`https://api.keywordsai.co/api`), the client here adds `/api/...` to every path itself."""
    return url[: -len("/api")] if url.rstrip("/").endswith("/api") else url.rstrip("/")
