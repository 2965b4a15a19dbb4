//! Anthropic responses back to the unified shapes: Messages API responses and stream events, and
//! legacy Text Completions responses. Pure: `created` is passed in.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::EndpointType;
use crate::error::{ErrorKind, GatewayError};
use crate::messages::{StreamChunk, Usage};
use crate::providers::wire_json::{response_body, unreadable_because};
use crate::schema::{
    ChatChoice, ChatChunk, ChatDelta, ChatResponse, ChatUsage, CompletionsResponse,
    CompletionsUsage, FunctionCall, PromptTokensDetails, ResponseMessage, ToolCall, ToolCallDelta,
};
use crate::sse::SseEvent;
use crate::upstream::EventOutcome;

/// Usage keys MLflow turns into the unified counters; every other usage key passes through.
const INPUT: &str = "input_tokens";
const OUTPUT: &str = "output_tokens";
const CACHE_READ: &str = "cache_read_input_tokens";
const CACHE_CREATION: &str = "cache_creation_input_tokens";

/// A whole upstream body as the serialised unified response and its token usage.
pub(super) fn response(
    kind: EndpointType,
    body: Value,
    provider: &str,
    created: i64,
) -> Result<(Bytes, Usage), GatewayError> {
    match kind {
        EndpointType::Chat => {
            let response = chat_response(body, provider, created)?;
            let usage = Usage::new(
                response.usage.prompt_tokens,
                response.usage.completion_tokens,
            );
            Ok((response_body(&response)?, usage))
        }
        EndpointType::Completions => {
            let response = completions_response(body, created)?;
            Ok((response_body(&response)?, Usage::default()))
        }
        // `request` refuses embeddings with a 501 before anything is sent.
        EndpointType::Embeddings => Err(GatewayError::not_implemented("embeddings", "Anthropic")),
    }
}

#[derive(Deserialize)]
struct WireMessage {
    id: String,
    model: String,
    #[serde(default = "assistant")]
    role: String,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    stop_reason: Option<String>,
    usage: Map<String, Value>,
}

fn assistant() -> String {
    "assistant".to_owned()
}

/// `stop_reason` → `finish_reason`: `max_tokens` → `length`, `tool_use` → `tool_calls`, anything
/// else (`end_turn`, `stop_sequence`, `pause_turn`, `refusal`, none) → `stop`.
pub(super) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        _ => "stop",
    }
}

/// A Messages API response: text and thinking blocks joined into `content` (null when empty),
/// `tool_use` blocks as tool calls, other blocks (images, server tools) dropped.
pub(super) fn chat_response(
    body: Value,
    provider: &str,
    created: i64,
) -> Result<ChatResponse, GatewayError> {
    let wire: WireMessage =
        serde_json::from_value(body).map_err(|e| unreadable_because("chat response", e))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    match &wire.content {
        Value::String(s) => text.push_str(s),
        Value::Array(blocks) => {
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => text.push_str(str_field(block, "text")),
                    Some("thinking") => text.push_str(str_field(block, "thinking")),
                    Some("tool_use") => tool_calls.push(ToolCall::function(
                        str_field(block, "id"),
                        str_field(block, "name"),
                        python_dumps(block.get("input").unwrap_or(&Value::Null)),
                    )),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    Ok(ChatResponse {
        id: Some(wire.id),
        object: "chat.completion".to_owned(),
        created,
        model: wire.model,
        choices: vec![ChatChoice {
            index: 0,
            message: ResponseMessage {
                role: wire.role,
                content: (!text.is_empty()).then_some(text),
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                refusal: None,
            },
            finish_reason: Some(finish_reason(wire.stop_reason.as_deref()).to_owned()),
        }],
        usage: chat_usage(&wire.usage),
        provider: provider.to_owned(),
    })
}

fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Anthropic usage → unified: `prompt_tokens` counts cached input too (input + cache reads +
/// cache writes, as MLflow normalises it), `cached_tokens` are the cache reads, the cache writes
/// and every other upstream usage key pass through.
pub(super) fn chat_usage(usage: &Map<String, Value>) -> ChatUsage {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64);
    let input = count(INPUT);
    let output = count(OUTPUT);
    let cache_read = count(CACHE_READ);
    let cache_creation = count(CACHE_CREATION);
    // Saturating: the counts are the upstream's numbers, and a sum past u64::MAX must neither
    // panic (debug) nor wrap to a small count that token budgets would undercharge (release).
    let prompt = input.map(|i| {
        i.saturating_add(cache_read.unwrap_or(0))
            .saturating_add(cache_creation.unwrap_or(0))
    });
    let total = prompt.zip(output).map(|(p, o)| p.saturating_add(o));
    let mut extra: Map<String, Value> = usage
        .iter()
        .filter(|(key, _)| ![INPUT, OUTPUT, CACHE_READ, CACHE_CREATION].contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if let Some(created) = cache_creation {
        extra.insert(CACHE_CREATION.to_owned(), Value::from(created));
    }
    ChatUsage {
        prompt_tokens: prompt,
        completion_tokens: output,
        total_tokens: total,
        prompt_tokens_details: cache_read.map(|cached| PromptTokensDetails {
            cached_tokens: Some(cached),
            extra: Map::new(),
        }),
        extra,
    }
}

#[derive(Deserialize)]
struct WireCompletion {
    completion: String,
    #[serde(default)]
    stop_reason: Option<String>,
    model: String,
}

/// A legacy completion: `stop_sequence` → `stop`, anything else → `length`; no id, no usage.
pub(super) fn completions_response(
    body: Value,
    created: i64,
) -> Result<CompletionsResponse, GatewayError> {
    let wire: WireCompletion =
        serde_json::from_value(body).map_err(|e| unreadable_because("completions response", e))?;
    let finish = match wire.stop_reason.as_deref() {
        Some("stop_sequence") => "stop",
        _ => "length",
    };
    Ok(CompletionsResponse::text(
        None,
        created,
        wire.model,
        wire.completion,
        Some(finish.to_owned()),
        CompletionsUsage::default(),
    ))
}

/// State of one Messages API stream: the id, model and input usage from `message_start`, and
/// which content blocks are tool calls (numbered 0, 1, … in order of appearance).
#[derive(Debug, Clone)]
pub struct AnthropicStream {
    provider: String,
    created: i64,
    id: Option<String>,
    model: Option<String>,
    /// The usage figures seen so far, keyed as Anthropic names them (MLflow's `usage_data`).
    usage: Map<String, Value>,
    tool_indices: HashMap<u64, u32>,
}

impl AnthropicStream {
    pub fn new(provider: &str, created: i64) -> Self {
        Self {
            provider: provider.to_owned(),
            created,
            id: None,
            model: None,
            usage: Map::new(),
            tool_indices: HashMap::new(),
        }
    }

    /// One SSE event: `message_start` is remembered, content block starts and deltas and
    /// `message_delta` become chunks, `message_stop` ends the stream, `error` fails it, and
    /// `ping`, `content_block_stop` and unknown events are skipped.
    pub fn event(&mut self, event: &SseEvent) -> Result<EventOutcome, GatewayError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(EventOutcome::Skip);
        }
        let value: Value =
            serde_json::from_str(data).map_err(|e| unreadable_because("stream event", e))?;
        match value.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                self.start(&value);
                Ok(EventOutcome::Skip)
            }
            Some("content_block_start" | "content_block_delta" | "message_delta") => {
                self.chunk(&value).map(EventOutcome::Chunk)
            }
            Some("message_stop") => Ok(EventOutcome::Done),
            Some("error") => Err(stream_error(&value)),
            _ => Ok(EventOutcome::Skip),
        }
    }

    fn start(&mut self, value: &Value) {
        let message = value.get("message").unwrap_or(&Value::Null);
        self.id = message.get("id").and_then(Value::as_str).map(str::to_owned);
        self.model = message
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(usage) = message.get("usage").and_then(Value::as_object) {
            if !usage.is_empty() {
                self.usage.insert(
                    INPUT.to_owned(),
                    usage.get(INPUT).cloned().unwrap_or(Value::Null),
                );
                for key in [CACHE_READ, CACHE_CREATION] {
                    if let Some(count) = usage.get(key).filter(|v| !v.is_null()) {
                        self.usage.insert(key.to_owned(), count.clone());
                    }
                }
            }
        }
    }

    fn chunk(&mut self, value: &Value) -> Result<StreamChunk, GatewayError> {
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        let (Some(id), Some(model)) = (self.id.clone(), self.model.clone()) else {
            return Err(unreadable_because(
                "stream",
                "a content event came before message_start",
            ));
        };
        let block_index = value.get("index").and_then(Value::as_u64);
        let content = value
            .get("delta")
            .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
            .or_else(|| value.get("content_block"))
            .unwrap_or(&Value::Null);
        let content_type = content.get("type").and_then(Value::as_str);
        if kind == "content_block_start" && content_type == Some("tool_use") {
            if let Some(index) = block_index {
                let next = u32::try_from(self.tool_indices.len()).unwrap_or(u32::MAX);
                self.tool_indices.insert(index, next);
            }
        }
        let tool_index = block_index
            .and_then(|i| self.tool_indices.get(&i).copied())
            .unwrap_or(0);
        let delta = match content_type {
            Some("tool_use") => ChatDelta {
                role: None,
                content: None,
                tool_calls: Some(vec![ToolCallDelta {
                    index: tool_index,
                    id: content.get("id").and_then(Value::as_str).map(str::to_owned),
                    kind: Some("function".to_owned()),
                    function: FunctionCall {
                        name: content
                            .get("name")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        arguments: None,
                    },
                    thought_signature: None,
                }]),
            },
            Some("input_json_delta") => ChatDelta {
                role: None,
                content: None,
                tool_calls: Some(vec![ToolCallDelta {
                    index: tool_index,
                    id: None,
                    kind: None,
                    function: FunctionCall {
                        name: None,
                        arguments: content
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    },
                    thought_signature: None,
                }]),
            },
            // Text starts and deltas carry `text`; thinking and other blocks give a null content,
            // as in MLflow.
            _ => ChatDelta {
                role: None,
                content: content
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                tool_calls: None,
            },
        };
        let finish = content
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(|reason| finish_reason(Some(reason)).to_owned());
        let mut chunk = ChatChunk::delta(
            Some(id),
            self.created,
            model,
            0,
            delta,
            finish,
            self.provider.clone(),
        );
        let mut usage = None;
        if kind == "message_delta" {
            if let Some(delta_usage) = value.get("usage").and_then(Value::as_object) {
                if !delta_usage.is_empty() {
                    self.usage.insert(
                        OUTPUT.to_owned(),
                        delta_usage.get(OUTPUT).cloned().unwrap_or(Value::Null),
                    );
                }
            }
            if !self.usage.is_empty() {
                let unified = chat_usage(&self.usage);
                usage = Some(Usage::new(unified.prompt_tokens, unified.completion_tokens));
                chunk.usage = Some(unified);
            }
        }
        Ok(StreamChunk {
            json: response_body(&chunk)?,
            usage,
        })
    }
}

/// An `error` event (`{"type":"error","error":{"type","message"}}`): the stream fails with the
/// message, and the status Anthropic documents for that error type.
pub(super) fn stream_error(value: &Value) -> GatewayError {
    let error = value.get("error").unwrap_or(&Value::Null);
    let status = match error.get("type").and_then(Value::as_str) {
        Some("invalid_request_error") => 400,
        Some("authentication_error") => 401,
        Some("billing_error") => 402,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("request_too_large") => 413,
        Some("rate_limit_error") => 429,
        Some("timeout_error") => 504,
        Some("overloaded_error") => 529,
        _ => 500,
    };
    let detail = match error.get("message") {
        Some(Value::String(message)) => Value::String(message.clone()),
        _ => value.clone(),
    };
    GatewayError::new(ErrorKind::UpstreamStatus, status, detail)
}

/// `json.dumps` with Python's defaults (`", "` and `": "` separators, non-ASCII escaped), which
/// is how MLflow writes a `tool_use` input as tool-call arguments.
pub(super) fn python_dumps(value: &Value) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    if value.serialize(&mut serializer).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_string())
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    /// Python's `ensure_ascii`: everything outside printable ASCII as `\uXXXX` (UTF-16 units).
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                let mut buf = [0u8; 4];
                writer.write_all(c.encode_utf8(&mut buf).as_bytes())?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}
