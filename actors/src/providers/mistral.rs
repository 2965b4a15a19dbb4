//! Mistral: chat and embeddings on Mistral's OpenAI-like API, and completions served
//! through its chat API (the prompt as one user message). Pure code: no HTTP, and `created` for
//! completions (Mistral's chat body is reused, MLflow stamps it with now) is passed in.
//!
//! The small helpers at the bottom (OpenAI-like stream events that end at `[DONE]`, the
//! configured model first in the body) are shared with `togetherai`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{EndpointType, MistralConfig, Provider};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::{StreamChunk, Usage};
use crate::schema::{
    ChatChoice, ChatChunk, ChatChunkChoice, ChatDelta, ChatResponse, ChatUsage, CompletionsChoice,
    CompletionsResponse, CompletionsUsage, Embedding, EmbeddingObject, EmbeddingsResponse,
    EmbeddingsUsage, FunctionCall, ResponseMessage, ToolCall, ToolCallDelta, UnifiedRequest,
};
use crate::sse::SseEvent;
use crate::upstream::{EventOutcome, UpstreamRequest};

use super::openai::join_url;
use crate::providers::wire_json::{
    request_body, request_object, response_body, unix_now, unreadable_because,
};

/// Mistral's temperature range is 0–1 where the unified one is 0–2 (MLflow halves it for
/// completions only).
const TEMPERATURE_SCALE: f64 = 0.5;

/// One endpoint's Mistral translation.
#[derive(Debug, Clone)]
pub struct MistralWire {
    config: MistralConfig,
    model: Option<String>,
    provider: Provider,
}

impl MistralWire {
    pub fn new(config: &MistralConfig, model: Option<String>, provider: Provider) -> Self {
        Self {
            config: config.clone(),
            model,
            provider,
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        vec![self.config.api_key.expose()]
    }

    /// The unified request as Mistral's HTTP request; a completions stream is a 501.
    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let model = self.model.as_deref();
        let (path, body) = match request {
            UnifiedRequest::Chat(chat) => {
                let mut body = payload(chat)?;
                drop_participant_names(&mut body);
                ("chat/completions", model_first(model, body))
            }
            UnifiedRequest::Completions(completions) => {
                if request.is_stream() {
                    return Err(GatewayError::streaming_not_supported(
                        EndpointType::Completions.route_word(),
                        self.provider.display_name(),
                    ));
                }
                let mut body = payload(completions)?;
                body.insert("model".to_owned(), Value::from(model));
                body.shift_remove("stop");
                body.shift_remove("n");
                body.shift_remove("prompt");
                let mut message = Map::new();
                message.insert("role".to_owned(), Value::from("user"));
                message.insert(
                    "content".to_owned(),
                    Value::from(completions.prompt.clone()),
                );
                body.insert(
                    "messages".to_owned(),
                    Value::Array(vec![Value::Object(message)]),
                );
                if let Some(t) = completions.common.temperature {
                    body.insert("temperature".to_owned(), Value::from(TEMPERATURE_SCALE * t));
                }
                ("chat/completions", body)
            }
            UnifiedRequest::Embeddings(embeddings) => {
                ("embeddings", model_first(model, payload(embeddings)?))
            }
        };
        Ok(UpstreamRequest {
            url: join_url(&self.config.api_base, path),
            headers: bearer(self.config.api_key.expose()),
            body: request_body(&body)?,
        })
    }

    /// A whole upstream JSON body as the serialised unified response and its token usage.
    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        let model = self.model.as_deref().unwrap_or_default();
        match kind {
            EndpointType::Chat => {
                let response = chat_response(body, self.provider.as_str())?;
                let usage = Usage::new(
                    response.usage.prompt_tokens,
                    response.usage.completion_tokens,
                );
                Ok((response_body(&response)?, usage))
            }
            EndpointType::Completions => {
                let response = completions_response(body, model, unix_now())?;
                let usage = Usage::new(
                    response.usage.prompt_tokens,
                    response.usage.completion_tokens,
                );
                Ok((response_body(&response)?, usage))
            }
            EndpointType::Embeddings => {
                let response = embeddings_response(body, model)?;
                Ok((
                    response_body(&response)?,
                    Usage::new(response.usage.prompt_tokens, None),
                ))
            }
        }
    }

    /// One chat stream event. The chunk's `usage` is always null, as in MLflow; the upstream's
    /// counts still reach the gateway's own token accounting.
    pub fn stream_event(&self, event: &SseEvent) -> Result<EventOutcome, GatewayError> {
        let Some(value) = stream_data(event)? else {
            return Ok(EventOutcome::Done);
        };
        if value.is_null() {
            return Ok(EventOutcome::Skip);
        }
        let usage = three_counts(value.get("usage")).map(|u| Usage::new(u.0, u.1));
        let chunk = chat_chunk(value, self.provider.as_str())?;
        Ok(EventOutcome::Chunk(StreamChunk {
            json: response_body(&chunk)?,
            usage,
        }))
    }
}

/// Mistral refuses `name` on system, user and assistant messages (422 `extra_forbidden`) and
/// documents it only on tool messages, so it is kept there alone. (MLflow drops every `name`;
/// other providers get it: Switchyard forwards message names, where MLflow drops them.)
fn drop_participant_names(body: &mut Map<String, Value>) {
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        for message in messages.iter_mut().filter_map(Value::as_object_mut) {
            if message.get("role").and_then(Value::as_str) != Some("tool") {
                message.shift_remove("name");
            }
        }
    }
}

#[derive(Deserialize)]
struct WireChat {
    id: String,
    object: String,
    created: i64,
    model: String,
    choices: Vec<WireChoice>,
    usage: RequiredUsage,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default = "assistant")]
    role: String,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

fn assistant() -> String {
    "assistant".to_owned()
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    function: WireFunction,
}

#[derive(Deserialize, Default)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Value,
}

impl WireFunction {
    /// Mistral documents `arguments` as a string or an object; the unified shape is a string.
    fn into_call(self) -> FunctionCall {
        FunctionCall {
            name: self.name,
            arguments: match self.arguments {
                Value::Null => None,
                Value::String(text) => Some(text),
                other => Some(other.to_string()),
            },
        }
    }
}

/// The three counters, all required where MLflow indexes them.
#[derive(Deserialize)]
pub(super) struct RequiredUsage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

/// Message content as text: a string, or the text parts of Mistral's chunk list (reasoning
/// models answer with `[{"type":"thinking",...},{"type":"text","text":...}]`), joined.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    }
}

/// Chat: choices renumbered by position, usage limited to the three counters.
pub fn chat_response(body: Value, provider: &str) -> Result<ChatResponse, GatewayError> {
    let wire: WireChat =
        serde_json::from_value(body).map_err(|e| unreadable_because("chat response", e))?;
    Ok(ChatResponse {
        id: Some(wire.id),
        object: wire.object,
        created: wire.created,
        model: wire.model,
        choices: wire
            .choices
            .into_iter()
            .zip(0u32..)
            .map(|(choice, index)| ChatChoice {
                index,
                message: ResponseMessage {
                    role: choice.message.role,
                    content: content_text(&choice.message.content),
                    tool_calls: choice.message.tool_calls.map(|calls| {
                        calls
                            .into_iter()
                            .map(|call| ToolCall {
                                id: call.id.unwrap_or_default(),
                                kind: call.kind.unwrap_or_else(|| "function".to_owned()),
                                function: call.function.into_call(),
                                thought_signature: None,
                            })
                            .collect()
                    }),
                    refusal: None,
                },
                finish_reason: choice.finish_reason,
            })
            .collect(),
        usage: ChatUsage::new(
            wire.usage.prompt_tokens,
            wire.usage.completion_tokens,
            wire.usage.total_tokens,
        ),
        provider: provider.to_owned(),
    })
}

#[derive(Deserialize)]
struct WireCompletions {
    choices: Vec<WireChoice>,
    usage: RequiredUsage,
}

/// Completions (answered by the chat API): no id, `created` now, the configured model.
pub fn completions_response(
    body: Value,
    model: &str,
    created: i64,
) -> Result<CompletionsResponse, GatewayError> {
    let wire: WireCompletions =
        serde_json::from_value(body).map_err(|e| unreadable_because("completions response", e))?;
    Ok(CompletionsResponse {
        id: None,
        object: "text_completion".to_owned(),
        created,
        model: model.to_owned(),
        choices: wire
            .choices
            .into_iter()
            .zip(0u32..)
            .map(|(choice, index)| CompletionsChoice {
                index,
                text: content_text(&choice.message.content).unwrap_or_default(),
                finish_reason: choice.finish_reason,
            })
            .collect(),
        usage: CompletionsUsage {
            prompt_tokens: wire.usage.prompt_tokens,
            completion_tokens: wire.usage.completion_tokens,
            total_tokens: wire.usage.total_tokens,
        },
    })
}

#[derive(Deserialize)]
struct WireEmbeddings {
    data: Vec<WireEmbedding>,
    usage: WireEmbeddingsUsage,
}

#[derive(Deserialize)]
pub(super) struct WireEmbedding {
    pub embedding: Embedding,
    pub index: u32,
}

#[derive(Deserialize)]
struct WireEmbeddingsUsage {
    prompt_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

/// Embeddings: upstream indexes kept (not renumbered), the configured model.
pub fn embeddings_response(body: Value, model: &str) -> Result<EmbeddingsResponse, GatewayError> {
    let wire: WireEmbeddings =
        serde_json::from_value(body).map_err(|e| unreadable_because("embeddings response", e))?;
    Ok(EmbeddingsResponse {
        object: "list".to_owned(),
        data: embedding_objects(wire.data),
        model: model.to_owned(),
        usage: EmbeddingsUsage {
            prompt_tokens: wire.usage.prompt_tokens,
            total_tokens: wire.usage.total_tokens,
        },
    })
}

pub(super) fn embedding_objects(data: Vec<WireEmbedding>) -> Vec<EmbeddingObject> {
    data.into_iter()
        .map(|item| EmbeddingObject {
            object: "embedding".to_owned(),
            embedding: item.embedding,
            index: item.index,
        })
        .collect()
}

#[derive(Deserialize)]
struct WireChunk {
    id: String,
    object: String,
    created: i64,
    model: String,
    choices: Vec<WireChunkChoice>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    index: u32,
    #[serde(default)]
    finish_reason: Option<String>,
    delta: WireDelta,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

/// One chat chunk: indexes copied, `usage` null.
pub fn chat_chunk(value: Value, provider: &str) -> Result<ChatChunk, GatewayError> {
    let wire: WireChunk =
        serde_json::from_value(value).map_err(|e| unreadable_because("stream event", e))?;
    Ok(ChatChunk {
        id: Some(wire.id),
        object: wire.object,
        created: wire.created,
        model: wire.model,
        choices: wire
            .choices
            .into_iter()
            .map(|choice| ChatChunkChoice {
                index: choice.index,
                finish_reason: choice.finish_reason,
                delta: ChatDelta {
                    role: choice.delta.role,
                    content: content_text(&choice.delta.content),
                    tool_calls: choice.delta.tool_calls.map(|calls| {
                        calls
                            .into_iter()
                            .zip(0u32..)
                            .map(|(call, position)| ToolCallDelta {
                                index: call.index.unwrap_or(position),
                                id: call.id,
                                kind: call.kind,
                                function: call.function.into_call(),
                                thought_signature: None,
                            })
                            .collect()
                    }),
                },
            })
            .collect(),
        usage: None,
        provider: provider.to_owned(),
    })
}

// ------------------------------------------------------------------------------------------------
// Helpers shared with `togetherai`.

pub(super) fn bearer(key: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {key}"))]
}

/// The unified payload as MLflow dumps it (nulls dropped, extras kept), without a client
/// `model`: the handlers refuse or consume it, and the configured model is the one sent.
pub(super) fn payload<T: Serialize>(request: &T) -> Result<Map<String, Value>, GatewayError> {
    let mut map = request_object(request)?;
    map.shift_remove("model");
    Ok(map)
}

/// `{"model": <configured>, **payload}`.
pub(super) fn model_first(model: Option<&str>, payload: Map<String, Value>) -> Map<String, Value> {
    let mut body = Map::with_capacity(payload.len() + 1);
    body.insert("model".to_owned(), Value::from(model));
    body.extend(payload);
    body
}

/// An OpenAI-like stream event's JSON: `None` at `[DONE]` (the end), `Some(Null)` for an empty
/// event, an error for an `error` object or data that is not JSON (MLflow aborts the stream on
/// a parse error here, unlike for OpenAI).
pub(super) fn stream_data(event: &SseEvent) -> Result<Option<Value>, GatewayError> {
    let data = event.data.trim();
    if data.is_empty() {
        return Ok(Some(Value::Null));
    }
    if data == "[DONE]" {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_str(data).map_err(|e| unreadable_because("stream event", e))?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        let message = error
            .get("message")
            .cloned()
            .unwrap_or_else(|| error.clone());
        return Err(GatewayError::new(ErrorKind::UpstreamStatus, 502, message));
    }
    Ok(Some(value))
}

/// `(prompt_tokens, completion_tokens)` of an upstream usage object, when there is one.
pub(super) fn three_counts(usage: Option<&Value>) -> Option<(Option<u64>, Option<u64>)> {
    let usage = usage.filter(|u| u.is_object())?;
    let count = |key: &str| usage.get(key).and_then(Value::as_u64);
    Some((count("prompt_tokens"), count("completion_tokens")))
}

#[cfg(test)]
mod tests {
    //! Fixtures in `tests/fixtures/mistral/`, after Mistral's API reference and MLflow's captures.

    use super::*;
    use crate::config::Secret;
    use crate::sse::SseDecoder;
    use crate::upstream::status_error;
    use serde_json::json;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../../tests/fixtures/mistral/", $name))
        };
    }

    fn wire(model: &str) -> MistralWire {
        let config = MistralConfig {
            api_key: Secret::new("sk-mistral-test"),
            api_base: "https://api.mistral.test/v1".to_owned(),
        };
        MistralWire::new(&config, Some(model.to_owned()), Provider::Mistral)
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn upstream(
        model: &str,
        kind: EndpointType,
        input: &str,
    ) -> Result<UpstreamRequest, GatewayError> {
        wire(model).request(&UnifiedRequest::validate(kind, parse(input)).unwrap())
    }

    fn body(request: &UpstreamRequest) -> String {
        String::from_utf8(request.body.clone()).unwrap()
    }

    #[test]
    fn chat_request_puts_the_model_first_and_keeps_tool_names_only() {
        let request = upstream(
            "mistral-small-latest",
            EndpointType::Chat,
            fixture!("chat_request.json"),
        )
        .unwrap();
        assert_eq!(request.url, "https://api.mistral.test/v1/chat/completions");
        assert_eq!(
            request.headers,
            vec![("authorization", "Bearer sk-mistral-test".to_owned())]
        );
        assert_eq!(
            body(&request),
            fixture!("chat_request.upstream.json").trim()
        );
    }

    #[test]
    fn completions_request_matches_mlflows_captured_body() {
        let request = upstream(
            "mistral-tiny",
            EndpointType::Completions,
            fixture!("completions_request.json"),
        )
        .unwrap();
        assert_eq!(request.url, "https://api.mistral.test/v1/chat/completions");
        assert_eq!(
            body(&request),
            fixture!("completions_request.upstream.json").trim()
        );
        let stream = upstream(
            "mistral-tiny",
            EndpointType::Completions,
            r#"{"prompt": "hi", "stream": true}"#,
        )
        .unwrap_err();
        assert_eq!(
            (stream.status, stream.detail),
            (
                501,
                json!("The completions streaming route is not implemented for Mistral models.")
            )
        );
    }

    #[test]
    fn embeddings_request_fixture() {
        let request = upstream(
            "mistral-embed",
            EndpointType::Embeddings,
            fixture!("embeddings_request.json"),
        )
        .unwrap();
        assert_eq!(request.url, "https://api.mistral.test/v1/embeddings");
        assert_eq!(
            body(&request),
            fixture!("embeddings_request.upstream.json").trim()
        );
    }

    #[test]
    fn chat_response_fixture() {
        let response = chat_response(parse(fixture!("chat_response.json")), "mistral").unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            fixture!("chat_response.unified.json").trim()
        );
    }

    #[test]
    fn completions_response_fixture() {
        let response = completions_response(
            parse(fixture!("completions_response.json")),
            "mistral-tiny",
            1_795_271_324,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            fixture!("completions_response.unified.json").trim()
        );
    }

    #[test]
    fn embeddings_response_fixture_keeps_upstream_indexes() {
        let response = embeddings_response(
            parse(fixture!("embeddings_response.json")),
            "mistral-embed-configured",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            fixture!("embeddings_response.unified.json").trim()
        );
    }

    #[test]
    fn reasoning_content_lists_are_read_as_their_text() {
        let content = json!([{"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]}, {"type": "text", "text": "42"}]);
        assert_eq!(content_text(&content).as_deref(), Some("42"));
        assert_eq!(content_text(&Value::Null), None);
    }

    #[test]
    fn chat_stream_fixture_ends_at_done_with_usage_kept_for_accounting() {
        let mut decoder = SseDecoder::new();
        let events = decoder
            .push(fixture!("chat_stream.sse").as_bytes())
            .unwrap();
        let wire = wire("mistral-small-latest");
        let mut lines = Vec::new();
        let mut usage = Vec::new();
        let mut done = false;
        for event in &events {
            match wire.stream_event(event) {
                Ok(EventOutcome::Chunk(chunk) | EventOutcome::Final(chunk)) => {
                    lines.push(String::from_utf8(chunk.json.to_vec()).unwrap());
                    usage.push(chunk.usage);
                }
                Ok(EventOutcome::Skip) => {}
                Ok(EventOutcome::Done) => done = true,
                Err(error) => panic!("{error:?}"),
            }
        }
        assert!(done);
        let expected: Vec<&str> = fixture!("chat_stream.unified.jsonl").lines().collect();
        assert_eq!(lines, expected);
        assert_eq!(usage[3], Some(Usage::new(Some(10), Some(3))));
    }

    #[test]
    fn stream_data_that_is_not_json_aborts_the_stream() {
        let event = |data: &str| SseEvent {
            event: None,
            data: data.to_owned(),
        };
        let wire = wire("m");
        match wire.stream_event(&event("{oops")) {
            Err(error) => assert_eq!(
                (error.status, error.kind),
                (502, ErrorKind::UpstreamProtocol)
            ),
            Ok(_) => panic!("a broken event must fail the stream"),
        }
        match wire.stream_event(&event(r#"{"error":{"message":"overloaded"}}"#)) {
            Err(error) => assert_eq!(error.detail, json!("overloaded")),
            Ok(_) => panic!("an error event must fail the stream"),
        }
        assert!(matches!(
            wire.stream_event(&event("")),
            Ok(EventOutcome::Skip)
        ));
    }

    /// Mistral's error bodies have no `error` object, so MLflow's rule passes the whole body on
    /// as the detail (unless it is OpenAI-shaped), with the upstream status.
    #[test]
    fn upstream_error_statuses_pass_through_with_the_whole_body() {
        let table: [(u16, &str); 5] = [
            (400, fixture!("error_400.json")),
            (401, fixture!("error_401.json")),
            (422, fixture!("error_422.json")),
            (429, fixture!("error_429.json")),
            (503, fixture!("error_503.json")),
        ];
        for (status, body) in table {
            let error = status_error(status, &parse(body));
            assert_eq!(
                (error.status, error.kind, error.detail),
                (status, ErrorKind::UpstreamStatus, parse(body))
            );
        }
    }
}
