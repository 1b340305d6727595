"""`EvalPlatformResource`: the Dagster resource base class that hands assets, checks and sensors a platform."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from dagster_evals.backends.base import SECRET_FIELDS, EvalPlatform, redact_url_password


class EvalPlatformResource(dg.ConfigurableResource):
    """Base class of the resources that give assets, checks and sensors an `EvalPlatform`.

    Subclasses implement `connect()`; the platform is built on first use, reused for the rest of the step,
    and closed when the step ends. Secret fields never show in the resource's repr.
    """

    _platform: EvalPlatform | None = PrivateAttr(default=None)

    def connect(self) -> EvalPlatform:
        """A new platform client configured from this resource."""
        raise NotImplementedError

    def get_platform(self) -> EvalPlatform:
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
