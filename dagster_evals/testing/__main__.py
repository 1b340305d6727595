"""Serve a fake platform on 127.0.0.1 until interrupted:

    python -m dagster_evals.testing braintrust --port 8787 --api-key test-key
    python -m dagster_evals.testing keywordsai --port 8788 --api-key test-key --rate-limit 600
    python -m dagster_evals.testing openai --port 8789 --api-key test-key --latency 0.2
    python -m dagster_evals.testing openai --choice 'DROP TABLE' Incorrect --answer 'capital of France' Paris
    python -m dagster_evals.testing openai --rules rules.yaml

Prints the base URL on the first line: point BRAINTRUST_API_URL / KEYWORDSAI_BASE_URL at it; for openai
it is the OPENAI_BASE_URL to set, ending in /v1.

Without rules the openai fake answers a judge (a forced tool call) with the first choice its schema lists
(`sql`: Correct = 1 on every row; `factuality`: A = 0.4; `closed_qa`: Y = 1), a JSON mode with a JSON
instance of the schema, and plain chat with "fake reply: <last user message>". Rules change that for requests whose prompt text matches a regular expression (first match
wins; file rules first): --choice PATTERN CHOICE makes a judge pick CHOICE, --answer PATTERN TEXT answers
TEXT, --rules FILE reads a YAML list of rules (see dagster_evals.testing.openai.rule_files).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence

from dagster_evals.testing.asgi import FakeAPI
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.keywordsai import KeywordsAIFake
from dagster_evals.testing.openai import OpenAIFake
from dagster_evals.testing.openai.rule_files import RuleFileError, command_line_rules, load_rules_file


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dagster_evals.testing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("platform", choices=["braintrust", "keywordsai", "openai"])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--api-key", default="test-key", help="the key the fake accepts")
    parser.add_argument(
        "--rate-limit", type=int, default=60, help="keywordsai: requests per minute (0: no limit)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="openai: seconds every answer waits")
    parser.add_argument(
        "--rules",
        metavar="FILE",
        help="openai: a YAML/JSON list of rules (pattern/contains; reply/choice/tool_call)",
    )
    parser.add_argument(
        "--choice",
        nargs=2,
        action="append",
        default=[],
        metavar=("PATTERN", "CHOICE"),
        help="openai: a judge whose prompt matches the regular expression PATTERN picks CHOICE (repeatable)",
    )
    parser.add_argument(
        "--answer",
        nargs=2,
        action="append",
        default=[],
        metavar=("PATTERN", "TEXT"),
        help="openai: a chat request whose prompt matches PATTERN is answered TEXT (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.platform != "openai" and (args.rules or args.choice or args.answer):
        parser.error("--rules, --choice and --answer apply to the openai fake only")
    fake: FakeAPI
    if args.platform == "braintrust":
        fake = BraintrustFake(args.api_key)
    elif args.platform == "openai":
        fake = OpenAIFake(api_key=args.api_key, latency_s=args.latency)
        try:
            rules = load_rules_file(args.rules) if args.rules else []
            rules += command_line_rules(answers=args.answer, choices=args.choice)
        except RuleFileError as exc:
            parser.error(str(exc))
        fake.rules.extend(rules)
    else:
        fake = KeywordsAIFake(api_keys=[args.api_key], rate_limit_per_minute=args.rate_limit or None)
    server = fake.serve(port=args.port).start()
    print(OpenAIFake.base_url(server) if isinstance(fake, OpenAIFake) else server.url, flush=True)
    if isinstance(fake, OpenAIFake):
        print(
            f"set OPENAI_BASE_URL={OpenAIFake.base_url(server)} and OPENAI_API_KEY={args.api_key}; "
            f"{len(fake.rules)} rule(s), otherwise judges pick their first choice",
            file=sys.stderr,
            flush=True,
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
