//! Invocations through the built-in mock provider on every path (MLflow's `/endpoints` and
//! `/gateway`, OpenAI's `/v1`), JSON and streaming, with the errors each family expects.

use std::time::Duration;

use crate::common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn config() -> String {
    let mut yaml = String::from("endpoints:\n");
    yaml += &mock_endpoint("chat", "llm/v1/chat", "chunks: 5");
    yaml += &mock_endpoint("completions", "llm/v1/completions", "chunks: 3");
    yaml += &mock_endpoint("embeddings", "llm/v1/embeddings", "embedding_dims: 4");
    yaml += &mock_endpoint("slow", "llm/v1/chat", "chunks: 200, chunk_delay_ms: 20");
    yaml += &mock_endpoint(
        "failing",
        "llm/v1/chat",
        "fail_status: 503, fail_message: overloaded",
    );
    yaml += &mock_endpoint("breaks", "llm/v1/chat", "chunks: 4, fail_after_chunks: 2");
    yaml += "routes:\n  - name: split\n    task_type: llm/v1/chat\n    destinations:\n      - name: chat\n        traffic_percentage: 100\n";
    yaml
}

fn chat_body(text: &str) -> Value {
    json!({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]})
}

#[actix_rt::test]
async fn chat_on_both_mlflow_paths_echoes_the_last_message() {
    let gw = Gateway::start(&config());
    for path in [
        "/endpoints/chat/invocations",
        "/gateway/chat/invocations",
        "/endpoints/split/invocations",
    ] {
        let reply = post_json(&gw.url(path), &chat_body("hello there")).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let body = &reply.json;
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "model-chat");
        assert_eq!(body["provider"], "mock");
        assert_eq!(body["choices"][0]["index"], 0);
        assert_eq!(body["choices"][0]["message"]["role"], "assistant");
        assert_eq!(body["choices"][0]["message"]["content"], "hello there");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["prompt_tokens"], 4);
        assert_eq!(body["usage"]["completion_tokens"], 2);
        assert_eq!(body["usage"]["total_tokens"], 6);
        // MLflow's field order: id, object, created, model, choices, usage, provider.
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["id", "object", "created", "model", "choices", "usage", "provider"]
        );
    }
}

#[actix_rt::test]
async fn completions_and_embeddings_on_mlflow_paths() {
    let gw = Gateway::start(&config());
    let reply = post_json(
        &gw.url("/endpoints/completions/invocations"),
        &json!({"prompt": "say this"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["object"], "text_completion");
    assert_eq!(reply.json["choices"][0]["text"], "say this");
    assert!(reply.json.get("provider").is_none());

    let reply = post_json(
        &gw.url("/endpoints/embeddings/invocations"),
        &json!({"input": ["a", "b"]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["object"], "list");
    let data = reply.json["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 4);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    // Deterministic: the same input gives the same vector.
    let again = post_json(
        &gw.url("/gateway/embeddings/invocations"),
        &json!({"input": "a"}),
    )
    .await;
    assert_eq!(again.json["data"][0]["embedding"], data[0]["embedding"]);
}

#[actix_rt::test]
async fn openai_paths_select_the_target_by_model() {
    let gw = Gateway::start(&config());
    let mut body = chat_body("via v1");
    body["model"] = json!("chat");
    let reply = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["choices"][0]["message"]["content"], "via v1");

    body["model"] = json!("split");
    let reply = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let reply = post_json(
        &gw.url("/v1/completions"),
        &json!({"model": "completions", "prompt": "p"}),
    )
    .await;
    assert_eq!(reply.json["choices"][0]["text"], "p");

    let reply = post_json(
        &gw.url("/v1/embeddings"),
        &json!({"model": "embeddings", "input": "x"}),
    )
    .await;
    assert_eq!(
        reply.json["data"][0]["embedding"].as_array().unwrap().len(),
        4
    );
}

#[actix_rt::test]
async fn openai_paths_answer_openai_shaped_errors() {
    let gw = Gateway::start(&config());
    let reply = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json["error"]["type"], "not_found_error");
    assert_eq!(reply.json["error"]["param"], "model");

    let reply = post_json(
        &gw.url("/v1/completions"),
        &json!({"model": "chat", "prompt": "x"}),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json["error"]["message"],
        "Endpoint 'chat' is not a completions endpoint."
    );

    let reply = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "chat", "messages": []}),
    )
    .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json["error"]["param"], "messages");

    let reply = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json["error"]["param"], "model");

    let reply = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "failing", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json["error"]["message"], "overloaded");
}

#[actix_rt::test]
async fn mlflow_paths_answer_mlflow_shaped_errors() {
    let gw = Gateway::start(&config());
    let reply = post_json(&gw.url("/endpoints/nope/invocations"), &chat_body("x")).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (404, json!({"detail": "Not Found"}))
    );

    let reply = get(&gw.url("/endpoints/chat/invocations")).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (405, json!({"detail": "Method Not Allowed"}))
    );

    let mut body = chat_body("x");
    body["model"] = json!("gpt-4");
    let reply = post_json(&gw.url("/endpoints/chat/invocations"), &body).await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json,
        json!({"detail": "The parameter 'model' is not permitted to be passed. The route being queried already defines a model instance."})
    );

    let reply = post_json(
        &gw.url("/endpoints/chat/invocations"),
        &json!({"messages": [{"role": "user", "content": "x"}], "temperature": 3}),
    )
    .await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json["detail"][0]["loc"],
        json!(["body", "temperature"])
    );
    assert_eq!(reply.json["detail"][0]["type"], "less_than_equal");

    let reply = post_raw(
        &gw.url("/endpoints/chat/invocations"),
        Some("application/json"),
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json["detail"][0]["type"], "json_invalid");

    let reply = post_raw(
        &gw.url("/endpoints/chat/invocations"),
        Some("text/plain"),
        b"hello".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json["detail"][0]["type"], "model_attributes_type");

    let reply = post_json(&gw.url("/endpoints/failing/invocations"), &chat_body("x")).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (503, json!({"detail": "overloaded"}))
    );
}

#[actix_rt::test]
async fn body_over_the_limit_is_413_json() {
    let gw = Gateway::start_with(&config(), &[], &[("SWITCHYARD_BODY_LIMIT_BYTES", "1024")]);
    let big = chat_body(&"x".repeat(4096));
    let reply = post_json(&gw.url("/endpoints/chat/invocations"), &big).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(reply.json["detail"].as_str().unwrap().contains("1024"));
}

#[actix_rt::test]
async fn streams_keep_each_familys_framing() {
    let gw = Gateway::start(&config());
    let mut body = chat_body("one two three four five");
    body["stream"] = json!(true);
    let reply = post_json(&gw.url("/endpoints/chat/invocations"), &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(reply.headers.get("x-accel-buffering").unwrap(), "no");
    let events = sse_data(&reply.text);
    assert_eq!(events.len(), 5, "{}", reply.text);
    assert!(
        !reply.text.contains("[DONE]"),
        "MLflow paths keep MLflow's framing"
    );
    let chunks: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(text, "one two three four five");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[0]["provider"], "mock");

    body["model"] = json!("chat");
    let reply = post_json(&gw.url("/v1/chat/completions"), &body).await;
    let events = sse_data(&reply.text);
    assert_eq!(events.len(), 6);
    assert_eq!(events.last().unwrap(), "[DONE]");

    let reply = post_json(
        &gw.url("/v1/completions"),
        &json!({"model": "completions", "prompt": "abc def", "stream": true}),
    )
    .await;
    let events = sse_data(&reply.text);
    assert_eq!(events.len(), 4);
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "text_completion_chunk");
}

#[actix_rt::test]
async fn a_stream_that_fails_midway_ends_with_an_error_event_not_a_finish() {
    let gw = Gateway::start(&config());
    let mut body = chat_body("a b c d");
    body["stream"] = json!(true);
    body["model"] = json!("breaks");
    let reply = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(reply.status, 200);
    let events = sse_data(&reply.text);
    assert_eq!(events.len(), 3, "{}", reply.text);
    let error: Value = serde_json::from_str(&events[2]).unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("mock"),
        "{error}"
    );
    assert!(!reply.text.contains("[DONE]"));
    assert!(!reply.text.contains("\"finish_reason\":\"stop\""));
}

#[actix_rt::test]
async fn first_stream_event_arrives_before_the_stream_ends() {
    let gw = Gateway::start(&config());
    let mut body = chat_body("tick");
    body["stream"] = json!(true);
    let started = std::time::Instant::now();
    let mut response = client()
        .post(gw.url("/endpoints/slow/invocations"))
        .send_json(&body)
        .await
        .unwrap();
    let first = response.next().await.unwrap().unwrap();
    // 200 chunks 20 ms apart take 4 s; the first must not wait for them.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "first event took {:?}",
        started.elapsed()
    );
    assert!(first.starts_with(b"data: "));
}

#[actix_rt::test]
async fn a_client_that_disconnects_stops_the_stream() {
    let gw = Gateway::start(&config());
    let mut body = chat_body("tick");
    body["stream"] = json!(true);
    let mut response = client()
        .post(gw.url("/endpoints/slow/invocations"))
        .send_json(&body)
        .await
        .unwrap();
    let _ = response.next().await.unwrap().unwrap();
    drop(response);
    // The mock's producer notices the closed channel on its next send (20 ms later).
    assert!(
        gw.wait_for_log("client went away", Duration::from_secs(2)),
        "stream kept running after the client left; logs:\n{}",
        gw.logs()
    );
}
