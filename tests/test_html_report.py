"""The static HTML report linked from an eval report's materialization: one self-contained file with every
row (input, output, expected, scores, reasons) beside the baseline's.

Always: the page parsed with the standard library's HTML parser. Where Chromium and its driver are
installed (Debian: `apt-get install chromium chromium-driver`): the page in headless Chromium, driven over
WebDriver, sorting and filtering like a reader would, with no network request.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from autoevals.score import Score

from dagster_evals import EvalSuite, LocalEvalResource, html_report
from tests.conftest import materialize_suite, write_jsonl

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
OUTPUTS: dict[int, str] = {}


def answer(input: dict[str, Any]) -> str:
    if input["n"] == 5 and OUTPUTS.get(5) == "crash":
        raise RuntimeError("the model refused")
    return OUTPUTS.get(input["n"], str(input["n"] * 2))


def graded(output: str, expected: str) -> Score:
    if output == expected:
        return Score(name="graded", score=1.0, metadata={"rationale": "Right."})
    return Score(name="graded", score=0.5, metadata={"rationale": f"Expected {expected}."})


def html_of_two_runs(tmp_path: Path, instance: dg.DagsterInstance) -> tuple[Path, dict[str, Any]]:
    """Two runs of a 6-row suite; the second breaks r2 (with markup in its output), r3 and crashes on r5.
    Returns the second report's HTML file (from its metadata) and that metadata."""
    rows = [{"id": f"r{n}", "input": {"n": n}, "expected": str(n * 2)} for n in range(6)]
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    suite = EvalSuite(
        name="page", source=source, task=answer, scorers=["exact_match", graded], key_field="id",
        max_errored_rows=6,
    )  # fmt: skip
    evals = LocalEvalResource(path=str(tmp_path / "evals.sqlite"))
    OUTPUTS.clear()
    materialize_suite(suite, instance, evals)
    OUTPUTS.update({2: "<img src=x onerror=alert(1)></td>", 3: "7", 5: "crash"})
    try:
        result = materialize_suite(suite, instance, evals)
    finally:
        OUTPUTS.clear()
    [mat] = result.asset_materializations_for_node("evals__page__eval_report")
    metadata = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return Path(metadata["html_report"]), metadata


class Page(HTMLParser):
    """The tags, the rows table's header and body cells, and every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.head: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self._cell: list[str] | None = None
        self._in_head = False
        self._in_rows = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        self.urls += [str(found[a]) for a in ("src", "href", "action") if found.get(a)]
        if tag == "table":
            self._in_rows = found.get("id") == "rows"
        if not self._in_rows:
            return
        if tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.rows.append({"status": found.get("data-status"), "cells": []})
        elif tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_rows = False
        if tag == "thead":
            self._in_head = False
        elif tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell)
            (self.head if tag == "th" else self.rows[-1]["cells"]).append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_the_page_holds_every_row_beside_the_baseline_and_nothing_from_the_network(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    path, metadata = html_of_two_runs(tmp_path, instance)
    assert path.parent == tmp_path / "eval_reports" and path.name == f"{metadata['report_id']}.html"
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    # Self-contained: no external script, style, image or link; the script is inline.
    assert page.urls == [] and "link" not in page.tags and "img" not in page.tags
    assert page.head == [
        "row", "status", "input", "expected", "output", "baseline output", "exact_match",
        "exact_match (baseline)", "graded", "graded (baseline)", "reasons / errors", "baseline reasons / errors",
    ]  # fmt: skip
    rows = {
        r["cells"][0]: dict(zip(page.head, r["cells"], strict=True)) | {"_": r["status"]} for r in page.rows
    }
    assert sorted(rows) == [f"r{n}" for n in range(6)]
    broken = rows["r2"]
    # The output's markup is text on the page, not markup.
    assert broken["output"] == "<img src=x onerror=alert(1)></td>" and broken["baseline output"] == "4"
    assert (broken["exact_match"], broken["exact_match (baseline)"], broken["graded"]) == ("0", "1", "0.5")
    assert (
        broken["reasons / errors"] == "graded: Expected 4."
        and broken["baseline reasons / errors"] == "graded: Right."
    )
    assert broken["_"] == "below regressed" and rows["r3"]["_"] == "below regressed"
    assert (
        rows["r5"]["_"] == "errored"
        and "error: RuntimeError: the model refused" in rows["r5"]["reasons / errors"]
    )
    assert rows["r0"]["_"] == "ok" and rows["r0"]["input"] == '{"n": 0}' and rows["r0"]["expected"] == "0"


def test_a_page_holds_at_most_max_rows_and_says_how_to_list_the_rest(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(html_report, "MAX_ROWS", 4)
    path, metadata = html_of_two_runs(tmp_path, instance)
    page = Page()
    text = path.read_text(encoding="utf-8")
    page.feed(text)
    assert [r["cells"][0] for r in page.rows] == ["r0", "r1", "r2", "r3"]
    assert f"list every row with <code>dagster-evals rows {metadata['report_id']}</code>" in text


# -- the page in a real browser -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[httpx.Client, str]]:
    """A headless Chromium session over WebDriver (chromedriver), or a skip where Chromium is missing."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    port = free_port()
    driver = subprocess.Popen(
        [CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                if client.get("/status").json()["value"]["ready"]:
                    break
            time.sleep(0.1)
        options = {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
                "--window-size=1600,1000",
            ],
        }  # fmt: skip
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        session = client.post("/session", json=caps).json()["value"]["sessionId"]
        try:
            yield client, f"/session/{session}"
        finally:
            client.delete(f"/session/{session}")
    finally:
        client.close()
        driver.terminate()
        try:
            driver.wait(30)
        except subprocess.TimeoutExpired:  # a loaded machine: chromedriver did not stop in time
            driver.kill()
            driver.wait(30)


def call(browser: tuple[httpx.Client, str], path: str, body: dict[str, Any]) -> Any:
    client, session = browser
    answer = client.post(session + path, json=body).json()
    assert not (isinstance(answer["value"], dict) and "error" in answer["value"]), answer
    return answer["value"]


def visible_rows(browser: tuple[httpx.Client, str]) -> list[str]:
    script = "return Array.from(document.querySelectorAll('#rows tbody tr')).filter(r => !r.hidden).map(r => r.cells[0].textContent)"
    return call(browser, "/execute/sync", {"script": script, "args": []})


def element(browser: tuple[httpx.Client, str], css: str) -> str:
    found = call(browser, "/element", {"using": "css selector", "value": css})
    return next(iter(found.values()))


def test_the_page_sorts_and_filters_in_headless_chromium(
    tmp_path: Path, instance: dg.DagsterInstance, browser: tuple[httpx.Client, str]
) -> None:
    path, _ = html_of_two_runs(tmp_path, instance)
    call(browser, "/url", {"url": path.as_uri()})
    assert visible_rows(browser) == [f"r{n}" for n in range(6)]
    assert (
        call(
            browser,
            "/execute/sync",
            {"script": "return document.getElementById('count').textContent", "args": []},
        )
        == "6 of 6 rows shown"
    )
    # Sort by the graded score (lowest first: unscored rows last), then the other way.
    graded_header = element(browser, "#rows thead th:nth-child(9)")
    call(browser, f"/element/{graded_header}/click", {})
    assert visible_rows(browser)[:2] == ["r2", "r3"] and visible_rows(browser)[-1] == "r5"
    call(browser, f"/element/{graded_header}/click", {})
    assert visible_rows(browser)[0] != "r2"
    # Filter by status, then by text.
    call(browser, f"/element/{element(browser, '#status option[value=regressed]')}/click", {})
    assert sorted(visible_rows(browser)) == ["r2", "r3"]
    call(browser, f"/element/{element(browser, '#status option[value=all]')}/click", {})
    assert len(visible_rows(browser)) == 6
    call(browser, f"/element/{element(browser, '#filter')}/value", {"text": "refused"})
    assert visible_rows(browser) == ["r5"]
    # Nothing was fetched: the page is one file.
    resources = call(
        browser,
        "/execute/sync",
        {"script": "return performance.getEntriesByType('resource').length", "args": []},
    )
    assert resources == 0
