//! Cohere translation tests: one test per fixture in `tests/fixtures/cohere/` (shaped after
//! Cohere's v1 reference), MLflow's parameter rules, and the error mapping table.

use super::*;
use crate::config::Secret;
use crate::framing::{FrameDecoder, Framing};

const KEY: &str = "sk-canary-cohere-unit";
const NOW: i64 = 1_700_000_000;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../tests/fixtures/cohere/", $name))
    };
}

fn wire(model: &str) -> CohereWire {
    let config = CohereConfig {
        api_key: Secret::new(KEY),
        api_base: "https://api.cohere.ai/v1".to_owned(),
    };
    CohereWire::new(&config, Some(model.to_owned()), Provider::Cohere)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn sent(model: &str, kind: EndpointType, body: Value) -> Result<UpstreamRequest, GatewayError> {
    wire(model).request(&UnifiedRequest::validate(kind, body).unwrap())
}

fn body_text(request: UpstreamRequest) -> String {
    String::from_utf8(request.body).unwrap()
}

#[test]
fn chat_request_fixture_is_mlflows_capture() {
    let request = sent(
        "command",
        EndpointType::Chat,
        json!({"temperature": 0.5, "messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"}, {"role": "tool", "content": "dropped"},
        {"role": "user", "content": "q2"}]}),
    )
    .unwrap();
    assert_eq!(request.url, "https://api.cohere.ai/v1/chat");
    assert_eq!(
        request.headers,
        vec![("authorization", format!("Bearer {KEY}"))]
    );
    assert_eq!(
        body_text(request),
        json(fixture!("chat_request.json")).to_string()
    );
}

#[test]
fn generate_request_fixture_is_mlflows_capture() {
    let request = sent(
        "command",
        EndpointType::Completions,
        json!({"prompt": "This is a test",
        "stop": ["foo"], "max_tokens": 20, "temperature": 0.4}),
    )
    .unwrap();
    assert_eq!(request.url, "https://api.cohere.ai/v1/generate");
    assert_eq!(
        body_text(request),
        json(fixture!("generate_request.json")).to_string()
    );
}

#[test]
fn embed_request_fixture() {
    let request = sent(
        "embed-english-v3.0",
        EndpointType::Embeddings,
        json!({"input": ["hello", "world"], "input_type": "search_document"}),
    )
    .unwrap();
    assert_eq!(request.url, "https://api.cohere.ai/v1/embed");
    assert_eq!(
        body_text(request),
        json(fixture!("embed_request.json")).to_string()
    );
}

#[test]
fn parameter_rules_are_mlflows() {
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            EndpointType::Chat,
            json!({"messages": user, "n": 2}),
            422,
            "Parameter n must be 1 for Cohere chat, got 2.",
        ),
        (
            EndpointType::Chat,
            json!({"messages": user, "stop": ["x"]}),
            422,
            "Parameter stop is not supported for Cohere chat.",
        ),
        (
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
            422,
            "Last message must be from user, got assistant.",
        ),
        (
            EndpointType::Completions,
            json!({"prompt": "p", "stop_sequences": ["x"]}),
            400,
            "Invalid parameter stop_sequences. Use stop instead.",
        ),
        (
            EndpointType::Completions,
            json!({"prompt": "p", "num_generations": 2}),
            400,
            "Invalid parameter num_generations. Use n instead.",
        ),
        (
            EndpointType::Embeddings,
            json!({"input": "x", "texts": ["y"]}),
            422,
            "Invalid parameter texts. Use input instead.",
        ),
    ];
    for (kind, body, status, message) in cases {
        let error = sent("command", kind, body).unwrap_err();
        assert_eq!(
            (error.status, error.kind, error.detail),
            (status, ErrorKind::InvalidParameter, json!(message))
        );
    }
    // A zero temperature is not scaled; streams ask Cohere to stream.
    let request = sent(
        "command",
        EndpointType::Completions,
        json!({"prompt": "p", "temperature": 0.0, "stream": true}),
    )
    .unwrap();
    assert_eq!(
        body_text(request),
        r#"{"model":"command","num_generations":1,"stream":true,"temperature":0.0,"prompt":"p"}"#
    );
}

#[test]
fn chat_response_fixture() {
    let response = chat_response(
        &json(fixture!("chat_response.json")),
        "command-r",
        "cohere",
        NOW,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"id":"f2b8e6a4-8c1d-4b43-9a6e-0d3f5c7b2e91","object":"chat.completion","created":1700000000,"model":"command-r","choices":[{"index":0,"message":{"role":"assistant","content":"LLMs are neural networks trained on large amounts of text.","tool_calls":null,"refusal":null},"finish_reason":null}],"usage":{"prompt_tokens":71,"completion_tokens":11,"total_tokens":82},"provider":"cohere"}"#
    );
}

#[test]
fn chat_response_token_count_fixture() {
    let response = chat_response(
        &json(fixture!("chat_response_token_count.json")),
        "command",
        "cohere",
        NOW,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&response.usage).unwrap(),
        json!({"prompt_tokens": 83, "completion_tokens": 63, "total_tokens": 146})
    );
    assert_eq!(response.id.as_deref(), Some("0c8b5a1e-legacy"));
}

#[test]
fn generate_response_fixture() {
    let response =
        completions_response(&json(fixture!("generate_response.json")), "command", NOW).unwrap();
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"id":null,"object":"text_completion","created":1700000000,"model":"command","choices":[{"index":0,"text":" Hi there! How can I assist you today?","finish_reason":null},{"index":1,"text":" Hello! What can I do for you?","finish_reason":null}],"usage":{"prompt_tokens":null,"completion_tokens":null,"total_tokens":null}}"#
    );
}

#[test]
fn embed_response_fixture() {
    let response =
        embeddings_response(&json(fixture!("embed_response.json")), "embed-english-v3.0").unwrap();
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"object":"list","data":[{"object":"embedding","embedding":[0.016296387,-0.008354187],"index":0},{"object":"embedding","embedding":[-0.0390625,0.024353027],"index":1}],"model":"embed-english-v3.0","usage":{"prompt_tokens":null,"total_tokens":null}}"#
    );
}

/// Runs a `.jsonl` fixture through the JSON-lines decoder and the translator, pinning `created`.
fn stream(kind: EndpointType, text: &str) -> Vec<Value> {
    let wire = wire("command");
    let mut decoder = FrameDecoder::new(Framing::JsonLines);
    let mut events = decoder.push(text.as_bytes()).unwrap();
    events.extend(decoder.finish());
    events
        .iter()
        .filter_map(|event| match wire.stream_event(kind, event).unwrap() {
            EventOutcome::Chunk(chunk) | EventOutcome::Final(chunk) => {
                let mut value: Value = serde_json::from_slice(&chunk.json).unwrap();
                value["created"] = json!(NOW);
                Some(value)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn chat_stream_fixture() {
    let chunk = |id: Value, content: &str, finish: Value, usage: Value| {
        json!({"id": id,
        "object": "chat.completion.chunk", "created": NOW, "model": "command",
        "choices": [{"index": 0, "finish_reason": finish, "delta": {"role": null, "content": content, "tool_calls": null}}],
        "usage": usage, "provider": "cohere"})
    };
    let none = json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null});
    assert_eq!(
        stream(EndpointType::Chat, fixture!("chat_stream.jsonl")),
        vec![
            chunk(Value::Null, "How", Value::Null, none.clone()),
            chunk(Value::Null, " are you", Value::Null, none),
            json!({"id": "f2b8e6a4-8c1d-4b43-9a6e-0d3f5c7b2e91", "object": "chat.completion.chunk", "created": NOW,
            "model": "command", "choices": [{"index": 0, "finish_reason": "COMPLETE", "delta": {"role": null, "content": null, "tool_calls": null}}],
            "usage": {"prompt_tokens": 67, "completion_tokens": 3, "total_tokens": 70}, "provider": "cohere"}),
        ]
    );
}

#[test]
fn generate_stream_fixture() {
    let none = json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null});
    let chunk = |id: Value, index: u32, text: Value, finish: Value| {
        json!({"id": id,
        "object": "text_completion_chunk", "created": NOW, "model": "command",
        "choices": [{"index": index, "finish_reason": finish, "text": text}], "usage": none})
    };
    assert_eq!(
        stream(EndpointType::Completions, fixture!("generate_stream.jsonl")),
        vec![
            chunk(Value::Null, 0, json!(" Hi"), Value::Null),
            chunk(Value::Null, 1, json!(" Hello"), Value::Null),
            chunk(
                json!("b32a70c5-8c91-4f96-958f-d942801ed22f"),
                0,
                Value::Null,
                json!("COMPLETE")
            ),
        ]
    );
}

#[test]
fn broken_stream_lines_end_the_stream() {
    let wire = wire("command");
    let line = |data: &str| SseEvent {
        event: None,
        data: data.to_owned(),
    };
    let error = wire
        .stream_event(EndpointType::Chat, &line("{not json"))
        .unwrap_err();
    assert_eq!(
        (error.status, error.kind),
        (502, ErrorKind::UpstreamProtocol)
    );
    let error = wire
        .stream_event(EndpointType::Chat, &line(r#"{"message":"internal error"}"#))
        .unwrap_err();
    assert_eq!(error.detail, json!("internal error"));
}

#[test]
fn error_fixtures_map_to_mlflows_details() {
    for (status, text) in [
        (401, fixture!("error_unauthorized.json")),
        (429, fixture!("error_too_many_requests.json")),
        (404, fixture!("error_not_found.json")),
    ] {
        // Cohere's errors have no `error` key, so MLflow's detail is the whole body.
        let body = json(text);
        let error = crate::upstream::status_error(status, &body);
        assert_eq!(
            (error.status, error.kind, error.detail),
            (status, ErrorKind::UpstreamStatus, body)
        );
    }
    let echoed =
        crate::upstream::status_error(401, &json!({"message": format!("invalid api token {KEY}")}))
            .redact(&wire("command").secrets());
    assert_eq!(echoed.detail, json!({"message": "invalid api token ***"}));
}

/// `meta.tokens` are the upstream's numbers: their total saturates instead of overflowing.
#[test]
fn huge_token_counts_saturate() {
    let mut body = json(fixture!("chat_response.json"));
    body["meta"]["tokens"] = json!({"input_tokens": u64::MAX, "output_tokens": 11});
    let response = chat_response(&body, "command", "cohere", NOW).unwrap();
    assert_eq!(
        serde_json::to_value(&response.usage).unwrap()["total_tokens"],
        json!(u64::MAX)
    );
}

/// Only the line with `is_finished: true` completes a stream, on both route types.
#[test]
fn the_is_finished_line_is_final() {
    let wire = wire("command");
    for (kind, text) in [
        (EndpointType::Chat, fixture!("chat_stream.jsonl")),
        (EndpointType::Completions, fixture!("generate_stream.jsonl")),
    ] {
        let outcomes: Vec<&str> = text
            .lines()
            .filter_map(|line| {
                let event = SseEvent {
                    event: None,
                    data: line.to_owned(),
                };
                match wire.stream_event(kind, &event).unwrap() {
                    EventOutcome::Chunk(_) => Some("chunk"),
                    EventOutcome::Final(_) => Some("final"),
                    EventOutcome::Skip => None,
                    EventOutcome::Done => Some("done"),
                }
            })
            .collect();
        let (last, before) = outcomes.split_last().unwrap();
        assert_eq!(*last, "final", "{kind:?}: {outcomes:?}");
        assert!(
            before.iter().all(|o| *o == "chunk"),
            "{kind:?}: {outcomes:?}"
        );
    }
}
