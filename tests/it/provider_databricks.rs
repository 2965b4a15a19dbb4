//! `databricks` / `databricks-model-serving` end to end: the OpenAI-compatible translation against
//! a workspace `host` with a `token`. Serving-endpoint names go to `/serving-endpoints/...`, Unity
//! Catalog names to `/ai-gateway/mlflow/v1/...`; reasoning answers keep their text; chat,
//! embeddings and chat streaming work; completions and a config without host or token are 501.

use crate::common::upstream::{Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const TOKEN: &str = "dapi-canary-databricks-9f0e";

fn endpoint(name: &str, kind: &str, provider: &str, model: &str, config: &str) -> String {
    format!(
        "  - name: {name}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: {provider}\n      name: {model}\n      config:\n{config}"
    )
}

fn config(up: &Upstream) -> String {
    let full = format!("        host: {}/\n        token: {TOKEN}\n", up.base());
    format!(
        "endpoints:\n{}{}{}{}{}{}",
        endpoint(
            "db-chat",
            "chat",
            "databricks",
            "databricks-claude-3-7-sonnet",
            &full
        ),
        endpoint(
            "db-embeddings",
            "embeddings",
            "databricks",
            "databricks-gte-large-en",
            &full
        ),
        endpoint(
            "db-completions",
            "completions",
            "databricks",
            "databricks-llama",
            &full
        ),
        endpoint(
            "db-serving-chat",
            "chat",
            "databricks-model-serving",
            "system.ai.claude-haiku-4-5",
            &full
        ),
        endpoint(
            "db-no-token",
            "chat",
            "databricks",
            "databricks-llama",
            &format!("        host: {}\n", up.base())
        ),
        endpoint(
            "db-oauth",
            "chat",
            "databricks",
            "databricks-llama",
            "        client_id: sp-id\n        client_secret: sp-secret-canary\n"
        ),
    )
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "chat_response" => include_str!("../fixtures/databricks/chat_response.json"),
        "chat_reasoning_response" => {
            include_str!("../fixtures/databricks/chat_reasoning_response.json")
        }
        "gateway_chat_response" => {
            include_str!("../fixtures/databricks/gateway_chat_response.json")
        }
        "embeddings_response" => include_str!("../fixtures/databricks/embeddings_response.json"),
        "error_bad_request" => include_str!("../fixtures/databricks/error_bad_request.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn assert_clean(gw: &Gateway, reply: &Reply) {
    assert!(
        !reply.text.contains("canary"),
        "secret leaked: {}",
        reply.text
    );
    for line in gw.logs().lines() {
        assert!(
            !line.contains("canary"),
            "secret leaked into a log line: {line}"
        );
    }
}

fn chat_body() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

#[actix_rt::test]
async fn chat_goes_to_serving_endpoints_with_the_token() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for path in ["/endpoints/db-chat/invocations", "/v1/chat/completions"] {
        let mut body = chat_body();
        if path.starts_with("/v1") {
            body["model"] = json!("db-chat");
        }
        up.push(Script::json(200, &fixture("chat_reasoning_response")));
        let reply = post_json(&gw.url(path), &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.json, fixture("gateway_chat_response"), "{path}");
        assert_clean(&gw, &reply);
        let req = up.only_request();
        assert_eq!(req.path, "/serving-endpoints/chat/completions");
        assert_eq!(req.header_all("authorization"), [format!("Bearer {TOKEN}")]);
        assert_eq!(
            req.text(),
            r#"{"model":"databricks-claude-3-7-sonnet","n":1,"messages":[{"role":"user","content":"hi"}]}"#
        );
    }
}

#[actix_rt::test]
async fn unity_catalog_names_use_the_ai_gateway_and_the_alias_reports_itself() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    up.push(Script::json(200, &fixture("chat_response")));
    let reply = post_json(
        &gw.url("/endpoints/db-serving-chat/invocations"),
        &chat_body(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["provider"], "databricks-model-serving");
    assert_eq!(reply.json["choices"][0]["message"]["content"], "Hi there.");
    let req = up.only_request();
    assert_eq!(req.path, "/ai-gateway/mlflow/v1/chat/completions");
    assert_eq!(req.json()["model"], "system.ai.claude-haiku-4-5");
}

#[actix_rt::test]
async fn embeddings_and_chat_streams() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    up.push(Script::json(200, &fixture("embeddings_response")));
    let reply = post_json(
        &gw.url("/endpoints/db-embeddings/invocations"),
        &json!({"input": ["hello"]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"object": "list", "data": [{"object": "embedding", "embedding": [0.0185, -0.0151], "index": 0}],
            "model": "gte-large-en-v1.5", "usage": {"prompt_tokens": 3, "total_tokens": 3}})
    );
    let req = up.only_request();
    assert_eq!(req.path, "/serving-endpoints/embeddings");
    assert_eq!(
        req.text(),
        r#"{"model":"databricks-gte-large-en","input":["hello"]}"#
    );

    up.push(Script::sse_events(&[
        json!({"id": "s", "object": "chat.completion.chunk", "created": 2, "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hey"}, "finish_reason": null}]}),
        json!({"id": "s", "object": "chat.completion.chunk", "created": 2, "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    ]));
    let mut body = chat_body();
    body["stream"] = json!(true);
    body["model"] = json!("db-chat");
    let reply = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let data = sse_data(&reply.text);
    assert_eq!(data.len(), 3, "{}", reply.text);
    assert_eq!(data[2], "[DONE]");
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["provider"], "databricks");
    assert_eq!(first["choices"][0]["delta"]["content"], "Hey");
    let last: Value = serde_json::from_str(&data[1]).unwrap();
    assert_eq!(last["usage"]["total_tokens"], 2);
    let req = up.only_request();
    assert_eq!(req.header_all("authorization"), [format!("Bearer {TOKEN}")]);
    assert_eq!(req.json()["stream_options"], json!({"include_usage": true}));
    assert_clean(&gw, &reply);
}

#[actix_rt::test]
async fn completions_and_incomplete_credentials_are_501() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let reply = post_json(
        &gw.url("/endpoints/db-completions/invocations"),
        &json!({"prompt": "hi"}),
    )
    .await;
    assert_eq!(reply.status, 501, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"detail": "The completions route is not implemented for Databricks models."})
    );
    for name in ["db-no-token", "db-oauth"] {
        let reply = post_json(
            &gw.url(&format!("/endpoints/{name}/invocations")),
            &chat_body(),
        )
        .await;
        assert_eq!(reply.status, 501, "{name}: {}", reply.text);
        assert!(
            reply.json["detail"]
                .as_str()
                .unwrap()
                .contains("'host' and 'token'"),
            "{}",
            reply.text
        );
        assert_clean(&gw, &reply);
    }
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn databricks_errors_pass_through_whole() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    up.push(Script::json(400, &fixture("error_bad_request")));
    let reply = post_json(&gw.url("/endpoints/db-chat/invocations"), &chat_body()).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json, json!({"detail": fixture("error_bad_request")}));
    assert_clean(&gw, &reply);
}
