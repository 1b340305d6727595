"""Airflow hooks: an Airflow Connection → the engine's `EvalPlatform` (embedded, Braintrust, Keywords AI).

One connection type per backend. The API key goes in the connection's **password** (Airflow masks it in
task logs and the UI); the API URL (or, for the embedded backend, the database URL) in **host**; the other
settings in **extra**, as JSON, with the same names and defaults as the Dagster resources' fields. Extras
are validated strictly when the hook connects: an unknown name or a wrong type (`"5"` or `true` for a
number) is one `ConfigError` naming the connection and the field.

Examples:
    .. code-block:: bash

        export AIRFLOW_CONN_EVALS_LOCAL='{"conn_type": "dagster_evals_local"}'
        export AIRFLOW_CONN_EVALS_KEYWORDSAI='{"conn_type": "dagster_evals_keywordsai",
            "password": "<key>", "extra": {"eval_timeout_s": 600}}'
        export AIRFLOW_CONN_EVALS_BRAINTRUST='{"conn_type": "dagster_evals_braintrust",
            "password": "<key>", "extra": {"project": "support-bot"}}'
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

import pydantic
from airflow.sdk import BaseHook

from dagster_evals.backends.base import EvalPlatform
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.http import RetryPolicy

LOCAL_CONN_TYPE = "dagster_evals_local"
BRAINTRUST_CONN_TYPE = "dagster_evals_braintrust"
KEYWORDSAI_CONN_TYPE = "dagster_evals_keywordsai"


class _Extras(pydantic.BaseModel):
    """A connection's `extra` settings: no unknown names, no coercion between strings, numbers and bools."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)


class LocalExtras(_Extras):
    url: str | None = None
    path: str | None = None
    project: str = "default"
    batch_size: int = pydantic.Field(default=500, ge=1, le=100_000)


class BraintrustExtras(_Extras):
    project: str | None = None
    app_url: str | None = None
    org_name: str | None = None
    timeout_s: float = pydantic.Field(default=60.0, gt=0, le=3600)
    max_retries: int = pydantic.Field(default=5, ge=0, le=20)
    backoff_base_s: float = pydantic.Field(default=0.5, ge=0, le=60)
    rate_limit_per_minute: float | None = pydantic.Field(default=None, gt=0)
    insert_batch_size: int | None = pydantic.Field(default=None, ge=1, le=10_000)
    insert_max_bytes: int | None = pydantic.Field(default=None, ge=1024, le=100_000_000)
    request_concurrency: int | None = pydantic.Field(default=None, ge=1, le=64)
    stream_evals: bool = False
    collect_git: bool = True
    eval_timeout_s: float | None = pydantic.Field(default=None, gt=0)
    launch_settle_s: float | None = pydantic.Field(default=None, ge=0)


class KeywordsAIExtras(_Extras):
    app_url: str | None = None
    timeout_s: float = pydantic.Field(default=30.0, gt=0, le=3600)
    max_retries: int = pydantic.Field(default=5, ge=0, le=20)
    backoff_base_s: float = pydantic.Field(default=0.5, ge=0, le=60)
    rate_limit_per_minute: float | None = pydantic.Field(default=60, gt=0)
    batch_size: int | None = pydantic.Field(default=None, ge=1, le=10_000)
    max_request_bytes: int | None = pydantic.Field(default=None, ge=1024, le=100_000_000)
    page_size: int | None = pydantic.Field(default=None, ge=1, le=100)
    eval_poll_interval_s: float = pydantic.Field(default=2.0, gt=0, le=600)
    eval_timeout_s: float = pydantic.Field(default=1800.0, gt=0)
    settle_delay_s: float | None = pydantic.Field(default=None, ge=0, le=600)
    settle_timeout_s: float | None = pydantic.Field(default=None, gt=0)


class EvalsHook(BaseHook):
    """Base of the dagster-evals hooks: reads the connection once, hands out one `EvalPlatform`.

    Use `EvalsHook.for_connection(conn_id)` to get the hook of the connection's type.
    """

    conn_name_attr = "evals_conn_id"
    default_conn_name = "evals_default"
    conn_type: ClassVar[str] = ""
    hook_name: ClassVar[str] = ""
    extras_model: ClassVar[type[_Extras]] = _Extras

    def __init__(self, evals_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evals_conn_id = evals_conn_id
        self._platform: EvalPlatform | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(evals_conn_id={self.evals_conn_id!r})"

    @staticmethod
    def for_connection(conn_id: str) -> EvalsHook:
        """The hook of the connection's type (`dagster_evals_local`, `…_braintrust`, `…_keywordsai`)."""
        conn_type = BaseHook.get_connection(conn_id).conn_type
        for hook in (LocalEvalsHook, BraintrustHook, KeywordsAIHook):
            if conn_type == hook.conn_type:
                return hook(conn_id)
        raise ConfigError(
            f"connection {conn_id!r} has conn_type {conn_type!r}: use {LOCAL_CONN_TYPE}, "
            f"{BRAINTRUST_CONN_TYPE} or {KEYWORDSAI_CONN_TYPE}"
        )

    @cached_property
    def connection(self) -> Any:
        return self.get_connection(self.evals_conn_id)

    def extras(self) -> Any:
        """The connection's `extra`, validated (one `ConfigError` naming the connection and field)."""
        raw = self.connection.extra_dejson or {}
        try:
            return self.extras_model.model_validate(raw)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'extra'}: {e['msg']}"
                for e in exc.errors(include_input=False)
            )
            raise ConfigError(f"connection {self.evals_conn_id!r} extra: {problems}") from None

    def api_key(self) -> str:
        """The connection's API key (its password); a `ConfigError` naming the connection when it has none."""
        key = self.connection.password
        if not key:
            raise ConfigError(
                f"connection {self.evals_conn_id!r} has no API key: put it in the connection's password"
            )
        return str(key)

    def connect(self) -> EvalPlatform:
        """A new platform client configured from the connection."""
        raise NotImplementedError

    def get_platform(self) -> EvalPlatform:
        """The platform of this hook (built on first use, reused after)."""
        if self._platform is None:
            self._platform = self.connect()
        return self._platform

    def close(self) -> None:
        """Close the platform client, if one was built; the next `get_platform()` builds a new one."""
        if self._platform is not None:
            self._platform.close()
            self._platform = None

    def get_conn(self) -> EvalPlatform:
        return self.get_platform()

    def test_connection(self) -> tuple[bool, str]:
        """For the Airflow UI's Test button: list the prompt versions (a cheap authenticated read)."""
        try:
            self.get_platform().list_prompt_versions(latest_only=True)
        except Exception as exc:
            return False, str(exc)
        finally:
            self.close()
        return True, "connected"


class LocalEvalsHook(EvalsHook):
    """The embedded backend: host = a database URL (PostgreSQL or SQLite), or none for the default file
    (`$DAGSTER_EVALS_DATABASE_URL`, else `./.dagster_evals/local.sqlite`); the connection's password, when
    set, is the database password."""

    conn_type = LOCAL_CONN_TYPE
    hook_name = "dagster-evals: embedded backend"
    extras_model = LocalExtras

    def connect(self) -> EvalPlatform:
        from dagster_evals.backends.local.platform import LocalPlatform

        extras: LocalExtras = self.extras()
        url = extras.url or None
        conn = self.connection
        if not url and conn.host and "://" in str(conn.host):
            url = str(conn.host)
        if url and conn.password:
            from sqlalchemy.engine import make_url

            url = make_url(url).set(password=str(conn.password)).render_as_string(hide_password=False)
        return LocalPlatform(extras.path, url=url, project=extras.project, batch_size=extras.batch_size)


class BraintrustHook(EvalsHook):
    """Braintrust: password = API key, host = API URL (default https://api.braintrust.dev)."""

    conn_type = BRAINTRUST_CONN_TYPE
    hook_name = "dagster-evals: Braintrust"
    extras_model = BraintrustExtras

    def connect(self) -> EvalPlatform:
        from dagster_evals.backends.braintrust.platform import BraintrustPlatform

        extras: BraintrustExtras = self.extras()
        options = extras.model_dump(exclude={"max_retries", "backoff_base_s"}, exclude_none=True)
        if self.connection.host:
            options["api_url"] = str(self.connection.host)
        return BraintrustPlatform(
            api_key=self.api_key(),
            retry=RetryPolicy(max_retries=extras.max_retries, backoff_base_s=extras.backoff_base_s),
            **options,
        )


class KeywordsAIHook(EvalsHook):
    """Keywords AI (Respan): password = API key, host = API base URL (default https://api.keywordsai.co)."""

    conn_type = KEYWORDSAI_CONN_TYPE
    hook_name = "dagster-evals: Keywords AI"
    extras_model = KeywordsAIExtras

    def connect(self) -> EvalPlatform:
        from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform

        extras: KeywordsAIExtras = self.extras()
        options = extras.model_dump(
            exclude={"max_retries", "backoff_base_s", "timeout_s", "rate_limit_per_minute"}, exclude_none=True
        )
        if self.connection.host:
            options["base_url"] = str(self.connection.host)
        return KeywordsAIPlatform.connect(
            self.api_key(),
            timeout_s=extras.timeout_s,
            retry=RetryPolicy(max_retries=extras.max_retries, backoff_base_s=extras.backoff_base_s),
            rate_limit_per_minute=extras.rate_limit_per_minute,
            **options,
        )
