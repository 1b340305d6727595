"""The official `openai` client against the fake OpenAI server, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import typing

import openai
import pytest
from openai.types import embedding_create_params, moderation_create_params
from openai.types.chat import completion_create_params

from dagster_evals.testing.openai import OpenAIFake, Reply, ToolCall, wire

KEY = "sk-test-fake-key"


@pytest.fixture(scope="module")
def fake_server():
    fake = OpenAIFake(api_key=KEY)
    with fake.serve() as server:
        yield fake, server


@pytest.fixture
def client(fake_server):
    fake, server = fake_server
    fake.rules.clear()
    return openai.OpenAI(base_url=fake.base_url(server), api_key=KEY, max_retries=0)


def _fields(typed_dict: type) -> set[str]:
    return set(typing.get_type_hints(typed_dict, include_extras=False))


def test_request_field_sets_match_the_installed_sdk():
    chat = _fields(completion_create_params.CompletionCreateParamsBase) | {"stream"}
    assert chat == set(wire.CHAT_FIELDS)
    assert _fields(embedding_create_params.EmbeddingCreateParams) == set(wire.EMBEDDING_FIELDS)
    assert _fields(moderation_create_params.ModerationCreateParams) == set(wire.MODERATION_FIELDS)


def test_chat_completion_with_usage_and_scripted_reply(client):
    client_fake = client
    resp = client_fake.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}]
    )
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "fake reply: Say hi"
    assert (
        resp.usage is not None
        and resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    )
    assert resp.usage.prompt_tokens > 0


def test_rules_tool_calls_and_json_modes(fake_server, client):
    fake, _ = fake_server
    fake.add_rule(contains="France", reply="Paris")
    fake.add_rule(pattern=r"grade \d+", reply=ToolCall("grade", {"score": 7}))
    fake.add_rule(
        when=lambda body: body.get("temperature") == 0.5, reply=Reply(content="warm", completion_tokens=42)
    )
    ask = [{"role": "user", "content": "Capital of France?"}]
    assert client.chat.completions.create(model="m", messages=ask).choices[0].message.content == "Paris"
    tool = {"type": "function", "function": {"name": "grade", "parameters": {"type": "object"}}}
    resp = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "grade 5"}], tools=[tool]
    )
    call = resp.choices[0].message.tool_calls[0]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "grade" and json.loads(call.function.arguments) == {"score": 7}
    warm = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], temperature=0.5
    )
    assert warm.choices[0].message.content == "warm" and warm.usage.completion_tokens == 42
    # A forced function without a rule: arguments built from its JSON Schema.
    select = {
        "type": "function",
        "function": {
            "name": "select_choice",
            "parameters": {
                "type": "object",
                "properties": {
                    "reasons": {"type": "string"},
                    "choice": {"type": "string", "enum": ["B", "A"]},
                },
                "required": ["choice"],
            },
        },
    }
    resp = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "pick"}],
        tools=[select],
        tool_choice={"type": "function", "function": {"name": "select_choice"}},
    )
    assert json.loads(resp.choices[0].message.tool_calls[0].function.arguments)["choice"] == "B"
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}}}
    resp = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "q"}],
        response_format={"type": "json_schema", "json_schema": {"name": "out", "schema": schema}},
    )
    assert json.loads(resp.choices[0].message.content) == {"answer": "fake", "n": 1}
    resp = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "answer in json"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(resp.choices[0].message.content) == {"text": "answer in json"}


def test_rejects_what_the_api_rejects(client):
    with pytest.raises(openai.BadRequestError, match="must contain the word 'json'"):
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}
        )
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: bogus"):
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"bogus": 1}
        )
    with pytest.raises(openai.BadRequestError, match=r"Invalid value: 'robot'"):
        client.chat.completions.create(model="m", messages=[{"role": "robot", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)


def test_auth_error_in_openai_shape(fake_server):
    fake, server = fake_server
    bad = openai.OpenAI(base_url=fake.base_url(server), api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.code == "invalid_api_key"
    assert "sk-wrong" not in str(info.value)


def test_429_with_retry_after_then_success(fake_server, client):
    fake, server = fake_server
    fake.fail_next(1, retry_after=0)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
    assert info.value.response.headers["retry-after"] == "0"
    assert info.value.code == "rate_limit_exceeded"
    # The SDK's own retry honours Retry-After and succeeds on the second attempt.
    fake.fail_next(1, retry_after=0)
    retrying = openai.OpenAI(base_url=fake.base_url(server), api_key=KEY, max_retries=1)
    assert retrying.chat.completions.create(model="m", messages=[{"role": "user", "content": "b"}]).choices


def test_rate_limit_window():
    fake = OpenAIFake(api_key=KEY, rate_limit_per_minute=2)
    with fake.serve() as server:
        client = openai.OpenAI(base_url=fake.base_url(server), api_key=KEY, max_retries=0)
        for _ in range(2):
            client.embeddings.create(model="text-embedding-3-small", input="a")
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="text-embedding-3-small", input="a")
    assert fake.requests["POST /v1/embeddings"] == 2


def test_embeddings_float_and_base64(client):
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["the cat sat", "the cat sat down"], encoding_format="float"
    )
    # The SDK asks for base64 by default and decodes it: both give the same vectors.
    decoded = client.embeddings.create(
        model="text-embedding-3-small", input=["the cat sat", "the cat sat down"]
    )
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 1536
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    a, b = (d.embedding for d in floats.data)
    assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.5
    assert floats.usage.total_tokens > 0
    small = client.embeddings.create(model="text-embedding-3-large", input="x", dimensions=8)
    assert len(small.data[0].embedding) == 8


def test_moderations(client):
    resp = client.moderations.create(input=["have a nice day", "I will kill it"])
    assert [r.flagged for r in resp.results] == [False, True]
    assert resp.results[1].categories.violence is True
    assert resp.model == "omni-moderation-latest"


def test_responses_api(fake_server, client):
    fake, _ = fake_server
    fake.add_rule(contains="weather", reply=ToolCall("get_weather", {"city": "Paris"}))
    resp = client.responses.create(model="gpt-5-mini", input="hello there")
    assert resp.output_text == "fake reply: hello there"
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False}
    resp = client.responses.create(model="gpt-5-mini", input="weather?", tools=[tool])
    assert resp.output[0].type == "function_call" and json.loads(resp.output[0].arguments) == {
        "city": "Paris"
    }


def test_in_process_transport_and_counters():
    import httpx

    fake = OpenAIFake(api_key=KEY)
    client = openai.OpenAI(
        base_url="http://fake/v1",
        api_key=KEY,
        http_client=httpx.Client(transport=fake.transport()),
        max_retries=0,
    )
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert fake.requests["POST /v1/chat/completions"] == 1 and fake.model_calls == 1
    assert fake.bodies[0]["messages"][0]["content"] == "x"
