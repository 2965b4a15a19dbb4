//! `mistral` end to end: the real binary in front of the scripted mock upstream speaking Mistral's
//! API (`/v1/chat/completions`, `/v1/embeddings`; completions go through chat). Pins the upstream
//! request (path, bearer key, exact body) and the client's reply on every path, the chat stream
//! (usage null in chunks, `[DONE]` ends it), MLflow's 501 for completions streams, Mistral's
//! error bodies passed through whole, and a cut stream. The key appears in no response and no
//! log line.

use crate::common::upstream::{End, Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-canary-mistral-0b9e55c3";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/mistral/", $name))
    };
}

fn endpoint(name: &str, kind: &str, model: &str, up: &Upstream) -> String {
    format!(
        "  - name: {name}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: mistral\n      name: {model}\n      config:\n        mistral_api_key: {KEY}\n        mistral_api_base: {}/v1\n",
        up.base()
    )
}

fn config(up: &Upstream) -> String {
    format!(
        "endpoints:\n{}{}{}",
        endpoint("mistral-chat", "chat", "mistral-small-latest", up),
        endpoint("mistral-completions", "completions", "mistral-tiny", up),
        endpoint("mistral-embeddings", "embeddings", "mistral-embed", up),
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

async fn call(gw: &Gateway, path: &str, body: &Value) -> Reply {
    let reply = post_json(&gw.url(path), body).await;
    assert!(!reply.text.contains("canary"), "key leaked: {}", reply.text);
    for line in gw.logs().lines() {
        assert!(
            !line.contains("canary"),
            "key leaked into a log line: {line}"
        );
    }
    reply
}

fn assert_upstream(up: &Upstream, path: &str, body: &str, what: &str) {
    let request = up.only_request();
    assert_eq!(request.path, path, "{what}");
    assert_eq!(
        request.header_all("authorization"),
        [format!("Bearer {KEY}")],
        "{what}"
    );
    assert_eq!(request.text(), body.trim(), "{what}");
}

/// An SSE fixture as the upstream writes it: one write per event.
fn sse_script(text: &str) -> Script {
    Script::sse(
        text.split_inclusive("\n\n")
            .map(|event| event.as_bytes().to_vec())
            .collect(),
    )
}

#[actix_rt::test]
async fn chat_on_every_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let request = parse(fixture!("chat_request.json"));
    for (path, body) in paths("mistral-chat", "/v1/chat/completions", &request) {
        up.push(Script::json(200, &parse(fixture!("chat_response.json"))));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            reply.json,
            parse(fixture!("chat_response.unified.json")),
            "{path}"
        );
        assert_upstream(
            &up,
            "/v1/chat/completions",
            fixture!("chat_request.upstream.json"),
            &path,
        );
    }
}

#[actix_rt::test]
async fn chat_streams_on_every_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let request = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true});
    let want: Vec<Value> = fixture!("chat_stream.unified.jsonl")
        .lines()
        .map(parse)
        .collect();
    for (path, body) in paths("mistral-chat", "/v1/chat/completions", &request) {
        up.push(sse_script(fixture!("chat_stream.sse")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let mut data = sse_data(&reply.text);
        if path.starts_with("/v1") {
            assert_eq!(data.pop().as_deref(), Some("[DONE]"), "{path}");
        }
        let got: Vec<Value> = data.iter().map(|d| parse(d)).collect();
        assert_eq!(got, want, "{path}");
        assert_upstream(
            &up,
            "/v1/chat/completions",
            r#"{"model":"mistral-small-latest","n":1,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            &path,
        );
    }
}

#[actix_rt::test]
async fn completions_on_every_path_go_through_chat() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let request = parse(fixture!("completions_request.json"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (path, body) in paths("mistral-completions", "/v1/completions", &request) {
        up.push(Script::json(
            200,
            &parse(fixture!("completions_response.json")),
        ));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let mut got = reply.json;
        let created = got["created"].as_i64().unwrap();
        assert!((created - now).abs() < 120, "created is now: {created}");
        got["created"] = json!(1_795_271_324);
        assert_eq!(
            got,
            parse(fixture!("completions_response.unified.json")),
            "{path}"
        );
        assert_upstream(
            &up,
            "/v1/chat/completions",
            fixture!("completions_request.upstream.json"),
            &path,
        );
    }
    let reply = call(
        &gw,
        "/endpoints/mistral-completions/invocations",
        &json!({"prompt": "hi", "stream": true}),
    )
    .await;
    assert_eq!(reply.status, 501);
    assert_eq!(
        reply.json,
        json!({"detail": "The completions streaming route is not implemented for Mistral models."})
    );
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn embeddings_on_every_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let request = parse(fixture!("embeddings_request.json"));
    for (path, body) in paths("mistral-embeddings", "/v1/embeddings", &request) {
        up.push(Script::json(
            200,
            &parse(fixture!("embeddings_response.json")),
        ));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let mut want = parse(fixture!("embeddings_response.unified.json"));
        want["model"] = json!("mistral-embed");
        assert_eq!(reply.json, want, "{path}");
        assert_upstream(
            &up,
            "/v1/embeddings",
            fixture!("embeddings_request.upstream.json"),
            &path,
        );
    }
}

#[actix_rt::test]
async fn mistral_error_bodies_pass_through_whole_with_their_status() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    for (status, body) in [
        (401, fixture!("error_401.json")),
        (422, fixture!("error_422.json")),
        (429, fixture!("error_429.json")),
    ] {
        up.push(Script::json(status, &parse(body)));
        let reply = call(&gw, "/endpoints/mistral-chat/invocations", &chat).await;
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(reply.json, json!({ "detail": parse(body) }));
    }
    // On /v1 the same failure is an OpenAI-shaped error with the upstream's status.
    up.push(Script::json(401, &parse(fixture!("error_401.json"))));
    let mut v1 = chat.clone();
    v1["model"] = json!("mistral-chat");
    let reply = call(&gw, "/v1/chat/completions", &v1).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.json["error"]["type"], "authentication_error");
}

#[actix_rt::test]
async fn a_stream_cut_before_done_ends_with_an_error_event() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    up.push(
        sse_script(fixture!("chat_stream.sse"))
            .truncate(2)
            .end(End::Close),
    );
    let reply = call(
        &gw,
        "/endpoints/mistral-chat/invocations",
        &json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
    )
    .await;
    assert_eq!(reply.status, 200);
    let data = sse_data(&reply.text);
    assert_eq!(data.len(), 3, "{}", reply.text);
    assert_eq!(parse(&data[1])["choices"][0]["delta"]["content"], "Hello");
    assert!(parse(&data[2])["error"]["message"].is_string());
}
