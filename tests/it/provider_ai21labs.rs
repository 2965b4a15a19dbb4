//! `ai21labs` end to end: the real binary in front of the scripted mock upstream speaking AI21's
//! Jurassic-2 `/<model>/complete`. Pins the URL per model, the bearer key, MLflow's renamed body,
//! the translated response, the refusals (AI21's own parameter names, chat, embeddings, streams)
//! and AI21's error bodies; the key appears in no response and no log line.

use crate::common::upstream::{Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-canary-ai21-7c3e9a10";

fn endpoint(name: &str, kind: &str, model: &str, up: &Upstream) -> String {
    format!(
        "  - name: {name}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: ai21labs\n      name: {model}\n      config:\n        ai21labs_api_key: {KEY}\n        ai21labs_api_base: {}/studio/v1\n",
        up.base()
    )
}

fn config(up: &Upstream) -> String {
    format!(
        "endpoints:\n{}{}{}{}",
        endpoint("j2-ultra-completions", "completions", "j2-ultra", up),
        endpoint("j2-light-completions", "completions", "j2-light", up),
        endpoint("ai21-chat", "chat", "j2-mid", up),
        endpoint("ai21-embeddings", "embeddings", "j2-mid", up),
    )
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "complete_request" => include_str!("../fixtures/ai21labs/complete_request.json"),
        "complete_response" => include_str!("../fixtures/ai21labs/complete_response.json"),
        "completions_response" => include_str!("../fixtures/ai21labs/completions_response.json"),
        "error_unauthorized" => include_str!("../fixtures/ai21labs/error_unauthorized.json"),
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
    body["created"] = json!(1700000000);
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

#[actix_rt::test]
async fn completions_go_to_the_models_url_with_ai21s_names() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body = json!({"prompt": "I will", "stop": ["x"], "max_tokens": 2, "temperature": 0.7});
    let mut v1 = body.clone();
    v1["model"] = json!("j2-ultra-completions");
    for (path, body) in [
        ("/endpoints/j2-ultra-completions/invocations", body.clone()),
        ("/gateway/j2-ultra-completions/invocations", body.clone()),
        ("/v1/completions", v1),
    ] {
        up.push(Script::json(200, &fixture("complete_response")));
        let reply = post_json(&gw.url(path), &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_clean(&gw, &reply);
        assert_eq!(
            pin_created(reply.json),
            fixture("completions_response"),
            "{path}"
        );
        let req = up.only_request();
        assert_eq!(req.path, "/studio/v1/j2-ultra/complete", "{path}");
        assert_eq!(req.header_all("authorization"), [format!("Bearer {KEY}")]);
        assert_eq!(
            req.text(),
            fixture("complete_request").to_string(),
            "{path}"
        );
    }
    // The model picks the URL.
    up.push(Script::json(200, &fixture("complete_response")));
    let reply = post_json(
        &gw.url("/endpoints/j2-light-completions/invocations"),
        &json!({"prompt": "p"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["model"], "j2-light");
    let req = up.only_request();
    assert_eq!(req.path, "/studio/v1/j2-light/complete");
    assert_eq!(req.text(), r#"{"numResults":1,"prompt":"p"}"#);
}

#[actix_rt::test]
async fn refusals_are_decided_before_anything_is_sent() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let cases = [
        (
            "/endpoints/j2-ultra-completions/invocations",
            json!({"prompt": "p", "numResults": 2}),
            422,
            "Invalid parameter numResults. Use n instead.",
        ),
        (
            "/endpoints/j2-ultra-completions/invocations",
            json!({"prompt": "p", "stopSequences": ["x"]}),
            422,
            "Invalid parameter stopSequences. Use stop instead.",
        ),
        (
            "/endpoints/j2-ultra-completions/invocations",
            json!({"prompt": "p", "maxTokens": 5}),
            422,
            "Invalid parameter maxTokens. Use max_tokens instead.",
        ),
        (
            "/endpoints/j2-ultra-completions/invocations",
            json!({"prompt": "p", "stream": true}),
            501,
            "The completions streaming route is not implemented for AI21Labs models.",
        ),
        (
            "/endpoints/ai21-chat/invocations",
            json!({"messages": [{"role": "user", "content": "q"}]}),
            501,
            "The chat route is not implemented for AI21Labs models.",
        ),
        (
            "/endpoints/ai21-embeddings/invocations",
            json!({"input": "q"}),
            501,
            "The embeddings route is not implemented for AI21Labs models.",
        ),
    ];
    for (path, body, status, message) in cases {
        let reply = post_json(&gw.url(path), &body).await;
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.text);
        assert_eq!(reply.json, json!({ "detail": message }));
    }
    let reply = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "ai21-chat", "messages": [{"role": "user", "content": "q"}]}),
    )
    .await;
    assert_eq!(reply.status, 501, "{}", reply.text);
    assert_eq!(
        reply.json["error"]["message"],
        "The chat route is not implemented for AI21Labs models."
    );
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn ai21_errors_pass_through_with_their_status() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    up.push(Script::json(401, &fixture("error_unauthorized")));
    let reply = post_json(
        &gw.url("/endpoints/j2-ultra-completions/invocations"),
        &json!({"prompt": "p"}),
    )
    .await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    // No `error` key: MLflow's detail is AI21's whole body.
    assert_eq!(
        reply.json,
        json!({"detail": {"detail": "Forbidden: Bad or missing API token."}})
    );
    assert_clean(&gw, &reply);
    // An upstream that echoes the key gets it scrubbed.
    up.push(Script::json(
        403,
        &json!({"detail": format!("key {KEY} is not allowed")}),
    ));
    let reply = post_json(
        &gw.url("/endpoints/j2-ultra-completions/invocations"),
        &json!({"prompt": "p"}),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"detail": {"detail": "key *** is not allowed"}})
    );
    assert_clean(&gw, &reply);
}
