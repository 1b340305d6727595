"""A judge endpoint that answers with a huge body: reading stops at `max_answer_bytes`, memory stays bounded,
and the oversized answer is that row's scorer error (naming the setting), while the rest of the run goes on.

The endpoint is a tiny hostile server: it streams a JSON-looking body far larger than the cap, and counts
what it managed to hand to the socket before the client hung up."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import (
    ConfigError,
    DatasetRow,
    EvalSuite,
    JudgeSettings,
    LocalEvalResource,
    OpenAIJudgeResource,
    RowResult,
    judge,
    run_eval_locally,
)
from dagster_evals.engine.scorers import resolve_local_scorers
from dagster_evals.testing.server import ServerThread
from tests.conftest import materialization, materialize_suite, write_jsonl

KEY = "sk-answer-cap-test-0123456789"
CAP = 1024 * 1024
HUGE = 256 * 1024 * 1024
CHUNK = b" " * (256 * 1024)


class HugeAnswers:
    """ASGI app: every POST gets a 200 whose body is `HUGE` bytes, streamed in chunks until the client
    leaves. `sent` counts the bytes handed to the server before that."""

    def __init__(self, *, content_length: bool) -> None:
        self.content_length = content_length
        self.sent = 0
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        while (await receive()).get("more_body"):
            pass
        left = asyncio.ensure_future(receive())  # resolves with http.disconnect once the client hangs up
        headers = [(b"content-type", b"application/json")]
        if self.content_length:
            headers.append((b"content-length", str(HUGE).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"choices": [', "more_body": True})
        sent = 0
        while sent < HUGE and not left.done():
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            sent += len(CHUNK)
            self.sent += len(CHUNK)
            await asyncio.sleep(0)
        left.cancel()


def endpoint(url: str, **options: Any) -> OpenAIJudgeResource:
    return OpenAIJudgeResource(
        api_key=KEY, base_url=f"{url}/v1", max_retries=0, cache=False, max_answer_bytes=CAP, **options
    )


@pytest.mark.parametrize("content_length", [False, True], ids=["chunked", "content-length"])
def test_a_huge_judge_answer_stops_at_the_cap_and_is_the_rows_scorer_error(content_length: bool) -> None:
    app = HugeAnswers(content_length=content_length)
    rows = [DatasetRow.build(input=f"q{i}", expected="4", id=f"r{i}") for i in range(4)]
    results: list[RowResult] = []
    with ServerThread(app) as server:
        scorers = resolve_local_scorers(["exact_match", judge("factuality", endpoint=endpoint(server.url))])
        tracemalloc.start()
        try:
            run_eval_locally(rows, lambda q: "4", scorers, results.append, max_concurrency=4)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert app.calls == 4
    for result in results:
        assert result.error is None and result.scores == {"exact_match": 1.0}
        error = result.scorer_errors["factuality"]
        assert "the answer is larger than max_answer_bytes (1,048,576 bytes)" in error
        assert "HTTP 200" in error and "/v1/chat/completions" in error
    # Four answers of 256 MiB each, in flight at once: what was read stayed near the cap, not the answers.
    assert peak < 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    assert app.sent < HUGE, "the server could send the whole answer: the client read past the cap"


def test_an_oversized_answer_fails_only_its_row_through_dagster(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    app = HugeAnswers(content_length=False)
    source = write_jsonl(tmp_path / "rows.jsonl", [{"id": "r0", "input": "q", "expected": "4"}])
    with ServerThread(app) as server:
        suite = EvalSuite(
            name="capped",
            source=source,
            key_field="id",
            task=lambda q: "4",
            scorers=[judge("factuality", endpoint=endpoint(server.url))],
            baseline=None,
            max_errored_rows=1,
        )
        result = materialize_suite(suite, instance, LocalEvalResource(path=str(tmp_path / "e.db")))
    report = materialization(result, suite.eval_report_key)
    assert (report["details"]["scorer_errors"], report["rows_errored"]) == (1, 1)
    # The run page's table of rows to review shows the row with the error naming the setting.
    review = report["rows_to_review"]
    assert "1 of 1" in review and "r0" in review
    assert "factuality: PlatformError: judge endpoint POST /v1/chat/completions" in review


@pytest.mark.parametrize("value", [0, 100, True])
def test_a_bad_answer_cap_is_refused_naming_the_setting(value: Any) -> None:
    with pytest.raises(ConfigError, match="max_answer_bytes"):
        OpenAIJudgeResource(api_key=KEY, max_answer_bytes=value).settings()
    with pytest.raises(ConfigError, match="max_answer_bytes"):
        JudgeSettings(api_key=KEY, max_answer_bytes=2048.5)  # type: ignore[arg-type]
