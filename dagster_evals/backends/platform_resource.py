"""`EvalPlatformResource`: the Dagster resource base class that hands assets, checks and sensors a platform."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from dagster_evals.backends.base import (
    SECRET_FIELDS,
    STATE_DATABASE_FIELD,
    EvalPlatform,
    redact_url_password,
)
from dagster_evals.engine.errors import ConfigError


class EvalPlatformResource(dg.ConfigurableResource):
    """Base class of the resources that give assets, checks and sensors an `EvalPlatform`.

    Subclasses implement `connect()`; the platform is built on first use, reused for the rest of the step,
    and closed when the step ends. Secret fields never show in the resource's repr.
    """

    _platform: EvalPlatform | None = PrivateAttr(default=None)

    def connect(self) -> EvalPlatform:
        """A new platform client configured from this resource."""
        raise NotImplementedError

    def state_database(self) -> str:
        """The URL of the database that eval plans, row checkpoints and the judge cache of this resource's
        suites are kept in (see `dagster_evals.engine.embedded_db`); default: `$DAGSTER_EVALS_DATABASE_URL`, else
        `$DAGSTER_HOME/dagster_evals.sqlite`."""
        from dagster_evals.engine.embedded_db import default_database_url

        return default_database_url()

    def state_setting(self) -> str:
        """The setting that names `state_database()`, for error messages."""
        return f"the {STATE_DATABASE_FIELD} field of {type(self).__name__} (or $DAGSTER_EVALS_DATABASE_URL)"

    def get_platform(self) -> EvalPlatform:
        """The platform client for this resource (built on first use in a step, reused after, closed at teardown)."""
        if self._platform is None:
            self._platform = self.connect()
        return self._platform

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._platform is not None:
            self._platform.close()
            self._platform = None

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, ("***" if name in SECRET_FIELDS and value else redact_url_password(value))


def state_database_from_field(resource: Any, value: Any) -> str:
    """The state database a hosted platform's resource names in `state_database_url` (`value`), else the
    default (see `EvalPlatformResource.state_database`)."""
    from dagster_evals.engine.embedded_db import default_database_url, normalize_url

    if isinstance(value, dg.EnvVar):  # a resource used outside a run keeps the unresolved EnvVar
        value = value.get_value()
    if value is not None and not isinstance(value, str):
        raise ConfigError(
            f"{type(resource).__name__}.{STATE_DATABASE_FIELD} must be a database URL, got {type(value).__name__}"
        )
    if value and value.strip():
        return normalize_url(value, origin=f"{type(resource).__name__}.{STATE_DATABASE_FIELD}")
    return default_database_url()
