"""Time to load the example code location (definitions.py), against bare Dagster, in fresh processes.

    .venv/bin/python benchmarks/bench_definitions_load.py [--runs 7]

Each command runs `--runs` times in a fresh subprocess (interleaved, so drift hits all alike); the median
wall time is printed with its ratio to the baseline measured in the same run:

- `python -c "import definitions"` against `python -c "import dagster"`: what the package and the example
  add to a plain Dagster import (`import dagster_evals` on its own is shown between the two);
- `dagster definitions validate -f definitions.py` against the same command on a file that holds only
  `defs = dg.Definitions()`: what loading and validating the example adds to the CLI's own start-up.

The example runs on its default, the local backend (`DAGSTER_EVALS_PLATFORM` unset); nothing is
materialized and no request is sent.
"""

from __future__ import annotations

import argparse
import os
import platform as pyplatform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (median)")
    args = parser.parse_args(argv)

    python = sys.executable
    dagster = str(BIN / "dagster")
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_EVALS_PLATFORM"}
    env["PYTHONWARNINGS"] = "ignore"
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty_definitions.py"
        empty.write_text("import dagster as dg\n\ndefs = dg.Definitions()\n")
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        env["DAGSTER_HOME"] = str(home)
        commands: dict[str, tuple[list[str], Path]] = {
            'python -c "import dagster"': ([python, "-c", "import dagster"], Path(tmp)),
            'python -c "import dagster_evals"': ([python, "-c", "import dagster_evals"], ROOT),
            'python -c "import definitions"': ([python, "-c", "import definitions"], ROOT),
            "dagster definitions validate -f <empty defs>": (
                [dagster, "definitions", "validate", "-f", str(empty)],
                Path(tmp),
            ),
            "dagster definitions validate -f definitions.py": (
                [dagster, "definitions", "validate", "-f", "definitions.py"],
                ROOT,
            ),
        }
        for command, cwd in commands.values():  # warm the OS file cache once
            timed(command, cwd, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, (command, cwd) in commands.items():
                samples[name].append(timed(command, cwd, env))

    median = {name: statistics.median(values) for name, values in samples.items()}
    baselines = {
        'python -c "import dagster"': 'python -c "import dagster"',
        'python -c "import dagster_evals"': 'python -c "import dagster"',
        'python -c "import definitions"': 'python -c "import dagster"',
        "dagster definitions validate -f <empty defs>": "dagster definitions validate -f <empty defs>",
        "dagster definitions validate -f definitions.py": "dagster definitions validate -f <empty defs>",
    }
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}, Python {pyplatform.python_version()}")
    print(f"median of {args.runs} fresh processes each (min-max in brackets)\n")
    header = f"{'command':<48} | {'median s':>8} | {'min-max s':>11} | {'vs baseline':>11} | {'added s':>7}"
    print(header)
    print("-" * len(header))
    for name, values in samples.items():
        base = median[baselines[name]]
        print(
            f"{name:<48} | {median[name]:8.2f} | {min(values):5.2f}-{max(values):<5.2f} | "
            f"{median[name] / base:10.2f}x | {median[name] - base:7.2f}"
        )
    print(
        '\nbaselines: the python imports against python -c "import dagster"; the validate command against the\n'
        "same command on an empty Definitions file. added s = median - baseline median."
    )


if __name__ == "__main__":
    main()
