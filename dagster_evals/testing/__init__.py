"""Faithful fake Braintrust, Keywords AI and OpenAI-compatible servers for tests — yours and ours.

Each fake is an ASGI app with fault injection, built on the shared toolkit `dagster_evals.testing.asgi`
(`FakeAPI`: routing, credentials, JSON bodies, error envelopes, rate limits, pagination, counters); serve it
over real HTTP on 127.0.0.1 with `fake.serve()` (a `ServerThread`), or call it in-process with
`fake.transport()`.
"""

from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.faults import Fault, FaultInjector
from dagster_evals.testing.keywordsai import FakeEvaluator, KeywordsAIFake
from dagster_evals.testing.openai import OpenAIFake
from dagster_evals.testing.proxy import FaultProxy
from dagster_evals.testing.server import ServerThread, in_process_transport

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
