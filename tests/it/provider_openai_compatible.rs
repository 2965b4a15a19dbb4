//! The OpenAI-compatible family (groq, deepseek, xai, openrouter, ollama) end to end: the real
//! binary in front of the scripted mock upstream speaking OpenAI's wire format. For every member:
//! chat, embeddings and chat streaming on every path, with the bearer key (none for ollama's
//! default key), `model` first in the body and the configured provider name in `provider`;
//! completions answer 501 before anything is sent. Keys appear in no response and no log line.

use crate::common::upstream::{Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

/// (provider, display name, key or None for ollama's default, model)
const FAMILY: [(&str, &str, Option<&str>, &str); 6] = [
    (
        "groq",
        "Groq",
        Some("sk-canary-groq-0a1b"),
        "llama3-8b-8192",
    ),
    (
        "deepseek",
        "DeepSeek",
        Some("sk-canary-deepseek-2c3d"),
        "deepseek-chat",
    ),
    ("xai", "xAI", Some("sk-canary-xai-4e5f"), "grok-2"),
    (
        "openrouter",
        "OpenRouter",
        Some("sk-canary-openrouter-6a7b"),
        "openai/gpt-4o",
    ),
    ("ollama", "Ollama", None, "llama3.2"),
    (
        "ollama",
        "Ollama",
        Some("sk-canary-ollama-8c9d"),
        "llama3.2",
    ),
];

fn name(index: usize, kind: &str) -> String {
    format!("{}{index}-{kind}", FAMILY[index].0)
}

fn config(up: &Upstream) -> String {
    let mut yaml = String::from("endpoints:\n");
    for (index, (provider, _, key, model)) in FAMILY.iter().enumerate() {
        for kind in ["chat", "completions", "embeddings"] {
            let key_line = key.map_or(String::new(), |k| format!("        api_key: {k}\n"));
            yaml += &format!(
                "  - name: {}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: {provider}\n      name: {model}\n      config:\n{key_line}        api_base: {}/{provider}/v1\n",
                name(index, kind),
                up.base()
            );
        }
    }
    yaml
}

fn assert_clean(gw: &Gateway, up: &Upstream, reply: &Reply) {
    assert!(!reply.text.contains("canary"), "key leaked: {}", reply.text);
    assert!(
        !reply.text.contains(&up.host_port()),
        "address leaked: {}",
        reply.text
    );
    for line in gw.logs().lines() {
        assert!(
            !line.contains("canary"),
            "key leaked into a log line: {line}"
        );
    }
}

fn assert_auth(req: &crate::common::upstream::Recorded, index: usize) {
    let (provider, _, key, _) = FAMILY[index];
    match key {
        Some(key) => assert_eq!(
            req.header_all("authorization"),
            [format!("Bearer {key}")],
            "{provider}"
        ),
        None => assert_eq!(req.header("authorization"), None, "{provider}: no auth"),
    }
}

fn paths(name: &str, v1: &str, body: &Value) -> Vec<(String, Value)> {
    let mut v1_body = body.clone();
    v1_body["model"] = json!(name);
    vec![
        (format!("/endpoints/{name}/invocations"), body.clone()),
        (format!("/gateway/{name}/invocations"), body.clone()),
        (v1.to_owned(), v1_body),
    ]
}

fn upstream_chat() -> Value {
    json!({"id": "chatcmpl-c1", "object": "chat.completion", "created": 1718000000, "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}, "x_groq": {"id": "req_1"}})
}

fn gateway_chat(provider: &str) -> Value {
    json!({"id": "chatcmpl-c1", "object": "chat.completion", "created": 1718000000, "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", "tool_calls": null, "refusal": null}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}, "provider": provider})
}

#[actix_rt::test]
async fn chat_for_every_member_and_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body =
        json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0.3, "seed": 7});
    for (index, (provider, _, _, model)) in FAMILY.iter().enumerate() {
        for (path, body) in paths(&name(index, "chat"), "/v1/chat/completions", &body) {
            up.push(Script::json(200, &upstream_chat()));
            let reply = post_json(&gw.url(&path), &body).await;
            assert_eq!(reply.status, 200, "{provider} {path}: {}", reply.text);
            assert_eq!(reply.json, gateway_chat(provider), "{provider} {path}");
            assert_clean(&gw, &up, &reply);
            let req = up.only_request();
            assert_eq!(req.path, format!("/{provider}/v1/chat/completions"));
            assert_auth(&req, index);
            assert_eq!(
                req.text(),
                json!({"model": model, "n": 1, "temperature": 0.3,
                    "messages": [{"role": "user", "content": "hi"}], "seed": 7})
                .to_string(),
                "{provider} {path}"
            );
        }
    }
}

#[actix_rt::test]
async fn embeddings_for_every_member_and_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let upstream = json!({"object": "list", "data": [
            {"object": "embedding", "embedding": [0.5, -0.25], "index": 0},
            {"object": "embedding", "embedding": [0.125, 1.0], "index": 1}],
        "model": "embed-model", "usage": {"prompt_tokens": 4, "total_tokens": 4}});
    let expected = json!({"object": "list", "data": [
            {"object": "embedding", "embedding": [0.5, -0.25], "index": 0},
            {"object": "embedding", "embedding": [0.125, 1.0], "index": 1}],
        "model": "embed-model", "usage": {"prompt_tokens": 4, "total_tokens": 4}});
    let body = json!({"input": ["a", "b"], "dimensions": 2});
    for (index, (provider, _, _, model)) in FAMILY.iter().enumerate() {
        for (path, body) in paths(&name(index, "embeddings"), "/v1/embeddings", &body) {
            up.push(Script::json(200, &upstream));
            let reply = post_json(&gw.url(&path), &body).await;
            assert_eq!(reply.status, 200, "{provider} {path}: {}", reply.text);
            assert_eq!(reply.json, expected, "{provider} {path}");
            assert_clean(&gw, &up, &reply);
            let req = up.only_request();
            assert_eq!(req.path, format!("/{provider}/v1/embeddings"));
            assert_auth(&req, index);
            assert_eq!(
                req.text(),
                json!({"model": model, "input": ["a", "b"], "dimensions": 2}).to_string()
            );
        }
    }
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1718000001, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

#[actix_rt::test]
async fn chat_streams_for_every_member() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let events = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hel"}), Value::Null),
        chunk(json!({"content": "lo"}), json!("stop")),
        json!({"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1718000001, "model": "m",
            "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
    ];
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true});
    for (index, (provider, _, _, model)) in FAMILY.iter().enumerate() {
        for (path, body) in paths(&name(index, "chat"), "/v1/chat/completions", &body) {
            up.push(Script::sse_events(&events));
            let reply = post_json(&gw.url(&path), &body).await;
            assert_eq!(reply.status, 200, "{provider} {path}: {}", reply.text);
            assert!(reply
                .headers
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream")));
            assert_clean(&gw, &up, &reply);
            let mut data = sse_data(&reply.text);
            if path.starts_with("/v1") {
                assert_eq!(data.pop().as_deref(), Some("[DONE]"), "{path}");
            }
            let chunks: Vec<Value> = data
                .iter()
                .map(|d| serde_json::from_str(d).unwrap())
                .collect();
            assert_eq!(chunks.len(), 4, "{provider} {path}: {}", reply.text);
            for chunk in &chunks {
                assert_eq!(chunk["provider"], json!(provider));
            }
            let text: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(text, "Hello");
            assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
            assert_eq!(
                chunks[3]["usage"],
                json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
            );
            let req = up.only_request();
            assert_eq!(req.path, format!("/{provider}/v1/chat/completions"));
            assert_auth(&req, index);
            assert_eq!(
                req.text(),
                json!({"model": model, "n": 1, "stream": true,
                    "messages": [{"role": "user", "content": "hi"}],
                    "stream_options": {"include_usage": true}})
                .to_string()
            );
        }
    }
}

#[actix_rt::test]
async fn completions_are_501_for_every_member() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for (index, (provider, display, _, _)) in FAMILY.iter().enumerate() {
        let message = format!("The completions route is not implemented for {display} models.");
        for stream in [false, true] {
            let body = json!({"prompt": "hi", "stream": stream});
            let reply = post_json(
                &gw.url(&format!(
                    "/endpoints/{}/invocations",
                    name(index, "completions")
                )),
                &body,
            )
            .await;
            assert_eq!(reply.status, 501, "{provider}: {}", reply.text);
            assert_eq!(reply.json, json!({ "detail": message }));
        }
        let reply = post_json(
            &gw.url("/v1/completions"),
            &json!({"model": name(index, "completions"), "prompt": "hi"}),
        )
        .await;
        assert_eq!(reply.status, 501, "{provider}: {}", reply.text);
        assert_eq!(reply.json["error"]["message"], json!(message));
    }
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn upstream_errors_keep_status_and_message() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for (index, (provider, _, _, _)) in FAMILY.iter().enumerate() {
        up.push(Script::json(
            429,
            &json!({"error": {"message": "Rate limit reached", "type": "tokens", "code": "rate_limit_exceeded"}}),
        ));
        let reply = post_json(
            &gw.url(&format!("/endpoints/{}/invocations", name(index, "chat"))),
            &json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(reply.status, 429, "{provider}: {}", reply.text);
        assert_eq!(reply.json, json!({"detail": "Rate limit reached"}));
        up.take_requests();
    }
}
