//! `palm` end to end: the real gateway in front of a mock speaking PaLM's `v1beta3` API
//! (`generateMessage`, `generateText`, `batchEmbedText`). Pins what the mock received (path,
//! `x-goog-api-key`, exact body) and what the client got, on MLflow's paths and on `/v1`; MLflow's
//! parameter rules; the streaming 501 (PaLM never streams), answered before any upstream call;
//! Google's error bodies. The key never reaches a URL, a response or a log line.

use crate::common::upstream::{Recorded, Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-canary-palm-93e0f5";

fn config(up: &Upstream) -> String {
    let mut yaml = String::from("endpoints:\n");
    for (kind, model) in [
        ("chat", "chat-bison-001"),
        ("completions", "text-bison-001"),
        ("embeddings", "embedding-gecko-001"),
    ] {
        yaml += &format!(
            "  - name: pl-{kind}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: palm\n      name: {model}\n      config:\n        palm_api_key: {KEY}\n        palm_api_base: {}/v1beta3/models/\n",
            up.base()
        );
    }
    yaml
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "chat_request" => include_str!("../fixtures/palm/chat_request.json"),
        "generate_text_request" => include_str!("../fixtures/palm/generate_text_request.json"),
        "batch_embed_text_request" => {
            include_str!("../fixtures/palm/batch_embed_text_request.json")
        }
        "chat_response" => include_str!("../fixtures/palm/chat_response.json"),
        "generate_text_response" => include_str!("../fixtures/palm/generate_text_response.json"),
        "batch_embed_text_response" => {
            include_str!("../fixtures/palm/batch_embed_text_response.json")
        }
        "error_invalid_key" => include_str!("../fixtures/palm/error_invalid_key.json"),
        "error_not_found" => include_str!("../fixtures/palm/error_not_found.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn paths(kind: &str, body: &Value) -> Vec<(String, Value)> {
    let v1 = match kind {
        "chat" => "/v1/chat/completions",
        "completions" => "/v1/completions",
        _ => "/v1/embeddings",
    };
    let mut v1_body = body.clone();
    v1_body["model"] = json!(format!("pl-{kind}"));
    vec![
        (format!("/endpoints/pl-{kind}/invocations"), body.clone()),
        (format!("/gateway/pl-{kind}/invocations"), body.clone()),
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
    assert_eq!(req.query, None, "the key never travels in the URL");
    assert_eq!(req.header_all("x-goog-api-key"), [KEY]);
    assert_eq!(req.header("authorization"), None);
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

#[actix_rt::test]
async fn chat_uses_generate_message() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0.8});
    for (path, body) in paths("chat", &body) {
        up.push(Script::json(200, &fixture("chat_response")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_created(reply.json.clone()),
            json!({"id": null, "object": "chat.completion", "created": 0, "model": "chat-bison-001",
                "choices": [{"index": 0, "message": {"role": "1", "content": "Hi there! How can I help you today?",
                "tool_calls": null, "refusal": null}, "finish_reason": null}],
                "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null},
                "provider": "palm"}),
            "{path}"
        );
        let req = up.only_request();
        assert_target(&req, "/v1beta3/models/chat-bison-001:generateMessage");
        assert_eq!(req.text(), fixture("chat_request").to_string(), "{path}");
    }
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn completions_use_generate_text() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body = json!({"prompt": "Write a haiku", "n": 2, "stop": ["END"], "max_tokens": 64, "temperature": 0.5});
    for (path, body) in paths("completions", &body) {
        up.push(Script::json(200, &fixture("generate_text_response")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_created(reply.json.clone()),
            json!({"id": null, "object": "text_completion", "created": 0, "model": "text-bison-001",
                "choices": [{"index": 0, "text": "Morning light on snow", "finish_reason": null},
                            {"index": 1, "text": "Quiet pond, one frog", "finish_reason": null}],
                "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}}),
            "{path}"
        );
        let req = up.only_request();
        assert_target(&req, "/v1beta3/models/text-bison-001:generateText");
        assert_eq!(req.text(), fixture("generate_text_request").to_string());
    }
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn embeddings_use_batch_embed_text() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for (path, body) in paths("embeddings", &json!({"input": ["hello", "world"]})) {
        up.push(Script::json(200, &fixture("batch_embed_text_response")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            reply.json,
            json!({"object": "list", "data": [
                {"object": "embedding", "embedding": [3.25, 0.7685547, -2.3554688], "index": 0},
                {"object": "embedding", "embedding": [1.2597656, -0.30126953, 2.65625], "index": 1}],
                "model": "embedding-gecko-001", "usage": {"prompt_tokens": null, "total_tokens": null}}),
            "{path}"
        );
        let req = up.only_request();
        assert_target(&req, "/v1beta3/models/embedding-gecko-001:batchEmbedText");
        assert_eq!(req.text(), fixture("batch_embed_text_request").to_string());
    }
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn streams_and_parameter_rules_answer_before_any_upstream_call() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            "chat",
            json!({"messages": user, "stream": true}),
            501,
            "The chat streaming route is not implemented for PaLM models.",
        ),
        (
            "completions",
            json!({"prompt": "p", "stream": true}),
            501,
            "The completions streaming route is not implemented for PaLM models.",
        ),
        (
            "chat",
            json!({"messages": user, "max_tokens": 5}),
            422,
            "Max tokens is not supported for PaLM chat.",
        ),
        (
            "chat",
            json!({"messages": user, "stopSequences": ["x"]}),
            422,
            "Invalid parameter stopSequences. Use stop instead.",
        ),
        (
            "completions",
            json!({"prompt": "p", "candidateCount": 2}),
            422,
            "Invalid parameter candidateCount. Use n instead.",
        ),
        (
            "embeddings",
            json!({"input": "x", "texts": ["y"]}),
            422,
            "Invalid parameter texts. Use input instead.",
        ),
    ];
    for (kind, body, status, message) in cases {
        let reply = call(&gw, &format!("/endpoints/pl-{kind}/invocations"), &body).await;
        assert_eq!(
            (reply.status, reply.json.clone()),
            (status, json!({ "detail": message })),
            "{kind}: {body}"
        );
    }
    let reply = call(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "pl-chat", "messages": user, "stream": true}),
    )
    .await;
    assert_eq!(reply.status, 501, "{}", reply.text);
    assert!(
        reply.json["error"]["message"].as_str().is_some_and(
            |m| m.contains("The chat streaming route is not implemented for PaLM models.")
        ),
        "{}",
        reply.text
    );
    assert_eq!(up.request_count(), 0);
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn google_errors_pass_through_with_the_key_scrubbed() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    up.push(Script::json(400, &fixture("error_invalid_key")));
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    let reply = call(&gw, "/endpoints/pl-chat/invocations", &chat).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (
            400,
            json!({"detail": "API key not valid. Please pass a valid API key."})
        )
    );
    up.push(Script::json(404, &fixture("error_not_found")));
    let reply = call(
        &gw,
        "/endpoints/pl-completions/invocations",
        &json!({"prompt": "p"}),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(
        reply.json["detail"],
        fixture("error_not_found")["error"]["message"]
    );
    up.push(Script::json(
        403,
        &json!({"error": {"code": 403, "message": format!("API key {KEY} expired."), "status": "PERMISSION_DENIED"}}),
    ));
    let reply = call(
        &gw,
        "/endpoints/pl-embeddings/invocations",
        &json!({"input": "x"}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (403, json!({"detail": "API key *** expired."}))
    );
    assert_logs_clean(&gw);
}
