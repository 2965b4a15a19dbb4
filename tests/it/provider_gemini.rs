//! `gemini` end to end: the real gateway in front of a mock speaking Gemini's REST API
//! (`generateContent`, `streamGenerateContent?alt=sse`, `embedContent`, `batchEmbedContents`).
//! Pins what the mock received (path, query, `x-goog-api-key`, exact body) and what the client
//! got (exact JSON, with the time-based `created` / `id` checked and then pinned), on MLflow's
//! paths and on `/v1`; MLflow's parameter rules; Google's error bodies. The key never reaches a
//! URL, a response or a log line.

use crate::common::upstream::{Recorded, Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-canary-gemini-2c7e91";
const MODEL: &str = "gemini-2.0-flash";
const EMBED_MODEL: &str = "text-embedding-004";

fn config(up: &Upstream) -> String {
    let mut yaml = String::from("endpoints:\n");
    for (kind, model) in [
        ("chat", MODEL),
        ("completions", MODEL),
        ("embeddings", EMBED_MODEL),
    ] {
        yaml += &format!(
            "  - name: gm-{kind}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: gemini\n      name: {model}\n      config:\n        gemini_api_key: {KEY}\n        gemini_api_base: {}/v1beta/models\n",
            up.base()
        );
    }
    yaml
}

fn fixture(name: &str) -> &'static str {
    match name {
        "chat_request" => include_str!("../fixtures/gemini/chat_request.json"),
        "chat_tools_request" => include_str!("../fixtures/gemini/chat_tools_request.json"),
        "completions_request" => include_str!("../fixtures/gemini/completions_request.json"),
        "embed_content_request" => include_str!("../fixtures/gemini/embed_content_request.json"),
        "batch_embed_contents_request" => {
            include_str!("../fixtures/gemini/batch_embed_contents_request.json")
        }
        "chat_response" => include_str!("../fixtures/gemini/chat_response.json"),
        "chat_function_call_response" => {
            include_str!("../fixtures/gemini/chat_function_call_response.json")
        }
        "completions_response" => include_str!("../fixtures/gemini/completions_response.json"),
        "embed_content_response" => include_str!("../fixtures/gemini/embed_content_response.json"),
        "batch_embed_contents_response" => {
            include_str!("../fixtures/gemini/batch_embed_contents_response.json")
        }
        "chat_stream" => include_str!("../fixtures/gemini/chat_stream.sse"),
        "chat_stream_tool_calls" => include_str!("../fixtures/gemini/chat_stream_tool_calls.sse"),
        "completions_stream" => include_str!("../fixtures/gemini/completions_stream.sse"),
        "error_invalid_key" => include_str!("../fixtures/gemini/error_invalid_key.json"),
        "error_quota" => include_str!("../fixtures/gemini/error_quota.json"),
        other => panic!("no fixture {other}"),
    }
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(fixture(name)).unwrap()
}

/// An SSE fixture cut into 7-byte writes, so events straddle network reads.
fn sse_script(name: &str) -> Script {
    Script::sse(
        fixture(name)
            .as_bytes()
            .chunks(7)
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

/// The three paths that reach `gm-<kind>`; the `/v1` body names the endpoint.
fn paths(kind: &str, body: &Value) -> Vec<(String, Value)> {
    let v1 = match kind {
        "chat" => "/v1/chat/completions",
        "completions" => "/v1/completions",
        _ => "/v1/embeddings",
    };
    let mut v1_body = body.clone();
    v1_body["model"] = json!(format!("gm-{kind}"));
    vec![
        (format!("/endpoints/gm-{kind}/invocations"), body.clone()),
        (format!("/gateway/gm-{kind}/invocations"), body.clone()),
        (v1.to_owned(), v1_body),
    ]
}

async fn call(gw: &Gateway, path: &str, body: &Value) -> Reply {
    let response = client()
        .post(gw.url(path))
        .insert_header(("authorization", "Bearer client-token-not-for-upstream"))
        .send_json(body)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut response = response;
    let bytes = response.body().limit(16 << 20).await.expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reply = Reply {
        status,
        headers,
        text,
        json,
    };
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

/// The key travels only in `x-goog-api-key`: not in the query, not as a bearer token.
fn assert_target(req: &Recorded, path: &str, query: Option<&str>) {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, path);
    assert_eq!(req.query.as_deref(), query);
    assert_eq!(req.header_all("x-goog-api-key"), [KEY]);
    assert_eq!(
        req.header("authorization"),
        None,
        "client auth never forwarded"
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
}

/// Checks `created` is a current Unix time and the id is `<prefix><created>`, then pins both.
fn pin_time(mut value: Value, id_prefix: Option<&str>) -> Value {
    let created = value["created"].as_i64().expect("created");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - 120..=now + 1).contains(&created),
        "created {created}"
    );
    match id_prefix {
        Some(prefix) => assert_eq!(value["id"], json!(format!("{prefix}{created}"))),
        None => assert_eq!(value["id"], Value::Null),
    }
    value["created"] = json!(0);
    value
}

/// The data events of a stream, parsed; `[DONE]` (only on `/v1`) is checked and removed.
fn chunks(reply: &Reply, v1: bool) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut data = sse_data(&reply.text);
    assert_eq!(
        data.last().map(String::as_str) == Some("[DONE]"),
        v1,
        "{}",
        reply.text
    );
    if v1 {
        data.pop();
    }
    data.iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[actix_rt::test]
async fn chat_sends_mlflows_body_and_maps_the_response() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body = json!({
        "messages": [
            {"role": "system", "content": "You are helpful"},
            {"role": "user", "content": "Tell me a joke"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "again"}
        ],
        "stop": ["\n"], "max_tokens": 100, "temperature": 0.1, "top_p": 1.0,
        "presence_penalty": 0.5, "frequency_penalty": 0.2, "top_k": 40,
        "response_format": {"type": "json_object"}
    });
    for (path, body) in paths("chat", &body) {
        up.push(Script::json(200, &json_fixture("chat_response")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_time(reply.json.clone(), Some("gemini-chat-")),
            json!({"id": format!("gemini-chat-{}", reply.json["created"]), "object": "chat.completion", "created": 0,
                "model": MODEL, "choices": [{"index": 0, "message": {"role": "assistant",
                "content": "Blue light is scattered more by the atmosphere.", "tool_calls": null, "refusal": null},
                "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 8, "completion_tokens": 10, "total_tokens": 30,
                    "prompt_tokens_details": {"cached_tokens": 4},
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}], "thoughtsTokenCount": 12},
                "provider": "gemini"}),
            "{path}"
        );
        let req = up.only_request();
        assert_target(
            &req,
            "/v1beta/models/gemini-2.0-flash:generateContent",
            None,
        );
        assert_eq!(
            req.text(),
            json_fixture("chat_request").to_string(),
            "{path}"
        );
    }
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn tools_and_function_calls_round_trip() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    up.push(Script::json(
        200,
        &json_fixture("chat_function_call_response"),
    ));
    let reply = call(&gw, "/endpoints/gm-chat/invocations", &json!({
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}, "thought_signature": "s0"}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 20}"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get weather",
            "parameters": {"properties": {"location": {"type": "string", "description": "city"}}, "type": "object", "required": ["location"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
    }))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_c8800a29b7c6d0e92541b3fa793048ab", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\": \"Singapore\"}"},
             "thought_signature": "sig123"}], "refusal": null}, "finish_reason": "tool_calls"}])
    );
    let req = up.only_request();
    assert_eq!(req.text(), json_fixture("chat_tools_request").to_string());
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn chat_streams_from_stream_generate_content() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body = json!({"messages": [{"role": "user", "content": "joke"}], "stream": true});
    for (path, body) in paths("chat", &body) {
        up.push(sse_script("chat_stream"));
        let reply = call(&gw, &path, &body).await;
        let chunks: Vec<Value> = chunks(&reply, path.starts_with("/v1"))
            .into_iter()
            .map(|c| pin_time(c, Some("gemini-chat-stream-")))
            .map(|mut c| {
                c["id"] = json!("pinned");
                c
            })
            .collect();
        let chunk = |content: &str, finish: Value, usage: Value| {
            json!({"id": "pinned", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
                "choices": [{"index": 0, "finish_reason": finish, "delta": {"role": "assistant", "content": content, "tool_calls": null}}],
                "usage": usage, "provider": "gemini"})
        };
        let early = json!({"prompt_tokens": 6, "completion_tokens": null, "total_tokens": 6,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 6}]});
        assert_eq!(
            chunks,
            vec![
                chunk("Why did", Value::Null, early.clone()),
                chunk(" the chicken cross the road?", Value::Null, early),
                chunk(
                    "",
                    json!("stop"),
                    json!({"prompt_tokens": 6, "completion_tokens": 9, "total_tokens": 15,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 6}],
                    "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 9}]})
                ),
            ],
            "{path}"
        );
        let req = up.only_request();
        assert_target(
            &req,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
            Some("alt=sse"),
        );
        assert_eq!(
            req.text(),
            r#"{"contents":[{"role":"user","parts":[{"text":"joke"}]}],"generationConfig":{"candidateCount":1}}"#
        );
    }
    // Whole function calls arrive across events; indexes continue and the final STOP becomes
    // `tool_calls`.
    up.push(sse_script("chat_stream_tool_calls"));
    let reply = call(&gw, "/endpoints/gm-chat/invocations", &body).await;
    let finishes: Vec<Value> = chunks(&reply, false)
        .iter()
        .map(|c| {
            json!([
                c["choices"][0]["delta"]["tool_calls"][0]["index"],
                c["choices"][0]["finish_reason"]
            ])
        })
        .collect();
    assert_eq!(
        finishes,
        [
            json!([0, null]),
            json!([1, null]),
            json!([null, "tool_calls"])
        ]
    );
    up.only_request();
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn completions_and_their_streams() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body = json!({"prompt": "Write a story", "system_prompt": "Be brief", "max_completion_tokens": 64,
        "temperature": 0.7, "top_k": 3});
    for (path, body) in paths("completions", &body) {
        up.push(Script::json(200, &json_fixture("completions_response")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_time(reply.json.clone(), None),
            json!({"id": null, "object": "text_completion", "created": 0, "model": MODEL,
                "choices": [{"index": 0, "text": "Once upon a time, a gateway.", "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 4, "completion_tokens": 8, "total_tokens": 12}}),
            "{path}"
        );
        let req = up.only_request();
        assert_target(
            &req,
            "/v1beta/models/gemini-2.0-flash:generateContent",
            None,
        );
        assert_eq!(req.text(), json_fixture("completions_request").to_string());
    }
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    for (path, body) in paths("completions", &streaming) {
        up.push(sse_script("completions_stream"));
        let reply = call(&gw, &path, &body).await;
        let texts: Vec<Value> = chunks(&reply, path.starts_with("/v1"))
            .into_iter()
            .map(|c| pin_time(c, Some("gemini-completions-stream-")))
            .map(|c| json!([c["object"], c["choices"], c["usage"]]))
            .collect();
        assert_eq!(
            texts,
            [
                json!(["text_completion.chunk", [{"index": 0, "finish_reason": null, "text": "Once upon"}], null]),
                json!(["text_completion.chunk", [{"index": 0, "finish_reason": "length", "text": " a time."}], null]),
            ],
            "{path}"
        );
        let req = up.only_request();
        assert_target(
            &req,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
            Some("alt=sse"),
        );
        assert_eq!(req.text(), json_fixture("completions_request").to_string());
    }
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn embeddings_use_embed_content_or_batch_embed_contents() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    for (path, body) in paths(
        "embeddings",
        &json!({"input": "What is the meaning of life?"}),
    ) {
        up.push(Script::json(200, &json_fixture("embed_content_response")));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            reply.json,
            json!({"object": "list", "data": [{"object": "embedding",
                "embedding": [0.013168523, -0.008711934, -0.046782676, 0.00069968984], "index": 0}],
                "model": EMBED_MODEL, "usage": {"prompt_tokens": null, "total_tokens": null}}),
            "{path}"
        );
        let req = up.only_request();
        assert_target(&req, "/v1beta/models/text-embedding-004:embedContent", None);
        assert_eq!(
            req.text(),
            json_fixture("embed_content_request").to_string()
        );
    }
    up.push(Script::json(
        200,
        &json_fixture("batch_embed_contents_response"),
    ));
    let reply = call(
        &gw,
        "/endpoints/gm-embeddings/invocations",
        &json!({"input": ["What is the meaning of life?", "How does the brain work?"]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["data"],
        json!([{"object": "embedding", "embedding": [0.25, -0.5], "index": 0},
               {"object": "embedding", "embedding": [0.125, 1.0], "index": 1}])
    );
    let req = up.only_request();
    assert_target(
        &req,
        "/v1beta/models/text-embedding-004:batchEmbedContents",
        None,
    );
    assert_eq!(
        req.text(),
        json_fixture("batch_embed_contents_request").to_string()
    );
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn parameter_rules_answer_before_any_upstream_call() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let chat = json!({"messages": [{"role": "user", "content": "hi"}], "topK": 3});
    let reply = call(&gw, "/endpoints/gm-chat/invocations", &chat).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"detail": "Invalid parameter topK. Use top_k instead."})
    );
    let mut v1 = chat.clone();
    v1["model"] = json!("gm-chat");
    let reply = call(&gw, "/v1/chat/completions", &v1).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Invalid parameter topK. Use top_k instead.")),
        "{}",
        reply.text
    );
    let reply = call(
        &gw,
        "/endpoints/gm-chat/invocations",
        &json!({"messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}], "stream": true}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (
            422,
            json!({"detail": "Invalid tool message: tool_call_id=x does not match any tool call in a preceding assistant message."})
        )
    );
    assert_eq!(up.request_count(), 0);
    assert_logs_clean(&gw);
}

#[actix_rt::test]
async fn google_errors_pass_through_with_their_status_and_the_key_scrubbed() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    up.push(Script::json(400, &json_fixture("error_invalid_key")));
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    let reply = call(&gw, "/endpoints/gm-chat/invocations", &chat).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (
            400,
            json!({"detail": "API key not valid. Please pass a valid API key."})
        )
    );
    // A stream's upstream error is still a JSON status: nothing was sent yet.
    up.push(Script::json(429, &json_fixture("error_quota")));
    let mut stream = chat.clone();
    stream["stream"] = json!(true);
    let reply = call(&gw, "/endpoints/gm-chat/invocations", &stream).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (
            429,
            json!({"detail": "You exceeded your current quota, please check your plan and billing details."})
        )
    );
    // An upstream that echoes the key in its message: the client never sees it.
    up.push(Script::json(
        403,
        &json!({"error": {"code": 403, "message": format!("Key {KEY} was disabled."), "status": "PERMISSION_DENIED"}}),
    ));
    let reply = call(
        &gw,
        "/endpoints/gm-embeddings/invocations",
        &json!({"input": "x"}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (403, json!({"detail": "Key *** was disabled."}))
    );
    // A mid-stream error event ends the stream with an error event, never a fake finish.
    up.push(Script::sse(vec![
        b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}]}, \"index\": 0}]}\r\n\r\n".to_vec(),
        b"data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": \"UNAVAILABLE\"}}\r\n\r\n".to_vec(),
    ]));
    let reply = call(&gw, "/endpoints/gm-chat/invocations", &stream).await;
    assert_eq!(reply.status, 200);
    let data = sse_data(&reply.text);
    assert_eq!(data.len(), 2, "{}", reply.text);
    assert!(
        data[1].contains("The model is overloaded."),
        "{}",
        reply.text
    );
    for req in up.take_requests() {
        assert!(!req.query.unwrap_or_default().contains("key="));
    }
    assert_logs_clean(&gw);
}

/// Gemini sends no end marker, so a body that ends before every candidate carried its finish
/// reason was cut: the client gets an error event, not a stream that merely stops (and on `/v1`
/// no `[DONE]`). An event after the finishing one (usage only) is still forwarded.
#[actix_rt::test]
async fn a_stream_that_ends_before_its_finish_reason_ends_with_an_error_event() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    // Google's server ends each event with a blank CRLF line, as the fixture does.
    let events: Vec<Vec<u8>> = fixture("chat_stream")
        .split_inclusive("\r\n\r\n")
        .map(|event| event.as_bytes().to_vec())
        .collect();
    assert_eq!(
        events.len(),
        3,
        "the fixture's last event carries the finish"
    );
    let body = json!({"messages": [{"role": "user", "content": "joke"}], "stream": true});
    for (path, body) in paths("chat", &body) {
        // A well-formed HTTP body that stops after two of the three events.
        up.push(Script::sse(events[..2].to_vec()));
        let reply = call(&gw, &path, &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let data = sse_data(&reply.text);
        assert_eq!(data.len(), 3, "{path}: {}", reply.text);
        let last: Value = serde_json::from_str(&data[2]).unwrap();
        assert_eq!(
            last["error"]["message"], "The provider's stream ended before it was complete.",
            "{path}"
        );
        up.only_request();
    }

    let mut complete = events.clone();
    complete.push(
        b"data: {\"usageMetadata\": {\"promptTokenCount\": 6, \"candidatesTokenCount\": 9, \"totalTokenCount\": 15}}\r\n\r\n"
            .to_vec(),
    );
    up.push(Script::sse(complete));
    let reply = call(&gw, "/v1/chat/completions", &paths("chat", &body)[2].1).await;
    let chunks = chunks(&reply, true);
    assert_eq!(chunks.len(), 4, "{}", reply.text);
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[3]["choices"], json!([]), "{}", reply.text);
    assert_eq!(chunks[3]["usage"]["total_tokens"], 15, "{}", reply.text);
    up.only_request();
    assert_logs_clean(&gw);
}
