#!/usr/bin/env python3
"""Smoke-test the Dagster UI of the example in a real headless browser, and keep screenshots.

Starts `dg dev` on the example (after running the release job twice, and two prompt versions of the
versioned suite — one passing, one failing its gate — so there is history to plot and a failed partition
to show), then drives headless Chromium over its DevTools protocol:

- the `support_bot` asset group's graph,
- the eval report's Overview page (its Metadata section with the `score/*` entries),
- the versioned eval report's `threshold_levenshtein` check, whose Partitions tab it clicks,

asserts that each rendered page shows what it should, and writes a PNG screenshot of each into
`--out` (default `.ui-smoke/`). Needs Debian's Chromium (`apt-get install chromium`, at /usr/bin/chromium
or `--chromium PATH`); CI does not run this script.

    .venv/bin/python scripts/ui-smoke.py                       # starts its own dg dev
    .venv/bin/python scripts/ui-smoke.py --url http://127.0.0.1:3000 --no-setup   # a running one

Exit status: 0 when every page showed what it should, 1 when one did not, 2 when Chromium is missing.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import connect  # installed with dagster-webserver (uvicorn[standard])

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSING_PROMPT = {"sign_off": "Thanks!"}
FAILING_PROMPT = {
    "sign_off": "Thank you for contacting support, we really appreciate your patience and hope this answer "
    "helps you out today. Have a wonderful day!"
}
PASSED = "support_bot_system@1"
FAILED = "support_bot_system@2"


@dataclass(frozen=True)
class Page:
    """A UI page to load, the tab to click (if any), what it must then show, and its screenshot's name."""

    name: str
    path: str
    expect: tuple[str, ...]
    click_tab: str | None = None
    ready: tuple[str, ...] = ()  # what the page shows once the tab to click is there


PAGES = (
    Page(
        "asset-graph",
        "/locations/definitions.py/asset-groups/support_bot",
        ("dataset_snapshot", "eval_report", "release_approved"),
    ),
    Page(
        "eval-report",
        "/assets/evals/support_bot/eval_report",
        ("Metadata", "score/levenshtein", "score/exact_match", "Plots", "rows_to_review", "details"),
    ),
    Page(
        # The check's Partitions tab: which prompt versions passed and which failed.
        "check-partitions",
        "/assets/evals/support_bot_versions/eval_report?view=checks&checkDetail=threshold_levenshtein",
        ("Failed (1)", "Passed (1)", PASSED, FAILED),
        click_tab="Partitions",
        ready=("threshold_levenshtein", "Execution history"),
    ),
)


def run(program: str, *args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    done = subprocess.run(
        [str(BIN / program), *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise SystemExit(f"{program} {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done


def set_up(home: Path) -> None:
    """Two release runs, and one passing and one failing prompt-version partition, in DAGSTER_HOME=home."""
    (home / "dagster.yaml").touch()
    for _ in range(2):
        run("dg", "launch", "--job", "support_bot_release_job", "-f", "definitions.py", home=home)
    for content in (PASSING_PROMPT, FAILING_PROMPT):
        run("dagster-evals", "push-prompt", "support_bot_system", json.dumps(content), home=home)
    script = (
        "import dagster as dg; "
        f"dg.DagsterInstance.get().add_dynamic_partitions('support_bot_versions', {[PASSED, FAILED]!r})"
    )
    run("python", "-c", script, home=home)
    for partition in (PASSED, FAILED):  # the second one fails its gate: its exit status is not checked
        run(
            "dg", "launch", "--job", "support_bot_versions_job", "--partition", partition,
            "-f", "definitions.py", home=home, check=partition == PASSED,
        )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def dg_dev(home: Path, ready_s: float = 180) -> Iterator[str]:
    """`dg dev -w workspace.yaml` on a free loopback port, stopped with Ctrl-C when the block ends."""
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    log = (home / "dg-dev.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "dg"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if server.poll() is not None:
                raise SystemExit(f"dg dev exited; see {home / 'dg-dev.log'}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/server_info", timeout=5) as response,
            ):
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("dg dev did not come up")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        log.close()


class Browser:
    """Headless Chromium driven over the DevTools protocol (one tab)."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",  # Chromium refuses to run as root with its sandbox
                "--disable-gpu",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "--window-size=1600,1000",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("Chromium did not open its DevTools port")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            [tab] = [t for t in json.load(response) if t["type"] == "page"][:1]
        self.socket = connect(tab["webSocketDebuggerUrl"], max_size=None).__enter__()
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def text(self) -> str:
        result = self.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''")
        return str(result.get("result", {}).get("value", ""))

    def wait_for(self, expected: tuple[str, ...], timeout_s: float) -> list[str]:
        """Poll the page's text until it shows every expected string; return what is still missing."""
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.text()
            missing = [e for e in expected if e not in text]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.5)

    def click_tab(self, title: str, timeout_s: float) -> bool:
        script = (
            # The last tab of that title: the check's own tabs come after the asset page's.
            "(() => { const tab = [...document.querySelectorAll('[role=tab]')]"
            f".filter(e => e.textContent.trim() === {json.dumps(title)}).pop();"
            " if (tab) { tab.click(); return true; } return false; })()"
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.call("Runtime.evaluate", expression=script).get("result", {}).get("value"):
                return True
            time.sleep(0.5)
        return False

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def check_page(browser: Browser, url: str, page: Page, out: Path, timeout_s: float) -> list[str]:
    """Load `page`, return what it is missing (empty when it shows everything); screenshot it into `out`."""
    browser.call("Page.navigate", url=url + page.path)
    missing: list[str] = []
    if page.click_tab is not None:
        browser.wait_for(page.ready, timeout_s)
        if not browser.click_tab(page.click_tab, timeout_s):
            missing.append(f"tab {page.click_tab!r}")
    missing += browser.wait_for(page.expect, timeout_s)
    shot = out / f"{page.name}.png"
    browser.screenshot(shot)
    status = "ok" if not missing else "MISSING " + ", ".join(missing)
    print(f"{page.name:18} {status:40} {shot}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium binary")
    parser.add_argument("--url", help="a running dg dev / dagster-webserver (default: start one)")
    parser.add_argument("--home", help="DAGSTER_HOME to use (default: a new temporary one)")
    parser.add_argument("--no-setup", action="store_true", help="do not launch the example runs first")
    parser.add_argument("--out", default=str(REPO / ".ui-smoke"), help="screenshot directory")
    parser.add_argument("--timeout", type=float, default=60, help="seconds each page gets to render")
    args = parser.parse_args(argv)

    binary = shutil.which(args.chromium) or (args.chromium if Path(args.chromium).exists() else None)
    if binary is None:
        print(f"Chromium not found at {args.chromium}: apt-get install chromium (or pass --chromium)")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with contextlib.ExitStack() as stack:
        home = Path(args.home) if args.home else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if not args.no_setup:
            print(f"running the example in DAGSTER_HOME={home} ...")
            set_up(home)
        url = args.url or stack.enter_context(dg_dev(home))
        browser = Browser(binary, Path(stack.enter_context(tempfile.TemporaryDirectory())))
        stack.callback(browser.close)
        browser.call("Page.enable")
        # The "Join the Dagster community" dialog, shown once per browser on localhost, would cover the pages.
        browser.call(
            "Page.addScriptToEvaluateOnNewDocument", source="localStorage.setItem('communityNux', '1')"
        )
        failures = {page.name: check_page(browser, url, page, out, args.timeout) for page in PAGES}
    failed = {name: missing for name, missing in failures.items() if missing}
    if failed:
        print(f"pages missing what they should show: {failed}")
        return 1
    print(f"every page showed what it should; screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
