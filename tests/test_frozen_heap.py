"""While an eval runs, the objects the process held before it are out of the garbage collector's scans, and
afterwards they are back: the host's heap is never walked by a full collection while rows are in flight."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dagster_evals import DatasetRow, run_eval_locally
from dagster_evals.engine.scorers import resolve_local_scorers


class _HostObject:
    """Stands for one of the objects a Dagster step holds before the eval starts (definitions, modules)."""


def _scanned(obj: Any) -> bool:
    """Whether the collector's generations (what a full collection walks) hold `obj`."""
    return any(o is obj for o in gc.get_objects())


def _run(task: Any, rows: int = 3) -> list[Any]:
    results: list[Any] = []
    run_eval_locally(
        [DatasetRow.build(input=f"q{i}", expected=f"Q{i}", id=f"r{i}") for i in range(rows)],
        task,
        resolve_local_scorers(["exact_match"]),
        results.append,
        max_concurrency=2,
    )
    return results


@pytest.fixture(autouse=True)
def _collector_as_found() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


def test_host_objects_are_out_of_the_scans_during_the_run_and_back_after() -> None:
    host = _HostObject()
    seen: list[tuple[bool, int]] = []

    def task(input: str) -> str:
        seen.append((_scanned(host), gc.get_freeze_count()))
        return input.upper()

    results = _run(task)

    assert [r.scores for r in results] == [{"exact_match": 1.0}] * 3
    assert all(not scanned and frozen > 0 for scanned, frozen in seen), seen
    assert _scanned(host)
    assert gc.get_freeze_count() == 0


def test_a_full_collection_during_the_run_still_frees_the_runs_own_garbage() -> None:
    freed: list[int] = []

    def task(input: str) -> str:
        cycle: list[Any] = []
        cycle.append(cycle)  # garbage only a collection can free, made during the run
        del cycle
        freed.append(gc.collect())
        return input.upper()

    _run(task, rows=2)

    assert freed and all(count >= 1 for count in freed), freed


def test_a_heap_the_process_froze_itself_is_left_frozen() -> None:
    host = _HostObject()
    gc.freeze()  # as a server that forks its workers does
    later = _HostObject()  # made after the process's freeze: scanned, unless the run froze the heap again
    seen: list[tuple[bool, bool]] = []

    def task(input: str) -> str:
        seen.append((_scanned(host), _scanned(later)))
        return input.upper()

    _run(task)

    # (The freeze count is not compared: frozen objects freed meanwhile, by any thread, lower it.)
    assert seen == [(False, True)] * 3
    assert not _scanned(host)  # the process's freeze is still in place
    assert _scanned(later)


def test_a_collector_turned_off_stays_off_and_nothing_is_frozen() -> None:
    gc.disable()
    seen: list[int] = []

    def task(input: str) -> str:
        seen.append(gc.get_freeze_count())
        return input.upper()

    _run(task)

    assert seen == [0] * 3
    assert not gc.isenabled()


def test_concurrent_evals_unfreeze_once_the_last_one_ends() -> None:
    host = _HostObject()
    first_started, second_done = threading.Event(), threading.Event()
    during_second: list[bool] = []
    after_second: list[bool] = []

    def first_task(input: str) -> str:
        first_started.set()
        assert second_done.wait(30)
        after_second.append(_scanned(host))  # the second eval ended; this one still runs
        return input.upper()

    def second_task(input: str) -> str:
        during_second.append(_scanned(host))
        return input.upper()

    first = threading.Thread(target=_run, args=(first_task, 1))
    first.start()
    assert first_started.wait(30)
    _run(second_task, rows=1)
    second_done.set()
    first.join(30)

    assert during_second == [False]
    assert after_second == [False]
    assert gc.get_freeze_count() == 0
    assert _scanned(host)


def test_the_heap_is_unfrozen_when_the_run_raises() -> None:
    def on_result(_: Any) -> None:
        raise RuntimeError("the results sink failed")

    with pytest.raises(RuntimeError, match="results sink failed"):
        run_eval_locally(
            [DatasetRow.build(input="q", expected="Q")],
            str.upper,
            resolve_local_scorers(["exact_match"]),
            on_result,
        )

    assert gc.get_freeze_count() == 0
