"""Bad input, end to end: each case of docs/bad-input.md fails with one clear error naming what to fix, and
leaves the platform exactly as it was — materialized through Dagster on the local backend and against the
fake Braintrust and Keywords AI servers over real HTTP."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from starlette.responses import JSONResponse

from dagster_evals import (
    BraintrustResource,
    ConfigError,
    EvalPlatformResource,
    EvalSuite,
    KeywordsAIResource,
    LocalEvalResource,
    LocalPlatform,
    PlatformFunction,
    build_eval_suite_assets,
)
from dagster_evals.testing import ServerThread
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.keywordsai import KeywordsAIFake
from tests.conftest import add_task, qa_rows, write_jsonl

BT_KEY = "bt-bad-input-key-7f3a"
KW_KEY = "kw-bad-input-key-91c4"
ROWS = 60
BAD_LINE = 50
PLATFORMS = ("local", "braintrust", "keywordsai")


# -- backends ---------------------------------------------------------------------------------------------
@dataclass
class Backend:
    """One platform under test: a resource factory, a fingerprint of everything stored on the platform, and
    a way to delete a dataset behind the suite's back."""

    name: str
    make: Callable[..., EvalPlatformResource]
    state: Callable[[], Any]
    delete_dataset: Callable[[str], None]
    app: Any = None


def _local(tmp_path: Path) -> Backend:
    db = tmp_path / "evals.sqlite"

    LocalPlatform(db).close()

    def state() -> Any:
        with sqlite3.connect(db) as conn:
            return {
                table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in ("datasets", "dataset_rows", "experiments", "experiment_rows")
            }

    def delete_dataset(name: str) -> None:
        with sqlite3.connect(db) as conn:
            [dataset_id] = [r[0] for r in conn.execute("SELECT id FROM datasets WHERE name = ?", (name,))]
            conn.execute("DELETE FROM dataset_rows WHERE dataset_id = ?", (dataset_id,))
            conn.execute("DELETE FROM dataset_versions WHERE dataset_id = ?", (dataset_id,))
            conn.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))

    return Backend("local", lambda **o: LocalEvalResource(path=str(db), **o), state, delete_dataset)


def _braintrust(fake: BraintrustFake, server: ServerThread) -> Backend:
    def make(**overrides: Any) -> BraintrustResource:
        options: dict[str, Any] = {
            "api_key": BT_KEY,
            "api_url": server.url,
            "app_url": server.url,
            "project": "bad-input",
            "backoff_base_s": 0.01,
            "collect_git": False,
        }
        return BraintrustResource(**(options | overrides))

    def state() -> Any:
        live = {
            kind: sorted(i for i, o in fake.objects[kind].items() if not o.data.get("deleted_at"))
            for kind in ("project", "dataset", "experiment")
        }
        return live, dict(fake.events_written)

    def delete_dataset(name: str) -> None:
        platform = make().get_platform()
        platform.client.delete_dataset(platform.ensure_dataset(name).id)

    return Backend("braintrust", make, state, delete_dataset, fake.app)


def _keywordsai(fake: KeywordsAIFake, server: ServerThread) -> Backend:
    def make(**overrides: Any) -> KeywordsAIResource:
        options: dict[str, Any] = {
            "api_key": KW_KEY,
            "base_url": server.url,
            "rate_limit_per_minute": None,
            "eval_poll_interval_s": 0.01,
            "max_retries": 1,
        }
        return KeywordsAIResource(**(options | overrides))

    def state() -> Any:
        return sorted(
            (
                d["id"],
                d["name"],
                sorted(json.dumps(log, sort_keys=True) for log in fake.dataset_logs(d["id"])),
            )
            for d in fake.datasets.values()
        ), {k: [r["id"] for r in v] for k, v in fake.reports.items()}

    def delete_dataset(name: str) -> None:
        platform = make().get_platform()
        platform.delete_dataset(platform.ensure_dataset(name))

    return Backend("keywordsai", make, state, delete_dataset, fake.app)


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        yield _local(tmp_path)
    elif request.param == "braintrust":
        fake = BraintrustFake(api_key=BT_KEY)
        with fake.serve() as server:
            yield _braintrust(fake, server)
    else:
        kw = KeywordsAIFake(api_keys=[KW_KEY], rate_limit_per_minute=None)
        with kw.serve() as server:
            yield _keywordsai(kw, server)


def on(*platforms: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("backend", platforms, indirect=True)


# -- running suites ---------------------------------------------------------------------------------------
def suite_for(source: Any, **overrides: Any) -> EvalSuite:
    options: dict[str, Any] = {
        "name": "bad_input",
        "source": source,
        "key_field": "id",
        "task": add_task,
        "scorers": ["exact_match"],
        "baseline": None,
    }
    return EvalSuite(**(options | overrides))


def run(
    suite: EvalSuite,
    instance: dg.DagsterInstance,
    resource: EvalPlatformResource,
    only: list[dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_eval_suite_assets(suite),
        instance=instance,
        resources={"evals": resource},
        selection=only,
        raise_on_error=False,
    )


def the_error(result: dg.ExecuteInProcessResult) -> str:
    """The one step failure of a run: its message as the run page shows it."""
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1, [e.step_key for e in failures]
    error = failures[0].step_failure_data.error
    assert error is not None
    # A DagsterEvalsError is a dg.Failure: Dagster shows its description, not a traceback of our code.
    return error.message if error.cls_name != "DagsterUserCodeExecutionError" else error.cause.message


def fails_clearly(result: dg.ExecuteInProcessResult, pattern: str) -> str:
    message = the_error(result)
    assert len(re.findall(pattern, message)) == 1, message
    return message


# -- malformed sources ------------------------------------------------------------------------------------
def good_rows() -> list[dict[str, Any]]:
    return qa_rows(ROWS)


def changed_rows() -> list[dict[str, Any]]:
    """The same keys with changed content: a sync would send each of them."""
    rows = qa_rows(ROWS)
    for row in rows:
        row["metadata"] = {"kind": "changed"}
    return rows


def jsonl_with(tmp_path: Path, bad: str | bytes) -> Path:
    """A JSONL source whose line `BAD_LINE` is `bad` and every other line a changed, valid row."""
    lines = [json.dumps(row).encode() for row in changed_rows()]
    lines[BAD_LINE - 1] = bad if isinstance(bad, bytes) else bad.encode()
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def csv_with(tmp_path: Path, bad: str) -> Path:
    """A CSV source whose row `BAD_LINE` (file line `BAD_LINE + 1`) is `bad`."""
    lines = ["id,input,expected,kind"] + [f"q{i},{i},{i + 2},changed" for i in range(ROWS)]
    lines[BAD_LINE] = bad
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


DEEP = "[" * 10_000 + "]" * 10_000


def directory_source(tmp_path: Path) -> Path:
    (tmp_path / "rows.jsonl").mkdir()
    return tmp_path / "rows.jsonl"


def fifo_source(tmp_path: Path) -> Path:
    # Opening a FIFO blocks until something writes to it; nothing ever will.
    os.mkfifo(tmp_path / "rows.jsonl")
    return tmp_path / "rows.jsonl"


def csv_with_header(tmp_path: Path, header: str) -> Path:
    lines = [header] + [f"q{i},{i},{i + 2},changed" for i in range(ROWS)]
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Opaque:
    """A Python object with no JSON form."""


def iterable_with(bad: dict[str, Any]) -> Callable[[], list[dict[str, Any]]]:
    def support_rows() -> list[dict[str, Any]]:
        rows = changed_rows()
        rows[BAD_LINE - 1] = bad
        return rows

    return support_rows


SOURCE_CASES: dict[str, tuple[Callable[[Path], Any], str]] = {
    "jsonl-syntax-error": (
        lambda p: jsonl_with(p, '{"id": "q49", "input": {"a": 49, "b": 2}'),
        r"rows\.jsonl:50: malformed JSON \(Expecting ',' delimiter at column 41\)",
    ),
    "jsonl-not-utf8": (
        lambda p: jsonl_with(p, b'{"id": "q49", "input": "caf\xe9"}'),
        r"rows\.jsonl:50: the line is not UTF-8 text \(byte 0xe9 at column 28\)",
    ),
    "empty-file": (
        lambda p: write_jsonl(p / "rows.jsonl", []),
        r"rows\.jsonl: the source has no rows",
    ),
    "missing-file": (
        lambda p: p / "rows.jsonl",
        r"rows\.jsonl: source file not found",
    ),
    "csv-row-too-long": (
        lambda p: csv_with(p, "q49,49,51,changed,extra"),
        r"rows\.csv:51: the line has 5 cells, the header has 4",
    ),
    "csv-row-too-short": (
        lambda p: csv_with(p, "q49,49"),
        r"rows\.csv:51: the line has 2 cells, the header has 4",
    ),
    "no-input": (
        lambda p: jsonl_with(p, '{"id": "q49", "expected": "51"}'),
        r"rows\.jsonl:50: the row has no 'input' field",
    ),
    "no-key": (
        lambda p: jsonl_with(p, '{"input": {"a": 49, "b": 2}}'),
        r"rows\.jsonl:50: the key field 'id' is missing or empty",
    ),
    "duplicate-key": (
        lambda p: jsonl_with(p, '{"id": "q3", "input": {"a": 49, "b": 2}}'),
        r"rows\.jsonl: 1 duplicate row key\(s\)[^\n]*\n  'q3': [^\n]*rows\.jsonl:4, [^\n]*rows\.jsonl:50",
    ),
    "unknown-field": (
        lambda p: jsonl_with(p, '{"id": "q49", "input": 1, "expect": "51"}'),
        r"rows\.jsonl:50: unknown field\(s\) 'expect'",
    ),
    "metadata-not-object": (
        lambda p: jsonl_with(p, '{"id": "q49", "input": 1, "metadata": ["kind"]}'),
        r"rows\.jsonl:50: field 'metadata' must be an object, got list",
    ),
    "tags-not-list": (
        lambda p: jsonl_with(p, '{"id": "q49", "input": 1, "tags": "smoke,math"}'),
        r"rows\.jsonl:50: field 'tags' must be a list of strings",
    ),
    "key-wrong-type": (
        lambda p: jsonl_with(p, '{"id": {"n": 49}, "input": 1}'),
        r"rows\.jsonl:50: the key field 'id' must be a string or an integer, got dict",
    ),
    "key-is-bool": (
        lambda p: jsonl_with(p, '{"id": true, "input": 1}'),
        r"rows\.jsonl:50: the key field 'id' must be a string or an integer, got bool",
    ),
    "nan-value": (
        lambda p: jsonl_with(p, '{"id": "q49", "input": {"a": NaN, "b": 2}}'),
        r"rows\.jsonl:50: field 'input' holds NaN or Infinity, which JSON cannot carry",
    ),
    "infinity-value": (
        lambda p: jsonl_with(p, '{"id": "q49", "input": 1, "metadata": {"weight": Infinity}}'),
        r"rows\.jsonl:50: field 'metadata' holds NaN or Infinity, which JSON cannot carry",
    ),
    "python-object": (
        lambda p: iterable_with({"id": "q49", "input": 1, "expected": Opaque()}),
        r"support_rows row 50: field 'expected' is not JSON: Object of type Opaque is not JSON serializable",
    ),
    "python-datetime-in-metadata": (
        lambda p: iterable_with({"id": "q49", "input": 1, "metadata": {"at": datetime(2024, 1, 1)}}),
        r"support_rows row 50: field 'metadata' is not JSON: Object of type datetime is not JSON serializable",
    ),
    "deep-nesting-jsonl": (
        lambda p: jsonl_with(p, '{"id": "q49", "input": ' + DEEP + "}"),
        r"rows\.jsonl:50: the line nests arrays/objects 10001 levels deep, more than the 200 levels a row "
        r"may have; flatten it \(e\.g\. store the deep part as a JSON string\)",
    ),
    "deep-nesting-csv": (
        lambda p: csv_with(p, f'q49,"{DEEP}",51,changed'),
        r"rows\.csv:51: column 'input' nests arrays/objects 10000 levels deep, more than the 200 levels",
    ),
    "deep-nesting-python": (
        lambda p: iterable_with({"id": "q49", "input": 1, "expected": deep(10_000)}),
        r"support_rows row 50: field 'expected' nests arrays/objects 10000 levels deep, more than the 200",
    ),
    "directory": (
        directory_source,
        r"rows\.jsonl: the source is a directory, not a file; point at a \.jsonl or \.csv file in it",
    ),
    "fifo": (
        fifo_source,
        r"rows\.jsonl: the source is a FIFO \(named pipe\); write the rows to a regular file and point at that",
    ),
    "csv-duplicate-header": (
        lambda p: csv_with_header(p, "id,input,expected,input"),
        r"rows\.csv:1: the CSV header names column 'input' twice \(columns 2 and 4\); give every column a "
        r"unique name",
    ),
}


# Sources are read whole and checked before the platform is contacted, so the platform does not matter to
# these cases: each runs on the local backend, and the line-50 syntax error on every platform.
SOURCE_RUNS = [(case, "local") for case in SOURCE_CASES] + [
    ("jsonl-syntax-error", "braintrust"),
    ("jsonl-syntax-error", "keywordsai"),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("case", "backend"), SOURCE_RUNS, indirect=["backend"])
def test_bad_source_fails_clearly_and_syncs_nothing(
    case: str, backend: Backend, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    make_source, pattern = SOURCE_CASES[case]
    resource = backend.make()
    if case in ("jsonl-syntax-error", "empty-file"):
        # The dataset already holds the good rows: the bad source changes lines 1-49 and breaks line 50,
        # or is empty (and must not wipe the dataset).
        good = suite_for(write_jsonl(tmp_path / "good.jsonl", good_rows()))
        assert run(good, instance, resource, only=[good.dataset_key]).success
    before = backend.state()

    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    result = run(suite_for(make_source(bad_dir)), instance, resource)

    fails_clearly(result, pattern)
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert failed == ["evals__bad_input__dataset"]
    assert backend.state() == before, "nothing of the bad source may reach the platform"


# -- platform-specific cases ------------------------------------------------------------------------------
def synced_and_pinned(
    suite: EvalSuite, backend: Backend, instance: dg.DagsterInstance, **options: Any
) -> Any:
    """Sync and pin the suite's dataset; returns the platform state the failing step must leave as is."""
    resource = backend.make(**options)
    assert run(suite, instance, resource, only=[suite.dataset_key, suite.snapshot_key]).success
    return backend.state()


@on("braintrust", "keywordsai")
def test_oversized_row_is_named_before_anything_is_sent(
    backend: Backend, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    limit = {"insert_max_bytes": 4096} if backend.name == "braintrust" else {"max_request_bytes": 4096}
    options = {"insert_batch_size": 10} if backend.name == "braintrust" else {"batch_size": 10}
    resource = backend.make(**limit, **options)
    good = suite_for(write_jsonl(tmp_path / "good.jsonl", good_rows()))
    assert run(good, instance, resource, only=[good.dataset_key]).success
    before = backend.state()

    rows = changed_rows()
    rows[BAD_LINE - 1]["input"] = {"a": 49, "b": 2, "context": "x" * 10_000}
    result = run(suite_for(write_jsonl(tmp_path / "rows.jsonl", rows)), instance, resource)

    fails_clearly(result, r"row 'q49' is \d+ bytes once encoded, more than the 4096 bytes")
    assert backend.state() == before, "the rows before the oversized one must not be sent either"


UNKNOWN_FUNCTIONS: dict[str, tuple[str, dict[str, Any], str]] = {
    "braintrust-function-id": (
        "braintrust",
        {"scorers": [PlatformFunction(platform="braintrust", name="judge", spec={"function_id": "fn-gone"})]},
        r"braintrust POST /v1/eval failed \(HTTP 404\): function fn-gone not found",
    ),
    "braintrust-project": (
        "braintrust",
        {
            "scorers": [
                PlatformFunction(
                    platform="braintrust",
                    name="judge",
                    spec={"project_name": "no-such-project", "slug": "judge"},
                )
            ]
        },
        r"braintrust POST /v1/eval failed \(HTTP 404\): project 'no-such-project' not found",
    ),
    "keywordsai-evaluator-slug": (
        "keywordsai",
        {"scorers": ["exact_match", PlatformFunction(platform="keywordsai", name="no_such_eval")]},
        r"Keywords AI has no evaluator 'no_such_eval'",
    ),
    "platform-scorer-on-local": (
        "local",
        {"scorers": [PlatformFunction(platform="keywordsai", name="exact_match_eval")]},
        r"scorer 'exact_match_eval' runs on keywordsai; it cannot be used with a local task run",
    ),
}
REMOTE_TASK = PlatformFunction(
    platform="braintrust",
    name="adder",
    spec={
        "inline_context": {"runtime": "python", "version": "3.11"},
        "code": "def handler(input):\n    return str(input['a'] + input['b'])\n",
    },
)


@pytest.mark.parametrize(
    ("case", "backend"), [(case, spec[0]) for case, spec in UNKNOWN_FUNCTIONS.items()], indirect=["backend"]
)
def test_unknown_platform_function_fails_before_the_eval_starts(
    case: str, backend: Backend, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    _, overrides, pattern = UNKNOWN_FUNCTIONS[case]
    if backend.name == "braintrust":
        overrides = {**overrides, "task": REMOTE_TASK}
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", good_rows()), **overrides)
    before = synced_and_pinned(suite, backend, instance)

    result = run(suite, instance, backend.make(), only=[suite.eval_report_key])

    fails_clearly(result, pattern)
    assert backend.state() == before, "no experiment, eval dataset or report may be left behind"


def test_unknown_scorer_name_fails_when_the_suite_is_defined(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown scorer 'bleu'; known scorers: exact_match, json_diff"):
        suite_for(tmp_path / "rows.jsonl", scorers=["exact_match", "bleu"])


DELETED_DATASET = {
    "local": r"local GET dataset/\S+ failed \(HTTP 404\): no dataset 'bad_input'",
    "braintrust": r"braintrust GET /v1/dataset/\S+ failed \(HTTP 404\): dataset \S+ not found",
    "keywordsai": r"keywordsai (?:GET|POST) /api/datasets/\S+/logs/list/ failed \(HTTP 404\): Dataset not found or not in "
    r"your organization",
}
PIN_AGAIN = (
    r" — dataset 'bad_input' of the pinned snapshot no longer exists: materialize the suite's dataset and "
    r"dataset_snapshot assets again"
)


@on(*PLATFORMS)
def test_pinned_snapshot_of_a_deleted_dataset_says_to_pin_again(
    backend: Backend, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", good_rows()))
    synced_and_pinned(suite, backend, instance)
    backend.delete_dataset(suite.name)
    before = backend.state()

    result = run(suite, instance, backend.make(), only=[suite.eval_report_key])

    fails_clearly(result, DELETED_DATASET[backend.name] + PIN_AGAIN)
    assert backend.state() == before


@on(*PLATFORMS)
def test_pinned_baseline_that_no_longer_exists_is_named(
    backend: Backend, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", good_rows()), baseline="exp-expired-2024")
    before = synced_and_pinned(suite, backend, instance)

    result = run(suite, instance, backend.make(), only=[suite.eval_report_key])

    fails_clearly(
        result,
        r"suite 'bad_input': the pinned baseline 'exp-expired-2024' does not exist on \w+ \(it may have "
        r"expired or been deleted\): pin another report id or use baseline='previous'",
    )
    assert backend.state() == before


ENV_VARS = {"braintrust": "BRAINTRUST_API_KEY", "keywordsai": "KEYWORDSAI_API_KEY"}
WRONG_KEY = "sk-wrong-but-secret-4d1e"


@on("braintrust", "keywordsai")
def test_rejected_key_names_the_env_var_and_never_shows_the_key(
    backend: Backend, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    before = backend.state()
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", good_rows()))

    result = run(suite, instance, backend.make(api_key=WRONG_KEY))

    message = fails_clearly(
        result,
        rf"\(HTTP 401\): .* — check the API key: set the {ENV_VARS[backend.name]} environment variable",
    )
    assert WRONG_KEY not in message
    assert backend.state() == before


FORBIDDEN = {
    "braintrust": {"error": "Missing create permission on project"},
    "keywordsai": {"detail": "You do not have permission to perform this action."},
}


def read_only(app: Any, body: dict[str, str]) -> Any:
    """The platform as a read-only key sees it: every write answers 403 in the platform's error shape."""

    async def forbid_writes(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] != "GET" and not path.endswith("/fetch"):
            await JSONResponse(body, status_code=403)(scope, receive, send)
            return
        await app(scope, receive, send)

    return forbid_writes


@on("braintrust", "keywordsai")
def test_forbidden_key_names_the_env_var(
    backend: Backend, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    before = backend.state()
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", good_rows()))
    with ServerThread(read_only(backend.app, FORBIDDEN[backend.name])) as server:
        url = {"api_url": server.url} if backend.name == "braintrust" else {"base_url": server.url}
        result = run(suite, instance, backend.make(**url))

    fails_clearly(
        result,
        rf"\(HTTP 403\): {next(iter(FORBIDDEN[backend.name].values()))} — check the API key: set the "
        rf"{ENV_VARS[backend.name]} environment variable",
    )
    assert backend.state() == before


@on("braintrust", "keywordsai")
def test_unset_or_empty_key_names_the_env_var(
    backend: Backend, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    before = backend.state()
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", good_rows()))
    env_var = ENV_VARS[backend.name]
    with pytest.raises(
        dg.DagsterInvalidConfigError,
        match=rf'You have attempted to fetch the environment variable "{env_var}" which is not set',
    ):
        run(suite, instance, backend.make(api_key=dg.EnvVar(env_var)))

    result = run(suite, instance, backend.make(api_key=""))
    name = "Braintrust" if backend.name == "braintrust" else "Keywords AI"
    fails_clearly(result, rf"no {name} API key: set the {env_var} environment variable")
    assert backend.state() == before


# -- inputs that are accepted whole -----------------------------------------------------------------------
def test_csv_cell_over_128_kib_is_synced_whole(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    """Python's csv module stops at 128 KiB per cell by default; a long cell is read and stored whole."""
    backend = _local(tmp_path)
    long_text = "".join(f"{i:07d} " for i in range(40_000))  # 320 000 characters
    path = csv_with(tmp_path, f"q49,49,51,{long_text}")
    result = run(suite_for(path), instance, backend.make(), only=[suite_for(path).dataset_key])
    assert result.success
    with sqlite3.connect(tmp_path / "evals.sqlite") as conn:
        stored = dict(conn.execute("SELECT row_id, metadata FROM dataset_rows").fetchall())
    assert len(stored) == ROWS
    assert json.loads(stored["q49"]) == {"kind": long_text}


def test_scorer_names_are_escaped_in_the_report_table(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    """A scorer name with Markdown syntax stays one literal cell of the report's summary table."""

    def scorer(output: Any, expected: Any) -> float:
        return 1.0

    scorer.__name__ = "pipe|star*`tick`<b>"
    backend = _local(tmp_path)
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", good_rows()), scorers=["exact_match", scorer])
    result = run(suite, instance, backend.make())
    assert result.success
    summary = result.asset_materializations_for_node("evals__bad_input__eval_report")[0].metadata["summary"]
    table = [line for line in summary.value.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| scorer |")
    cells = re.split(r"(?<!\\)\|", table[-1])[1:-1]
    assert len(cells) == 8, table[-1]  # scorer, mean, baseline, diff, improved, regressed, errors, skipped
    assert cells[0].strip() == r"pipe\|star\*\`tick\`\<b\>"
    assert cells[1].strip() == "1"
