"""Old import paths of modules that moved in 0.2.0, kept working for one release.

`import dagster_evals.runner` (or `from dagster_evals.runner import run_eval_locally`) still works: it
warns with a `DeprecationWarning` naming the new path and gives back the moved module itself, so
`dagster_evals.runner is dagster_evals.engine.runner` and setting an attribute on either sets it on both.
The old paths go in 0.3.0.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

ENGINE_MODULES = (
    "bounded_calls",
    "checkpoints",
    "embedded_db",
    "errors",
    "formatting",
    "gates",
    "git",
    "http",
    "isolation",
    "limits",
    "models",
    "new_versions",
    "progress",
    "report_spill",
    "review",
    "row_index",
    "runner",
    "scorers",
    "seen_ids",
    "shard_key",
    "sources",
    "summary",
    "sync",
    "task_call",
    "timeouts",
    "triggers",
    "usage",
    "usage_report",
    "version",
    "worker_pool",
)

#: Old module path -> where the module lives now.
MOVED_MODULES: dict[str, str] = {
    **{f"dagster_evals.{name}": f"dagster_evals.engine.{name}" for name in ENGINE_MODULES},
    "dagster_evals.prompt_task": "dagster_evals.judges.prompt_tasks",
    "dagster_evals.sharded_asset": "dagster_evals.sharding.asset",
    "dagster_evals.component": "dagster_evals.components.eval_suite",
    "dagster_evals.component_fields": "dagster_evals.components.fields",
    "dagster_evals.component_scaffolder": "dagster_evals.components.scaffolder",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new path, with a warning."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED_MODULES[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}: import it from there ({spec.name} goes in dagster-evals 0.3.0)",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new)
        self._specs[new] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The module at the new path is already loaded; the import system gave it the old path's spec.
        module.__spec__ = self._specs[module.__name__]


_FINDER = _MovedModuleFinder()


def install_moved_module_aliases() -> None:
    """Make the old module paths importable (idempotent)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
    # `dagster_evals.prompt_task` is also the name of a function in the package: importing the old module
    # path through the finder would put the module where the function is, so the alias is set up front.
    sys.modules.setdefault(
        "dagster_evals.prompt_task", importlib.import_module("dagster_evals.judges.prompt_tasks")
    )
