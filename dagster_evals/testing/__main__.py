"""Serve a fake platform on 127.0.0.1 until interrupted:

    python -m dagster_evals.testing braintrust --port 8787 --api-key test-key
    python -m dagster_evals.testing keywordsai --port 8788 --api-key test-key --rate-limit 600
    python -m dagster_evals.testing openai --port 8789 --api-key test-key --latency 0.2

Prints the base URL on the first line; point BRAINTRUST_API_URL / KEYWORDSAI_BASE_URL at it (for openai,
OPENAI_BASE_URL at the printed URL plus /v1).
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_evals.testing", description=__doc__)
    parser.add_argument("platform", choices=["braintrust", "keywordsai", "openai"])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--api-key", default="test-key", help="the key the fake accepts")
    parser.add_argument(
        "--rate-limit", type=int, default=60, help="keywordsai: requests per minute (0: no limit)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="openai: seconds every answer waits")
    args = parser.parse_args(argv)
    fake: FakeAPI
    if args.platform == "braintrust":
        fake = BraintrustFake(args.api_key)
    elif args.platform == "openai":
        fake = OpenAIFake(api_key=args.api_key, latency_s=args.latency)
    else:
        fake = KeywordsAIFake(api_keys=[args.api_key], rate_limit_per_minute=args.rate_limit or None)
    server = fake.serve(port=args.port).start()
    print(server.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
