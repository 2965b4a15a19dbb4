//! `cohere` end to end: the real gateway in front of a mock speaking Cohere's v1 API (`/chat`,
//! `/generate`, `/embed`, newline-delimited JSON streams). Pins what the mock received (path,
//! bearer key, exact body) and what the client got (exact JSON, `created` checked then pinned) on
//! MLflow's paths and on `/v1`; MLflow's rename rules with their 422s and 400s; Cohere's
//! `{"message"}` error bodies. The key never reaches a response or a log line.

use crate::common::upstream::{Recorded, Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-canary-cohere-4b1d0a";
const NDJSON: &str = "application/stream+json";

fn config(up: &Upstream) -> String {
    let mut yaml = String::from("endpoints:\n");
    for (kind, model) in [
        ("chat", "command"),
        ("completions", "command"),
        ("embeddings", "embed-english-v3.0"),
    ] {
        yaml += &format!(
            "  - name: co-{kind}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: cohere\n      name: {model}\n      config:\n        cohere_api_key: {KEY}\n        cohere_api_base: {}/v1\n",
            up.base()
        );
    }
    yaml
}

fn fixture(name: &str) -> &'static str {
    match name {
        "chat_request" => include_str!("../fixtures/cohere/chat_request.json"),
        "generate_request" => include_str!("../fixtures/cohere/generate_request.json"),
        "embed_request" => include_str!("../fixtures/cohere/embed_request.json"),
        "chat_response" => include_str!("../fixtures/cohere/chat_response.json"),
        "generate_response" => include_str!("../fixtures/cohere/generate_response.json"),
        "embed_response" => include_str!("../fixtures/cohere/embed_response.json"),
        "chat_stream" => include_str!("../fixtures/cohere/chat_stream.jsonl"),
        "generate_stream" => include_str!("../fixtures/cohere/generate_stream.jsonl"),
        "error_unauthorized" => include_str!("../fixtures/cohere/error_unauthorized.json"),
        "error_too_many_requests" => {
            include_str!("../fixtures/cohere/error_too_many_requests.json")
        }
        other => panic!("no fixture {other}"),
    }
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(fixture(name)).unwrap()
}

/// A JSON-lines fixture cut into 5-byte writes, so lines straddle network reads.
fn lines_script(name: &str) -> Script {
    Script::chunked(
        200,
        NDJSON,
        fixture(name)
            .as_bytes()
            .chunks(5)
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

fn paths(kind: &str, body: &Value) -> Vec<(String, Value)> {
    let v1 = match kind {
        "chat" => "/v1/chat/completions",
        "completions" => "/v1/completions",
        _ => "/v1/embeddings",
    };
    let mut v1_body = body.clone();
    v1_body["model"] = json!(format!("co-{kind}"));
    vec![
        (format!("/endpoints/co-{kind}/invocations"), body.clone()),
        (format!("/gateway/co-{kind}/invocations"), body.clone()),
        (v1.to_owned(), v1_body),
    ]
}

async fn call(gw: &Gateway, path: &str, body: &Value) -> Reply {
    let reply = post_json(&gw.url(path), body).await;
    assert!(
        !reply.text.contains("canary"),
        "key leaked into a response: {}",
        reply.text
    );
    reply
}

fn assert_logs_clean(gw: &Gateway) {
    for line in gw.logs().lines() {
        assert!(
            !line.contains("canary"),
            "key leaked into a log line: {line}"
        );
    }
}

fn assert_target(req: &Recorded, path: &str) {
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", path));
    assert_eq!(req.query, None);
    assert_eq!(req.header_all("authorization"), [format!("Bearer {KEY}")]);
}

/// Checks `created` is a current Unix time, then pins it.
fn pin_created(mut value: Value) -> Value {
    let created = value["created"].as_i64().expect("created");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - 120..=now + 1).contains(&created),
        "created {created}"
    );
    value["created"] = json!(0);
    value
}

fn chunks(reply: &Reply, v1: bool) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut data = sse_data(&reply.text);
    assert_eq!(
        data.last().map(String::as_str) == Some("[DONE]"),
        v1,
        "{}",
        reply.text
    );
    if v1 {
        data.pop();
    }
    data.iter()
        .map(|d| pin_created(serde_json::from_str(d).unwrap()))
        .collect()
}

#[actix_rt::test]
async fn chat_builds_message_preamble_and_history() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body = json!({"temperature": 0.5, "messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]});
    for (path, body) in paths("chat", &body) {
        up.push(Script::json(200, &json_fixture("chat_response")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_created(reply.json.clone()),
            json!({"id": "f2b8e6a4-8c1d-4b43-9a6e-0d3f5c7b2e91", "object": "chat.completion", "created": 0,
                "model": "command", "choices": [{"index": 0, "message": {"role": "assistant",
                "content": "LLMs are neural networks trained on large amounts of text.", "tool_calls": null, "refusal": null},
                "finish_reason": null}], "usage": {"prompt_tokens": 71, "completion_tokens": 11, "total_tokens": 82},
                "provider": "cohere"}),
            "{path}"
        );
        let req = up.only_request();
        assert_target(&req, "/v1/chat");
        assert_eq!(
            req.text(),
            json_fixture("chat_request").to_string(),
            "{path}"
        );
    }
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn chat_streams_read_json_lines() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true});
    for (path, body) in paths("chat", &body) {
        up.push(lines_script("chat_stream"));
        let reply = call(&gw, &path, &body).await;
        let none = json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null});
        let chunk = |id: Value, content: Value, finish: Value, usage: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": "command",
                "choices": [{"index": 0, "finish_reason": finish, "delta": {"role": null, "content": content, "tool_calls": null}}],
                "usage": usage, "provider": "cohere"})
        };
        assert_eq!(
            chunks(&reply, path.starts_with("/v1")),
            vec![
                chunk(Value::Null, json!("How"), Value::Null, none.clone()),
                chunk(Value::Null, json!(" are you"), Value::Null, none),
                chunk(
                    json!("f2b8e6a4-8c1d-4b43-9a6e-0d3f5c7b2e91"),
                    Value::Null,
                    json!("COMPLETE"),
                    json!({"prompt_tokens": 67, "completion_tokens": 3, "total_tokens": 70})
                ),
            ],
            "{path}"
        );
        let req = up.only_request();
        assert_target(&req, "/v1/chat");
        assert_eq!(
            req.text(),
            r#"{"model":"command","stream":true,"message":"hi"}"#
        );
    }
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn generate_and_its_stream() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body =
        json!({"prompt": "This is a test", "stop": ["foo"], "max_tokens": 20, "temperature": 0.4});
    for (path, body) in paths("completions", &body) {
        up.push(Script::json(200, &json_fixture("generate_response")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_created(reply.json.clone()),
            json!({"id": null, "object": "text_completion", "created": 0, "model": "command", "choices": [
                {"index": 0, "text": " Hi there! How can I assist you today?", "finish_reason": null},
                {"index": 1, "text": " Hello! What can I do for you?", "finish_reason": null}],
                "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}}),
            "{path}"
        );
        let req = up.only_request();
        assert_target(&req, "/v1/generate");
        assert_eq!(req.text(), json_fixture("generate_request").to_string());
    }
    let body = json!({"prompt": "Hello", "n": 2, "stream": true});
    for (path, body) in paths("completions", &body) {
        up.push(lines_script("generate_stream"));
        let reply = call(&gw, &path, &body).await;
        let choices: Vec<Value> = chunks(&reply, path.starts_with("/v1"))
            .iter()
            .map(|c| json!([c["id"], c["object"], c["choices"]]))
            .collect();
        assert_eq!(
            choices,
            [
                json!([null, "text_completion_chunk", [{"index": 0, "finish_reason": null, "text": " Hi"}]]),
                json!([null, "text_completion_chunk", [{"index": 1, "finish_reason": null, "text": " Hello"}]]),
                json!(["b32a70c5-8c91-4f96-958f-d942801ed22f", "text_completion_chunk",
                    [{"index": 0, "finish_reason": "COMPLETE", "text": null}]]),
            ],
            "{path}"
        );
        let req = up.only_request();
        assert_eq!(
            req.text(),
            r#"{"model":"command","num_generations":2,"stream":true,"prompt":"Hello"}"#
        );
    }
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn embeddings_send_texts() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body = json!({"input": ["hello", "world"], "input_type": "search_document"});
    for (path, body) in paths("embeddings", &body) {
        up.push(Script::json(200, &json_fixture("embed_response")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            reply.json,
            json!({"object": "list", "data": [
                {"object": "embedding", "embedding": [0.016296387, -0.008354187], "index": 0},
                {"object": "embedding", "embedding": [-0.0390625, 0.024353027], "index": 1}],
                "model": "embed-english-v3.0", "usage": {"prompt_tokens": null, "total_tokens": null}}),
            "{path}"
        );
        let req = up.only_request();
        assert_target(&req, "/v1/embed");
        assert_eq!(req.text(), json_fixture("embed_request").to_string());
    }
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn rename_rules_answer_before_any_upstream_call() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            "chat",
            json!({"messages": user, "n": 2}),
            422,
            "Parameter n must be 1 for Cohere chat, got 2.",
        ),
        (
            "chat",
            json!({"messages": user, "stop": ["x"], "stream": true}),
            422,
            "Parameter stop is not supported for Cohere chat.",
        ),
        (
            "chat",
            json!({"messages": [{"role": "system", "content": "s"}]}),
            422,
            "Last message must be from user, got system.",
        ),
        (
            "completions",
            json!({"prompt": "p", "stop_sequences": ["x"]}),
            400,
            "Invalid parameter stop_sequences. Use stop instead.",
        ),
        (
            "completions",
            json!({"prompt": "p", "num_generations": 2, "stream": true}),
            400,
            "Invalid parameter num_generations. Use n instead.",
        ),
        (
            "embeddings",
            json!({"input": "x", "texts": ["y"]}),
            422,
            "Invalid parameter texts. Use input instead.",
        ),
    ];
    for (kind, body, status, message) in cases {
        let reply = call(&gw, &format!("/endpoints/co-{kind}/invocations"), &body).await;
        assert_eq!(
            (reply.status, reply.json.clone()),
            (status, json!({ "detail": message })),
            "{kind}: {body}"
        );
    }
    let reply = call(
        &gw,
        "/v1/completions",
        &json!({"model": "co-completions", "prompt": "p", "stop_sequences": ["x"]}),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Invalid parameter stop_sequences. Use stop instead.")),
        "{}",
        reply.text
    );
    assert_eq!(up.request_count(), 0);
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn cohere_errors_are_reported_as_mlflow_does() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    // No `error` key: MLflow's detail is the whole upstream body.
    up.push(Script::json(401, &json_fixture("error_unauthorized")));
    let reply = call(
        &gw,
        "/endpoints/co-embeddings/invocations",
        &json!({"input": "x"}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (401, json!({"detail": {"message": "invalid api token"}}))
    );
    up.push(Script::json(429, &json_fixture("error_too_many_requests")));
    let reply = call(
        &gw,
        "/endpoints/co-chat/invocations",
        &json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (
            429,
            json!({ "detail": json_fixture("error_too_many_requests") })
        )
    );
    up.push(Script::json(
        400,
        &json!({"message": format!("token {KEY} has been revoked")}),
    ));
    let reply = call(
        &gw,
        "/endpoints/co-completions/invocations",
        &json!({"prompt": "p"}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (
            400,
            json!({"detail": {"message": "token *** has been revoked"}})
        )
    );
    // A line that is not JSON ends the stream with an error event after what came before.
    up.push(Script::chunked(
        200,
        NDJSON,
        vec![
            b"{\"is_finished\":false,\"event_type\":\"text-generation\",\"text\":\"Hi\"}\n"
                .to_vec(),
            b"<html>oops</html>\n".to_vec(),
        ],
    ));
    let reply = call(
        &gw,
        "/endpoints/co-chat/invocations",
        &json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
    )
    .await;
    let data = sse_data(&reply.text);
    assert_eq!(data.len(), 2, "{}", reply.text);
    assert!(data[0].contains("\"Hi\""), "{}", reply.text);
    assert!(data[1].contains("error"), "{}", reply.text);
    assert_logs_clean(&gw);
}

/// Cohere's last line says `is_finished: true`; a body that ends before it was cut, and the client
/// gets an error event instead of a stream that merely stops (on `/v1`, no `[DONE]` either).
#[actix_rt::test]
async fn a_stream_that_ends_before_stream_end_ends_with_an_error_event() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let lines: Vec<&str> = fixture("chat_stream").lines().collect();
    assert!(lines.last().unwrap().contains(r#""is_finished":true"#));
    let cut: Vec<Vec<u8>> = lines[..lines.len() - 1]
        .iter()
        .map(|line| format!("{line}\n").into_bytes())
        .collect();
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true});
    for (path, body) in paths("chat", &body) {
        up.push(Script::chunked(200, NDJSON, cut.clone()));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let data = sse_data(&reply.text);
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(
            last["error"]["message"], "The provider's stream ended before it was complete.",
            "{path}: {}",
            reply.text
        );
        assert!(data.iter().all(|d| d != "[DONE]"), "{path}: {}", reply.text);
        // Every line before the cut still reached the client.
        assert_eq!(data.len(), 3, "{path}: {}", reply.text);
        up.only_request();
    }
    assert_logs_clean(&gw);
}
