//! `togetherai` end to end: the real binary in front of the scripted mock upstream speaking
//! Together's API (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, SSE streams). Pins
//! the upstream request (path, bearer key, exact body with the configured model first, embeddings
//! included) and the client's reply on every path, both streams, MLflow's 422s, the refusal of a
//! client `model` on MLflow paths (MLflow lets it replace the configured model), and upstream
//! errors. The key appears in no response and no log line.

use crate::common::upstream::{Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-canary-together-6a2f10d8";
const CHAT_MODEL: &str = "mistralai/Mixtral-8x7B-Instruct-v0.1";
const COMPLETIONS_MODEL: &str = "mistralai/Mixtral-8x7B-v0.1";
const EMBEDDINGS_MODEL: &str = "togethercomputer/m2-bert-80M-8k-retrieval";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/togetherai/", $name))
    };
}

fn endpoint(name: &str, kind: &str, model: &str, up: &Upstream) -> String {
    format!(
        "  - name: {name}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: togetherai\n      name: {model}\n      config:\n        togetherai_api_key: {KEY}\n        togetherai_api_base: {}/v1\n",
        up.base()
    )
}

fn config(up: &Upstream) -> String {
    format!(
        "endpoints:\n{}{}{}",
        endpoint("together-chat", "chat", CHAT_MODEL, up),
        endpoint("together-completions", "completions", COMPLETIONS_MODEL, up),
        endpoint("together-embeddings", "embeddings", EMBEDDINGS_MODEL, up),
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

/// The fixture's expected body with the endpoint's configured model.
fn with_model(text: &str, model: &str) -> Value {
    let mut value = parse(text);
    value["model"] = json!(model);
    value
}

#[actix_rt::test]
async fn chat_completions_and_embeddings_on_every_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let routes = [
        (
            "together-chat",
            "/v1/chat/completions",
            fixture!("chat_request.json"),
            fixture!("chat_response.json"),
            fixture!("chat_response.unified.json"),
            "/v1/chat/completions",
            fixture!("chat_request.upstream.json"),
            CHAT_MODEL,
        ),
        (
            "together-completions",
            "/v1/completions",
            fixture!("completions_request.json"),
            fixture!("completions_response.json"),
            fixture!("completions_response.unified.json"),
            "/v1/completions",
            fixture!("completions_request.upstream.json"),
            COMPLETIONS_MODEL,
        ),
        (
            "together-embeddings",
            "/v1/embeddings",
            fixture!("embeddings_request.json"),
            fixture!("embeddings_response.json"),
            fixture!("embeddings_response.unified.json"),
            "/v1/embeddings",
            fixture!("embeddings_request.upstream.json"),
            EMBEDDINGS_MODEL,
        ),
    ];
    for (name, v1, request, response, unified, upstream_path, upstream_body, model) in routes {
        for (path, body) in paths(name, v1, &parse(request)) {
            up.push(Script::json(200, &parse(response)));
            let reply = call(&gw, &path, &body).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            assert_eq!(reply.json, with_model(unified, model), "{path}");
            assert_upstream(&up, upstream_path, upstream_body, &path);
        }
    }
}

#[actix_rt::test]
async fn chat_and_completions_stream_on_every_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let streams = [
        (
            "together-chat",
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "Capital of France?"}], "stream": true}),
            fixture!("chat_stream.sse"),
            fixture!("chat_stream.unified.jsonl"),
            "/v1/chat/completions",
            format!(
                r#"{{"model":"{CHAT_MODEL}","n":1,"stream":true,"messages":[{{"role":"user","content":"Capital of France?"}}]}}"#
            ),
            CHAT_MODEL,
        ),
        (
            "together-completions",
            "/v1/completions",
            json!({"prompt": "Say", "max_tokens": 200, "stream": true}),
            fixture!("completions_stream.sse"),
            fixture!("completions_stream.unified.jsonl"),
            "/v1/completions",
            format!(
                r#"{{"model":"{COMPLETIONS_MODEL}","n":1,"max_tokens":200,"stream":true,"prompt":"Say"}}"#
            ),
            COMPLETIONS_MODEL,
        ),
    ];
    for (name, v1, request, sse, unified, upstream_path, upstream_body, model) in streams {
        let want: Vec<Value> = unified.lines().map(|l| with_model(l, model)).collect();
        for (path, body) in paths(name, v1, &request) {
            up.push(sse_script(sse));
            let reply = call(&gw, &path, &body).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            let mut data = sse_data(&reply.text);
            if path.starts_with("/v1") {
                assert_eq!(data.pop().as_deref(), Some("[DONE]"), "{path}");
            }
            let got: Vec<Value> = data.iter().map(|d| parse(d)).collect();
            assert_eq!(got, want, "{path}");
            assert_upstream(&up, upstream_path, &upstream_body, &path);
        }
    }
}

#[actix_rt::test]
async fn mlflows_rules_and_the_configured_model_win() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let required = "max_tokens is not present in payload.It is a required parameter for TogetherAI completions.";
    let cases = [
        (
            "together-completions",
            "/v1/completions",
            json!({"prompt": "p"}),
            required,
        ),
        (
            "together-completions",
            "/v1/completions",
            json!({"prompt": "p", "stream": true}),
            required,
        ),
        (
            "together-completions",
            "/v1/completions",
            json!({"prompt": "p", "max_tokens": 5, "logprobs": "5"}),
            "Wrong type for logprobs. It should be an 32bit integer.",
        ),
        (
            "together-chat",
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "q"}], "top_logprobs": 1.5}),
            "Wrong type for top_logprobs. It should a 32bit integer.",
        ),
    ];
    for (name, v1, body, message) in cases {
        for (path, body) in paths(name, v1, &body) {
            let reply = call(&gw, &path, &body).await;
            assert_eq!(reply.status, 422, "{path} {body}: {}", reply.text);
            if path.starts_with("/v1") {
                assert_eq!(reply.json["error"]["message"], json!(message), "{path}");
            } else {
                assert_eq!(reply.json, json!({ "detail": message }), "{path}");
            }
        }
    }
    // MLflow lets the client's `model` replace the configured one here; Switchyard refuses it
    // on MLflow paths as for every other provider (MLflow lets it replace the configured model).
    for (name, body) in [
        (
            "together-chat",
            json!({"messages": [{"role": "user", "content": "q"}], "model": "other/model"}),
        ),
        (
            "together-embeddings",
            json!({"input": "q", "model": "other/model"}),
        ),
    ] {
        let reply = call(&gw, &format!("/endpoints/{name}/invocations"), &body).await;
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert_eq!(
            reply.json,
            json!({"detail": "The parameter 'model' is not permitted to be passed. The route being queried already defines a model instance."})
        );
    }
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn upstream_errors_keep_togethers_status_and_message() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    for (status, body) in [
        (400, fixture!("error_400.json")),
        (401, fixture!("error_401.json")),
        (404, fixture!("error_404.json")),
        (429, fixture!("error_429.json")),
        (503, fixture!("error_503.json")),
    ] {
        let body = parse(body);
        up.push(Script::json(status, &body));
        let reply = call(&gw, "/endpoints/together-chat/invocations", &chat).await;
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(reply.json, json!({ "detail": body["error"]["message"] }));
    }
}
