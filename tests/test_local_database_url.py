"""Which database the embedded backend opens: one setting (`url` / DAGSTER_EVALS_DATABASE_URL), its
precedence over the deprecated DAGSTER_EVALS_LOCAL_DB and the default file, and clear errors for bad URLs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from dagster_evals import ConfigError, LocalEvalResource, LocalPlatform

DATABASE_URL = "DAGSTER_EVALS_DATABASE_URL"
LOCAL_DB = "DAGSTER_EVALS_LOCAL_DB"


def opened(resource: LocalEvalResource) -> str:
    platform = resource.get_platform()
    try:
        return platform.url
    finally:
        platform.close()


def test_precedence_resource_url_then_database_url_then_local_db_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {name: tmp_path / name / "evals.sqlite" for name in ("field", "env", "legacy", "home")}
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(DATABASE_URL, f"sqlite:///{files['env']}")
    monkeypatch.setenv(LOCAL_DB, str(files["legacy"]))

    assert opened(LocalEvalResource(url=f"sqlite:///{files['field']}")) == f"sqlite:///{files['field']}"
    assert opened(LocalEvalResource(path=str(files["field"]))) == f"sqlite:///{files['field']}"
    assert opened(LocalEvalResource()) == f"sqlite:///{files['env']}"
    monkeypatch.delenv(DATABASE_URL)
    with pytest.warns(DeprecationWarning, match=DATABASE_URL):
        assert opened(LocalEvalResource()) == f"sqlite:///{files['legacy']}"
    monkeypatch.delenv(LOCAL_DB)
    assert opened(LocalEvalResource()) == f"sqlite:///{tmp_path / 'home' / 'dagster_evals.sqlite'}"
    assert all(path.is_file() for path in files.values() if path.parent.name != "home")
    assert (tmp_path / "home" / "dagster_evals.sqlite").is_file()


def test_the_current_setting_does_not_warn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_URL, f"sqlite:///{tmp_path / 'a.sqlite'}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LocalPlatform().close()


@pytest.mark.parametrize(
    "url", ["mysql://u:p@db/evals", "postgresql+psycopg2://u@db/evals", "evals://x", "http://db:5432/x"]
)
def test_an_unknown_scheme_is_a_config_error_and_creates_no_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unsupported database URL scheme") as raised:
        LocalEvalResource(url=url).get_platform()
    assert "sqlite:///" in str(raised.value) and "postgresql+psycopg://" in str(raised.value)
    monkeypatch.setenv(DATABASE_URL, url)
    with pytest.raises(ConfigError, match=DATABASE_URL):
        LocalPlatform()
    assert list(tmp_path.iterdir()) == []  # no file named after the URL, no default file


def test_a_url_in_the_deprecated_variable_is_a_url_not_a_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(LOCAL_DB, "mysql://u@db/evals")
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match=LOCAL_DB):
        LocalPlatform()
    assert list(tmp_path.iterdir()) == []


def test_plain_postgresql_urls_use_psycopg_and_reach_the_server(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    platform = LocalPlatform(url=plain)
    assert platform.database_url.drivername == "postgresql+psycopg" and platform.path is None
    assert platform.count_rows(platform.ensure_dataset("d")) == 0
    platform.close()


def test_passwords_never_show_in_messages_or_reprs(postgres_server, tmp_path: Path) -> None:
    url = f"postgresql+psycopg://evals:s3cret-pw@127.0.0.1:{postgres_server.port}/no_such_db"
    resource = LocalEvalResource(url=url)
    assert "s3cret-pw" not in repr(resource)
    with pytest.raises(ConfigError) as raised:
        resource.get_platform()
    assert "s3cret-pw" not in str(raised.value)
    assert "cannot open the local backend's database postgresql+psycopg://evals:***@127.0.0.1" in str(
        raised.value
    )


def test_url_and_path_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="either url or path"):
        LocalEvalResource(url="sqlite:///a.sqlite", path=str(tmp_path / "b.sqlite")).get_platform()


def test_sqlite_platforms_keep_their_path(tmp_path: Path) -> None:
    platform = LocalPlatform(tmp_path / "x.sqlite")
    assert platform.path == tmp_path / "x.sqlite" and platform.url == f"sqlite:///{tmp_path / 'x.sqlite'}"
    assert repr(platform) == f"LocalPlatform(url='sqlite:///{tmp_path / 'x.sqlite'}', project='default')"
    platform.close()


def test_a_file_that_is_not_sqlite_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,input\n1,hello\n" * 100)
    with pytest.raises(
        ConfigError,
        match=r"cannot open the local backend's database sqlite:///.*rows.csv: file is not a database",
    ):
        LocalPlatform(path)
    assert path.read_text().startswith("id,input")
