//! Cohere's v1 API (deprecated in MLflow, kept for parity): chat through `/chat`, completions
//! through `/generate`, embeddings through `/embed`, with `Authorization: Bearer <key>`.
//! Streams are newline-delimited JSON (one event object per line), read with
//! [`Framing::JsonLines`](crate::framing::Framing::JsonLines).
//!
//! The request side is MLflow 3.17.2's dict surgery on the unified payload (`n` and `stop` rules
//! for chat, the `stop_sequences` / `num_generations` renames for generate with their 400s,
//! `input` → `texts`, temperature ×2.5 when non-zero), done on the serialised payload so key order
//! matches MLflow's. Cohere's error bodies are `{"message": ...}`: the shared upstream mapping
//! already reports those as MLflow does (`{"detail": {"message": ...}}`). Pure code but for the
//! clock read for `created`.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::openai::join_url;
use crate::config::{CohereConfig, EndpointType, Provider};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::{StreamChunk, Usage};
use crate::providers::wire_json::{
    request_body, request_object, response_body, unix_now, unreadable,
};
use crate::schema::{
    ChatChunk, ChatDelta, ChatRequest, ChatResponse, ChatUsage, CompletionsChoice,
    CompletionsChunk, CompletionsResponse, CompletionsUsage, ContentPart, Embedding,
    EmbeddingsResponse, EmbeddingsUsage, Message, MessageContent, UnifiedRequest,
};
use crate::sse::SseEvent;
use crate::upstream::{EventOutcome, UpstreamRequest};

/// One endpoint's Cohere translation.
#[derive(Debug, Clone)]
pub struct CohereWire {
    config: CohereConfig,
    model: String,
    provider: Provider,
}

impl CohereWire {
    pub fn new(config: &CohereConfig, model: Option<String>, provider: Provider) -> Self {
        Self {
            config: config.clone(),
            model: model.unwrap_or_default(),
            provider,
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        vec![self.config.api_key.expose()]
    }

    /// The unified request as a Cohere HTTP request; MLflow's parameter rules fail here, before
    /// anything is sent.
    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let payload = request_object(request)?;
        let (path, payload) = match request {
            UnifiedRequest::Chat(chat) => ("chat", chat_payload(payload, chat)?),
            UnifiedRequest::Completions(_) => ("generate", generate_payload(payload)?),
            UnifiedRequest::Embeddings(_) => ("embed", embed_payload(payload)?),
        };
        let mut body = Map::with_capacity(payload.len() + 1);
        body.insert("model".to_owned(), Value::String(self.model.clone()));
        body.extend(payload);
        let body = request_body(&body)?;
        Ok(UpstreamRequest {
            url: join_url(&self.config.api_base, path),
            headers: vec![(
                "authorization",
                format!("Bearer {}", self.config.api_key.expose()),
            )],
            body,
        })
    }

    /// A whole Cohere JSON body as the serialised unified response and its token usage.
    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        let now = unix_now();
        match kind {
            EndpointType::Chat => {
                let response = chat_response(&body, &self.model, self.provider.as_str(), now)?;
                let usage = Usage::new(
                    response.usage.prompt_tokens,
                    response.usage.completion_tokens,
                );
                Ok((response_body(&response)?, usage))
            }
            EndpointType::Completions => Ok((
                response_body(&completions_response(&body, &self.model, now)?)?,
                Usage::default(),
            )),
            EndpointType::Embeddings => Ok((
                response_body(&embeddings_response(&body, &self.model)?)?,
                Usage::default(),
            )),
        }
    }

    /// One JSON line of a stream as zero or one unified chunk.
    pub fn stream_event(
        &self,
        kind: EndpointType,
        event: &SseEvent,
    ) -> Result<EventOutcome, GatewayError> {
        let line = event.data.trim();
        if line.is_empty() {
            return Ok(EventOutcome::Skip);
        }
        let value: Value = serde_json::from_str(line).map_err(|_| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                502,
                "The provider sent a stream line that is not JSON.",
            )
        })?;
        let now = unix_now();
        let chunk = match kind {
            EndpointType::Chat => {
                let Some(chunk) = chat_chunk(&value, &self.model, self.provider.as_str(), now)?
                else {
                    return Ok(EventOutcome::Skip);
                };
                let usage = chunk
                    .usage
                    .as_ref()
                    .filter(|u| u.prompt_tokens.is_some() || u.completion_tokens.is_some())
                    .map(|u| Usage::new(u.prompt_tokens, u.completion_tokens));
                StreamChunk {
                    json: response_body(&chunk)?,
                    usage,
                }
            }
            EndpointType::Completions => {
                StreamChunk::new(response_body(&completions_chunk(&value, &self.model, now))?)
            }
            EndpointType::Embeddings => return Ok(EventOutcome::Skip),
        };
        // The last line (`stream-end`) says `is_finished: true`; a stream cut before it is not
        // complete, whatever the text so far looks like.
        if value.get("is_finished").and_then(Value::as_bool) == Some(true) {
            Ok(EventOutcome::Final(chunk))
        } else {
            Ok(EventOutcome::Chunk(chunk))
        }
    }
}

fn invalid(status: u16, message: String) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidParameter, status, message)
}

/// Cohere's temperature range is 0..5 where ours is 0..2; MLflow scales only a non-zero value.
fn scale_temperature(payload: &mut Map<String, Value>) {
    if let Some(temperature) = payload.get("temperature").and_then(Value::as_f64) {
        if temperature != 0.0 {
            // `insert` on an existing key keeps its position.
            payload.insert("temperature".to_owned(), json!(2.5 * temperature));
        }
    }
}

/// Renames keys in place, keeping their order (MLflow's `rename_payload_keys`).
fn rename(payload: Map<String, Value>, mapping: &[(&str, &str)]) -> Map<String, Value> {
    payload
        .into_iter()
        .map(
            |(key, value)| match mapping.iter().find(|(from, _)| *from == key) {
                Some((_, to)) => ((*to).to_owned(), value),
                None => (key, value),
            },
        )
        .collect()
}

/// `/chat`: the last message (which must be the user's) becomes `message`, system messages
/// `preamble_override`, user and assistant messages before it `chat_history`; every other key
/// passes through.
fn chat_payload(
    mut payload: Map<String, Value>,
    chat: &ChatRequest,
) -> Result<Map<String, Value>, GatewayError> {
    if chat.common.n != 1 {
        return Err(invalid(
            422,
            format!(
                "Parameter n must be 1 for Cohere chat, got {}.",
                chat.common.n
            ),
        ));
    }
    payload.shift_remove("n");
    if payload.contains_key("stop") {
        return Err(invalid(
            422,
            "Parameter stop is not supported for Cohere chat.".to_owned(),
        ));
    }
    scale_temperature(&mut payload);
    payload.shift_remove("messages");
    let Some((last, earlier)) = chat.messages.split_last() else {
        return Err(invalid(422, "At least one message is required.".to_owned()));
    };
    if last.role != "user" {
        return Err(invalid(
            422,
            format!("Last message must be from user, got {}.", last.role),
        ));
    }
    payload.insert("message".to_owned(), content_value(last));
    let system: Vec<String> = earlier
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| plain_text(m.content.as_ref()))
        .collect();
    if !system.is_empty() {
        payload.insert("preamble_override".to_owned(), json!(system.join("\n")));
    }
    let history: Vec<Value> = earlier
        .iter()
        .filter(|m| m.role == "user" || m.role == "assistant")
        .map(|m| {
            let role = if m.role == "user" { "USER" } else { "CHATBOT" };
            json!({"role": role, "message": content_value(m)})
        })
        .collect();
    if !history.is_empty() {
        payload.insert("chat_history".to_owned(), Value::Array(history));
    }
    Ok(payload)
}

/// A message's content as the client sent it (MLflow forwards it unchanged).
fn content_value(message: &Message) -> Value {
    serde_json::to_value(&message.content).unwrap_or(Value::Null)
}

/// The text of a content: the string, or its text parts concatenated (a preamble is one string).
fn plain_text(content: Option<&MessageContent>) -> String {
    match content {
        Some(MessageContent::Text(text)) => text.clone(),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect(),
        None => String::new(),
    }
}

/// `/generate`: `stop` → `stop_sequences`, `n` → `num_generations`; Cohere's own names are a 400.
fn generate_payload(mut payload: Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    const MAPPING: [(&str, &str); 2] = [("stop", "stop_sequences"), ("n", "num_generations")];
    for (unified, cohere) in MAPPING {
        if payload.contains_key(cohere) {
            return Err(invalid(
                400,
                format!("Invalid parameter {cohere}. Use {unified} instead."),
            ));
        }
    }
    scale_temperature(&mut payload);
    Ok(rename(payload, &MAPPING))
}

/// `/embed`: `input` → `texts`; sending `texts` is a 422.
fn embed_payload(payload: Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    if payload.contains_key("texts") {
        return Err(invalid(
            422,
            "Invalid parameter texts. Use input instead.".to_owned(),
        ));
    }
    Ok(rename(payload, &[("input", "texts")]))
}

/// Usage from a chat response (or a stream's final `response`): MLflow reads the legacy
/// `token_count`; current v1 responses report `meta.tokens` instead, which is used when
/// `token_count` is absent.
fn chat_usage(response: &Value) -> ChatUsage {
    let count = |value: Option<&Value>, key: &str| value.and_then(|v| v.get(key)?.as_u64());
    if let Some(tokens) = response.get("token_count").filter(|v| v.is_object()) {
        return ChatUsage::new(
            count(Some(tokens), "prompt_tokens"),
            count(Some(tokens), "response_tokens"),
            count(Some(tokens), "total_tokens"),
        );
    }
    let tokens = response.get("meta").and_then(|meta| meta.get("tokens"));
    let input = count(tokens, "input_tokens");
    let output = count(tokens, "output_tokens");
    // Saturating: upstream numbers must not overflow (a panic, or a wrapped total).
    ChatUsage::new(
        input,
        output,
        input.zip(output).map(|(i, o)| i.saturating_add(o)),
    )
}

/// `/chat`: one assistant choice with `text`; no finish reason (as MLflow).
pub fn chat_response(
    body: &Value,
    model: &str,
    provider: &str,
    now: i64,
) -> Result<ChatResponse, GatewayError> {
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| unreadable("chat response"))?;
    let id = body
        .get("response_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(ChatResponse::assistant_text(
        id,
        now,
        model,
        text,
        None,
        chat_usage(body),
        provider,
    ))
}

/// `/generate`: one choice per generation; no id, finish reason or usage (as MLflow).
pub fn completions_response(
    body: &Value,
    model: &str,
    now: i64,
) -> Result<CompletionsResponse, GatewayError> {
    let generations = body
        .get("generations")
        .and_then(Value::as_array)
        .ok_or_else(|| unreadable("generate response"))?;
    let choices = (0u32..)
        .zip(generations)
        .map(|(index, generation)| {
            let text = generation
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| unreadable("generate response"))?;
            Ok(CompletionsChoice {
                index,
                text: text.to_owned(),
                finish_reason: None,
            })
        })
        .collect::<Result<Vec<_>, GatewayError>>()?;
    Ok(CompletionsResponse {
        id: None,
        object: "text_completion".to_owned(),
        created: now,
        model: model.to_owned(),
        choices,
        usage: CompletionsUsage::default(),
    })
}

/// `/embed`: `embeddings` is a list of float vectors (or, when `embedding_types` was sent, an
/// object whose `float` member is).
pub fn embeddings_response(body: &Value, model: &str) -> Result<EmbeddingsResponse, GatewayError> {
    let embeddings = match body.get("embeddings") {
        Some(Value::Object(by_type)) => by_type.get("float"),
        other => other,
    };
    let vectors: Vec<Vec<f64>> = embeddings
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .ok()
        .flatten()
        .ok_or_else(|| unreadable("embed response"))?;
    Ok(EmbeddingsResponse::new(
        model,
        vectors.into_iter().map(Embedding::Floats).collect(),
        EmbeddingsUsage::default(),
    ))
}

/// One chat stream line: `stream-start` is skipped; every other event becomes a chunk with its
/// `text` and raw `finish_reason` (`COMPLETE`, not normalised, as MLflow), the id and usage of the
/// final `response` once it arrives, and an all-null usage object before that.
pub fn chat_chunk(
    line: &Value,
    model: &str,
    provider: &str,
    now: i64,
) -> Result<Option<ChatChunk>, GatewayError> {
    let event_type = line.get("event_type").and_then(Value::as_str);
    match event_type {
        Some("stream-start") => return Ok(None),
        Some(_) => {}
        None => {
            // Not an event: most likely an error object.
            let message = line
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("The provider sent a stream line without an event type.");
            return Err(GatewayError::new(
                ErrorKind::UpstreamStatus,
                502,
                message.to_owned(),
            ));
        }
    }
    let response = line.get("response").filter(|r| !r.is_null());
    let mut chunk = ChatChunk::delta(
        response
            .and_then(|r| r.get("response_id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        now,
        model,
        0,
        ChatDelta {
            role: None,
            content: line.get("text").and_then(Value::as_str).map(str::to_owned),
            tool_calls: None,
        },
        string(line.get("finish_reason")),
        provider,
    );
    chunk.usage = Some(response.map(chat_usage).unwrap_or_default());
    Ok(Some(chunk))
}

/// One generate stream line: `index` (0 when absent), `text`, raw `finish_reason`, the final
/// `response.id` once it arrives, and an all-null usage object.
pub fn completions_chunk(line: &Value, model: &str, now: i64) -> CompletionsChunk {
    let id = line
        .get("response")
        .filter(|r| !r.is_null())
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let index = line
        .get("index")
        .and_then(Value::as_u64)
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(0);
    let mut chunk = CompletionsChunk::text(
        id,
        now,
        model,
        index,
        string(line.get("text")),
        string(line.get("finish_reason")),
    );
    chunk.usage = Some(CompletionsUsage::default());
    chunk
}

fn string(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
#[path = "cohere_tests.rs"]
mod tests;
