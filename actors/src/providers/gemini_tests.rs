//! Gemini translation tests on recorded fixtures (`tests/fixtures/gemini/`, shaped after the
//! published `generateContent` / `streamGenerateContent` / `embedContent` references), one test
//! per fixture, plus MLflow's parameter rules and the error mapping table.

use serde_json::{json, Value};

use super::*;
use crate::config::Secret;
use crate::framing::{FrameDecoder, Framing};

const KEY: &str = "sk-canary-gemini-unit";
const NOW: i64 = 1_700_000_000;

fn wire(model: &str) -> GeminiWire {
    let config = GeminiConfig {
        api_key: Secret::new(KEY),
        api_base: "https://generativelanguage.googleapis.com/v1beta/models".to_owned(),
    };
    GeminiWire::new(&config, Some(model.to_owned()), Provider::Gemini)
}

fn fixture(name: &str) -> &'static str {
    match name {
        "chat_request.json" => include_str!("../../../tests/fixtures/gemini/chat_request.json"),
        "chat_tools_request.json" => {
            include_str!("../../../tests/fixtures/gemini/chat_tools_request.json")
        }
        "completions_request.json" => {
            include_str!("../../../tests/fixtures/gemini/completions_request.json")
        }
        "embed_content_request.json" => {
            include_str!("../../../tests/fixtures/gemini/embed_content_request.json")
        }
        "batch_embed_contents_request.json" => {
            include_str!("../../../tests/fixtures/gemini/batch_embed_contents_request.json")
        }
        "chat_response.json" => include_str!("../../../tests/fixtures/gemini/chat_response.json"),
        "chat_function_call_response.json" => {
            include_str!("../../../tests/fixtures/gemini/chat_function_call_response.json")
        }
        "chat_candidates_response.json" => {
            include_str!("../../../tests/fixtures/gemini/chat_candidates_response.json")
        }
        "completions_response.json" => {
            include_str!("../../../tests/fixtures/gemini/completions_response.json")
        }
        "embed_content_response.json" => {
            include_str!("../../../tests/fixtures/gemini/embed_content_response.json")
        }
        "batch_embed_contents_response.json" => {
            include_str!("../../../tests/fixtures/gemini/batch_embed_contents_response.json")
        }
        "chat_stream.sse" => include_str!("../../../tests/fixtures/gemini/chat_stream.sse"),
        "chat_stream_tool_calls.sse" => {
            include_str!("../../../tests/fixtures/gemini/chat_stream_tool_calls.sse")
        }
        "completions_stream.sse" => {
            include_str!("../../../tests/fixtures/gemini/completions_stream.sse")
        }
        "error_invalid_key.json" => {
            include_str!("../../../tests/fixtures/gemini/error_invalid_key.json")
        }
        "error_quota.json" => include_str!("../../../tests/fixtures/gemini/error_quota.json"),
        "error_model_not_found.json" => {
            include_str!("../../../tests/fixtures/gemini/error_model_not_found.json")
        }
        other => panic!("no fixture {other}"),
    }
}

/// A fixture as compact JSON in its own key order (what an exact body comparison needs).
fn compact(name: &str) -> String {
    serde_json::from_str::<Value>(fixture(name))
        .unwrap()
        .to_string()
}

fn parse(name: &str) -> Value {
    serde_json::from_str(fixture(name)).unwrap()
}

fn unified(kind: EndpointType, body: Value) -> UnifiedRequest {
    UnifiedRequest::validate(kind, body).unwrap()
}

fn sent(wire: &GeminiWire, kind: EndpointType, body: Value) -> UpstreamRequest {
    wire.request(&unified(kind, body)).unwrap()
}

fn rule_error(kind: EndpointType, body: Value) -> GatewayError {
    wire("gemini-2.0-flash")
        .request(&unified(kind, body))
        .unwrap_err()
}

#[test]
fn chat_request_fixture_is_mlflows_capture() {
    let upstream = sent(
        &wire("gemini-2.0-flash"),
        EndpointType::Chat,
        json!({
            "messages": [
                {"role": "system", "content": "You are helpful"},
                {"role": "user", "content": "Tell me a joke"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "again"}
            ],
            "stop": ["\n"], "max_tokens": 100, "temperature": 0.1, "top_p": 1.0,
            "presence_penalty": 0.5, "frequency_penalty": 0.2, "top_k": 40,
            "response_format": {"type": "json_object"}, "user": "dropped-extra"
        }),
    );
    assert_eq!(
        upstream.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(upstream.headers, vec![("x-goog-api-key", KEY.to_owned())]);
    assert_eq!(
        String::from_utf8(upstream.body).unwrap(),
        compact("chat_request.json")
    );
}

#[test]
fn chat_tools_request_fixture_is_mlflows_capture() {
    let upstream = sent(
        &wire("gemini-2.0-flash"),
        EndpointType::Chat,
        json!({
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "dropped text", "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}, "thought_signature": "s0"}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 20}"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get weather",
                "parameters": {"properties": {"location": {"type": "string", "description": "city"}}, "type": "object", "required": ["location"]}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }),
    );
    assert_eq!(
        String::from_utf8(upstream.body).unwrap(),
        compact("chat_tools_request.json")
    );
}

#[test]
fn completions_request_fixture_and_stream_url() {
    let wire = wire("gemini-2.0-flash");
    let body = json!({"prompt": "Write a story", "system_prompt": "Be brief", "max_completion_tokens": 64,
        "temperature": 0.7, "top_k": 3});
    let upstream = sent(&wire, EndpointType::Completions, body.clone());
    assert_eq!(
        String::from_utf8(upstream.body).unwrap(),
        compact("completions_request.json")
    );
    let mut streaming = body;
    streaming["stream"] = json!(true);
    let upstream = sent(&wire, EndpointType::Completions, streaming);
    assert_eq!(
        upstream.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        String::from_utf8(upstream.body).unwrap(),
        compact("completions_request.json"),
        "stream and stream_options never reach the body"
    );
}

#[test]
fn embed_content_request_fixture() {
    let upstream = sent(
        &wire("text-embedding-004"),
        EndpointType::Embeddings,
        json!({"input": "What is the meaning of life?"}),
    );
    assert!(upstream.url.ends_with("/text-embedding-004:embedContent"));
    assert_eq!(
        String::from_utf8(upstream.body).unwrap(),
        compact("embed_content_request.json")
    );
}

#[test]
fn batch_embed_contents_request_fixture() {
    let upstream = sent(
        &wire("text-embedding-004"),
        EndpointType::Embeddings,
        json!({"input": ["What is the meaning of life?", "How does the brain work?"], "task_type": "dropped"}),
    );
    assert!(upstream
        .url
        .ends_with("/text-embedding-004:batchEmbedContents"));
    assert_eq!(
        String::from_utf8(upstream.body).unwrap(),
        compact("batch_embed_contents_request.json")
    );
}

#[test]
fn gemini_names_and_tool_mistakes_are_mlflows_422s() {
    let chat = |extra: Value| {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (field, unified_name) in [
        ("stopSequences", "stop"),
        ("candidateCount", "n"),
        ("maxOutputTokens", "max_tokens"),
        ("topK", "top_k"),
        ("topP", "top_p"),
        ("frequencyPenalty", "frequency_penalty"),
        ("presencePenalty", "presence_penalty"),
    ] {
        let error = rule_error(EndpointType::Chat, chat(json!({ field: 1 })));
        assert_eq!(
            (error.status, error.kind, error.detail),
            (
                422,
                ErrorKind::InvalidParameter,
                json!(format!(
                    "Invalid parameter {field}. Use {unified_name} instead."
                ))
            )
        );
        let error = rule_error(EndpointType::Completions, json!({"prompt": "p", field: 1}));
        assert_eq!(error.status, 422, "{field} on completions");
    }
    let error = rule_error(
        EndpointType::Chat,
        json!({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
    );
    assert_eq!(
        (error.status, error.detail),
        (422, json!("Invalid tool message: tool_call_id=nope does not match any tool call in a preceding assistant message."))
    );
    let error = rule_error(
        EndpointType::Chat,
        chat(json!({"tools": [{"type": "uc_function", "uc_function": {"name": "f"}}]})),
    );
    assert_eq!(
        error.detail,
        json!("Only function calling tool is supported, but received tool type uc_function")
    );
    let error = rule_error(EndpointType::Embeddings, json!({"input": [1, 2, 3]}));
    assert_eq!(error.status, 422);
}

#[test]
fn message_shapes_follow_mlflow() {
    let upstream = sent(
        &wire("m"),
        EndpointType::Chat,
        json!({
            "messages": [
                {"role": "system", "content": "a"},
                {"role": "developer", "content": "dropped role"},
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR="}},
                    {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}},
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}
                ]},
                {"role": "assistant", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{\"x\": 1}"}}
                ]},
                {"role": "tool", "tool_call_id": "a", "content": "plain text"},
                {"role": "tool", "tool_call_id": "b", "content": "[1, 2]"},
                {"role": "system", "content": "b"}
            ],
            "n": 2, "max_tokens": 5, "max_completion_tokens": 9,
            "tools": [], "tool_choice": "none",
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}
        }),
    );
    let body: Value = serde_json::from_slice(&upstream.body).unwrap();
    assert_eq!(
        body,
        json!({
            "contents": [
                {"role": "user", "parts": [
                    {"text": "look"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBOR="}},
                    {"text": "[unsupported image reference: https://example.test/cat.png]"},
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}
                ]},
                {"role": "model", "parts": [
                    {"functionCall": {"id": "a", "name": "f", "args": {}}},
                    {"functionCall": {"id": "b", "name": "g", "args": {"x": 1}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "a", "name": "f", "response": {"result": "plain text"}}},
                    {"functionResponse": {"id": "b", "name": "g", "response": {"result": [1, 2]}}}
                ]}
            ],
            "system_instruction": {"parts": [{"text": "a"}, {"text": "b"}]},
            "generationConfig": {"candidateCount": 2, "maxOutputTokens": 5,
                "responseJsonSchema": {"type": "object"}, "responseMimeType": "application/json"}
        }),
        "an empty tool list sends no tools and ignores tool_choice"
    );
}

#[test]
fn chat_response_fixture() {
    let response = gemini_response::chat_response(
        &parse("chat_response.json"),
        "gemini-2.5-flash",
        "gemini",
        NOW,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"id":"gemini-chat-1700000000","object":"chat.completion","created":1700000000,"model":"gemini-2.5-flash","choices":[{"index":0,"message":{"role":"assistant","content":"Blue light is scattered more by the atmosphere.","tool_calls":null,"refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":10,"total_tokens":30,"prompt_tokens_details":{"cached_tokens":4},"promptTokensDetails":[{"modality":"TEXT","tokenCount":8}],"thoughtsTokenCount":12},"provider":"gemini"}"#
    );
    let (_, usage) = wire("gemini-2.5-flash")
        .response(EndpointType::Chat, parse("chat_response.json"))
        .unwrap();
    assert_eq!(usage, Usage::new(Some(8), Some(10)));
}

#[test]
fn chat_function_call_response_fixture() {
    let response = gemini_response::chat_response(
        &parse("chat_function_call_response.json"),
        "gemini-2.5-flash",
        "gemini",
        NOW,
    )
    .unwrap();
    // The id MLflow derives: "call_" + md5("get_weather/" + json.dumps(args)).
    assert_eq!(
        serde_json::to_value(&response.choices).unwrap(),
        json!([{"index": 0, "message": {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_c8800a29b7c6d0e92541b3fa793048ab", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\": \"Singapore\"}"},
             "thought_signature": "sig123"}], "refusal": null}, "finish_reason": "tool_calls"}])
    );
}

#[test]
fn chat_candidates_response_fixture() {
    let response =
        gemini_response::chat_response(&parse("chat_candidates_response.json"), "m", "gemini", NOW)
            .unwrap();
    assert_eq!(
        serde_json::to_value(&response.choices).unwrap(),
        json!([
            {"index": 0, "message": {"role": "assistant", "content": "The first answer was cut", "tool_calls": null, "refusal": null}, "finish_reason": "length"},
            {"index": 2, "message": {"role": "assistant", "content": "A third candidate", "tool_calls": null, "refusal": null}, "finish_reason": "stop"}
        ]),
        "a blocked candidate is skipped and leaves a gap; later text parts are ignored"
    );
}

#[test]
fn completions_response_fixture() {
    let response = gemini_response::completions_response(
        &parse("completions_response.json"),
        "gemini-2.0-flash",
        NOW,
    );
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"id":null,"object":"text_completion","created":1700000000,"model":"gemini-2.0-flash","choices":[{"index":0,"text":"Once upon a time, a gateway.","finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":8,"total_tokens":12}}"#
    );
}

#[test]
fn embed_content_response_fixture() {
    let response =
        gemini_response::embeddings_response(&parse("embed_content_response.json"), "e").unwrap();
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"object":"list","data":[{"object":"embedding","embedding":[0.013168523,-0.008711934,-0.046782676,0.00069968984],"index":0}],"model":"e","usage":{"prompt_tokens":null,"total_tokens":null}}"#
    );
}

#[test]
fn batch_embed_contents_response_fixture() {
    let response =
        gemini_response::embeddings_response(&parse("batch_embed_contents_response.json"), "e")
            .unwrap();
    assert_eq!(
        serde_json::to_value(&response.data).unwrap(),
        json!([{"object": "embedding", "embedding": [0.25, -0.5], "index": 0},
               {"object": "embedding", "embedding": [0.125, 1.0], "index": 1}])
    );
}

/// Runs a `.sse` fixture through the SSE decoder and a fresh stream translator; `created` and the
/// time-based `id` are pinned so the chunks compare exactly.
fn stream(kind: EndpointType, name: &str) -> Vec<Value> {
    let mut translator = wire("gemini-2.0-flash").stream_translator(kind);
    let mut decoder = FrameDecoder::new(Framing::Sse);
    let mut events = decoder.push(fixture(name).as_bytes()).unwrap();
    events.extend(decoder.finish());
    events
        .iter()
        .filter_map(|event| match translator.event(event).unwrap() {
            EventOutcome::Chunk(chunk) | EventOutcome::Final(chunk) => {
                let mut value: Value = serde_json::from_slice(&chunk.json).unwrap();
                value["created"] = json!(NOW);
                value["id"] = json!("pinned");
                Some(value)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn chat_stream_fixture() {
    let chunk = |content: &str, finish: Value, usage: Value| {
        json!({"id": "pinned", "object": "chat.completion.chunk", "created": NOW, "model": "gemini-2.0-flash",
            "choices": [{"index": 0, "finish_reason": finish, "delta": {"role": "assistant", "content": content, "tool_calls": null}}],
            "usage": usage, "provider": "gemini"})
    };
    let early = json!({"prompt_tokens": 6, "completion_tokens": null, "total_tokens": 6,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 6}]});
    assert_eq!(
        stream(EndpointType::Chat, "chat_stream.sse"),
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
        ]
    );
}

#[test]
fn chat_stream_tool_calls_fixture() {
    let chunks = stream(EndpointType::Chat, "chat_stream_tool_calls.sse");
    let choices: Vec<Value> = chunks.iter().map(|c| c["choices"].clone()).collect();
    assert_eq!(
        choices,
        vec![
            json!([{"index": 0, "finish_reason": null, "delta": {"role": "assistant", "content": null, "tool_calls": [
                {"index": 0, "id": "call_2492c60b528be99353043d690c5a7c8d", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}, "thought_signature": "c2lnMQ=="}]}}]),
            json!([{"index": 0, "finish_reason": null, "delta": {"role": "assistant", "content": null, "tool_calls": [
                {"index": 1, "id": "call_tokyo", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\": \"Tokyo\"}"}}]}}]),
            json!([{"index": 0, "finish_reason": "tool_calls", "delta": {"role": "assistant", "content": "", "tool_calls": null}}]),
        ]
    );
}

#[test]
fn completions_stream_fixture() {
    let chunks = stream(EndpointType::Completions, "completions_stream.sse");
    assert_eq!(
        chunks,
        vec![
            json!({"id": "pinned", "object": "text_completion.chunk", "created": NOW, "model": "gemini-2.0-flash",
                "choices": [{"index": 0, "finish_reason": null, "text": "Once upon"}], "usage": null}),
            json!({"id": "pinned", "object": "text_completion.chunk", "created": NOW, "model": "gemini-2.0-flash",
                "choices": [{"index": 0, "finish_reason": "length", "text": " a time."}], "usage": null}),
        ]
    );
}

#[test]
fn stream_ids_are_mlflows_time_based_ids() {
    let mut translator = wire("m").stream_translator(EndpointType::Chat);
    let event = SseEvent {
        event: None,
        data: r#"{"candidates": [{"content": {"parts": [{"text": "a"}]}}]}"#.to_owned(),
    };
    let EventOutcome::Chunk(chunk) = translator.event(&event).unwrap() else {
        panic!("expected a chunk")
    };
    let value: Value = serde_json::from_slice(&chunk.json).unwrap();
    let created = value["created"].as_i64().unwrap();
    assert_eq!(value["id"], json!(format!("gemini-chat-stream-{created}")));
}

#[test]
fn stream_error_events_and_garbage_end_the_stream() {
    let mut translator = wire("m").stream_translator(EndpointType::Chat);
    let event = |data: &str| SseEvent {
        event: None,
        data: data.to_owned(),
    };
    let error = translator
        .event(&event(r#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#))
        .unwrap_err();
    assert_eq!(
        (error.status, error.detail),
        (503, json!("The model is overloaded."))
    );
    let error = translator.event(&event("not json")).unwrap_err();
    assert_eq!(
        (error.status, error.kind),
        (502, ErrorKind::UpstreamProtocol)
    );
    assert!(matches!(
        translator.event(&event("[DONE]")),
        Ok(EventOutcome::Done)
    ));
}

#[test]
fn error_fixtures_map_to_mlflows_details() {
    for (status, name, message) in [
        (400, "error_invalid_key.json", "API key not valid. Please pass a valid API key."),
        (429, "error_quota.json", "You exceeded your current quota, please check your plan and billing details."),
        (404, "error_model_not_found.json", "models/gemini-9.9-ultra is not found for API version v1beta, or is not supported for generateContent."),
    ] {
        let error = crate::upstream::status_error(status, &parse(name));
        assert_eq!(
            (error.status, error.kind, error.detail),
            (status, ErrorKind::UpstreamStatus, json!(message)),
            "{name}"
        );
    }
    let echoed = crate::upstream::status_error(
        403,
        &json!({"error": {"code": 403, "message": format!("key {KEY} is suspended")}}),
    )
    .redact(&wire("m").secrets());
    assert_eq!(echoed.detail, json!("key *** is suspended"));
}

/// Which events complete a stream: the one after which every candidate seen has carried a finish
/// reason (candidates may finish in different events), or a blocked prompt's answer.
#[test]
fn the_event_that_finishes_the_last_open_candidate_is_final() {
    let mut translator = wire("m").stream_translator(EndpointType::Chat);
    let mut outcome = |data: &str| match translator.event(&SseEvent {
        event: None,
        data: data.to_owned(),
    }) {
        Ok(EventOutcome::Chunk(_)) => "chunk",
        Ok(EventOutcome::Final(_)) => "final",
        other => panic!("{other:?}"),
    };
    assert_eq!(
        outcome(
            r#"{"candidates": [{"content": {"parts": [{"text": "a"}]}, "index": 0}, {"content": {"parts": [{"text": "b"}]}, "index": 1}]}"#
        ),
        "chunk"
    );
    assert_eq!(
        outcome(
            r#"{"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}]}"#
        ),
        "chunk",
        "candidate 1 is still open"
    );
    assert_eq!(
        outcome(
            r#"{"candidates": [{"content": {"parts": [{"text": "c"}]}, "finishReason": "FINISH_REASON_UNSPECIFIED", "index": 1}]}"#
        ),
        "chunk",
        "an unspecified reason does not finish"
    );
    assert_eq!(
        outcome(
            r#"{"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS", "index": 1}]}"#
        ),
        "final"
    );
    // Anything after the end (usage) is final too: the stream stays complete.
    assert_eq!(
        outcome(r#"{"usageMetadata": {"totalTokenCount": 3}}"#),
        "final"
    );

    let mut translator = wire("m").stream_translator(EndpointType::Completions);
    let blocked = translator.event(&SseEvent {
        event: None,
        data: r#"{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}"#.to_owned(),
    });
    assert!(matches!(blocked, Ok(EventOutcome::Final(_))), "{blocked:?}");
}
