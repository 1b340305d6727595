"""A fake OpenAI-compatible API for tests: chat completions, responses, embeddings, moderations.

from dagster_evals.testing.openai import OpenAIFake, ToolCall

fake = OpenAIFake(api_key="test-key", latency_s=0.2)
fake.add_rule(contains="[Expert]", reply=ToolCall("select_choice", {"choice": "C"}))
with fake.serve() as server:
    os.environ["OPENAI_BASE_URL"] = fake.base_url(server)
"""

from dagster_evals.testing.openai.app import OpenAIFake
from dagster_evals.testing.openai.replies import Reply, Rule, ToolCall

__all__ = ["OpenAIFake", "Reply", "Rule", "ToolCall"]
