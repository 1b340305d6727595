"""`LocalEvalResource`: the Dagster resource handing out the embedded backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from pydantic import Field

from dagster_evals.backends.base import EvalPlatformResource

if TYPE_CHECKING:
    from dagster_evals.backends.local.platform import LocalPlatform

DEFAULT_PROJECT = "default"
DEFAULT_BATCH_SIZE = 500


class LocalEvalResource(EvalPlatformResource):
    """The embedded backend: datasets, evals and prompts in SQLite (default) or PostgreSQL. Needs no API key.

    The database: `url`, else `path` (a SQLite file), else `$DAGSTER_EVALS_DATABASE_URL`, else
    `$DAGSTER_HOME/dagster_evals.sqlite`, else `./.dagster_evals/local.sqlite`. The same database keeps the
    eval plans, row checkpoints and judge cache of the suites that use this resource. Use PostgreSQL when
    steps run in more than one pod or host.

    Examples:
        .. code-block:: python

            import dagster as dg
            from dagster_evals import LocalEvalResource

            single_host = LocalEvalResource(url="sqlite:///evals.sqlite")
            shared = LocalEvalResource(url=dg.EnvVar("DAGSTER_EVALS_DATABASE_URL"))
            defs = dg.Definitions(resources={"evals": single_host})
    """

    url: str | None = Field(
        default=None,
        description=(
            "Database URL: sqlite:///path/file.sqlite or postgresql+psycopg://user:password@host/db "
            "(plain postgresql:// works too). Default: $DAGSTER_EVALS_DATABASE_URL, else "
            "$DAGSTER_HOME/dagster_evals.sqlite, else ./.dagster_evals/local.sqlite."
        ),
    )
    path: str | None = Field(default=None, description="A SQLite file (shorthand for url=sqlite:///path).")
    project: str = Field(default=DEFAULT_PROJECT, description="Project that datasets and evals belong to.")
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, description="Rows written per transaction.")

    def state_database(self) -> str:
        """The backend's own database: eval plans, row checkpoints and the judge cache live beside its
        datasets and reports (one setting, `url`, names them all)."""
        from dagster_evals.backends.local.store import resolve_database_url

        return resolve_database_url(self.url, self.path).render_as_string(hide_password=False)

    def state_setting(self) -> str:
        return f"the url field of {type(self).__name__} (or $DAGSTER_EVALS_DATABASE_URL)"

    def connect(self) -> LocalPlatform:
        from dagster_evals.backends.local.platform import LocalPlatform

        return LocalPlatform(self.path, url=self.url, project=self.project, batch_size=self.batch_size)

    def get_platform(self) -> LocalPlatform:
        return cast("LocalPlatform", super().get_platform())
