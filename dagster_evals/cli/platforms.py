"""Which backend a CLI command reads: `--platform` (default `$DAGSTER_EVALS_PLATFORM`, else `local`),
configured from the same settings and environment variables the resources read.

- `local`: `--url` / `--db`, else `$DAGSTER_EVALS_DATABASE_URL`, else `$DAGSTER_HOME/dagster_evals.sqlite`;
- `braintrust`: `$BRAINTRUST_API_KEY`, and `$BRAINTRUST_API_URL` for another endpoint (a fake, a
  self-hosted data plane);
- `keywordsai`: `$KEYWORDSAI_API_KEY`, and `$KEYWORDSAI_BASE_URL`.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from dagster_evals.backends.base import EvalPlatform
from dagster_evals.cli.local import DB_HELP, URL_HELP, location, open_existing
from dagster_evals.engine.errors import ConfigError

PLATFORM_ENV = "DAGSTER_EVALS_PLATFORM"
PLATFORMS = ("local", "braintrust", "keywordsai")
# Per platform: the API key's variable and the base URL's variable (with the resource field it sets).
REMOTE_ENV = {
    "braintrust": ("BRAINTRUST_API_KEY", "BRAINTRUST_API_URL", "api_url"),
    "keywordsai": ("KEYWORDSAI_API_KEY", "KEYWORDSAI_BASE_URL", "base_url"),
}


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """`--platform`, `--project`, `--url` and `--db` on a command that reads reports."""
    parser.add_argument(
        "--platform",
        choices=PLATFORMS,
        default=None,
        help=f"the backend holding the reports (default: ${PLATFORM_ENV}, else local); Braintrust reads "
        "$BRAINTRUST_API_KEY and $BRAINTRUST_API_URL, Keywords AI $KEYWORDSAI_API_KEY and $KEYWORDSAI_BASE_URL",
    )
    parser.add_argument("--project", default=None, help="project of the reports (default: the backend's)")
    parser.add_argument("--url", help=f"local backend: {URL_HELP}")
    parser.add_argument("--db", help=f"local backend: {DB_HELP}")


def platform_name(args: argparse.Namespace) -> str:
    """The `--platform` given, else `$DAGSTER_EVALS_PLATFORM`, else `local`; an unknown name is an error."""
    name = args.platform or os.environ.get(PLATFORM_ENV, "").strip() or "local"
    if name not in PLATFORMS:
        raise ConfigError(f"${PLATFORM_ENV}={name!r} is not one of {', '.join(PLATFORMS)}")
    return name


def open_platform(args: argparse.Namespace) -> EvalPlatform:
    """The platform the command reads (see the module docstring)."""
    name = platform_name(args)
    if name == "local":
        from dagster_evals.backends.local.platform import DEFAULT_PROJECT

        return open_existing(location(args), args.project or DEFAULT_PROJECT)
    if args.url or args.db:
        raise ConfigError(f"--url and --db name the local backend's database; --platform is {name}")
    key_var, url_var, url_field = REMOTE_ENV[name]
    api_key = os.environ.get(key_var, "").strip()
    if not api_key:
        raise ConfigError(f"--platform {name} needs an API key: set {key_var}")
    options: dict[str, Any] = {"api_key": api_key}
    if os.environ.get(url_var, "").strip():
        options[url_field] = os.environ[url_var].strip()
    if name == "braintrust":
        from dagster_evals.backends.braintrust import BraintrustResource

        if args.project:
            options["project"] = args.project
        return BraintrustResource(**options).get_platform()
    from dagster_evals.backends.keywordsai import KeywordsAIResource

    return KeywordsAIResource(**options).get_platform()
