"""The official OpenAI Python SDK against Switchyard's ``/v1/*``: streams end with ``[DONE]`` and
every error is OpenAI-shaped, where MLflow sends neither.

This module owns the OpenAI-compatible surface as the SDK sees it: chat and completions, streamed
and not, embeddings in both wire encodings (the SDK asks for base64 by default and decodes it),
addressing a traffic route by ``model``, and the SDK's typed errors for an unknown model (404), a
model of the wrong type (400) and an invalid body (422). The exact SSE framing of ``/v1`` streams
(``data: [DONE]`` last) is checked on the raw body as well, through the SDK's own httpx client.
"""

from __future__ import annotations

import array
import asyncio
import base64
import math

import openai
import pytest

from conftest import EMBEDDING_DIMS, ROUTE, ROUTE_MODELS, STREAM_CHUNKS
from sse import DONE, parse_events


def _assert_usage(usage) -> None:
    assert usage is not None
    assert usage.prompt_tokens >= 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def _close(a: list[float], b: list[float]) -> bool:
    """Equal up to float32 rounding (base64 embeddings are little-endian float32)."""
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in zip(a, b))


# --- chat -----------------------------------------------------------------------------------------


def test_chat_completion(openai_client):
    completion = openai_client.chat.completions.create(
        model="chat",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What is 2+2? Answer with ✓"},
        ],
        temperature=0.2,
        max_tokens=50,
    )
    assert completion.object == "chat.completion"
    assert completion.model == "mock-chat"
    assert completion.id
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "What is 2+2? Answer with ✓"
    assert not choice.message.tool_calls
    _assert_usage(completion.usage)


def test_chat_completion_streaming(openai_client):
    text = "alpha beta gamma delta epsilon zeta eta theta"
    stream = openai_client.chat.completions.create(
        model="chat-stream", messages=[{"role": "user", "content": text}], stream=True
    )
    chunks = list(stream)  # ends by itself: the SDK stops at [DONE] / end of body
    assert stream.response.is_closed

    assert chunks, "no chunks"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.model == "mock-chat-stream" for c in chunks)
    contents = [c.choices[0].delta.content for c in chunks if c.choices]
    assert sum(1 for c in contents if c) == STREAM_CHUNKS
    assert "".join(c or "" for c in contents) == text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert all(f is None for f in finishes[:-1])


def test_chat_streaming_include_usage(openai_client):
    text = "count these five words"
    stream = openai_client.chat.completions.create(
        model="chat-stream",
        messages=[{"role": "user", "content": text}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    usages = [c.usage for c in chunks if c.usage is not None]
    assert usages, "stream_options.include_usage: no chunk carried usage"
    _assert_usage(usages[-1])


def test_concurrent_async_streams(base_url):
    # AsyncOpenAI over one connection pool: interleaved streams must not mix their chunks.
    async def one(client, i: int) -> str:
        stream = await client.chat.completions.create(
            model="chat-stream", messages=[{"role": "user", "content": f"stream number {i} of many"}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def main() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=20.0
        ) as client:
            return await asyncio.gather(*(one(client, i) for i in range(16)))

    assert asyncio.run(main()) == [f"stream number {i} of many" for i in range(16)]


def test_chat_via_traffic_route(openai_client):
    models = set()
    for i in range(24):
        completion = openai_client.chat.completions.create(
            model=ROUTE, messages=[{"role": "user", "content": f"split {i}"}]
        )
        assert completion.choices[0].message.content == f"split {i}"
        models.add(completion.model)
    assert models == ROUTE_MODELS  # both destinations served (chance of failure: 2**-23)


def test_chat_streaming_via_traffic_route(openai_client):
    with openai_client.chat.completions.create(
        model=ROUTE, messages=[{"role": "user", "content": "streamed through a route"}], stream=True
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "streamed through a route"


def test_raw_v1_stream_ends_with_done(openai_client):
    # The SDK tolerates a missing [DONE]; check the framing itself (MLflow sends none; Switchyard
    # ends /v1 streams with it).
    raw = openai_client.chat.completions.with_raw_response.create(
        model="chat-stream", messages=[{"role": "user", "content": "framing check"}], stream=True
    )
    assert raw.http_response.headers["content-type"].startswith("text/event-stream")
    body = raw.http_response.read().decode("utf-8")
    events = parse_events(body)
    assert events[-1] == DONE
    assert events.count(DONE) == 1
    assert "".join(e["choices"][0]["delta"]["content"] or "" for e in events[:-1]) == "framing check"


# --- completions ----------------------------------------------------------------------------------


def test_completion(openai_client):
    completion = openai_client.completions.create(model="completions", prompt="Say it back", max_tokens=8)
    assert completion.object == "text_completion"
    assert completion.model == "mock-completions"
    assert len(completion.choices) == 1
    assert completion.choices[0].text == "Say it back"
    assert completion.choices[0].finish_reason == "stop"
    _assert_usage(completion.usage)


def test_completion_streaming(openai_client):
    prompt = "a completion prompt streamed back in pieces"
    stream = openai_client.completions.create(model="completions", prompt=prompt, stream=True)
    chunks = list(stream)
    assert stream.response.is_closed
    assert all(c.model == "mock-completions" for c in chunks)
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert sum(1 for t in texts if t) == STREAM_CHUNKS
    assert "".join(t or "" for t in texts) == prompt
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


# --- embeddings -----------------------------------------------------------------------------------


def _float_vectors(openai_client, texts: list[str]) -> list[list[float]]:
    response = openai_client.embeddings.create(model="embeddings", input=texts, encoding_format="float")
    assert all(isinstance(d.embedding, list) for d in response.data)
    return [d.embedding for d in response.data]


def test_embeddings_sdk_default_base64(openai_client, deploy_client):
    texts = ["first text", "second text"]
    # No encoding_format: the SDK sends "base64" and decodes whatever comes back into floats.
    response = openai_client.embeddings.create(model="embeddings", input=texts)
    assert response.object == "list"
    assert response.model == "mock-embeddings"
    assert [d.index for d in response.data] == [0, 1]
    vectors = [d.embedding for d in response.data]
    assert all(len(v) == EMBEDDING_DIMS for v in vectors)
    assert vectors[0] != vectors[1]
    assert response.usage.prompt_tokens >= 0

    # Same vectors as the float encoding, and as MLflow's path for the same endpoint.
    floats = _float_vectors(openai_client, texts)
    mlflow = [d["embedding"] for d in deploy_client.predict(endpoint="embeddings", inputs={"input": texts})["data"]]
    for got, as_float, via_mlflow in zip(vectors, floats, mlflow):
        assert _close(got, as_float), (got, as_float)
        assert _close(got, via_mlflow), (got, via_mlflow)


def test_embeddings_token_arrays(openai_client):
    response = openai_client.embeddings.create(model="embeddings", input=[[1, 2, 3], [4, 5]])
    vectors = [d.embedding for d in response.data]
    assert [len(v) for v in vectors] == [EMBEDDING_DIMS, EMBEDDING_DIMS]
    assert vectors[0] != vectors[1]
    again = openai_client.embeddings.create(model="embeddings", input=[1, 2, 3])
    assert _close(again.data[0].embedding, vectors[0])


def test_embeddings_explicit_base64_is_float32_le(openai_client):
    # Asked for explicitly, the SDK hands back the wire value untouched: it must be a base64 string
    # of little-endian float32, as OpenAI sends (clients that ask for base64 decode it themselves).
    texts = ["base64 please"]
    response = openai_client.embeddings.create(model="embeddings", input=texts, encoding_format="base64")
    encoded = response.data[0].embedding
    assert isinstance(encoded, str), f"encoding_format=base64 answered with {type(encoded).__name__}: {encoded!r}"
    raw = base64.b64decode(encoded, validate=True)
    assert len(raw) == 4 * EMBEDDING_DIMS
    decoded = array.array("f", raw)  # native order; this suite runs on little-endian hosts
    assert _close(decoded.tolist(), _float_vectors(openai_client, texts)[0])


# --- errors ---------------------------------------------------------------------------------------


def test_unknown_model_is_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as info:
        openai_client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 404
    # OpenAI-shaped error body (MLflow answers plain-text 500s); the SDK exposes body["error"] as
    # .body.
    assert isinstance(info.value.body, dict), info.value.body
    assert "no-such-model" in info.value.body["message"]


def test_wrong_endpoint_type_is_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError) as info:
        openai_client.chat.completions.create(model="embeddings", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 400
    assert "Endpoint 'embeddings' is not a chat endpoint." in str(info.value)

    with pytest.raises(openai.BadRequestError) as info:
        openai_client.completions.create(model="chat", prompt="hi")
    assert "Endpoint 'chat' is not a completions endpoint." in str(info.value)

    with pytest.raises(openai.BadRequestError) as info:
        openai_client.embeddings.create(model="completions", input="hi")
    assert "Endpoint 'completions' is not an embeddings endpoint." in str(info.value)


def test_invalid_body_is_unprocessable(openai_client):
    with pytest.raises(openai.UnprocessableEntityError) as info:
        openai_client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], temperature=3.5
        )
    assert info.value.status_code == 422
    assert "temperature" in str(info.value)

    with pytest.raises(openai.UnprocessableEntityError) as info:
        openai_client.chat.completions.create(model="chat", messages=[])
    assert info.value.status_code == 422
    assert "messages" in str(info.value)


def test_invalid_stream_request_fails_before_streaming(openai_client):
    # A validation error on a stream request is a plain 422, not a 200 stream (errors known before
    # the first byte are never streamed).
    with pytest.raises(openai.UnprocessableEntityError):
        openai_client.chat.completions.create(
            model="chat-stream", messages=[{"role": "user", "content": "hi"}], top_p=7, stream=True
        )
