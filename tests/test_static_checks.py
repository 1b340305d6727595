"""The package stays lint-clean, formatted and type-checked (pyright, basic mode, as configured in
pyproject.toml), so a change that breaks the typed public API fails the suite like any other regression."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["pyright", "--pythonpath", sys.executable, "dagster_evals"],
    ],
    ids=["ruff-check", "ruff-format", "pyright"],
)
def test_static_check_passes(command: list[str]) -> None:
    tool = BIN / command[0]
    assert tool.exists(), f"{command[0]} is not installed in {BIN}: install the test extra"
    done = subprocess.run([str(tool), *command[1:]], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
