"""MLflow's own client against Switchyard: ``mlflow.deployments.get_deploy_client(base_url)``.

This module owns the MLflow-path surface as the real MLflow 3.17.2 client sees it: endpoint listing
and lookup (GET /api/2.0/endpoints/...), invocations (POST /endpoints/<name>/invocations) for chat,
completions, embeddings and a traffic route, and how HTTP errors surface (requests.HTTPError raised
by mlflow's ``augmented_raise_for_status``, carrying the response).

``MlflowDeploymentClient`` has no streaming (its ``predict_stream`` is the base class's
NotImplementedError), so MLflow-path streaming is checked with ``requests``, the HTTP library the
client itself uses, reading the SSE body exactly as sent.
"""

from __future__ import annotations

import math

import pytest
import requests

from conftest import EMBEDDING_DIMS, ENDPOINTS, LIMIT_CALLS, ROUTE, ROUTE_MODELS, STREAM_CHUNKS
from sse import DONE, parse_events


def _assert_usage(usage: dict) -> None:
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert isinstance(usage[key], int) and usage[key] >= 0, usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], usage
    assert usage["completion_tokens"] > 0, usage


# --- metadata -------------------------------------------------------------------------------------


def test_list_endpoints(deploy_client, base_url):
    endpoints = deploy_client.list_endpoints()

    # Config order, endpoints only: the traffic route is not listed, as MLflow lists them.
    assert [e.name for e in endpoints] == list(ENDPOINTS)
    for endpoint in endpoints:
        endpoint_type, model_name = ENDPOINTS[endpoint.name]
        assert endpoint.endpoint_type == endpoint_type
        assert endpoint.model.provider == "mock"
        assert endpoint.model.name == model_name
        # The server sends the relative /gateway/<name>/invocations; the client resolves it.
        assert endpoint.endpoint_url == f"{base_url}/gateway/{endpoint.name}/invocations"
        if endpoint.name == "chat-limited":
            assert endpoint.limit is not None
            assert endpoint.limit.calls == LIMIT_CALLS
            assert endpoint.limit.renewal_period == "minute"
            assert endpoint.limit.key is None
        else:
            assert endpoint.limit is None


def test_get_endpoint(deploy_client, base_url):
    endpoint = deploy_client.get_endpoint("embeddings")
    assert endpoint.model_dump() == {
        "name": "embeddings",
        "endpoint_type": "llm/v1/embeddings",
        "model": {"name": "mock-embeddings", "provider": "mock"},
        "endpoint_url": f"{base_url}/gateway/embeddings/invocations",
        "limit": None,
    }


def test_get_endpoint_unknown_is_404(deploy_client):
    with pytest.raises(requests.HTTPError) as info:
        deploy_client.get_endpoint("no-such-endpoint")
    assert info.value.response.status_code == 404
    assert info.value.response.json() == {
        "detail": "The endpoint 'no-such-endpoint' is not present or active on the server. "
        "Please verify the endpoint name."
    }


def test_get_endpoint_of_a_route_is_404(deploy_client):
    # Routes are invocable but not endpoints: MLflow answers 404 for them.
    with pytest.raises(requests.HTTPError) as info:
        deploy_client.get_endpoint(ROUTE)
    assert info.value.response.status_code == 404
    assert f"'{ROUTE}'" in info.value.response.json()["detail"]


# --- invocations ----------------------------------------------------------------------------------


def test_predict_chat(deploy_client):
    response = deploy_client.predict(
        endpoint="chat",
        inputs={
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": "Ünïcode and spaces: 你好 ✓"},
            ],
            "temperature": 0.5,
            "max_tokens": 64,
        },
    )
    assert response["object"] == "chat.completion"
    assert response["model"] == "mock-chat"
    assert response["provider"] == "mock"
    assert isinstance(response["id"], str) and response["id"]
    assert isinstance(response["created"], int) and response["created"] > 1_600_000_000
    assert len(response["choices"]) == 1
    choice = response["choices"][0]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "Ünïcode and spaces: 你好 ✓"
    _assert_usage(response["usage"])


def test_predict_completions(deploy_client):
    response = deploy_client.predict(
        endpoint="completions", inputs={"prompt": "Echo this prompt, please.", "max_tokens": 20}
    )
    assert response["object"] == "text_completion"
    assert response["model"] == "mock-completions"
    assert "provider" not in response  # a chat-only field in MLflow's response schema
    assert len(response["choices"]) == 1
    assert response["choices"][0]["index"] == 0
    assert response["choices"][0]["text"] == "Echo this prompt, please."
    assert response["choices"][0]["finish_reason"] == "stop"
    _assert_usage(response["usage"])


def test_predict_embeddings(deploy_client):
    texts = ["alpha", "beta", "alpha"]
    response = deploy_client.predict(endpoint="embeddings", inputs={"input": texts})
    assert response["object"] == "list"
    assert response["model"] == "mock-embeddings"
    assert [d["index"] for d in response["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in response["data"])
    vectors = [d["embedding"] for d in response["data"]]
    for vector in vectors:
        assert len(vector) == EMBEDDING_DIMS
        assert all(isinstance(x, float) and math.isfinite(x) for x in vector)
    assert vectors[0] == vectors[2], "same input must embed to the same vector"
    assert vectors[0] != vectors[1], "different inputs must embed differently"
    assert isinstance(response["usage"]["prompt_tokens"], int)

    # A single string is accepted too and embeds like the same string in a list.
    single = deploy_client.predict(endpoint="embeddings", inputs={"input": "alpha"})
    assert [d["embedding"] for d in single["data"]] == [vectors[0]]


def test_predict_traffic_route_reaches_both_destinations(deploy_client):
    models = set()
    for i in range(24):
        response = deploy_client.predict(
            endpoint=ROUTE, inputs={"messages": [{"role": "user", "content": f"route {i}"}]}
        )
        assert response["choices"][0]["message"]["content"] == f"route {i}"
        assert response["provider"] == "mock"
        models.add(response["model"])
    # 50/50 split: the chance of 24 draws all landing on one side is 2 * 2**-24.
    assert models == ROUTE_MODELS


def test_predict_gateway_path_alias(base_url):
    # endpoint_url from the list API is /gateway/<name>/invocations: it must be invocable.
    response = requests.post(
        f"{base_url}/gateway/completions/invocations", json={"prompt": "via gateway path"}, timeout=20
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["text"] == "via gateway path"


# --- errors ---------------------------------------------------------------------------------------


def test_predict_unknown_endpoint_is_404(deploy_client):
    with pytest.raises(requests.HTTPError) as info:
        deploy_client.predict(endpoint="no-such-endpoint", inputs={"prompt": "x"})
    assert info.value.response.status_code == 404
    assert "404" in str(info.value)


def test_predict_invalid_field_is_422_naming_the_field(deploy_client):
    with pytest.raises(requests.HTTPError) as info:
        deploy_client.predict(
            endpoint="chat",
            inputs={"messages": [{"role": "user", "content": "hi"}], "temperature": 3},
        )
    assert info.value.response.status_code == 422
    assert "temperature" in str(info.value)  # the message the user sees names the field
    errors = info.value.response.json()["detail"]
    assert any(e["loc"] == ["body", "temperature"] and e["type"] == "less_than_equal" for e in errors), errors


def test_predict_missing_required_field_is_422(deploy_client):
    with pytest.raises(requests.HTTPError) as info:
        deploy_client.predict(endpoint="completions", inputs={"max_tokens": 5})
    assert info.value.response.status_code == 422
    errors = info.value.response.json()["detail"]
    assert any(e["loc"] == ["body", "prompt"] and e["type"] == "missing" for e in errors), errors


def test_predict_with_model_key_is_422(deploy_client):
    with pytest.raises(requests.HTTPError) as info:
        deploy_client.predict(
            endpoint="chat", inputs={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert info.value.response.status_code == 422
    assert info.value.response.json() == {
        "detail": "The parameter 'model' is not permitted to be passed. "
        "The route being queried already defines a model instance."
    }


def test_deployments_client_has_no_streaming(deploy_client):
    # Why MLflow-path streaming is tested with requests below (and why LangChain's
    # ChatMlflow.stream cannot stream from any MLflow gateway).
    with pytest.raises(NotImplementedError):
        deploy_client.predict_stream(endpoint="chat", inputs={"messages": [{"role": "user", "content": "x"}]})


# --- MLflow-path streaming (raw SSE) --------------------------------------------------------------


def _stream(base_url: str, endpoint: str, body: dict) -> tuple[requests.Response, list[object]]:
    response = requests.post(
        f"{base_url}/endpoints/{endpoint}/invocations", json={**body, "stream": True}, timeout=20
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    return response, parse_events(response.content.decode("utf-8"))


def test_stream_chat_mlflow_path(base_url):
    text = "one two three four five six seven eight nine ten"
    _, events = _stream(base_url, "chat-stream", {"messages": [{"role": "user", "content": text}]})

    assert DONE not in events, "MLflow invocation paths must not send [DONE]"
    assert len(events) >= STREAM_CHUNKS
    for event in events:
        assert event["object"] == "chat.completion.chunk"
        assert event["model"] == "mock-chat-stream"
        assert event["provider"] == "mock"
        delta = event["choices"][0]["delta"]
        assert {"role", "content", "tool_calls"} <= set(delta), delta
    assert len({event["id"] for event in events}) == 1, "all chunks of one answer share an id"
    contents = [e["choices"][0]["delta"]["content"] for e in events]
    assert sum(1 for c in contents if c) == STREAM_CHUNKS
    assert "".join(c or "" for c in contents) == text
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:-1])


def test_stream_completions_mlflow_path(base_url):
    prompt = "stream this completion prompt back"
    _, events = _stream(base_url, "completions", {"prompt": prompt})
    assert DONE not in events
    for event in events:
        assert event["object"] == "text_completion_chunk"
        assert event["model"] == "mock-completions"
    assert "".join(e["choices"][0]["text"] or "" for e in events) == prompt
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
