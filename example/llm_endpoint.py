"""The OpenAI-compatible endpoint of the example's LLM suite: the real one when a key is set, else a fake.

- `OPENAI_API_KEY` set (and optionally `OPENAI_BASE_URL`, e.g. the Braintrust AI proxy, the Keywords AI
  gateway or a local server): judges and the prompt task call that endpoint, with a $0.50 budget per run.
- No key: the first call starts `dagster_evals.testing.openai.OpenAIFake` on 127.0.0.1 in this process,
  scripted so the example runs offline and deterministically: the prompt task answers like the support
  bot, factuality compares the answer with the expected one, other judges pick their first choice.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from dagster_evals import JudgeSettings, OpenAIJudgeResource
from dagster_evals.testing.openai import OpenAIFake, ToolCall
from example.support_bot import answer

OFFLINE_KEY = "offline-example-key"
QUESTION_PREFIX = "Customer question:"

# The prompt the suite evaluates when a run is about no prompt version (a local prompt's content: see
# dagster_evals.judges.prompt_tasks for the Braintrust and Keywords AI shapes).
STARTER_PROMPT: dict[str, Any] = {
    "messages": [
        {
            "role": "system",
            "content": "You are the support assistant of Acme Cloud Storage. Answer in one or two sentences.",
        },
        {"role": "user", "content": QUESTION_PREFIX + " {{question}}"},
    ],
    "model": "gpt-4o-mini",
    "temperature": 0,
}


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def _bot_reply(body: dict[str, Any]) -> str:
    return answer(_last_user_text(body).split(QUESTION_PREFIX, 1)[-1])


def _factuality(body: dict[str, Any]) -> ToolCall:
    prompt = _last_user_text(body)
    found = dict(re.findall(r"\[(Expert|Submission)\]: (.*?)\n\*{6,}", prompt, flags=re.S))
    same = found.get("Expert", "").strip() == found.get("Submission", "").strip()
    reasons = "The submission states the expert answer." if same else "The submission disagrees."
    return ToolCall("select_choice", {"reasons": reasons, "choice": "C" if same else "D"})


def offline_fake() -> OpenAIFake:
    fake = OpenAIFake(api_key=OFFLINE_KEY)
    fake.add_rule(_bot_reply, contains=QUESTION_PREFIX, when=lambda body: not body.get("tools"))
    fake.add_rule(_factuality, contains="[Expert]:")
    return fake


class OfflineEndpoint:
    """Starts the scripted fake on first use (once per process) and points judges and tasks at it."""

    _lock = threading.Lock()
    _settings: JudgeSettings | None = None

    def settings(self) -> JudgeSettings:
        with self._lock:
            if OfflineEndpoint._settings is None:
                fake = offline_fake()
                server = fake.serve().start()
                OfflineEndpoint._settings = JudgeSettings(
                    base_url=fake.base_url(server), api_key=OFFLINE_KEY, model="gpt-4o-mini"
                )
            return OfflineEndpoint._settings

    def __repr__(self) -> str:
        return "OfflineEndpoint(fake OpenAI server on 127.0.0.1)"


def example_endpoint() -> OpenAIJudgeResource | OfflineEndpoint:
    """The endpoint the example's LLM suite uses (see the module docstring)."""
    if os.environ.get("OPENAI_API_KEY"):
        return OpenAIJudgeResource(
            model=os.environ.get("SUPPORT_BOT_JUDGE_MODEL", "gpt-4o-mini"), max_cost_usd=0.5
        )
    return OfflineEndpoint()
