"""Faithful fake Braintrust, Keywords AI and OpenAI-compatible servers for tests — yours and ours.

Each fake is an ASGI app with fault injection; serve it over real HTTP on 127.0.0.1 with
`ServerThread`, or call it in-process with `in_process_transport`.
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
