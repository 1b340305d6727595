"""The layers hold: the Airflow provider and the engine reach no Dagster, statically (import-linter, the
contracts in pyproject.toml) and at run time (a process where importing Dagster fails runs an eval and a
gate); no two modules of the package import each other, directly or around a loop (lazy imports count);
no module is over 400 lines; the package's public names stay importable from `dagster_evals` although they
load lazily, and moved modules keep their old paths."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import dagster as dg
import grimp
import pytest

import dagster_evals
from dagster_evals import EvalSuite, InputError, build_eval_suite_definitions
from dagster_evals.backends.local import LocalEvalResource

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_import_linter_contracts_hold() -> None:
    done = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


NO_DAGSTER = """
import sys
sys.modules["dagster"] = None  # any import of Dagster now raises ImportError
sys.modules["dagster_shared"] = None
import importlib
for name in {modules!r}:
    importlib.import_module(name)

import dagster_evals
from dagster_evals.backends.local.platform import LocalPlatform
from dagster_evals.engine.gates import evaluate_gate, gate_verdict
from dagster_evals.engine.models import DatasetRow, EvalRequest
from dagster_evals.engine.sync import sync_rows

platform = LocalPlatform(url="sqlite://")
dataset = platform.ensure_dataset("rows")
rows = [DatasetRow.build(input=i, expected=str(i * 2), id=f"r{{i}}") for i in range(6)]
sync_rows(platform, dataset, rows)
request = EvalRequest(name="run", snapshot=platform.snapshot(dataset), task=lambda x: str(x * 2),
                      scorers=["exact_match"])
report = platform.run_eval(request)
print(gate_verdict(evaluate_gate(report, {{"exact_match": 0.9}}, {{}}, 0)))
print(dagster_evals.ConfigError.__module__, sorted(k for k in sys.modules if k.startswith("dagster")
      and not k.startswith("dagster_evals") and sys.modules[k] is not None))
"""

ENGINE_MODULES = [
    "dagster_evals",
    "dagster_evals.airflow",
    "dagster_evals.airflow.hooks",
    "dagster_evals.airflow.operators",
    "dagster_evals.airflow.eval_operator",
    "dagster_evals.airflow.sensors",
    "dagster_evals.airflow.triggers",
    "dagster_evals.airflow.lineage",
    "dagster_evals.backends",
    "dagster_evals.backends.local",
    "dagster_evals.backends.braintrust",
    "dagster_evals.backends.keywordsai",
    "dagster_evals.judges",
    "dagster_evals.engine.gates",
    "dagster_evals.engine.new_versions",
    "dagster_evals.engine.triggers",
    "dagster_evals.engine.runner",
    "dagster_evals.engine.checkpoints",
    "dagster_evals.judges.prompt_tasks",
]


def test_the_engine_and_the_airflow_provider_run_where_dagster_cannot_be_imported(tmp_path: Path) -> None:
    script = textwrap.dedent(NO_DAGSTER.format(modules=ENGINE_MODULES))
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    verdict, loaded = done.stdout.strip().splitlines()[-2:]
    assert verdict == "passed"
    assert loaded == "dagster_evals.engine.errors []"


def test_every_public_name_is_still_importable_from_the_package() -> None:
    assert set(dagster_evals.__all__) <= set(dir(dagster_evals))
    for name in dagster_evals.__all__:
        assert getattr(dagster_evals, name) is not None, name
    from dagster_evals.backends.base import EvalPlatformResource
    from dagster_evals.backends.local.platform import LocalEvalResource as via_platform
    from dagster_evals.judges import JudgeResource

    assert dagster_evals.EvalPlatformResource is EvalPlatformResource
    assert via_platform is LocalEvalResource and JudgeResource is dagster_evals.JudgeResource
    importlib.import_module("dagster_evals.prompt_task")  # the old module path does not shadow the function
    assert callable(dagster_evals.prompt_task) and dagster_evals.prompt_task.__name__ == "prompt_task"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert dagster_evals.LocalEvalResource is LocalEvalResource
    assert "use dagster_evals.LocalResource" in str(caught[0].message)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = dagster_evals.nope


def test_an_error_leaving_a_dagster_step_is_a_failure_and_keeps_its_class(tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text('{"id": "a", "input": 1}\n{"id": "b", "input": \n', encoding="utf-8")
    suite = EvalSuite(name="bad", source=source, key_field="id", task=str, scorers=["exact_match"])
    defs = build_eval_suite_definitions(suite)
    with dg.instance_for_test() as instance, pytest.raises(InputError) as raised:
        dg.materialize(
            list(defs.assets or []),  # type: ignore[arg-type]
            instance=instance,
            resources={"evals": LocalEvalResource(path=str(tmp_path / "evals.sqlite"))},
            selection=[suite.dataset_key],
        )
    assert isinstance(raised.value, dg.Failure)
    assert "rows.jsonl:2: malformed JSON" in str(raised.value) and raised.value.description == str(
        raised.value
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("dagster_evals.runner", "dagster_evals.engine.runner"),
        ("dagster_evals.models", "dagster_evals.engine.models"),
        ("dagster_evals.usage_report", "dagster_evals.engine.usage_report"),
        ("dagster_evals.sharded_asset", "dagster_evals.sharding.asset"),
        ("dagster_evals.component", "dagster_evals.components.eval_suite"),
        ("dagster_evals.component_fields", "dagster_evals.components.fields"),
        ("dagster_evals.component_scaffolder", "dagster_evals.components.scaffolder"),
    ],
)
def test_a_moved_module_keeps_its_old_path_with_a_warning_naming_the_new_one(old: str, new: str) -> None:
    script = f"""
import warnings
warnings.simplefilter("error")  # the first import of the old path must warn
import {new} as moved
try:
    import {old}
except DeprecationWarning as warning:
    print("WARNED", warning)
warnings.simplefilter("ignore")
import {old} as old_module
print("SAME", old_module is moved, old_module.__spec__.name)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"WARNED {old} moved to {new}" in done.stdout
    assert f"SAME True {new}" in done.stdout


def test_a_judge_name_resolves_through_the_engine_without_importing_dagster() -> None:
    script = """
import sys
sys.modules["dagster"] = None
from dagster_evals.engine.scorers import resolve_scorer
print(resolve_scorer("factuality").name)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "factuality"


def import_cycles(package: str) -> list[list[str]]:
    """Each import cycle among the modules of `package`, as a loop of module names (`[a, b, a]`).

    Counts every import statement, also those inside functions (lazy imports); leaves out imports under
    `if TYPE_CHECKING:` (they never run). One loop is named per strongly connected component.
    """
    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    edges = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(edges):  # Tarjan's algorithm, iteratively (no recursion limit on big packages)
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges[target])))
                elif target in on_stack:
                    low[module] = min(low[module], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == module:
                        break
                if len(component) > 1:
                    components.append(component)
    return [_loop_through(sorted(component)[0], component, edges) for component in components]


def _loop_through(start: str, component: set[str], edges: dict[str, list[str]]) -> list[str]:
    """The shortest import loop from `start` back to itself inside one strongly connected component."""
    came_from: dict[str, str] = {}
    queue = [start]
    while queue:
        module = queue.pop(0)
        for target in edges[module]:
            if target not in component:
                continue
            if target == start:
                loop = [module]
                while loop[-1] != start:
                    loop.append(came_from[loop[-1]])
                return [start, *reversed(loop[:-1]), start]
            if target not in came_from:
                came_from[target] = module
                queue.append(target)
    raise AssertionError(f"no loop through {start}")


def test_no_two_modules_of_the_package_import_each_other() -> None:
    cycles = import_cycles("dagster_evals")
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(loop) for loop in cycles)


def test_the_cycle_finder_names_a_loop_closed_by_a_lazy_import_and_skips_type_checking_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "loops_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from loops_pkg import b\n")
    (package / "b.py").write_text("def f():\n    from loops_pkg import c\n")
    (package / "c.py").write_text("import loops_pkg.a\n")
    (package / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import loops_pkg.e\n"
    )
    (package / "e.py").write_text("import loops_pkg.d\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("loops_pkg") == [["loops_pkg.a", "loops_pkg.b", "loops_pkg.c", "loops_pkg.a"]]


MAX_MODULE_LINES = 400
# Modules still over the limit, each split in its own change; an entry fails once its module is back under
# the limit, so it is removed then.
OVER_THE_LIMIT_FOR_NOW = {"dagster_evals/engine/runner.py"}


def test_no_module_of_the_package_is_over_400_lines() -> None:
    lines = {
        path.relative_to(REPO).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted((REPO / "dagster_evals").rglob("*.py"))
    }
    too_long = {path: n for path, n in lines.items() if n > MAX_MODULE_LINES}
    assert set(too_long) - OVER_THE_LIMIT_FOR_NOW == set(), f"over {MAX_MODULE_LINES} lines: {too_long}"
    back_under = OVER_THE_LIMIT_FOR_NOW - set(too_long)
    assert not back_under, (
        f"back under {MAX_MODULE_LINES} lines, remove from OVER_THE_LIMIT_FOR_NOW: {back_under}"
    )


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("dagster_evals.assets", "dagster_evals.suite", ["EvalSuite", "SourceLike"]),
        (
            "dagster_evals.assets",
            "dagster_evals.eval_step",
            ["get_platform", "SuiteEvalRun", "PreparedEval", "run_suite_eval", "prepare_suite_eval"],
        ),
        ("dagster_evals.assets", "dagster_evals.lineage", ["lineage_assets", "with_observed_prompt"]),
        ("dagster_evals.sensors", "dagster_evals.lineage", ["build_prompt_asset", "build_release_asset"]),
        ("dagster_evals.sharding", "dagster_evals.sharding.shards", ["shard_of", "shard_rows", "run_shard"]),
        ("dagster_evals.judges.judge", "dagster_evals.judges.settings", ["endpoint_settings"]),
        ("dagster_evals.engine.summary", "dagster_evals.engine.stats", ["percentile"]),
        ("dagster_evals.airflow.sensors", "dagster_evals.airflow.triggers", ["list_new_versions"]),
        (
            "dagster_evals.backends.braintrust.platform",
            "dagster_evals.backends.braintrust",
            ["BraintrustResource"],
        ),
        (
            "dagster_evals.backends.keywordsai.platform",
            "dagster_evals.backends.keywordsai",
            ["KeywordsAIResource"],
        ),
    ],
)
def test_a_name_moved_to_another_module_is_still_importable_from_its_old_one(
    old: str, new: str, names: list[str]
) -> None:
    for name in names:
        assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name), (
            name
        )


def test_the_braintrust_eval_shapes_are_one_namespace_and_their_old_path_warns() -> None:
    from dagster_evals.backends.braintrust import api, eval_models, models

    assert api.RunEval is eval_models.RunEval and api.CreateDataset is models.CreateDataset
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert models.RunEval is api.RunEval
    assert "models.RunEval moved: import it from dagster_evals.backends.braintrust.api" in str(
        caught[0].message
    )
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = models.Nope
