"""The platform interface the backends implement, and what their Dagster resources share.

`EvalPlatform`, `StagedSync`, `rows_digest` and `ProgressFn` live in `dagster_evals.engine.platform` (the
engine's port) and are importable from here too. Imports no Dagster: the Dagster resource base class that
hands a platform out, `EvalPlatformResource`, lives in `dagster_evals.backends.platform_resource` (still
importable from here).
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any

from dagster_evals.engine.platform import EvalPlatform, ProgressFn, StagedSync, _quiet, rows_digest

if TYPE_CHECKING:
    from dagster_evals.backends.platform_resource import EvalPlatformResource  # noqa: F401  (for type checkers)

__all__ = ["EvalPlatform", "ProgressFn", "StagedSync", "_quiet", "rows_digest"]

SECRET_FIELDS = frozenset({"api_key"})
STATE_DATABASE_FIELD = "state_database_url"
STATE_DATABASE_HELP = (
    "Database of eval plans, row checkpoints and the judge cache: sqlite:///path/file.sqlite or "
    "postgresql+psycopg://user:password@host/db (shared by every step when steps run on several hosts). "
    "Default: $DAGSTER_EVALS_DATABASE_URL, else $DAGSTER_HOME/dagster_evals.sqlite."
)


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def redact_url_password(value: Any) -> Any:
    """`scheme://user:secret@host/…` → `scheme://user:***@host/…`; anything else unchanged."""
    return _URL_PASSWORD.sub(r"\1***@", value) if isinstance(value, str) else value


def __getattr__(name: str) -> Any:
    # The Dagster resource base class is loaded (with Dagster) only when asked for.
    if name == "EvalPlatformResource":
        # Loaded by name: the resource module builds on this one, so an import statement here would be a
        # cycle (and would load Dagster with the platform).
        return importlib.import_module("dagster_evals.backends.platform_resource").EvalPlatformResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
