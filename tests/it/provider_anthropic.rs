//! `anthropic` end to end: the real binary in front of the scripted mock upstream speaking
//! Anthropic's Messages API (`/v1/messages`, JSON and SSE) and legacy Text Completions API
//! (`/v1/complete`). Pins what the upstream receives (path, `x-api-key`, `anthropic-version`, the
//! exact body MLflow would send) and what the client gets on every path, streams included
//! (MLflow framing on MLflow paths, `[DONE]` on `/v1`), MLflow's 422s and 501s before any byte,
//! upstream errors, and a stream failing or cut mid-way. The key appears in no response and no
//! log line.

use crate::common::upstream::{End, Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-canary-anthropic-7c41e9d2";
const VERSION: &str = "2023-06-01";
const CUSTOM_VERSION: &str = "2024-10-22";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/anthropic/", $name))
    };
}

fn endpoint(name: &str, kind: &str, model: &str, version: Option<&str>, up: &Upstream) -> String {
    let version = version
        .map(|v| format!("        anthropic_version: \"{v}\"\n"))
        .unwrap_or_default();
    format!(
        "  - name: {name}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: anthropic\n      name: {model}\n      config:\n        anthropic_api_key: {KEY}\n        anthropic_api_base: {}/v1\n{version}",
        up.base()
    )
}

fn config(up: &Upstream) -> String {
    format!(
        "endpoints:\n{}{}{}",
        endpoint("claude-chat", "chat", "claude-3-5-sonnet-latest", None, up),
        endpoint(
            "claude-completions",
            "completions",
            "claude-instant-1",
            Some(CUSTOM_VERSION),
            up
        ),
        endpoint(
            "claude-embeddings",
            "embeddings",
            "claude-3-5-sonnet-latest",
            None,
            up
        ),
    )
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// The three paths that reach `name`; `/v1` names the endpoint in `model`.
fn paths(name: &str, v1: &str, body: &Value) -> Vec<(String, Value)> {
    let mut v1_body = body.clone();
    v1_body["model"] = json!(name);
    vec![
        (format!("/endpoints/{name}/invocations"), body.clone()),
        (format!("/gateway/{name}/invocations"), body.clone()),
        (v1.to_owned(), v1_body),
    ]
}

/// Posts with client credentials that must never reach Anthropic.
async fn call(gw: &Gateway, path: &str, body: &Value) -> Reply {
    let mut response = client()
        .post(gw.url(path))
        .insert_header(("x-api-key", "client-key-not-for-upstream"))
        .insert_header(("authorization", "Bearer client-token"))
        .send_json(body)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.body().limit(1 << 26).await.expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reply = Reply {
        status,
        headers,
        text,
        json,
    };
    assert_clean(gw, &reply);
    reply
}

fn assert_clean(gw: &Gateway, reply: &Reply) {
    assert!(!reply.text.contains("canary"), "key leaked: {}", reply.text);
    for line in gw.logs().lines() {
        assert!(
            !line.contains("canary"),
            "key leaked into a log line: {line}"
        );
    }
}

/// `created` is "now" for Anthropic (its bodies have none); checked, then pinned to 0.
fn pin_created(mut body: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let created = body["created"].as_i64().expect("created is an integer");
    assert!((now - created).abs() < 120, "created {created} is not now");
    body["created"] = json!(0);
    body
}

fn expected(text: &str) -> Value {
    let mut value = parse(text);
    value["created"] = json!(0);
    value
}

/// An SSE fixture as the upstream writes it: one write per event.
fn sse_script(text: &str) -> Script {
    Script::sse(
        text.split_inclusive("\n\n")
            .map(|event| event.as_bytes().to_vec())
            .collect(),
    )
}

fn assert_upstream(up: &Upstream, path: &str, version: &str, body: &str, what: &str) {
    let request = up.only_request();
    assert_eq!(request.path, path, "{what}");
    assert_eq!(request.query, None, "{what}");
    assert_eq!(request.header_all("x-api-key"), [KEY], "{what}");
    assert_eq!(request.header_all("anthropic-version"), [version], "{what}");
    assert!(request.header("authorization").is_none(), "{what}");
    assert_eq!(request.text(), body.trim(), "{what}");
}

#[actix_rt::test]
async fn chat_on_every_path_sends_mlflows_body_and_maps_tools_and_cache_usage() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let request = parse(fixture!("chat_request.json"));
    for (path, body) in paths("claude-chat", "/v1/chat/completions", &request) {
        up.push(Script::json(200, &parse(fixture!("chat_response.json"))));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_created(reply.json),
            expected(fixture!("chat_response.unified.json")),
            "{path}"
        );
        assert_upstream(
            &up,
            "/v1/messages",
            VERSION,
            fixture!("chat_request.upstream.json"),
            &path,
        );
    }
}

#[actix_rt::test]
async fn chat_streams_on_every_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let request =
        json!({"messages": [{"role": "user", "content": "weather in SF?"}], "stream": true});
    let want: Vec<Value> = fixture!("chat_stream.unified.jsonl")
        .lines()
        .map(expected)
        .collect();
    for (path, body) in paths("claude-chat", "/v1/chat/completions", &request) {
        up.push(sse_script(fixture!("chat_stream.sse")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let content_type = reply.headers.get("content-type").unwrap().to_str().unwrap();
        assert!(content_type.starts_with("text/event-stream"), "{path}");
        let mut data = sse_data(&reply.text);
        if path.starts_with("/v1") {
            assert_eq!(data.pop().as_deref(), Some("[DONE]"), "{path}");
        }
        let got: Vec<Value> = data.iter().map(|d| pin_created(parse(d))).collect();
        assert_eq!(got, want, "{path}");
        assert_upstream(
            &up,
            "/v1/messages",
            VERSION,
            r#"{"stream":true,"messages":[{"role":"user","content":"weather in SF?"}],"model":"claude-3-5-sonnet-latest","max_tokens":8192}"#,
            &path,
        );
    }
}

#[actix_rt::test]
async fn completions_on_every_path_use_the_legacy_api() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let request = parse(fixture!("completions_request.json"));
    for (path, body) in paths("claude-completions", "/v1/completions", &request) {
        up.push(Script::json(
            200,
            &parse(fixture!("completions_response.json")),
        ));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_created(reply.json),
            expected(fixture!("completions_response.unified.json")),
            "{path}"
        );
        assert_upstream(
            &up,
            "/v1/complete",
            CUSTOM_VERSION,
            fixture!("completions_request.upstream.json"),
            &path,
        );
    }
}

#[actix_rt::test]
async fn mlflows_rules_and_501s_are_decided_before_sending() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let hi = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        ("claude-chat", "/v1/chat/completions", json!({"messages": hi, "n": 2}), 422,
            "'n' must be '1' for the Anthropic provider. Received value: '{n}'."),
        ("claude-chat", "/v1/chat/completions", json!({"messages": hi, "temperature": 1, "top_p": 0.5}), 422,
            "Cannot set both 'temperature' and 'top_p' parameters."),
        ("claude-chat", "/v1/chat/completions", json!({"messages": hi, "max_tokens": 1_000_001, "stream": true}), 422,
            "Invalid value for max_tokens: cannot exceed 1000000."),
        ("claude-chat", "/v1/chat/completions", json!({"messages": hi, "tools": [{"type": "uc_function", "uc_function": {"name": "f"}}]}), 422,
            "Only function calling tool is supported, but received tool type uc_function"),
        ("claude-completions", "/v1/completions", json!({"prompt": "p", "n": 2}), 422,
            "'n' must be '1' for the Anthropic provider. Received value: '2'."),
        ("claude-completions", "/v1/completions", json!({"prompt": "p", "top_p": 0.1}), 422,
            "Cannot set both 'temperature' and 'top_p' parameters. Please use only the temperature parameter for your query."),
        ("claude-completions", "/v1/completions", json!({"prompt": "p", "stream": true}), 501,
            "The completions streaming route is not implemented for Anthropic models."),
        ("claude-embeddings", "/v1/embeddings", json!({"input": "p"}), 501,
            "The embeddings route is not implemented for Anthropic models."),
    ];
    for (name, v1, body, status, message) in cases {
        for (path, body) in paths(name, v1, &body) {
            let reply = call(&gw, &path, &body).await;
            assert_eq!(reply.status, status, "{path} {body}: {}", reply.text);
            if path.starts_with("/v1") {
                assert_eq!(reply.json["error"]["message"], json!(message), "{path}");
            } else {
                assert_eq!(reply.json, json!({ "detail": message }), "{path}");
            }
        }
    }
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn upstream_errors_keep_anthropics_status_and_message() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    let stream = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true});
    let cases = [
        (401, fixture!("error_401.json"), "invalid x-api-key", &chat),
        (404, fixture!("error_404.json"), "model: claude-9", &chat),
        (529, fixture!("error_529.json"), "Overloaded", &chat),
        // A streamed request's upstream error is known before the first byte: a real status.
        (
            429,
            fixture!("error_429.json"),
            "Number of request tokens has exceeded your per-minute rate limit",
            &stream,
        ),
    ];
    for (status, body, message, request) in cases {
        up.push(Script::json(status, &parse(body)));
        let reply = call(&gw, "/endpoints/claude-chat/invocations", request).await;
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(reply.json, json!({ "detail": message }));
        up.take_requests();
    }
}

#[actix_rt::test]
async fn a_stream_error_event_or_a_cut_stream_ends_with_an_error_event() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let request = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true});
    up.push(sse_script(fixture!("chat_stream_error.sse")));
    let reply = call(&gw, "/endpoints/claude-chat/invocations", &request).await;
    assert_eq!(reply.status, 200);
    let data = sse_data(&reply.text);
    assert_eq!(data.len(), 3, "{}", reply.text);
    assert_eq!(parse(&data[1])["choices"][0]["delta"]["content"], "Par");
    assert_eq!(parse(&data[2])["error"]["message"], "Overloaded");

    // Without `message_stop` the stream was cut: no fake finish, an error event instead.
    up.push(
        sse_script(fixture!("chat_stream.sse"))
            .truncate(5)
            .end(End::Close),
    );
    let reply = call(&gw, "/endpoints/claude-chat/invocations", &request).await;
    let data = sse_data(&reply.text);
    assert_eq!(data.len(), 4, "{}", reply.text);
    assert_eq!(
        parse(&data[3])["error"]["message"],
        "The provider's stream ended before it was complete."
    );
}
