"""What an eval scores is written in batches on a writer thread: as soon as a batch is due by count, within
the flush interval when no further result comes, everything once flushed, in order, never more than the
set number waiting, and a failed write is raised to the run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dagster_evals.engine.batch_writer import BatchWriter
from dagster_evals.engine.checkpoints import CheckpointStore
from dagster_evals.engine.models import RowResult


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class GatedWrites:
    """A `write` that records each batch and its thread, and holds the first batch until `release`."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.release = threading.Event()
        self.writing = threading.Event()

    def __call__(self, batch: list[int]) -> None:
        self.writing.set()
        if not self.batches:
            assert self.release.wait(30)
        self.batches.append(list(batch))
        self.threads.add(threading.current_thread().name)

    @property
    def written(self) -> list[int]:
        return [item for batch in self.batches for item in batch]


def test_what_piles_up_during_a_write_is_taken_when_it_ends_without_a_further_item() -> None:
    writes = GatedWrites()
    batches = BatchWriter("test-writer", writes, due_count=4, due_age_s=None, most_waiting=100)
    for item in range(4):
        batches.add(item)  # due: handed over, held in the write
    assert writes.writing.wait(10)
    for item in range(4, 10):
        batches.add(item)  # piling up while the writer is busy
    assert batches.waiting == 6
    writes.release.set()
    # The six are due: the writer takes them once done, though nothing else is added or flushed.
    assert eventually(lambda: writes.written == list(range(10)))
    assert writes.batches == [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]
    assert writes.threads == {"test-writer"}
    batches.close()


def test_items_fewer_than_a_batch_are_written_within_the_flush_interval_though_nothing_follows() -> None:
    writes = GatedWrites()
    writes.release.set()
    batches = BatchWriter("test-writer", writes, due_count=100, due_age_s=0.2, most_waiting=1000)
    for item in range(100):
        batches.add(item)  # one full batch: the writer runs, then waits for what follows
    assert eventually(lambda: len(writes.written) == 100)
    started = time.monotonic()
    for item in range(100, 103):
        batches.add(item)
    assert eventually(lambda: len(writes.written) == 103, timeout=5)
    assert time.monotonic() - started < 2  # by age, within the interval (and this machine's slack)
    assert writes.written == list(range(103))
    batches.close()


def test_without_an_age_the_last_items_wait_for_the_flush() -> None:
    writes = GatedWrites()
    writes.release.set()
    batches = BatchWriter("test-writer", writes, due_count=10, due_age_s=None, most_waiting=100)
    for item in range(13):
        batches.add(item)
    assert eventually(lambda: len(writes.written) == 10)
    time.sleep(0.3)
    assert len(writes.written) == 10 and batches.waiting == 3
    batches.flush()
    batches.wait()
    assert writes.written == list(range(13))
    batches.close()


def test_flush_and_wait_return_once_written_not_a_flush_interval_later() -> None:
    """A writer waiting for more items (up to `due_age_s`) never holds up the end of a run."""
    writes = GatedWrites()
    writes.release.set()
    batches = BatchWriter("test-writer", writes, due_count=3, due_age_s=2.0, most_waiting=100)
    started = time.monotonic()
    for round_ in range(20):
        for item in range(5):
            batches.add(10 * round_ + item)  # one batch due and handed over, two more waiting
        batches.flush()
        batches.wait()
        assert len(writes.written) == 5 * (round_ + 1)
    assert time.monotonic() - started < 10  # twenty rounds, where one held up would take 2 s
    batches.close()


def test_a_run_far_ahead_of_its_writer_waits_for_it() -> None:
    writes = GatedWrites()
    batches = BatchWriter("test-writer", writes, due_count=2, due_age_s=None, most_waiting=5)
    added: list[int] = []

    def run() -> None:
        for item in range(20):
            batches.add(item)
            added.append(item)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    assert writes.writing.wait(10)
    time.sleep(0.3)
    # Held at the limit: 2 in the write held, at most 5 waiting, and the add of the next one waiting.
    assert len(added) <= 2 + 5
    writes.release.set()
    runner.join(10)
    batches.flush()
    batches.wait()
    assert writes.written == list(range(20))
    batches.close()


def test_a_failed_write_is_raised_by_wait_and_by_the_next_add() -> None:
    def failing(batch: list[int]) -> None:
        raise RuntimeError(f"disk full writing {len(batch)} items")

    batches = BatchWriter("test-writer", failing, due_count=2, due_age_s=None, most_waiting=10)
    batches.add(1)
    batches.add(2)
    with pytest.raises(RuntimeError, match="disk full writing 2 items"):
        batches.wait()
    with pytest.raises(RuntimeError, match="disk full"):
        for item in range(3, 10):
            batches.add(item)
    batches.close()


def test_inline_batches_are_written_on_the_adding_thread() -> None:
    writes = GatedWrites()
    writes.release.set()
    batches = BatchWriter("test-writer", writes, due_count=2, due_age_s=0.05, most_waiting=10, inline=True)
    for item in range(5):
        batches.add(item)
    assert writes.written[:4] == [0, 1, 2, 3]
    assert writes.threads == {threading.current_thread().name}
    batches.flush()
    batches.wait()
    assert writes.written == list(range(5))
    batches.close()


def test_checkpoints_in_their_own_database_are_written_within_the_flush_interval(tmp_path: Path) -> None:
    """As for a Braintrust or Keywords AI eval, whose checkpoints are the only thing kept here: a result is
    checkpointed within `flush_interval_s` while the next rows still wait on the model."""
    store = CheckpointStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    checkpoints = store.checkpoints("slow-model", flush_every=64, flush_interval_s=0.2)
    for index in range(64 + 3):
        checkpoints.record(RowResult(row_id=f"r{index:03d}", scores={"exact_match": 1.0}))
    assert eventually(lambda: store.count("slow-model") == 67, timeout=5)
    checkpoints.flush()
    assert checkpoints.recorded == 67
    store.close()


def test_the_documented_example_runs() -> None:
    import doctest

    from dagster_evals.engine import batch_writer

    outcome = doctest.testmod(batch_writer)
    assert outcome.attempted > 0 and outcome.failed == 0
