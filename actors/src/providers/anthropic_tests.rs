//! Anthropic translation tests on recorded fixtures (`tests/fixtures/anthropic/`), written after
//! Anthropic's published Messages and Text Completions references and MLflow's captured bodies.

use serde_json::{json, Value};

use super::response::{chat_response, completions_response, python_dumps};
use super::*;
use crate::config::Secret;
use crate::messages::StreamChunk;
use crate::sse::{SseDecoder, SseEvent};
use crate::upstream::{status_error, EventOutcome};

const CREATED: i64 = 1_795_271_324;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../tests/fixtures/anthropic/", $name))
    };
}

fn wire(model: &str) -> AnthropicWire {
    let config = AnthropicConfig {
        api_key: Secret::new("sk-ant-test"),
        version: "2023-06-01".to_owned(),
        api_base: "https://api.anthropic.test/v1".to_owned(),
    };
    AnthropicWire::new(&config, Some(model.to_owned()), Provider::Anthropic)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn request(kind: EndpointType, body: Value) -> UnifiedRequest {
    UnifiedRequest::validate(kind, body).unwrap()
}

/// The upstream body for a unified request fixture, as text.
fn upstream_body(model: &str, kind: EndpointType, input: &str) -> (UpstreamRequest, String) {
    let upstream = wire(model).request(&request(kind, parse(input))).unwrap();
    let body = String::from_utf8(upstream.body.clone()).unwrap();
    (upstream, body)
}

fn refused(kind: EndpointType, body: Value) -> GatewayError {
    wire("claude-3-5-sonnet-latest")
        .request(&request(kind, body))
        .unwrap_err()
}

fn events(sse: &str) -> Vec<SseEvent> {
    let mut decoder = SseDecoder::new();
    let mut events = decoder.push(sse.as_bytes()).unwrap();
    events.extend(decoder.finish());
    events
}

/// Every chunk a stream fixture produces, and how it ended.
fn run_stream(sse: &str) -> (Vec<StreamChunk>, Result<bool, GatewayError>) {
    let mut stream = AnthropicStream::new("anthropic", CREATED);
    let mut chunks = Vec::new();
    for event in events(sse) {
        match stream.event(&event) {
            Ok(EventOutcome::Chunk(chunk) | EventOutcome::Final(chunk)) => chunks.push(chunk),
            Ok(EventOutcome::Skip) => {}
            Ok(EventOutcome::Done) => return (chunks, Ok(true)),
            Err(error) => return (chunks, Err(error)),
        }
    }
    (chunks, Ok(false))
}

/// The error of a translation that must fail (`EventOutcome` has no `Debug` for `unwrap_err`).
fn failure(outcome: Result<EventOutcome, GatewayError>) -> GatewayError {
    match outcome {
        Err(error) => error,
        Ok(_) => panic!("expected the event to fail"),
    }
}

fn chunk_lines(chunks: &[StreamChunk]) -> Vec<String> {
    chunks
        .iter()
        .map(|c| String::from_utf8(c.json.to_vec()).unwrap())
        .collect()
}

#[test]
fn chat_request_matches_mlflows_captured_body() {
    let (upstream, body) = upstream_body(
        "claude-3-5-sonnet-latest",
        EndpointType::Chat,
        fixture!("chat_request.json"),
    );
    assert_eq!(body, fixture!("chat_request.upstream.json").trim());
    assert_eq!(upstream.url, "https://api.anthropic.test/v1/messages");
    assert_eq!(
        upstream.headers,
        vec![
            ("x-api-key", "sk-ant-test".to_owned()),
            ("anthropic-version", "2023-06-01".to_owned())
        ]
    );
}

#[test]
fn chat_request_converts_images_json_mode_and_named_tool_choice() {
    let (_, body) = upstream_body(
        "claude-3-5-sonnet-latest",
        EndpointType::Chat,
        fixture!("chat_request_multimodal.json"),
    );
    assert_eq!(
        body,
        fixture!("chat_request_multimodal.upstream.json").trim()
    );
}

#[test]
fn chat_request_json_schema_becomes_strict_output_config() {
    let (_, body) = upstream_body(
        "claude-3-5-sonnet-latest",
        EndpointType::Chat,
        fixture!("chat_request_json_schema.json"),
    );
    assert_eq!(
        body,
        fixture!("chat_request_json_schema.upstream.json").trim()
    );
}

#[test]
fn completions_request_matches_mlflows_captured_body() {
    let (upstream, body) = upstream_body(
        "claude-instant-1",
        EndpointType::Completions,
        fixture!("completions_request.json"),
    );
    assert_eq!(body, fixture!("completions_request.upstream.json").trim());
    assert_eq!(upstream.url, "https://api.anthropic.test/v1/complete");
}

#[test]
fn chat_response_fixture() {
    let response = chat_response(parse(fixture!("chat_response.json")), "anthropic", CREATED);
    assert_eq!(
        serde_json::to_string(&response.unwrap()).unwrap(),
        fixture!("chat_response.unified.json").trim()
    );
}

#[test]
fn chat_response_with_thinking_cache_usage_and_unicode_tool_input() {
    let body = parse(fixture!("chat_response_thinking.json"));
    let response = chat_response(body, "anthropic", CREATED).unwrap();
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        fixture!("chat_response_thinking.unified.json").trim()
    );
}

#[test]
fn completions_response_fixture() {
    let response = completions_response(parse(fixture!("completions_response.json")), CREATED);
    assert_eq!(
        serde_json::to_string(&response.unwrap()).unwrap(),
        fixture!("completions_response.unified.json").trim()
    );
    let length = completions_response(
        json!({"completion": "x", "stop_reason": "max_tokens", "model": "m"}),
        CREATED,
    )
    .unwrap();
    assert_eq!(length.choices[0].finish_reason.as_deref(), Some("length"));
}

#[test]
fn chat_stream_fixture_text_then_tool_call() {
    let (chunks, end) = run_stream(fixture!("chat_stream.sse"));
    assert!(matches!(end, Ok(true)), "message_stop ends the stream");
    let expected: Vec<&str> = fixture!("chat_stream.unified.jsonl").lines().collect();
    assert_eq!(chunk_lines(&chunks), expected);
    // Only the message_delta chunk carries usage, for the unified body and for accounting.
    let usage: Vec<_> = chunks.iter().map(|c| c.usage).collect();
    assert!(usage[..6].iter().all(Option::is_none));
    assert_eq!(usage[6], Some(Usage::new(Some(25), Some(15))));
}

#[test]
fn chat_stream_fixture_thinking_and_cache_usage() {
    let (chunks, end) = run_stream(fixture!("chat_stream_cache_thinking.sse"));
    assert!(matches!(end, Ok(true)));
    let expected: Vec<&str> = fixture!("chat_stream_cache_thinking.unified.jsonl")
        .lines()
        .collect();
    assert_eq!(chunk_lines(&chunks), expected);
}

#[test]
fn chat_stream_error_event_fails_the_stream_with_anthropics_status() {
    let (chunks, end) = run_stream(fixture!("chat_stream_error.sse"));
    assert_eq!(chunks.len(), 2);
    let error = end.unwrap_err();
    assert_eq!(
        (error.status, error.kind, error.detail),
        (529, ErrorKind::UpstreamStatus, json!("Overloaded"))
    );
}

#[test]
fn stream_events_before_message_start_or_not_json_are_protocol_errors() {
    let mut stream = AnthropicStream::new("anthropic", CREATED);
    let event = |data: &str| SseEvent {
        event: None,
        data: data.to_owned(),
    };
    let early = failure(stream.event(&event(
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
    )));
    assert_eq!(
        (early.status, early.kind),
        (502, ErrorKind::UpstreamProtocol)
    );
    let garbage = failure(stream.event(&event("{not json")));
    assert_eq!(garbage.kind, ErrorKind::UpstreamProtocol);
    assert!(matches!(stream.event(&event("")), Ok(EventOutcome::Skip)));
    assert!(matches!(
        stream.event(&event(r#"{"type":"some_future_event"}"#)),
        Ok(EventOutcome::Skip)
    ));
}

/// Anthropic's documented error statuses and bodies, through the shared upstream mapping: the
/// status passes through and the detail is `error.message`.
#[test]
fn upstream_error_statuses_keep_status_and_message() {
    let table: [(u16, &str, &str); 8] = [
        (
            400,
            fixture!("error_400.json"),
            "messages: at least one message is required",
        ),
        (401, fixture!("error_401.json"), "invalid x-api-key"),
        (
            403,
            fixture!("error_403.json"),
            "Your API key does not have permission to use the specified resource.",
        ),
        (404, fixture!("error_404.json"), "model: claude-9"),
        (
            413,
            fixture!("error_413.json"),
            "Request exceeds the maximum allowed number of bytes.",
        ),
        (
            429,
            fixture!("error_429.json"),
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
        (500, fixture!("error_500.json"), "Internal server error"),
        (529, fixture!("error_529.json"), "Overloaded"),
    ];
    for (status, body, message) in table {
        let error = status_error(status, &parse(body));
        assert_eq!(
            (error.status, error.kind, error.detail),
            (status, ErrorKind::UpstreamStatus, json!(message))
        );
        // The same body arriving as a stream `error` event maps to the same status.
        let streamed = response::stream_error(&parse(body));
        assert_eq!((streamed.status, streamed.detail), (status, json!(message)));
    }
}

#[test]
fn chat_parameter_rules_use_mlflows_messages() {
    let chat = |extra: Value| {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        refused(EndpointType::Chat, body)
    };
    let cases = [
        (
            json!({"n": 2}),
            "'n' must be '1' for the Anthropic provider. Received value: '{n}'.",
        ),
        (
            json!({"temperature": 0.5, "top_p": 0.5}),
            "Cannot set both 'temperature' and 'top_p' parameters.",
        ),
        (
            json!({"max_tokens": 1_000_001}),
            "Invalid value for max_tokens: cannot exceed 1000000.",
        ),
        (
            json!({"max_completion_tokens": 2_000_000}),
            "Invalid value for max_tokens: cannot exceed 1000000.",
        ),
        (
            json!({"tools": [{"type": "uc_function", "uc_function": {"name": "f"}}]}),
            "Only function calling tool is supported, but received tool type uc_function",
        ),
    ];
    for (extra, message) in cases {
        let error = chat(extra.clone());
        assert_eq!(
            (error.status, error.kind, error.detail),
            (422, ErrorKind::InvalidParameter, json!(message)),
            "{extra}"
        );
    }
}

#[test]
fn completions_rules_and_unsupported_routes() {
    let n = refused(EndpointType::Completions, json!({"prompt": "x", "n": 3}));
    assert_eq!(
        n.detail,
        json!("'n' must be '1' for the Anthropic provider. Received value: '3'.")
    );
    let top_p = refused(
        EndpointType::Completions,
        json!({"prompt": "x", "top_p": 0.2}),
    );
    assert_eq!(top_p.detail, json!("Cannot set both 'temperature' and 'top_p' parameters. Please use only the temperature parameter for your query."));
    let stream = refused(
        EndpointType::Completions,
        json!({"prompt": "x", "stream": true, "top_p": 0.2}),
    );
    assert_eq!(
        (stream.status, stream.detail),
        (
            501,
            json!("The completions streaming route is not implemented for Anthropic models.")
        )
    );
    let embeddings = refused(EndpointType::Embeddings, json!({"input": "x"}));
    assert_eq!(
        (embeddings.status, embeddings.detail),
        (
            501,
            json!("The embeddings route is not implemented for Anthropic models.")
        )
    );
}

#[test]
fn completions_prompt_framing() {
    assert_eq!(human_prompt("Human: hi"), "\n\nHuman: hi\n\nAssistant:");
    assert_eq!(
        human_prompt("\n\nHuman: hi\n\nAssistant:"),
        "\n\nHuman: hi\n\nAssistant:"
    );
    assert_eq!(human_prompt("hi"), "\n\nHuman: hi\n\nAssistant:");
}

#[test]
fn free_form_objects_skip_structured_output_and_list_system_content_becomes_blocks() {
    let (_, body) = upstream_body(
        "m",
        EndpointType::Chat,
        r#"{"messages": [
            {"role": "system", "content": [{"type": "text", "text": "cached", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "plain"},
            {"role": "user", "content": "hi"}],
          "response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": {"type": "object", "properties": {"tags": {"type": "object"}}}}}}"#,
    );
    assert_eq!(
        body,
        r#"{"messages":[{"role":"user","content":"hi"}],"model":"m","max_tokens":8192,"system":[{"type":"text","text":"cached","cache_control":{"type":"ephemeral"}},{"type":"text","text":"plain"}]}"#
    );
}

#[test]
fn assistant_tool_arguments_must_be_json() {
    let error = refused(
        EndpointType::Chat,
        json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
        ]}),
    );
    assert_eq!(
        (error.status, error.kind),
        (422, ErrorKind::InvalidParameter)
    );
    let (_, body) = upstream_body(
        "m",
        EndpointType::Chat,
        r#"{"messages": [{"role": "assistant", "content": "kept? no", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}]}]}"#,
    );
    assert_eq!(
        body,
        r#"{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}],"model":"m","max_tokens":8192}"#
    );
}

#[test]
fn python_dumps_matches_json_dumps_defaults() {
    assert_eq!(
        python_dumps(&json!({"a": [1, {"b": null}], "c": "é\u{1F600}\u{7f}\"\n"})),
        r#"{"a": [1, {"b": null}], "c": "\u00e9\ud83d\ude00\u007f\"\n"}"#
    );
    assert_eq!(python_dumps(&json!({})), "{}");
}

#[test]
fn base64_data_urls() {
    assert_eq!(
        parse_base64_data_url("data:image/jpeg;base64,AAA="),
        Some(("image/jpeg", "AAA="))
    );
    assert_eq!(parse_base64_data_url("data:image/jpeg,AAA="), None);
    assert_eq!(parse_base64_data_url("data:;base64,AAA="), None);
    assert_eq!(parse_base64_data_url("https://x/y.png"), None);
}

/// Usage counts are the upstream's numbers: sums past `u64::MAX` saturate instead of panicking
/// (overflow checks) or wrapping to a tiny count that token budgets would undercharge.
#[test]
fn huge_usage_counts_saturate() {
    let mut body = parse(fixture!("chat_response.json"));
    body["usage"] = json!({
        "input_tokens": u64::MAX,
        "output_tokens": 1,
        "cache_read_input_tokens": 1,
        "cache_creation_input_tokens": 1,
    });
    let response = chat_response(body, "anthropic", CREATED).unwrap();
    let usage = serde_json::to_value(&response.usage).unwrap();
    assert_eq!(usage["prompt_tokens"], json!(u64::MAX));
    assert_eq!(usage["total_tokens"], json!(u64::MAX));
}
