//! `mosaicml` end to end: the real binary in front of the scripted mock upstream speaking
//! MosaicML's `/<model>/v1/predict`. Chat (a Llama-2 prompt), completions and embeddings on every
//! path; the bare key in `Authorization`; MLflow's 422s; 501 for streams; and MosaicML's "too
//! many tokens" 500s reported as the client's 422. The key appears in no response or log line.

use crate::common::upstream::{Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-canary-mosaicml-41d0b8e2";

fn endpoint(name: &str, kind: &str, model: &str, up: &Upstream) -> String {
    format!(
        "  - name: {name}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: mosaicml\n      name: {model}\n      config:\n        mosaicml_api_key: {KEY}\n        mosaicml_api_base: {}\n",
        up.base()
    )
}

fn config(up: &Upstream) -> String {
    format!(
        "endpoints:\n{}{}{}",
        endpoint("mosaic-chat", "chat", "llama2-70b-chat", up),
        endpoint("mosaic-completions", "completions", "mpt-7b-instruct", up),
        endpoint("mosaic-embeddings", "embeddings", "instructor-large", up),
    )
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "chat_request" => include_str!("../fixtures/mosaicml/chat_request.json"),
        "chat_predict" => include_str!("../fixtures/mosaicml/chat_predict.json"),
        "completions_predict" => include_str!("../fixtures/mosaicml/completions_predict.json"),
        "embeddings_predict" => include_str!("../fixtures/mosaicml/embeddings_predict.json"),
        "text_outputs" => include_str!("../fixtures/mosaicml/text_outputs.json"),
        "embedding_outputs" => include_str!("../fixtures/mosaicml/embedding_outputs.json"),
        "error_max_output_tokens" => {
            include_str!("../fixtures/mosaicml/error_max_output_tokens.json")
        }
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

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

fn assert_clean(gw: &Gateway, reply: &Reply) {
    assert!(!reply.text.contains("canary"), "key leaked: {}", reply.text);
    for line in gw.logs().lines() {
        assert!(
            !line.contains("canary"),
            "key leaked into a log line: {line}"
        );
    }
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

fn assert_predict(up: &Upstream, model: &str, expected: &Value, what: &str) {
    let req = up.only_request();
    assert_eq!(req.path, format!("/{model}/v1/predict"), "{what}");
    assert_eq!(req.header_all("authorization"), [KEY], "{what}: no Bearer");
    assert_eq!(req.text(), expected.to_string(), "{what}");
}

#[actix_rt::test]
async fn chat_sends_a_llama2_prompt() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for (path, body) in paths(
        "mosaic-chat",
        "/v1/chat/completions",
        &fixture("chat_request"),
    ) {
        up.push(Script::json(200, &fixture("text_outputs")));
        let reply = post_json(&gw.url(&path), &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_clean(&gw, &reply);
        assert_eq!(
            pin_created(reply.json),
            json!({"id": null, "object": "chat.completion", "created": 0, "model": "llama2-70b-chat",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Why did the chicken cross the road?", "tool_calls": null, "refusal": null}, "finish_reason": null}],
                "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null},
                "provider": "mosaicml"}),
            "{path}"
        );
        assert_predict(&up, "llama2-70b-chat", &fixture("chat_predict"), &path);
    }
}

#[actix_rt::test]
async fn completions_and_embeddings_on_every_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body =
        json!({"prompt": "Tell me a joke", "max_tokens": 16, "temperature": 0.2, "top_k": 5});
    for (path, body) in paths("mosaic-completions", "/v1/completions", &body) {
        up.push(Script::json(200, &fixture("text_outputs")));
        let reply = post_json(&gw.url(&path), &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_created(reply.json),
            json!({"id": null, "object": "text_completion", "created": 0, "model": "mpt-7b-instruct",
                "choices": [{"index": 0, "text": "Why did the chicken cross the road?", "finish_reason": null}],
                "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}}),
            "{path}"
        );
        assert_predict(
            &up,
            "mpt-7b-instruct",
            &fixture("completions_predict"),
            &path,
        );
    }
    let body = json!({"input": "Represent this sentence", "instruction": "Represent"});
    for (path, body) in paths("mosaic-embeddings", "/v1/embeddings", &body) {
        up.push(Script::json(200, &fixture("embedding_outputs")));
        let reply = post_json(&gw.url(&path), &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_clean(&gw, &reply);
        assert_eq!(
            reply.json,
            json!({"object": "list", "data": [
                {"object": "embedding", "embedding": [3.25, 0.7685547, 2.65625], "index": 0},
                {"object": "embedding", "embedding": [-0.30126953, -2.3554688, 1.2597656], "index": 1}],
                "model": "instructor-large", "usage": {"prompt_tokens": null, "total_tokens": null}}),
            "{path}"
        );
        assert_predict(
            &up,
            "instructor-large",
            &fixture("embeddings_predict"),
            &path,
        );
    }
}

#[actix_rt::test]
async fn mlflows_rules_are_checked_before_sending() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let cases = [
        ("/endpoints/mosaic-chat/invocations",
            json!({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r", "tool_call_id": "t"}]}),
            422, "An invalid request structure was submitted. Invalid role tool inputted. Must be one of 'system', 'user', or 'assistant'."),
        ("/endpoints/mosaic-completions/invocations", json!({"prompt": "p", "max_new_tokens": 4}),
            422, "Invalid parameter max_new_tokens. Use max_tokens instead."),
        ("/endpoints/mosaic-embeddings/invocations", json!({"input": "p", "inputs": ["q"]}),
            422, "Invalid parameter inputs. Use input instead."),
        ("/endpoints/mosaic-chat/invocations", json!({"messages": [{"role": "user", "content": "q"}], "stream": true}),
            501, "The chat streaming route is not implemented for MosaicML models."),
        ("/endpoints/mosaic-completions/invocations", json!({"prompt": "p", "stream": true}),
            501, "The completions streaming route is not implemented for MosaicML models."),
    ];
    for (path, body, status, message) in cases {
        let reply = post_json(&gw.url(path), &body).await;
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.text);
        assert_eq!(reply.json, json!({ "detail": message }));
    }
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn token_limit_500s_become_422_for_text_routes() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let limit = fixture("error_max_output_tokens");
    for (path, body, status) in [
        (
            "/endpoints/mosaic-chat/invocations",
            json!({"messages": [{"role": "user", "content": "q"}]}),
            422,
        ),
        (
            "/endpoints/mosaic-completions/invocations",
            json!({"prompt": "p", "max_tokens": 4096}),
            422,
        ),
        (
            "/endpoints/mosaic-embeddings/invocations",
            json!({"input": "p"}),
            500,
        ),
    ] {
        up.push(Script::json(500, &limit));
        let reply = post_json(&gw.url(path), &body).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text);
        assert_eq!(reply.json, json!({ "detail": limit }), "{path}");
    }
    // Any other 500 stays a 500; a 401 stays a 401.
    up.push(Script::json(500, &json!({"message": "Internal error"})));
    let reply = post_json(
        &gw.url("/endpoints/mosaic-completions/invocations"),
        &json!({"prompt": "p"}),
    )
    .await;
    assert_eq!(reply.status, 500, "{}", reply.text);
    up.push(Script::json(401, &json!({"message": "Unauthorized"})));
    let reply = post_json(
        &gw.url("/endpoints/mosaic-chat/invocations"),
        &json!({"messages": [{"role": "user", "content": "q"}]}),
    )
    .await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.json, json!({"detail": {"message": "Unauthorized"}}));
    assert_clean(&gw, &reply);
}
