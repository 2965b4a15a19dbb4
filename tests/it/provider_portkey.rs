//! `portkey` end to end: the OpenAI-compatible translation through Portkey's gateway, with
//! Portkey's headers (`x-portkey-api-key`, `x-portkey-provider`, `x-portkey-config`, and the
//! upstream key as bearer). Chat, embeddings and chat streaming; completions 501; Portkey's own
//! error bodies. Keys appear in no response and no log line.

use crate::common::upstream::{Recorded, Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const PORTKEY_KEY: &str = "pk-canary-portkey-5e6f";
const UPSTREAM_KEY: &str = "sk-canary-upstream-7a8b";

fn config(up: &Upstream) -> String {
    let mut yaml = String::from("endpoints:\n");
    for kind in ["chat", "completions", "embeddings"] {
        yaml += &format!(
            "  - name: pk-{kind}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: portkey\n      name: gpt-4o-mini\n      config:\n        api_key: {PORTKEY_KEY}\n        api_base: {}/v1\n        portkey_provider: openai\n        portkey_config: pc-switchyard\n        provider_api_key: {UPSTREAM_KEY}\n",
            up.base()
        );
    }
    // Only the Portkey key: the model names an integration (`@slug/model`).
    yaml += &format!(
        "  - name: pk-minimal\n    endpoint_type: llm/v1/chat\n    model:\n      provider: portkey\n      name: \"@openai-prod/gpt-4o\"\n      config:\n        api_key: {PORTKEY_KEY}\n        api_base: {}/v1\n",
        up.base()
    );
    yaml
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "chat_response" => include_str!("../fixtures/portkey/chat_response.json"),
        "gateway_chat_response" => include_str!("../fixtures/portkey/gateway_chat_response.json"),
        "embeddings_response" => include_str!("../fixtures/portkey/embeddings_response.json"),
        "error_missing_target" => include_str!("../fixtures/portkey/error_missing_target.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
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

fn assert_full_headers(req: &Recorded) {
    assert_eq!(req.header_all("x-portkey-api-key"), [PORTKEY_KEY]);
    assert_eq!(req.header_all("x-portkey-provider"), ["openai"]);
    assert_eq!(req.header_all("x-portkey-config"), ["pc-switchyard"]);
    assert_eq!(
        req.header_all("authorization"),
        [format!("Bearer {UPSTREAM_KEY}")]
    );
}

#[actix_rt::test]
async fn chat_and_embeddings_carry_portkeys_headers() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for path in ["/endpoints/pk-chat/invocations", "/v1/chat/completions"] {
        up.push(Script::json(200, &fixture("chat_response")));
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        if path.starts_with("/v1") {
            body["model"] = json!("pk-chat");
        }
        let reply = post_json(&gw.url(path), &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.json, fixture("gateway_chat_response"), "{path}");
        assert_clean(&gw, &reply);
        let req = up.only_request();
        assert_eq!(req.path, "/v1/chat/completions");
        assert_full_headers(&req);
        assert_eq!(
            req.text(),
            r#"{"model":"gpt-4o-mini","n":1,"messages":[{"role":"user","content":"hi"}]}"#
        );
    }
    up.push(Script::json(200, &fixture("embeddings_response")));
    let reply = post_json(
        &gw.url("/endpoints/pk-embeddings/invocations"),
        &json!({"input": "x"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"object": "list", "data": [{"object": "embedding", "embedding": [0.0023, -0.0093], "index": 0}],
            "model": "text-embedding-3-small", "usage": {"prompt_tokens": 2, "total_tokens": 2}})
    );
    let req = up.only_request();
    assert_eq!(req.path, "/v1/embeddings");
    assert_full_headers(&req);
    assert_eq!(req.text(), r#"{"model":"gpt-4o-mini","input":"x"}"#);

    up.push(Script::json(200, &fixture("chat_response")));
    let reply = post_json(
        &gw.url("/endpoints/pk-minimal/invocations"),
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let req = up.only_request();
    assert_eq!(req.header_all("x-portkey-api-key"), [PORTKEY_KEY]);
    for absent in ["x-portkey-provider", "x-portkey-config", "authorization"] {
        assert_eq!(req.header(absent), None, "{absent}");
    }
    assert_eq!(req.json()["model"], "@openai-prod/gpt-4o");
}

#[actix_rt::test]
async fn chat_streams_report_portkey() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    up.push(Script::sse_events(&[
        chunk(json!({"role": "assistant", "content": "Hi"}), Value::Null),
        chunk(json!({"content": " you"}), json!("stop")),
    ]));
    let reply = post_json(
        &gw.url("/endpoints/pk-chat/invocations"),
        &json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let chunks: Vec<Value> = sse_data(&reply.text)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(
        chunks,
        [
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": null, "delta": {"role": "assistant", "content": "Hi", "tool_calls": null}}],
                "usage": null, "provider": "portkey"}),
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": "stop", "delta": {"role": null, "content": " you", "tool_calls": null}}],
                "usage": null, "provider": "portkey"}),
        ]
    );
    let req = up.only_request();
    assert_full_headers(&req);
    assert_eq!(req.json()["stream_options"], json!({"include_usage": true}));
}

#[actix_rt::test]
async fn completions_are_501_and_portkey_errors_pass_through() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let reply = post_json(
        &gw.url("/endpoints/pk-completions/invocations"),
        &json!({"prompt": "hi"}),
    )
    .await;
    assert_eq!(reply.status, 501, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"detail": "The completions route is not implemented for Portkey models."})
    );
    assert_eq!(up.request_count(), 0);
    up.push(Script::json(400, &fixture("error_missing_target")));
    let reply = post_json(
        &gw.url("/endpoints/pk-minimal/invocations"),
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"detail": fixture("error_missing_target")})
    );
    assert_clean(&gw, &reply);
}
