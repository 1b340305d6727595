"""A production install, in a clean virtualenv: `pip install -c constraints.txt <package>` with no extras
brings what production runs and nothing of the fakes or the UI; a suite runs on the local backend; the fakes
say which extra they need; and the README's UI command's `[ui]` extra brings what `dg dev` starts.

The package is installed from its wheel, built from a copy of its sources (so that the build leaves nothing
in the checkout); pip's cache makes the install a local one after the first run.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

# A deployment proof: out of the default run, run by `pytest -m deployment` (and in CI by .ci/run).
pytestmark = pytest.mark.deployment

# Run inside the clean venv: a suite, materialized on the local backend, and what the venv can import.
SUITE_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys
    import dagster as dg
    from dagster_evals import EvalSuite, LocalResource, build_eval_suite_definitions

    ROWS = [{"id": str(i), "input": {"a": i, "b": i}, "expected": str(2 * i)} for i in range(10)]

    def add(input):
        return "wrong" if input["a"] == 3 else str(input["a"] + input["b"])

    suite = EvalSuite(
        name="prod", source=lambda: ROWS, key_field="id", task=add, scorers=["exact_match"],
        thresholds={"exact_match": 0.8},
    )
    defs = build_eval_suite_definitions(suite)
    result = dg.materialize(list(defs.assets), resources={"evals": LocalResource(url=sys.argv[1])})
    report = [
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == suite.eval_report_key
    ][0]
    checks = [check.passed for check in result.get_asset_check_evaluations()]
    print(json.dumps({
        "success": result.success,
        "score": report["score/exact_match"].value,
        "checks_passed": checks,
        "importable": {
            name: importlib.util.find_spec(name) is not None
            for name in ("starlette", "uvicorn", "dagster_webserver", "dagster_dg_cli", "dagster_postgres")
        },
    }))
    """
)

# The package's files, as a wheel build reads them.
SOURCES = ("pyproject.toml", "README.md", "dagster_evals")


def pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`pip install -c constraints.txt ARGS` into the venv, quietly; fails the test with pip's output."""
    command = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q"]
    done = subprocess.run(
        [*command, "-c", str(REPO / "constraints.txt"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def venv_run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command of the venv's bin/, in `cwd` (not the checkout, so nothing imports from it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "PYTHON"))}
    env["DAGSTER_HOME"] = str(cwd)
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def readme_command(marker: str) -> str:
    """The README line that contains `marker` (the test installs what that line installs)."""
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if marker in line]
    assert lines, f"README has no line with {marker!r}"
    return lines[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's wheel, built as pip builds it for any user, from a copy of its sources outside the
    checkout (so that the build leaves nothing in it)."""
    root = tmp_path_factory.mktemp("dagster-evals-src")
    sources = root / "src"
    sources.mkdir()
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, sources / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, sources / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(sources)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [found] = (root / "dist").glob("dagster_evals-*.whl")
    return found


def test_a_plain_install_runs_a_suite_without_the_fakes_and_the_ui_extra_adds_dg_dev(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    # A venv of nothing but Python; this pip installs into it (`pip --python`).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    pip(venv, str(wheel))
    consistent = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert consistent.returncode == 0, consistent.stdout  # every requirement of every package met

    work = tmp_path / "work"
    work.mkdir()
    (work / "suite.py").write_text(SUITE_SCRIPT)
    database = work / "evals.sqlite"
    ran = venv_run(venv, "python", "suite.py", f"sqlite:///{database}", cwd=work)
    assert ran.returncode == 0, ran.stderr[-3000:]
    outcome = json.loads(ran.stdout.strip().splitlines()[-1])
    assert outcome["success"] is True
    assert outcome["score"] == pytest.approx(0.9)  # row 3 is wrong
    assert outcome["checks_passed"] and all(outcome["checks_passed"])
    # Production pulls neither the fakes' web stack nor the dg CLI, the UI or dagster-postgres.
    assert outcome["importable"] == {
        "starlette": False,
        "uvicorn": False,
        "dagster_webserver": False,
        "dagster_dg_cli": False,
        "dagster_postgres": False,
    }
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT status FROM experiments WHERE report IS NOT NULL").fetchall() == [
            ("completed",)
        ]
        assert conn.execute("SELECT COUNT(*) FROM experiment_rows").fetchone() == (10,)

    # The fakes need their extra, and say which.
    fakes = venv_run(venv, "python", "-c", "import dagster_evals.testing", cwd=work)
    assert fakes.returncode == 1
    assert fakes.stderr.strip().splitlines()[-1] == (
        "ImportError: dagster_evals.testing (the fake servers) needs starlette, uvicorn, which the 'testing' "
        'extra installs: pip install "dagster-evals[testing]" (or -e ".[testing]" in a checkout)'
    )

    # The README's UI command installs the `ui` extra; with it, `dg dev` has its webserver.
    assert '-e ".[ui]"' in readme_command("dg dev -w workspace.yaml")
    pip(venv, f"{wheel}[ui]")
    webserver = venv_run(venv, "dagster-webserver", "--version", cwd=work)
    assert webserver.returncode == 0 and "dagster-webserver" in webserver.stdout, webserver.stderr
    dg_dev = venv_run(venv, "dg", "dev", "--help", cwd=work)
    assert dg_dev.returncode == 0 and "Usage: dg dev" in dg_dev.stdout, dg_dev.stderr[-2000:]
