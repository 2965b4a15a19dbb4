//! The `openai` provider (api types `openai`, `azure`, `azuread`) end to end: the real binary in
//! front of a scripted mock upstream (`common::upstream`). Pins the upstream request (path, query,
//! auth headers, exact body), the translation of responses and stream chunks, streaming behaviour
//! (order, odd read boundaries, latency, cancellation, mid-stream failures) and every error row,
//! on MLflow's paths and on `/v1`. Every test also checks that the API key (`sk-canary-...`) and
//! the upstream address appear in no response and no gateway log line.

use std::time::{Duration, Instant};

use crate::common::upstream::{closed_port, sse_event, End, Recorded, Reply as Script, Upstream};
use crate::common::*;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

const KEY_OPENAI: &str = "sk-canary-openai-5f1c9e27";
const KEY_AZURE: &str = "sk-canary-azure-8d2b7a41";
const KEY_AZUREAD: &str = "sk-canary-azuread-3e9f4c06";
/// Part of every key: must appear in no response body or header and no log line.
const CANARY: &str = "canary";
const ORG: &str = "org-switchyard-tests";
const VERSION: &str = "2024-06-01";
const SSE: &str = "text/event-stream; charset=utf-8";
const NOT_SUPPORTED_HTML: &str = "The returned data type from the route service is not supported. Received content type: text/html; charset=utf-8";

// ------------------------------------------------------------------------------------------------
// Configuration

#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Azure,
    AzureAd,
}

const APIS: [Api; 3] = [Api::OpenAi, Api::Azure, Api::AzureAd];

impl Api {
    fn prefix(self) -> &'static str {
        match self {
            Api::OpenAi => "oa",
            Api::Azure => "az",
            Api::AzureAd => "ad",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Api::OpenAi => KEY_OPENAI,
            Api::Azure => KEY_AZURE,
            Api::AzureAd => KEY_AZUREAD,
        }
    }

    /// The `provider:` value in the config, which chat responses report. Type `azure` is
    /// configured as `provider: azure`, the other two as `provider: openai`.
    fn provider(self) -> &'static str {
        match self {
            Api::Azure => "azure",
            _ => "openai",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    Chat,
    Completions,
    Embeddings,
}

const ROUTES: [Route; 3] = [Route::Chat, Route::Completions, Route::Embeddings];

impl Route {
    fn suffix(self) -> &'static str {
        match self {
            Route::Chat => "chat",
            Route::Completions => "completions",
            Route::Embeddings => "embeddings",
        }
    }

    fn endpoint_type(self) -> &'static str {
        match self {
            Route::Chat => "llm/v1/chat",
            Route::Completions => "llm/v1/completions",
            Route::Embeddings => "llm/v1/embeddings",
        }
    }

    fn upstream_path(self) -> &'static str {
        match self {
            Route::Chat => "chat/completions",
            Route::Completions => "completions",
            Route::Embeddings => "embeddings",
        }
    }

    fn v1_path(self) -> &'static str {
        match self {
            Route::Chat => "/v1/chat/completions",
            Route::Completions => "/v1/completions",
            Route::Embeddings => "/v1/embeddings",
        }
    }

    fn model(self) -> &'static str {
        match self {
            Route::Chat => "gpt-4o-mini",
            Route::Completions => "gpt-3.5-turbo-instruct",
            Route::Embeddings => "text-embedding-3-small",
        }
    }

    /// The smallest valid request.
    fn minimal_body(self) -> Value {
        match self {
            Route::Chat => json!({"messages": [{"role": "user", "content": "hi"}]}),
            Route::Completions => json!({"prompt": "hi"}),
            Route::Embeddings => json!({"input": "hi"}),
        }
    }
}

fn name(api: Api, route: Route) -> String {
    format!("{}-{}", api.prefix(), route.suffix())
}

/// One endpoint of the matrix. Type openai: chat sets the organization, completions sets the
/// organization and an api version, embeddings neither. Azure types use deployment
/// `dep-<route>`.
fn endpoint(api: Api, route: Route, up: &Upstream) -> String {
    let base = up.base();
    let mut config = format!("        openai_api_key: {}\n", api.key());
    match api {
        Api::OpenAi => {
            config += &format!("        openai_api_base: {base}/v1\n");
            if route != Route::Embeddings {
                config += &format!("        openai_organization: {ORG}\n");
            }
            if route == Route::Completions {
                config += &format!("        openai_api_version: \"{VERSION}\"\n");
            }
        }
        Api::Azure | Api::AzureAd => {
            let api_type = if api == Api::Azure {
                "azure"
            } else {
                "azuread"
            };
            config += &format!("        openai_api_type: {api_type}\n");
            config += &format!("        openai_api_base: {base}\n");
            config += &format!("        openai_deployment_name: dep-{}\n", route.suffix());
            config += &format!("        openai_api_version: \"{VERSION}\"\n");
        }
    }
    format!(
        "  - name: {}\n    endpoint_type: {}\n    model:\n      provider: {}\n      name: {}\n      config:\n{config}",
        name(api, route),
        route.endpoint_type(),
        api.provider(),
        route.model(),
    )
}

/// All nine matrix endpoints, plus `refused-chat` pointing at a port nothing listens on.
fn config(up: &Upstream) -> String {
    let mut yaml = String::from("endpoints:\n");
    for api in APIS {
        for route in ROUTES {
            yaml += &endpoint(api, route, up);
        }
    }
    yaml += &format!(
        "  - name: refused-chat\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n      name: gpt-4o-mini\n      config:\n        openai_api_key: {KEY_OPENAI}\n        openai_api_base: http://127.0.0.1:{}/v1\n",
        closed_port()
    );
    yaml
}

// ------------------------------------------------------------------------------------------------
// Client helpers and the secret checks

/// Posts `body` with client headers that must not reach the upstream.
async fn call(gw: &Gateway, up: &Upstream, path: &str, body: &Value) -> Reply {
    let response = client()
        .post(gw.url(path))
        .insert_header(("authorization", "Bearer client-token-not-for-upstream"))
        .insert_header(("x-client-header", "client-value"))
        .send_json(body)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut response = response;
    let bytes = response
        .body()
        .limit(64 * 1024 * 1024)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: reading the body: {e}"));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reply = Reply {
        status,
        headers,
        text,
        json,
    };
    assert_reply_clean(&reply, up);
    reply
}

/// The invocation paths that reach `name`: both MLflow paths and `/v1` (body gets `model`).
fn paths(api: Api, route: Route, body: &Value) -> Vec<(String, Value, bool)> {
    let name = name(api, route);
    let mut v1_body = body.clone();
    v1_body["model"] = json!(name);
    vec![
        (
            format!("/endpoints/{name}/invocations"),
            body.clone(),
            false,
        ),
        (format!("/gateway/{name}/invocations"), body.clone(), false),
        (route.v1_path().to_owned(), v1_body, true),
    ]
}

fn assert_reply_clean(reply: &Reply, up: &Upstream) {
    assert!(
        !reply.text.contains(CANARY),
        "the API key leaked into a response body: {}",
        reply.text
    );
    assert!(
        !reply.text.contains(&up.host_port()),
        "the upstream address leaked into a response body: {}",
        reply.text
    );
    for (name, value) in &reply.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !value.contains(CANARY) && !value.contains(&up.host_port()),
            "a secret leaked into response header {name}: {value}"
        );
    }
}

/// No log line may carry a key, an auth header value or an upstream address.
fn assert_logs_clean(gw: &Gateway, up: &Upstream) {
    let logs = gw.logs();
    for line in logs.lines() {
        assert!(
            !line.contains(CANARY),
            "the API key leaked into a log line: {line}"
        );
        assert!(
            !line.contains(&up.host_port()),
            "the upstream address leaked into a log line: {line}"
        );
    }
}

/// Checks the upstream request's method, path, query and headers for `api` and `route`.
fn assert_target(req: &Recorded, api: Api, route: Route) {
    let what = format!("{api:?}/{route:?}");
    assert_eq!(req.method, "POST", "{what}");
    let version_query = Some(format!("api-version={VERSION}"));
    match api {
        Api::OpenAi => {
            assert_eq!(req.path, format!("/v1/{}", route.upstream_path()), "{what}");
            let query = (route == Route::Completions).then(|| version_query.clone().unwrap());
            assert_eq!(req.query, query, "{what}: query");
            assert_eq!(
                req.header_all("authorization"),
                [format!("Bearer {KEY_OPENAI}")],
                "{what}: authorization"
            );
            assert_eq!(req.header("api-key"), None, "{what}: api-key");
            let org = (route != Route::Embeddings).then_some(ORG);
            assert_eq!(
                req.header("openai-organization"),
                org,
                "{what}: openai-organization"
            );
        }
        Api::Azure | Api::AzureAd => {
            assert_eq!(
                req.path,
                format!(
                    "/openai/deployments/dep-{}/{}",
                    route.suffix(),
                    route.upstream_path()
                ),
                "{what}"
            );
            assert_eq!(req.query, version_query, "{what}: query");
            assert_eq!(
                req.header("openai-organization"),
                None,
                "{what}: openai-organization"
            );
            if api == Api::Azure {
                assert_eq!(req.header_all("api-key"), [KEY_AZURE], "{what}: api-key");
                assert_eq!(req.header("authorization"), None, "{what}: authorization");
            } else {
                assert_eq!(
                    req.header_all("authorization"),
                    [format!("Bearer {KEY_AZUREAD}")],
                    "{what}: authorization"
                );
                assert_eq!(req.header("api-key"), None, "{what}: api-key");
            }
        }
    }
    assert!(
        req.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{what}: content-type {:?}",
        req.header("content-type")
    );
    assert_eq!(
        req.header("x-client-header"),
        None,
        "{what}: client headers must not be forwarded"
    );
}

/// `fields` with `"model": <configured name>` prepended for type openai (none for Azure).
fn with_model(api: Api, route: Route, fields: &Value) -> Value {
    let mut map = Map::new();
    if api == Api::OpenAi {
        map.insert("model".into(), json!(route.model()));
    }
    for (k, v) in fields.as_object().unwrap() {
        map.insert(k.clone(), v.clone());
    }
    Value::Object(map)
}

/// The upstream body equals `expected` (as JSON values) and, for type openai, `model` comes first.
fn assert_body(req: &Recorded, api: Api, route: Route, expected: &Value) {
    assert_eq!(&req.json(), expected, "{api:?}/{route:?}: upstream body");
    let keys = req.top_keys();
    if api == Api::OpenAi {
        assert_eq!(
            keys.first().map(String::as_str),
            Some("model"),
            "{api:?}/{route:?}: model must be the first key: {}",
            req.text()
        );
    } else {
        assert!(
            !keys.iter().any(|k| k == "model"),
            "{api:?}/{route:?}: Azure bodies carry no model: {}",
            req.text()
        );
    }
}

/// `{"detail": ...}` with `status`.
fn assert_mlflow_error(reply: &Reply, status: u16, detail: &Value, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text);
    assert_eq!(reply.json, json!({ "detail": detail }), "{what}");
    assert_json_content_type(reply, what);
}

/// OpenAI's `{"error": {"message", "type", "param", "code"}}` with `status`; the message contains
/// `message`.
fn assert_openai_error(reply: &Reply, status: u16, message: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text);
    let object = reply.json.as_object().unwrap_or_else(|| {
        panic!("{what}: not a JSON object: {}", reply.text);
    });
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["error"],
        "{what}: {}",
        reply.text
    );
    let error = reply.json["error"].as_object().unwrap();
    let mut keys: Vec<&String> = error.keys().collect();
    keys.sort();
    assert_eq!(keys, ["code", "message", "param", "type"], "{what}");
    let text = error["message"].as_str().unwrap_or_else(|| {
        panic!("{what}: message is not a string: {}", reply.text);
    });
    assert!(
        text.contains(message),
        "{what}: message {text:?} should contain {message:?}"
    );
    assert!(
        error["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{what}: type: {}",
        reply.text
    );
    assert_json_content_type(reply, what);
}

fn assert_json_content_type(reply: &Reply, what: &str) {
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content-type {content_type:?}"
    );
}

fn assert_sse(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 200, "{what}: {}", reply.text);
    assert_eq!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(SSE),
        "{what}"
    );
}

/// The `data:` payloads of a gateway stream; checks the whole body is `data: ...\n\n` events
/// (and heartbeat comments).
fn events(reply: &Reply, what: &str) -> Vec<String> {
    assert!(
        reply.text.is_empty() || reply.text.ends_with("\n\n"),
        "{what}: the stream must end after a whole event: {:?}",
        reply.text
    );
    // `:` lines are SSE comments: the gateway's heartbeat while the upstream is silent.
    for event in reply.text.split_terminator("\n\n").filter(|e| *e != ":") {
        assert!(
            event.starts_with("data: ") && !event[6..].contains('\n'),
            "{what}: malformed event {event:?} in {:?}",
            reply.text
        );
    }
    sse_data(&reply.text)
}

fn parse(event: &str) -> Value {
    serde_json::from_str(event).unwrap_or_else(|e| panic!("event is not JSON ({e}): {event}"))
}

/// Splits a gateway stream's events into JSON chunks and whether it ended with `[DONE]`.
fn stream_chunks(reply: &Reply, what: &str) -> (Vec<Value>, bool) {
    let mut events = events(reply, what);
    let done = events.last().is_some_and(|e| e == "[DONE]");
    if done {
        events.pop();
    }
    assert!(
        !events.iter().any(|e| e == "[DONE]"),
        "{what}: [DONE] only at the end: {}",
        reply.text
    );
    (events.iter().map(|e| parse(e)).collect(), done)
}

/// Sends `body` and reads the stream as it arrives: each body read with the time it arrived.
async fn timed_stream(gw: &Gateway, path: &str, body: &Value) -> (u16, Vec<(Duration, Bytes)>) {
    let started = Instant::now();
    let mut response = client()
        .post(gw.url(path))
        .send_json(body)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = response.status().as_u16();
    let mut reads = Vec::new();
    loop {
        match actix_rt::time::timeout(Duration::from_secs(15), response.next()).await {
            Ok(Some(Ok(bytes))) => reads.push((started.elapsed(), bytes)),
            Ok(Some(Err(e))) => panic!("{path}: the stream failed: {e}"),
            Ok(None) => break,
            Err(_) => panic!("{path}: the stream stalled for 15 s"),
        }
    }
    (status, reads)
}

// ------------------------------------------------------------------------------------------------
// Canned upstream payloads and the gateway's translations of them

fn upstream_chat_response() -> Value {
    json!({
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1677858242,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "service_tier": "default",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there!", "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"},
            {"index": 3, "message": {"role": "assistant", "content": "Hi! ☃ 日本", "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "length"}
        ],
        "usage": {
            "prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "accepted_prediction_tokens": 0}
        }
    })
}

fn gateway_chat_response(provider: &str) -> Value {
    json!({
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1677858242,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there!", "tool_calls": null, "refusal": null}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": "Hi! ☃ 日本", "tool_calls": null, "refusal": null}, "finish_reason": "length"}
        ],
        "usage": {
            "prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "accepted_prediction_tokens": 0}
        },
        "provider": provider
    })
}

fn upstream_completions_response() -> Value {
    json!({
        "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
        "object": "text_completion",
        "created": 1589478378,
        "model": "gpt-3.5-turbo-instruct",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"text": "\n\nThis is indeed a test", "index": 0, "logprobs": null, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    })
}

fn gateway_completions_response() -> Value {
    json!({
        "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
        "object": "text_completion",
        "created": 1589478378,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"index": 0, "text": "\n\nThis is indeed a test", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    })
}

fn upstream_embeddings_response(embeddings: &[Value]) -> Value {
    let data: Vec<Value> = embeddings
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"object": "embedding", "index": i, "embedding": e}))
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8}
    })
}

fn gateway_embeddings_response(embeddings: &[Value]) -> Value {
    let data: Vec<Value> = embeddings
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"object": "embedding", "embedding": e, "index": i}))
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8}
    })
}

fn upstream_chat_chunk(delta: Value, finish: Value) -> Value {
    json!({
        "id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1700000100,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        "usage": null
    })
}

fn upstream_chat_usage_chunk() -> Value {
    json!({
        "id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1700000100,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_44709d6fcb",
        "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    })
}

fn gateway_chat_chunk(delta: Value, finish: Value, provider: &str) -> Value {
    json!({
        "id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1700000100,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "finish_reason": finish, "delta": delta}],
        "usage": null,
        "provider": provider
    })
}

fn gateway_chat_usage_chunk(provider: &str) -> Value {
    json!({
        "id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1700000100,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        "provider": provider
    })
}

/// A typical OpenAI chat stream (role, two content pieces with multi-byte text, finish, usage).
fn upstream_chat_stream() -> Vec<Value> {
    vec![
        upstream_chat_chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
        ),
        upstream_chat_chunk(json!({"content": "Héllo ☃"}), Value::Null),
        upstream_chat_chunk(json!({"content": " 日本 🎉!"}), Value::Null),
        upstream_chat_chunk(json!({}), json!("stop")),
        upstream_chat_usage_chunk(),
    ]
}

fn gateway_chat_stream(provider: &str) -> Vec<Value> {
    let delta =
        |role: Value, content: Value| json!({"role": role, "content": content, "tool_calls": null});
    vec![
        gateway_chat_chunk(delta(json!("assistant"), json!("")), Value::Null, provider),
        gateway_chat_chunk(delta(Value::Null, json!("Héllo ☃")), Value::Null, provider),
        gateway_chat_chunk(
            delta(Value::Null, json!(" 日本 🎉!")),
            Value::Null,
            provider,
        ),
        gateway_chat_chunk(delta(Value::Null, Value::Null), json!("stop"), provider),
        gateway_chat_usage_chunk(provider),
    ]
}

/// The whole upstream SSE body for [`upstream_chat_stream`], `[DONE]` included.
fn chat_stream_bytes() -> Vec<u8> {
    let mut text: String = upstream_chat_stream().iter().map(sse_event).collect();
    text.push_str("data: [DONE]\n\n");
    text.into_bytes()
}

fn chat_stream_request() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}], "stream": true})
}

/// [`chat_stream_request`] to the `oa-chat` endpoint on MLflow's path.
async fn call_chat_stream(gw: &Gateway, up: &Upstream) -> Reply {
    call(
        gw,
        up,
        "/endpoints/oa-chat/invocations",
        &chat_stream_request(),
    )
    .await
}

// ------------------------------------------------------------------------------------------------
// Requests and responses: the route × api-type matrix

#[actix_rt::test]
async fn chat_request_and_response_for_every_api_type_and_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let fields = json!({
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "hi", "name": "bob"}
        ],
        "temperature": 0.5,
        "max_tokens": 20,
        "stop": ["END"],
        "n": 2,
        "foo": "bar",
        "seed": 42
    });
    for api in APIS {
        for (path, body, _) in paths(api, Route::Chat, &fields) {
            let what = format!("{api:?} {path}");
            up.push(Script::json(200, &upstream_chat_response()));
            let reply = call(&gw, &up, &path, &body).await;
            assert_eq!(reply.status, 200, "{what}: {}", reply.text);
            let req = up.only_request();
            assert_target(&req, api, Route::Chat);
            let expected = with_model(
                api,
                Route::Chat,
                &json!({
                    "n": 2, "stop": ["END"], "max_tokens": 20, "temperature": 0.5,
                    "messages": [
                        {"role": "system", "content": "be nice"},
                        {"role": "user", "content": "hi", "name": "bob"}
                    ],
                    "foo": "bar", "seed": 42
                }),
            );
            assert_body(&req, api, Route::Chat, &expected);
            assert_eq!(
                reply.json,
                gateway_chat_response(api.provider()),
                "{what}: response"
            );
            let keys: Vec<&String> = reply.json.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                ["id", "object", "created", "model", "choices", "usage", "provider"],
                "{what}: key order"
            );
            let message_keys: Vec<&String> = reply.json["choices"][0]["message"]
                .as_object()
                .unwrap()
                .keys()
                .collect();
            assert_eq!(message_keys, ["role", "content", "tool_calls", "refusal"]);
        }
    }
    assert_logs_clean(&gw, &up);
}

#[actix_rt::test]
async fn completions_request_and_response_for_every_api_type_and_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let fields = json!({
        "prompt": "Say this is a test",
        "max_tokens": 7,
        "temperature": 0.2,
        "echo": false,
        "suffix": "!"
    });
    for api in APIS {
        for (path, body, _) in paths(api, Route::Completions, &fields) {
            let what = format!("{api:?} {path}");
            up.push(Script::json(200, &upstream_completions_response()));
            let reply = call(&gw, &up, &path, &body).await;
            assert_eq!(reply.status, 200, "{what}: {}", reply.text);
            let req = up.only_request();
            assert_target(&req, api, Route::Completions);
            let expected = with_model(
                api,
                Route::Completions,
                &json!({
                    "n": 1, "max_tokens": 7, "temperature": 0.2,
                    "prompt": "Say this is a test", "echo": false, "suffix": "!"
                }),
            );
            assert_body(&req, api, Route::Completions, &expected);
            assert_eq!(
                reply.json,
                gateway_completions_response(),
                "{what}: response"
            );
            let keys: Vec<&String> = reply.json.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                ["id", "object", "created", "model", "choices", "usage"],
                "{what}: key order"
            );
        }
    }
    assert_logs_clean(&gw, &up);
}

#[actix_rt::test]
async fn embeddings_request_and_response_for_every_api_type_and_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let fields = json!({"input": ["hello", "wörld"], "dimensions": 2});
    let vectors = [json!([0.25, -0.5]), json!([1.0, 0.125])];
    for api in APIS {
        for (path, body, _) in paths(api, Route::Embeddings, &fields) {
            let what = format!("{api:?} {path}");
            up.push(Script::json(200, &upstream_embeddings_response(&vectors)));
            let reply = call(&gw, &up, &path, &body).await;
            assert_eq!(reply.status, 200, "{what}: {}", reply.text);
            let req = up.only_request();
            assert_target(&req, api, Route::Embeddings);
            let expected = with_model(api, Route::Embeddings, &fields);
            assert_body(&req, api, Route::Embeddings, &expected);
            assert!(
                req.json().get("n").is_none(),
                "{what}: embeddings carry no n"
            );
            assert_eq!(
                reply.json,
                gateway_embeddings_response(&vectors),
                "{what}: response"
            );
        }
    }
    assert_logs_clean(&gw, &up);
}

/// The request bodies MLflow's spec captured (§5.1), byte for byte: `model` first, then the
/// common fields in MLflow's order, then the route's fields, then extras, and `stream_options`
/// appended last on streaming calls.
#[actix_rt::test]
async fn upstream_bodies_match_mlflows_captures_byte_for_byte() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));

    up.push(Script::json(200, &upstream_chat_response()));
    let body = json!({
        "messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}],
        "max_tokens": 20, "temperature": 0.5, "stop": ["END"], "foo": "bar"
    });
    let reply = call(&gw, &up, "/endpoints/oa-chat/invocations", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        up.only_request().text(),
        r#"{"model":"gpt-4o-mini","n":1,"stop":["END"],"max_tokens":20,"temperature":0.5,"messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hi"}],"foo":"bar"}"#
    );

    up.push(Script::json(200, &upstream_chat_response()));
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let reply = call(&gw, &up, "/endpoints/az-chat/invocations", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        up.only_request().text(),
        r#"{"n":1,"messages":[{"role":"user","content":"hi"}]}"#
    );

    up.push(Script::sse_events(&[]));
    let body = json!({"prompt": "hi", "stream": true});
    let reply = call(&gw, &up, "/endpoints/oa-completions/invocations", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        up.only_request().text(),
        r#"{"model":"gpt-3.5-turbo-instruct","n":1,"stream":true,"prompt":"hi","stream_options":{"include_usage":true}}"#
    );
    assert_logs_clean(&gw, &up);
}

#[actix_rt::test]
async fn a_base_with_a_trailing_slash_is_joined_without_a_double_slash() {
    let up = Upstream::start();
    let yaml = format!(
        "endpoints:
  - name: slash-oa
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config:
        openai_api_key: {KEY_OPENAI}
        openai_api_base: {base}/v1/
  - name: slash-az
    endpoint_type: llm/v1/embeddings
    model:
      provider: azure
      name: text-embedding-3-small
      config:
        openai_api_key: {KEY_AZURE}
        openai_api_type: azure
        openai_api_base: {base}/
        openai_deployment_name: dep
        openai_api_version: \"{VERSION}\"
",
        base = up.base()
    );
    let gw = Gateway::start(&yaml);
    up.push(Script::json(200, &upstream_chat_response()));
    let reply = call(
        &gw,
        &up,
        "/endpoints/slash-oa/invocations",
        &Route::Chat.minimal_body(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(up.only_request().path, "/v1/chat/completions");

    up.push(Script::json(
        200,
        &upstream_embeddings_response(&[json!([0.5])]),
    ));
    let reply = call(
        &gw,
        &up,
        "/endpoints/slash-az/invocations",
        &Route::Embeddings.minimal_body(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let req = up.only_request();
    assert_eq!(req.path, "/openai/deployments/dep/embeddings");
    assert_eq!(req.query, Some(format!("api-version={VERSION}")));
    assert_logs_clean(&gw, &up);
}

// ------------------------------------------------------------------------------------------------
// Tools, function calling, structured content

fn weather_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a place",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name", "minLength": 1},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7, "default": 1},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "where": {
                        "type": "object",
                        "properties": {
                            "lat": {"type": "number", "minimum": -90, "maximum": 90},
                            "lon": {"type": "number"}
                        },
                        "required": ["lat", "lon"],
                        "additionalProperties": false
                    },
                    "tags": {"type": "array", "items": {"type": "string", "format": "uri"}},
                    "when": {"anyOf": [{"type": "string", "format": "date"}, {"type": "integer"}]}
                },
                "required": ["city"],
                "additionalProperties": false
            },
            "strict": true
        }
    })
}

#[actix_rt::test]
async fn tools_and_tool_calls_are_forwarded_without_loss() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let tool_call = json!({"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}});
    let request = json!({
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [tool_call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
        ],
        "tools": [weather_tool()],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false
    });
    let answer_call = json!({"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\",\"days\":2}"}});
    let upstream_reply = json!({
        "id": "chatcmpl-t", "object": "chat.completion", "created": 1700000200, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [answer_call], "refusal": null}, "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100}
    });
    for api in [Api::OpenAi, Api::Azure] {
        for (path, body, _) in paths(api, Route::Chat, &request) {
            let what = format!("{api:?} {path}");
            up.push(Script::json(200, &upstream_reply));
            let reply = call(&gw, &up, &path, &body).await;
            assert_eq!(reply.status, 200, "{what}: {}", reply.text);
            let req = up.only_request();
            let sent = req.json();
            assert_eq!(sent["tools"], json!([weather_tool()]), "{what}: tools");
            assert_eq!(
                sent["tool_choice"],
                json!({"type": "function", "function": {"name": "get_weather"}}),
                "{what}: tool_choice"
            );
            assert_eq!(sent["parallel_tool_calls"], json!(false), "{what}: extra");
            assert_eq!(
                sent["messages"][0], request["messages"][0],
                "{what}: content parts"
            );
            assert_eq!(
                sent["messages"][1],
                json!({"role": "assistant", "tool_calls": [tool_call]}),
                "{what}: assistant tool call (null content dropped)"
            );
            assert_eq!(
                sent["messages"][2], request["messages"][2],
                "{what}: tool result"
            );
            assert_body(
                &req,
                api,
                Route::Chat,
                &with_model(
                    api,
                    Route::Chat,
                    &json!({
                        "n": 1,
                        "messages": [request["messages"][0], {"role": "assistant", "tool_calls": [tool_call]}, request["messages"][2]],
                        "tools": [weather_tool()],
                        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                        "parallel_tool_calls": false
                    }),
                ),
            );
            assert_eq!(
                reply.json["choices"],
                json!([{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [answer_call], "refusal": null}, "finish_reason": "tool_calls"}]),
                "{what}: response"
            );
        }
    }
    assert_logs_clean(&gw, &up);
}

#[actix_rt::test]
async fn streamed_tool_call_deltas_are_translated() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let upstream = vec![
        upstream_chat_chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}], "refusal": null}),
            Value::Null,
        ),
        upstream_chat_chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            Value::Null,
        ),
        upstream_chat_chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]}),
            Value::Null,
        ),
        upstream_chat_chunk(json!({}), json!("tool_calls")),
    ];
    let delta =
        |role: Value, calls: Value| json!({"role": role, "content": null, "tool_calls": calls});
    let fragment = |args: &str| json!([{"index": 0, "id": null, "type": null, "function": {"name": null, "arguments": args}}]);
    let expected = vec![
        gateway_chat_chunk(
            delta(
                json!("assistant"),
                json!([{"index": 0, "id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]),
            ),
            Value::Null,
            "openai",
        ),
        gateway_chat_chunk(
            delta(Value::Null, fragment("{\"city\":")),
            Value::Null,
            "openai",
        ),
        gateway_chat_chunk(
            delta(Value::Null, fragment("\"Oslo\"}")),
            Value::Null,
            "openai",
        ),
        gateway_chat_chunk(
            delta(Value::Null, Value::Null),
            json!("tool_calls"),
            "openai",
        ),
    ];
    up.push(Script::sse_events(&upstream));
    let mut body = chat_stream_request();
    body["tools"] = json!([weather_tool()]);
    let reply = call(&gw, &up, "/endpoints/oa-chat/invocations", &body).await;
    assert_sse(&reply, "tool stream");
    let (chunks, done) = stream_chunks(&reply, "tool stream");
    assert!(!done);
    assert_eq!(chunks, expected);
    assert_eq!(up.only_request().json()["tools"], json!([weather_tool()]));
    assert_logs_clean(&gw, &up);
}

#[actix_rt::test]
async fn response_format_json_schema_gets_mlflows_strict_default() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let schema = json!({"type": "object", "properties": {"answer": {"type": "string", "maxLength": 10}}, "required": ["answer"], "additionalProperties": false});
    let mut body = Route::Chat.minimal_body();
    body["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}});
    up.push(Script::json(200, &upstream_chat_response()));
    let reply = call(&gw, &up, "/endpoints/oa-chat/invocations", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        up.only_request().json()["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": true}})
    );
    assert_logs_clean(&gw, &up);
}

// ------------------------------------------------------------------------------------------------
// Embeddings inputs

#[actix_rt::test]
async fn embeddings_accept_every_input_shape_and_base64() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let inputs = [
        json!("a single string"),
        json!(["one", "two", "three"]),
        json!([1, 2, 3, 50256]),
        json!([[1, 2], [3], [4, 5, 6]]),
    ];
    for input in inputs {
        for (encoding, vectors) in [
            ("float", vec![json!([0.5, -0.25]), json!([0.0, 1.0])]),
            ("base64", vec![json!("AAAAPwAAgL4="), json!("AAAAAAAAgD8=")]),
        ] {
            for api in [Api::OpenAi, Api::AzureAd] {
                let fields = json!({"input": input, "encoding_format": encoding, "dimensions": 2});
                for (path, body, _) in paths(api, Route::Embeddings, &fields) {
                    let what = format!("{api:?} {path} {input} {encoding}");
                    // Upstream indexes out of step with positions: the gateway renumbers.
                    let mut upstream = upstream_embeddings_response(&vectors);
                    upstream["data"][0]["index"] = json!(5);
                    upstream["data"][1]["index"] = json!(9);
                    up.push(Script::json(200, &upstream));
                    let reply = call(&gw, &up, &path, &body).await;
                    assert_eq!(reply.status, 200, "{what}: {}", reply.text);
                    let req = up.only_request();
                    assert_target(&req, api, Route::Embeddings);
                    assert_body(
                        &req,
                        api,
                        Route::Embeddings,
                        &with_model(api, Route::Embeddings, &fields),
                    );
                    assert_eq!(
                        reply.json,
                        gateway_embeddings_response(&vectors),
                        "{what}: response"
                    );
                }
            }
        }
    }
    assert_logs_clean(&gw, &up);
}

/// Float vectors are passed on in the upstream's own text (not parsed and printed again); a
/// vector that is not plain floats is read the usual way, so an integer still comes out as a
/// float, as MLflow prints it, and a vector that is not numbers is still a clear 502.
#[actix_rt::test]
async fn embedding_vectors_reach_the_client_as_the_upstream_wrote_them() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let fields = json!({"input": "hello"});
    let (path, body, _) = paths(Api::OpenAi, Route::Embeddings, &fields)
        .into_iter()
        .next()
        .unwrap();
    let reply_with = |vector: &str| {
        format!(
            r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":{vector}}}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":8,"total_tokens":8}}}}"#
        )
    };
    let cases = [
        (
            "[-0.0028842222,4.5489726e-05,1.0E-7]",
            200,
            "[-0.0028842222,4.5489726e-05,1.0E-7]",
        ),
        ("[0.5, 1]", 200, "[0.5,1.0]"),
        ("[0.5, null]", 502, ""),
    ];
    for (vector, status, expected) in cases {
        up.push(Script::raw(200, "application/json", reply_with(vector)));
        let reply = call(&gw, &up, &path, &body).await;
        assert_eq!(reply.status, status, "{vector}: {}", reply.text);
        up.only_request();
        if status == 200 {
            assert!(
                reply
                    .text
                    .contains(&format!(r#""embedding":{expected},"index":0"#)),
                "{vector}: {}",
                reply.text
            );
            assert_eq!(reply.json["usage"]["prompt_tokens"], 8);
        } else {
            let detail = reply.json["detail"].as_str().unwrap_or_default();
            assert!(
                detail.starts_with("The provider's embeddings response could not be read"),
                "{}",
                reply.text
            );
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Streaming

#[actix_rt::test]
async fn chat_stream_is_translated_in_order_on_every_path() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for api in APIS {
        for (path, body, v1) in paths(api, Route::Chat, &chat_stream_request()) {
            let what = format!("{api:?} {path}");
            up.push(Script::sse_events(&upstream_chat_stream()).gaps(Duration::from_millis(10)));
            let reply = call(&gw, &up, &path, &body).await;
            assert_sse(&reply, &what);
            let (chunks, done) = stream_chunks(&reply, &what);
            assert_eq!(chunks, gateway_chat_stream(api.provider()), "{what}");
            assert_eq!(done, v1, "{what}: [DONE] on /v1 only");
            let req = up.only_request();
            assert_target(&req, api, Route::Chat);
            assert_body(
                &req,
                api,
                Route::Chat,
                &with_model(
                    api,
                    Route::Chat,
                    &json!({
                        "n": 1, "stream": true,
                        "messages": [{"role": "user", "content": "hi"}],
                        "stream_options": {"include_usage": true}
                    }),
                ),
            );
        }
    }
    assert_logs_clean(&gw, &up);
}

#[actix_rt::test]
async fn stream_options_from_the_client_are_completed_not_replaced() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for (given, sent) in [
        (json!({}), json!({"include_usage": true})),
        (
            json!({"include_usage": false}),
            json!({"include_usage": false}),
        ),
        (
            json!({"include_usage": true}),
            json!({"include_usage": true}),
        ),
    ] {
        let mut body = chat_stream_request();
        body["stream_options"] = given.clone();
        up.push(Script::sse_events(&upstream_chat_stream()));
        let reply = call(&gw, &up, "/endpoints/oa-chat/invocations", &body).await;
        assert_sse(&reply, "stream_options");
        assert_eq!(
            up.only_request().json()["stream_options"],
            sent,
            "client sent {given}"
        );
    }
    assert_logs_clean(&gw, &up);
}

/// Events cut at every awkward place: inside `data:`, between the two newlines, inside a
/// multi-byte character, mid-JSON; also with CRLF line endings and with several events in one
/// read. The gateway must emit exactly the same chunks.
#[actix_rt::test]
async fn stream_events_split_at_odd_read_boundaries() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let lf = chat_stream_bytes();
    let crlf = String::from_utf8(lf.clone())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    for (label, bytes) in [("lf", lf), ("crlf", crlf)] {
        let text = String::from_utf8(bytes.clone()).unwrap();
        let mut cuts: Vec<usize> = (7..bytes.len()).step_by(7).collect();
        cuts.push(text.find("data").unwrap() + 3); // "dat|a:"
        cuts.push(text.find("\n\n").unwrap_or(0) + 1); // between the newlines (lf)
        cuts.push(text.find("\r\n\r\n").unwrap_or(0) + 2); // between the CRLFs
        for ch in ['☃', '日', '🎉'] {
            let at = text.find(ch).unwrap();
            cuts.push(at + 1);
            cuts.push(at + 2);
        }
        cuts.sort_unstable();
        cuts.dedup();
        cuts.retain(|&c| c > 0 && c < bytes.len());
        assert!(
            cuts.iter().any(|&c| !text.is_char_boundary(c)),
            "the cuts must split a character"
        );
        let mut parts = Vec::new();
        let mut start = 0;
        for cut in cuts {
            parts.push(bytes[start..cut].to_vec());
            start = cut;
        }
        parts.push(bytes[start..].to_vec());
        for (path, v1) in [
            ("/endpoints/oa-chat/invocations", false),
            ("/v1/chat/completions", true),
        ] {
            let what = format!("{label} {path}");
            let mut body = chat_stream_request();
            if v1 {
                body["model"] = json!("oa-chat");
            }
            up.push(Script::sse(parts.clone()).gaps(Duration::from_millis(3)));
            let reply = call(&gw, &up, path, &body).await;
            assert_sse(&reply, &what);
            let (chunks, done) = stream_chunks(&reply, &what);
            assert_eq!(chunks, gateway_chat_stream("openai"), "{what}");
            assert_eq!(done, v1, "{what}");
            up.only_request();
        }
    }

    // Everything in one write: several events per read.
    up.push(Script::sse(vec![chat_stream_bytes()]));
    let reply = call_chat_stream(&gw, &up).await;
    let (chunks, _) = stream_chunks(&reply, "one write");
    assert_eq!(chunks, gateway_chat_stream("openai"));
    up.only_request();
    assert_logs_clean(&gw, &up);
}

fn upstream_completion_chunk(text: &str, finish: Value) -> Value {
    json!({
        "id": "cmpl-s2", "object": "text_completion", "created": 1700000300,
        "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
        "model": "gpt-3.5-turbo-instruct"
    })
}

fn gateway_completion_chunk(text: Value, finish: Value) -> Value {
    json!({
        "id": "cmpl-s2", "object": "text_completion_chunk", "created": 1700000300,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"index": 0, "finish_reason": finish, "text": text}],
        "usage": null
    })
}

/// Real OpenAI legacy completion chunks carry `choices[].text` and no `delta` (MLflow misreads
/// them, a bug we do not copy); a `delta.content` chunk (some compatible servers) still works.
#[actix_rt::test]
async fn completions_stream_reads_text_chunks_and_falls_back_to_delta() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let usage = json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5});
    let upstream = vec![
        upstream_completion_chunk("Hel", Value::Null),
        upstream_completion_chunk("lo ☃", Value::Null),
        json!({
            "id": "cmpl-s2", "object": "text_completion", "created": 1700000300,
            "model": "gpt-3.5-turbo-instruct",
            "choices": [{"index": 0, "delta": {"content": " wörld"}, "finish_reason": null}]
        }),
        upstream_completion_chunk("", json!("length")),
        json!({"id": "cmpl-s2", "object": "text_completion", "created": 1700000300, "model": "gpt-3.5-turbo-instruct", "choices": [], "usage": usage}),
    ];
    let mut expected = vec![
        gateway_completion_chunk(json!("Hel"), Value::Null),
        gateway_completion_chunk(json!("lo ☃"), Value::Null),
        gateway_completion_chunk(json!(" wörld"), Value::Null),
        gateway_completion_chunk(json!(""), json!("length")),
    ];
    expected.push(json!({
        "id": "cmpl-s2", "object": "text_completion_chunk", "created": 1700000300,
        "model": "gpt-3.5-turbo-instruct", "choices": [], "usage": usage
    }));
    for api in APIS {
        let fields = json!({"prompt": "hi", "stream": true});
        for (path, body, v1) in paths(api, Route::Completions, &fields) {
            let what = format!("{api:?} {path}");
            up.push(Script::sse_events(&upstream).gaps(Duration::from_millis(5)));
            let reply = call(&gw, &up, &path, &body).await;
            assert_sse(&reply, &what);
            let (chunks, done) = stream_chunks(&reply, &what);
            assert_eq!(chunks, expected, "{what}");
            assert_eq!(done, v1, "{what}");
            let req = up.only_request();
            assert_target(&req, api, Route::Completions);
            assert_eq!(
                req.json()["stream_options"],
                json!({"include_usage": true}),
                "{what}"
            );
        }
    }
    assert_logs_clean(&gw, &up);
}

#[actix_rt::test]
async fn first_chunk_is_forwarded_before_the_upstream_finishes() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for (path, v1) in [
        ("/endpoints/oa-chat/invocations", false),
        ("/v1/chat/completions", true),
    ] {
        let events = upstream_chat_stream();
        let mut parts: Vec<Vec<u8>> = events.iter().map(|e| sse_event(e).into_bytes()).collect();
        parts.push(b"data: [DONE]\n\n".to_vec());
        // The last content event and everything after it come 1.5 s late.
        up.push(Script::sse(parts).delay_part(2, Duration::from_millis(1500)));
        let mut body = chat_stream_request();
        if v1 {
            body["model"] = json!("oa-chat");
        }
        let (status, reads) = timed_stream(&gw, path, &body).await;
        assert_eq!(status, 200, "{path}");
        let (first_at, first) = reads.first().expect("no body at all").clone();
        assert!(
            first_at < Duration::from_millis(1000),
            "{path}: the first chunk took {first_at:?}; it must not wait for the upstream's end"
        );
        assert!(first.starts_with(b"data: {"), "{path}: {first:?}");
        let last_at = reads.last().unwrap().0;
        assert!(
            last_at >= Duration::from_millis(1400),
            "{path}: the stream ended at {last_at:?}, before the upstream did"
        );
        let text: Vec<u8> = reads.iter().flat_map(|(_, b)| b.to_vec()).collect();
        let reply = Reply {
            status,
            headers: Default::default(),
            text: String::from_utf8(text).unwrap(),
            json: Value::Null,
        };
        assert_reply_clean(&reply, &up);
        let (chunks, done) = stream_chunks(&reply, path);
        assert_eq!(chunks, gateway_chat_stream("openai"), "{path}");
        assert_eq!(done, v1);
        up.only_request();
    }
    assert_logs_clean(&gw, &up);
}

/// Opens a stream, reads its first chunk, then drops the client connection.
async fn disconnect_after_first_chunk(gw: &Gateway, up: &Upstream, path: &str, body: &Value) {
    let client = client();
    let mut response = client
        .post(gw.url(path))
        .send_json(body)
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let first = actix_rt::time::timeout(Duration::from_secs(5), response.next())
        .await
        .expect("first chunk in time")
        .expect("a first chunk")
        .expect("chunk");
    assert!(first.starts_with(b"data: "), "{first:?}");
    assert!(up.wait_requests(1, Duration::from_secs(1)).await);
    drop(response);
    drop(client);
}

#[actix_rt::test]
async fn client_disconnect_cancels_a_token_stream_upstream() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    // 60 events 100 ms apart: 6 s of stream.
    let events: Vec<Value> = (0..60)
        .map(|i| upstream_chat_chunk(json!({"content": format!("t{i} ")}), Value::Null))
        .collect();
    up.push(Script::sse_events(&events).gaps(Duration::from_millis(100)));
    disconnect_after_first_chunk(
        &gw,
        &up,
        "/endpoints/oa-chat/invocations",
        &chat_stream_request(),
    )
    .await;
    let left = Instant::now();
    assert!(
        up.wait_aborted(1, Duration::from_secs(1)).await,
        "the upstream connection stayed open {:?} after the client left",
        left.elapsed()
    );
    assert_eq!(up.finished(), 0, "the upstream stream ran to its end");
    // The gateway is still healthy and the provider keeps working.
    up.push(Script::json(200, &upstream_chat_response()));
    let reply = call(
        &gw,
        &up,
        "/endpoints/oa-chat/invocations",
        &Route::Chat.minimal_body(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_logs_clean(&gw, &up);
}

/// The upstream goes quiet after the first event (a model "thinking"): the gateway must still
/// notice the client left and close the upstream connection, not wait for the next event.
#[actix_rt::test]
async fn client_disconnect_cancels_a_silent_upstream_stream() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    up.push(Script::sse_events(&upstream_chat_stream()).delay_part(1, Duration::from_secs(8)));
    disconnect_after_first_chunk(&gw, &up, "/v1/chat/completions", &{
        let mut body = chat_stream_request();
        body["model"] = json!("oa-chat");
        body
    })
    .await;
    let left = Instant::now();
    assert!(
        up.wait_aborted(1, Duration::from_secs(1)).await,
        "the upstream connection stayed open {:?} after the client left",
        left.elapsed()
    );
    assert_logs_clean(&gw, &up);
}

/// Checks one broken stream: the two whole chunks, then exactly one `{"error": {...}}` event;
/// never a `[DONE]` or an invented finish. Returns the problems found (empty when right).
fn broken_stream_problems(reply: &Reply, what: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if reply.status != 200 {
        problems.push(format!("{what}: status {} ({})", reply.status, reply.text));
        return problems;
    }
    let events: Vec<Option<Value>> = sse_data(&reply.text)
        .iter()
        .map(|e| serde_json::from_str(e).ok())
        .collect();
    let expected = gateway_chat_stream("openai");
    if events.len() < 2
        || events[0].as_ref() != Some(&expected[0])
        || events[1].as_ref() != Some(&expected[1])
    {
        problems.push(format!(
            "{what}: the two delivered chunks are wrong: {:?}",
            reply.text
        ));
    }
    let is_error = events.get(2).and_then(Option::as_ref).is_some_and(|e| {
        e.as_object().is_some_and(|o| o.len() == 1)
            && e["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
    });
    if events.len() != 3 || !is_error {
        problems.push(format!(
            "{what}: expected 2 chunks then one error event, got {} events: {:?}",
            events.len(),
            reply.text
        ));
    }
    if reply.text.contains("[DONE]") {
        problems.push(format!("{what}: a broken stream must not end with [DONE]"));
    }
    if reply.text.contains("\"finish_reason\":\"stop\"") {
        problems.push(format!("{what}: invented a finish"));
    }
    problems
}

/// The upstream stream breaks after two events (optionally in the middle of a third), ending
/// with `end`; on both path families.
async fn broken_stream_case(end: End) {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let upstream = upstream_chat_stream();
    let whole: Vec<Vec<u8>> = upstream[..2]
        .iter()
        .map(|e| sse_event(e).into_bytes())
        .collect();
    let third = sse_event(&upstream[2]).into_bytes();
    let mut problems = Vec::new();
    for partial in [false, true] {
        for (path, v1) in [
            ("/endpoints/oa-chat/invocations", false),
            ("/v1/chat/completions", true),
        ] {
            let what = format!("{end:?} mid-event={partial} {path}");
            let mut parts = whole.clone();
            if partial {
                parts.push(third[..third.len() / 2].to_vec());
            }
            // Let the gateway read everything before the connection breaks (an RST can make
            // the receiver discard data it has not read yet).
            let script = Script::sse(parts)
                .gaps(Duration::from_millis(20))
                .part(Duration::from_millis(200), Vec::new())
                .end(end);
            up.push(script);
            let mut body = chat_stream_request();
            if v1 {
                body["model"] = json!("oa-chat");
            }
            let reply = call(&gw, &up, path, &body).await;
            problems.extend(broken_stream_problems(&reply, &what));
            up.only_request();
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The broken connections did not poison the pool.
    up.push(Script::json(200, &upstream_chat_response()));
    let reply = call(
        &gw,
        &up,
        "/endpoints/oa-chat/invocations",
        &Route::Chat.minimal_body(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_logs_clean(&gw, &up);
}

/// Connection reset (RST) mid-stream → the chunks so far, then an error event.
#[actix_rt::test]
async fn an_upstream_stream_reset_midway_ends_with_an_error_event() {
    broken_stream_case(End::Reset).await;
}

/// Connection closed (FIN) before the chunked body's last chunk: a truncated body is a failure,
/// not a normal end.
#[actix_rt::test]
async fn an_upstream_stream_truncated_midway_ends_with_an_error_event() {
    broken_stream_case(End::Close).await;
}

#[actix_rt::test]
async fn a_streaming_request_answered_with_an_error_status_gets_a_json_status() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let unauthorized = json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
    let not_found = json!({"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error", "param": null, "code": "model_not_found"}});
    for route in [Route::Chat, Route::Completions] {
        for api in [Api::OpenAi, Api::Azure] {
            let mut fields = route.minimal_body();
            fields["stream"] = json!(true);
            for (path, body, v1) in paths(api, route, &fields) {
                for (status, error) in [(401, &unauthorized), (404, &not_found)] {
                    let what = format!("{api:?} {path} {status}");
                    up.push(Script::json(status, error));
                    let reply = call(&gw, &up, &path, &body).await;
                    let message = error["error"]["message"].as_str().unwrap();
                    if v1 {
                        assert_openai_error(&reply, status, message, &what);
                    } else {
                        assert_mlflow_error(&reply, status, &json!(message), &what);
                    }
                    up.only_request();
                }
            }
        }
    }
    assert_logs_clean(&gw, &up);
}

// ------------------------------------------------------------------------------------------------
// Errors

struct ErrorRow {
    label: &'static str,
    reply: Script,
    status: u16,
    /// MLflow's `detail`; `None`: any string.
    detail: Option<Value>,
    /// What the `/v1` error message must contain.
    message: &'static str,
}

fn error_rows() -> Vec<ErrorRow> {
    vec![
        ErrorRow {
            label: "401 with error.message",
            reply: Script::json(
                401,
                &json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
            ),
            status: 401,
            detail: Some(json!("Incorrect API key provided")),
            message: "Incorrect API key provided",
        },
        ErrorRow {
            label: "400 JSON without error",
            reply: Script::json(400, &json!({"message": "Too many tokens"})),
            status: 400,
            detail: Some(json!({"message": "Too many tokens"})),
            message: "Too many tokens",
        },
        ErrorRow {
            label: "403 text/plain",
            reply: Script::raw(403, "text/plain; charset=utf-8", "forbidden by policy"),
            status: 403,
            detail: Some(json!({"message": "forbidden by policy"})),
            message: "forbidden by policy",
        },
        ErrorRow {
            label: "200 text/html",
            reply: Script::raw(200, "text/html; charset=utf-8", "<html>hello</html>"),
            status: 502,
            detail: Some(json!(NOT_SUPPORTED_HTML)),
            message: NOT_SUPPORTED_HTML,
        },
        ErrorRow {
            label: "404 text/html",
            reply: Script::raw(404, "text/html; charset=utf-8", "<html>not here</html>"),
            status: 502,
            detail: Some(json!(NOT_SUPPORTED_HTML)),
            message: NOT_SUPPORTED_HTML,
        },
        ErrorRow {
            label: "200 text/plain",
            reply: Script::raw(200, "text/plain", "all good"),
            status: 502,
            detail: None,
            message: "",
        },
        ErrorRow {
            label: "200 invalid JSON",
            reply: Script::raw(200, "application/json", "{\"id\": \"x\", \"choices\": ["),
            status: 502,
            detail: None,
            message: "",
        },
    ]
}

#[actix_rt::test]
async fn upstream_errors_map_to_mlflow_and_openai_shapes() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for route in ROUTES {
        for api in [Api::OpenAi, Api::Azure] {
            for row in error_rows() {
                for (path, body, v1) in paths(api, route, &route.minimal_body()) {
                    let what = format!("{} — {api:?} {path}", row.label);
                    up.push(row.reply.clone());
                    let reply = call(&gw, &up, &path, &body).await;
                    if v1 {
                        assert_openai_error(&reply, row.status, row.message, &what);
                    } else if let Some(detail) = &row.detail {
                        assert_mlflow_error(&reply, row.status, detail, &what);
                    } else {
                        assert_eq!(reply.status, row.status, "{what}: {}", reply.text);
                        assert!(
                            reply.json["detail"].is_string()
                                && reply.json.as_object().unwrap().len() == 1,
                            "{what}: {}",
                            reply.text
                        );
                    }
                    up.only_request();
                }
            }
        }
    }
    assert_logs_clean(&gw, &up);
}

#[actix_rt::test]
async fn connection_refused_is_502_on_every_path_and_for_streams() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let refused_port = gw_config_refused_port(&gw);
    for stream in [false, true] {
        let mut fields = Route::Chat.minimal_body();
        if stream {
            fields["stream"] = json!(true);
        }
        let mut v1_body = fields.clone();
        v1_body["model"] = json!("refused-chat");
        for (path, body, v1) in [
            ("/endpoints/refused-chat/invocations", &fields, false),
            ("/gateway/refused-chat/invocations", &fields, false),
            ("/v1/chat/completions", &v1_body, true),
        ] {
            let what = format!("{path} stream={stream}");
            let started = Instant::now();
            let reply = call(&gw, &up, path, body).await;
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what}: took {:?}",
                started.elapsed()
            );
            if v1 {
                assert_openai_error(&reply, 502, "", &what);
            } else {
                assert_eq!(reply.status, 502, "{what}: {}", reply.text);
                assert!(reply.json["detail"].is_string(), "{what}: {}", reply.text);
                assert_json_content_type(&reply, &what);
            }
            assert!(
                !reply.text.contains(&refused_port),
                "{what}: the upstream address leaked: {}",
                reply.text
            );
        }
    }
    assert_eq!(up.request_count(), 0);
    assert_logs_clean(&gw, &up);
    let logs = gw.logs();
    assert!(
        !logs.contains(&refused_port),
        "the refused upstream address leaked into the logs"
    );
}

/// `127.0.0.1:<port>` of the `refused-chat` endpoint, read back from the config file.
fn gw_config_refused_port(gw: &Gateway) -> String {
    let yaml = std::fs::read_to_string(&gw.config_path).unwrap();
    let at = yaml.find("refused-chat").unwrap();
    let rest = &yaml[at..];
    let start = rest.find("http://").unwrap() + "http://".len();
    let end = rest[start..].find("/v1").unwrap();
    rest[start..start + end].to_owned()
}

const TIMEOUT_ENV: (&str, &str) = ("SWITCHYARD_UPSTREAM__TOTAL_TIMEOUT_SECS", "2");

#[actix_rt::test]
async fn a_slow_upstream_is_504_within_the_total_timeout() {
    let up = Upstream::start();
    let gw = Gateway::start_with(&config(&up), &[], &[TIMEOUT_ENV]);
    let late_head =
        || Script::json(200, &upstream_chat_response()).head_delay(Duration::from_secs(6));
    // The head arrives on time but the body trickles past the total timeout.
    let late_body = || {
        let body = upstream_chat_response().to_string().into_bytes();
        let half = body.len() / 2;
        Script::chunked(
            200,
            "application/json",
            vec![body[..half].to_vec(), body[half..].to_vec()],
        )
        .delay_part(1, Duration::from_secs(6))
    };
    for (label, script, stream) in [
        ("late head", late_head(), false),
        ("late body", late_body(), false),
        ("late head, streaming", late_head(), true),
    ] {
        let mut fields = Route::Chat.minimal_body();
        if stream {
            fields["stream"] = json!(true);
        }
        for (path, body, v1) in paths(Api::OpenAi, Route::Chat, &fields) {
            let what = format!("{label} {path}");
            up.push(script.clone());
            let started = Instant::now();
            let reply = call(&gw, &up, &path, &body).await;
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(1500) && took < Duration::from_millis(4500),
                "{what}: answered after {took:?}, expected about 2 s"
            );
            if v1 {
                assert_openai_error(&reply, 504, "", &what);
            } else {
                assert_eq!(reply.status, 504, "{what}: {}", reply.text);
                assert!(reply.json["detail"].is_string(), "{what}: {}", reply.text);
                assert_json_content_type(&reply, &what);
            }
            up.only_request();
        }
    }
    assert_logs_clean(&gw, &up);
}

#[actix_rt::test]
async fn first_byte_timeout_is_504() {
    let up = Upstream::start();
    let gw = Gateway::start_with(
        &config(&up),
        &[],
        &[("SWITCHYARD_UPSTREAM__FIRST_BYTE_TIMEOUT_SECS", "1")],
    );
    for (path, body, v1) in paths(
        Api::AzureAd,
        Route::Embeddings,
        &Route::Embeddings.minimal_body(),
    ) {
        up.push(
            Script::json(200, &upstream_embeddings_response(&[json!([0.5])]))
                .head_delay(Duration::from_secs(5)),
        );
        let started = Instant::now();
        let reply = call(&gw, &up, &path, &body).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_millis(3500),
            "{path}: answered after {took:?}, expected about 1 s"
        );
        if v1 {
            assert_openai_error(&reply, 504, "", &path);
        } else {
            assert_eq!(reply.status, 504, "{path}: {}", reply.text);
            assert!(reply.json["detail"].is_string(), "{path}: {}", reply.text);
        }
        up.only_request();
    }
    assert_logs_clean(&gw, &up);
}

/// A stream that goes silent longer than the idle timeout ends with an error event (the head and
/// first chunk are already sent), and the upstream connection is dropped.
#[actix_rt::test]
async fn an_idle_stream_ends_with_an_error_event_after_the_idle_timeout() {
    let up = Upstream::start();
    let gw = Gateway::start_with(
        &config(&up),
        &[],
        &[("SWITCHYARD_UPSTREAM__IDLE_TIMEOUT_SECS", "1")],
    );
    let mut aborted = 0;
    for (path, body, v1) in paths(Api::OpenAi, Route::Chat, &chat_stream_request()) {
        up.push(Script::sse_events(&upstream_chat_stream()).delay_part(1, Duration::from_secs(6)));
        let started = Instant::now();
        let reply = call(&gw, &up, &path, &body).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_millis(3500),
            "{path}: the stream ended after {took:?}, expected about 1 s"
        );
        assert_sse(&reply, &path);
        let events = events(&reply, &path);
        assert_eq!(events.len(), 2, "{path}: {}", reply.text);
        assert_eq!(parse(&events[0]), gateway_chat_stream("openai")[0]);
        let error = parse(&events[1]);
        assert!(error["error"]["message"].is_string(), "{path}: {error}");
        assert!(!reply.text.contains("[DONE]"), "{path}: v1={v1}");
        up.only_request();
        aborted += 1;
        assert!(
            up.wait_aborted(aborted, Duration::from_secs(1)).await,
            "{path}: the upstream connection was kept open after the idle timeout"
        );
    }
    assert_logs_clean(&gw, &up);
}

#[actix_rt::test]
async fn finished_streams_give_their_upstream_connection_back_to_the_pool() {
    // After `[DONE]` the gateway reads the rest of the body (HTTP's last chunk), so one upstream
    // connection serves stream after stream instead of a new connect per stream.
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for round in 0..6 {
        up.push(Script::sse_events(&[upstream_chat_chunk(
            json!({"content": "hi"}),
            Value::Null,
        )]));
        let reply = call_chat_stream(&gw, &up).await;
        assert_sse(&reply, "stream");
        assert_eq!(stream_chunks(&reply, "stream").0.len(), 1, "round {round}");
        // The drain follows the client's end of stream; give it a moment before the next call.
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(up.request_count(), 6);
    // awc replaces the very first pooled connection once (as it does for plain JSON calls too);
    // without the drain every stream would open its own.
    assert!(
        up.connections() <= 2,
        "{} connections for 6 streams",
        up.connections()
    );
}

#[actix_rt::test]
async fn a_silent_upstream_gets_heartbeat_comments_and_a_busy_one_none() {
    // The heartbeat (300 ms by default) is what notices a client that left while the provider
    // is silent; it must keep beating through a long gap and stay out of a busy stream.
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let chunk = |text: &str| upstream_chat_chunk(json!({"content": text}), Value::Null);
    up.push(
        Script::sse_events(&[chunk("a"), chunk("b")]).delay_part(1, Duration::from_millis(1300)),
    );
    let reply = call_chat_stream(&gw, &up).await;
    assert_sse(&reply, "silent stream");
    let beats = reply.text.matches(":\n\n").count();
    assert!(
        (3..=5).contains(&beats),
        "{beats} heartbeats in a 1.3 s gap: {:?}",
        reply.text
    );
    assert_eq!(stream_chunks(&reply, "silent stream").0.len(), 2);

    up.push(
        Script::sse_events(&[chunk("a"), chunk("b"), chunk("c")]).gaps(Duration::from_millis(100)),
    );
    let reply = call_chat_stream(&gw, &up).await;
    assert_eq!(reply.text.matches(":\n\n").count(), 0, "{:?}", reply.text);
}
