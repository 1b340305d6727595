"""Faithful fake Braintrust, Keywords AI and OpenAI-compatible servers for tests — yours and ours.

Each fake is an ASGI app with fault injection, built on the shared toolkit `dagster_evals.testing.asgi`
(`FakeAPI`: routing, credentials, JSON bodies, error envelopes, rate limits, pagination, counters); serve it
over real HTTP on 127.0.0.1 with `fake.serve()` (a `ServerThread`), or call it in-process with
`fake.transport()`.

The fakes need the `testing` extra (`pip install "dagster-evals[testing]"`: starlette, uvicorn, h11); a
production install leaves it out, and importing this package without it is one `ImportError` naming it.
"""

import importlib.util

_missing = [name for name in ("starlette", "uvicorn", "h11") if importlib.util.find_spec(name) is None]
if _missing:
    raise ImportError(
        f"dagster_evals.testing (the fake servers) needs {', '.join(_missing)}, which the 'testing' extra "
        'installs: pip install "dagster-evals[testing]" (or -e ".[testing]" in a checkout)',
        name=__name__,
    )

from dagster_evals.testing.braintrust import BraintrustFake  # noqa: E402
from dagster_evals.testing.faults import Fault, FaultInjector  # noqa: E402
from dagster_evals.testing.keywordsai import FakeEvaluator, KeywordsAIFake  # noqa: E402
from dagster_evals.testing.openai import OpenAIFake  # noqa: E402
from dagster_evals.testing.proxy import FaultProxy  # noqa: E402
from dagster_evals.testing.server import ServerThread, in_process_transport  # noqa: E402

__all__ = [
    "BraintrustFake",
    "FakeEvaluator",
    "Fault",
    "FaultInjector",
    "FaultProxy",
    "KeywordsAIFake",
    "OpenAIFake",
    "ServerThread",
    "in_process_transport",
]
