//! `huggingface-text-generation-inference` end to end: the real binary in front of the scripted
//! mock upstream speaking TGI's `/generate`. Pins the upstream request (path, no auth, exact
//! body), the translated completions response on every path, MLflow's parameter rules and 501s
//! (decided before anything is sent), and TGI's error bodies.

use crate::common::upstream::{Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const TGI: &str = "huggingface-text-generation-inference";
const DISPLAY: &str = "Hugging Face Text Generation Inference";

fn config(up: &Upstream) -> String {
    let mut yaml = String::from("endpoints:\n");
    for (name, kind) in [
        ("tgi-completions", "completions"),
        ("tgi-chat", "chat"),
        ("tgi-embeddings", "embeddings"),
    ] {
        yaml += &format!(
            "  - name: {name}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: {TGI}\n      name: tgi-model\n      config:\n        hf_server_url: {}/\n",
            up.base()
        );
    }
    yaml
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "generate_response" => include_str!("../fixtures/tgi/generate_response.json"),
        "completions_request" => include_str!("../fixtures/tgi/completions_request.json"),
        "generate_request" => include_str!("../fixtures/tgi/generate_request.json"),
        "completions_response" => include_str!("../fixtures/tgi/completions_response.json"),
        "error_validation" => include_str!("../fixtures/tgi/error_validation.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

/// `created` is the gateway's clock: checked to be now, then pinned so the rest compares exactly.
fn pin_created(mut body: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let created = body["created"].as_i64().expect("created is an integer");
    assert!((now - created).abs() < 120, "created {created} is not now");
    body["created"] = json!(1700000000);
    body
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

#[actix_rt::test]
async fn completions_become_a_generate_call_on_every_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for (path, body) in paths(
        "tgi-completions",
        "/v1/completions",
        &fixture("completions_request"),
    ) {
        up.push(Script::json(200, &fixture("generate_response")));
        let reply = post_json(&gw.url(&path), &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_created(reply.json),
            fixture("completions_response"),
            "{path}"
        );
        let req = up.only_request();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/generate")
        );
        assert_eq!(req.query, None);
        assert_eq!(req.header("authorization"), None, "TGI takes no credential");
        assert!(req
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json")));
        // Exact bytes: MLflow's key order, temperature scaled ×50.
        assert_eq!(
            req.text(),
            fixture("generate_request").to_string(),
            "{path}"
        );
    }
}

#[actix_rt::test]
async fn parameter_rules_are_422_and_nothing_is_sent() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let cases = [
        (
            json!({"prompt": "hi", "n": 2}),
            "'n' must be '1' for the Text Generation Inference provider.Received value: '2'.",
        ),
        (
            json!({"prompt": "hi", "max_new_tokens": 5}),
            "Invalid parameter max_new_tokens. Use max_tokens instead.",
        ),
    ];
    for (body, message) in cases {
        let reply = post_json(&gw.url("/endpoints/tgi-completions/invocations"), &body).await;
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert_eq!(reply.json, json!({ "detail": message }));
        let mut v1 = body.clone();
        v1["model"] = json!("tgi-completions");
        let reply = post_json(&gw.url("/v1/completions"), &v1).await;
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert_eq!(reply.json["error"]["message"], json!(message));
    }
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn chat_embeddings_and_streams_are_501_before_any_byte() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let cases = [
        (
            "/endpoints/tgi-chat/invocations",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            format!("The chat route is not implemented for {DISPLAY} models."),
        ),
        (
            "/endpoints/tgi-embeddings/invocations",
            json!({"input": "hi"}),
            format!("The embeddings route is not implemented for {DISPLAY} models."),
        ),
        (
            "/endpoints/tgi-completions/invocations",
            json!({"prompt": "hi", "stream": true}),
            format!("The completions streaming route is not implemented for {DISPLAY} models."),
        ),
        (
            "/endpoints/tgi-chat/invocations",
            json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
            format!("The chat streaming route is not implemented for {DISPLAY} models."),
        ),
    ];
    for (path, body, message) in cases {
        let reply = post_json(&gw.url(path), &body).await;
        assert_eq!(reply.status, 501, "{path}: {}", reply.text);
        assert_eq!(reply.json, json!({ "detail": message }), "{path}");
        assert!(reply
            .headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("application/json")));
    }
    let reply = post_json(
        &gw.url("/v1/completions"),
        &json!({"model": "tgi-completions", "prompt": "hi", "stream": true}),
    )
    .await;
    assert_eq!(reply.status, 501, "{}", reply.text);
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn tgi_errors_keep_their_status_and_message() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let path = "/endpoints/tgi-completions/invocations";
    up.push(Script::json(422, &fixture("error_validation")));
    let reply = post_json(&gw.url(path), &json!({"prompt": "hi"})).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"detail": "Input validation error: `inputs` must have less than 1024 tokens. Given: 2048"})
    );
    // A 2xx without TGI's `details` cannot be translated.
    up.push(Script::json(200, &json!({"generated_text": "x"})));
    let reply = post_json(&gw.url(path), &json!({"prompt": "hi"})).await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(up.take_requests().len(), 2);
}
