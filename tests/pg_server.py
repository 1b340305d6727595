"""A real PostgreSQL server for the test suite: `initdb` + `pg_ctl` on a free 127.0.0.1 port, one per session
(one per xdist worker), stopped at the end.

`initdb` refuses to run as root, so under root the server runs as the `postgres` user (`runuser`). When the
server cannot start, tests that need it are skipped locally and fail when `CI=true`.

Fixtures: `postgres_server` (session), `postgres_url` (a fresh, empty database per test),
`database_url` (parametrized: the same test on SQLite and on PostgreSQL) and `private_postgres` (a server
of the test's own, which it may `crash()` and `restart()`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(os.environ.get("DAGSTER_EVALS_PG_BIN", "/usr/lib/postgresql/15/bin"))
ENGINES = ("sqlite", "postgresql")


class PostgresServer:
    """One throwaway cluster: trust auth on 127.0.0.1 only, durability off unless `survives_crashes`
    (tests only)."""

    def __init__(self, *, survives_crashes: bool = False) -> None:
        self.survives_crashes = survives_crashes
        self.root = Path(tempfile.mkdtemp(prefix="dagster-evals-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def _options(self) -> str:
        """Server options. Without `survives_crashes`, commits return before their WAL is written
        (`synchronous_commit=off`), which a `crash()` may lose; the OS never crashes here, so fsync is off."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        return options if self.survives_crashes else options + " -c synchronous_commit=off"

    def start(self) -> None:
        if not (BIN / "initdb").exists():
            raise RuntimeError(f"no PostgreSQL server binaries in {BIN} (set DAGSTER_EVALS_PG_BIN)")
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        done = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        error = ""
        for _ in range(5):  # another worker may take the port between choosing and binding it
            self.port = free_port()
            done = self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-o",
                self._options(),
                "-l",
                str(self.root / "log"),
                "-w",
                "start",
            )
            if done.returncode == 0:
                return
            error = done.stderr.strip() or done.stdout.strip()
        raise RuntimeError(f"pg_ctl start failed: {error}\n{self.log()}")

    def crash(self) -> None:
        """Stop the server at once, as a crash would (`pg_ctl stop -m immediate`): connections are cut, and
        the next start runs crash recovery. Its data and port are kept for `restart`."""
        done = self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        if done.returncode:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr.strip() or done.stdout.strip()}")

    def restart(self) -> None:
        """Start the server again on the same port, after `crash` (waits until it accepts connections)."""
        done = self._run(
            "pg_ctl", "-D", str(self.data), "-o", self._options(), "-l", str(self.root / "log"), "-w", "start"
        )
        if done.returncode:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip() or done.stdout.strip()}")

    def log(self) -> str:
        try:
            return (self.root / "log").read_text()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.port:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg
        from psycopg import sql

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
    except Exception as exc:
        server.stop()
        message = f"cannot start a PostgreSQL server for the tests: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, that it may crash and restart (committed data survives)."""
    server = PostgresServer(survives_crashes=True)
    try:
        server.start()
    except Exception as exc:
        server.stop()
        message = f"cannot start a PostgreSQL server for the test: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a fresh, empty PostgreSQL database."""
    return postgres_server.create_database()


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on both engines: a fresh SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'evals.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))
