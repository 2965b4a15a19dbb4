//! Gemini (Google AI Studio, `generativelanguage.googleapis.com/v1beta`): chat and completions
//! through `{model}:generateContent` (streams through `{model}:streamGenerateContent?alt=sse`),
//! embeddings through `{model}:embedContent` (one text) or `{model}:batchEmbedContents`.
//!
//! The key travels in the `x-goog-api-key` header, as MLflow sends it, never in the URL, so it
//! cannot end up in a logged or reported URL. Errors are Google's `{"error": {"message"}}` shape,
//! which the shared upstream error mapping already reads. The translations themselves live in
//! `gemini_request` (unified → wire) and `gemini_response` (wire → unified); this module picks
//! the URL and headers, reads the clock, and keeps per-stream state.

#[path = "gemini_request.rs"]
mod gemini_request;
#[path = "gemini_response.rs"]
mod gemini_response;
#[cfg(test)]
#[path = "gemini_tests.rs"]
mod tests;

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use super::openai::join_url;
use crate::config::{EndpointType, GeminiConfig, Provider};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::{StreamChunk, Usage};
use crate::providers::wire_json::{request_body, response_body, unix_now};
use crate::schema::UnifiedRequest;
use crate::sse::SseEvent;
use crate::upstream::{EventOutcome, UpstreamRequest};

/// One endpoint's Gemini translation.
#[derive(Debug, Clone)]
pub struct GeminiWire {
    config: GeminiConfig,
    model: String,
    provider: Provider,
}

impl GeminiWire {
    pub fn new(config: &GeminiConfig, model: Option<String>, provider: Provider) -> Self {
        Self {
            config: config.clone(),
            model: model.unwrap_or_default(),
            provider,
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        vec![self.config.api_key.expose()]
    }

    /// The unified request as a Gemini HTTP request; MLflow's parameter rules are 422s here,
    /// before anything is sent.
    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let (method, body) = match request {
            UnifiedRequest::Chat(chat) => (
                generate_method(request.is_stream()),
                gemini_request::chat_body(chat)?,
            ),
            UnifiedRequest::Completions(completions) => (
                generate_method(request.is_stream()),
                gemini_request::completions_body(completions)?,
            ),
            UnifiedRequest::Embeddings(embeddings) => {
                let (body, batch) =
                    gemini_request::embeddings_body(&embeddings.input, &self.model)?;
                let method = if batch {
                    "batchEmbedContents"
                } else {
                    "embedContent"
                };
                (method, body)
            }
        };
        let mut url = join_url(&self.config.api_base, &format!("{}:{method}", self.model));
        if request.is_stream() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("alt=sse");
        }
        let body = request_body(&body)?;
        Ok(UpstreamRequest {
            url,
            headers: vec![("x-goog-api-key", self.config.api_key.expose().to_owned())],
            body,
        })
    }

    /// A whole Gemini JSON body as the serialised unified response and its token usage.
    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        let now = unix_now();
        let usage = gemini_response::token_usage(&body).unwrap_or_default();
        let bytes =
            match kind {
                EndpointType::Chat => response_body(&gemini_response::chat_response(
                    &body,
                    &self.model,
                    self.provider.as_str(),
                    now,
                )?)?,
                EndpointType::Completions => response_body(
                    &gemini_response::completions_response(&body, &self.model, now),
                )?,
                EndpointType::Embeddings => {
                    response_body(&gemini_response::embeddings_response(&body, &self.model)?)?
                }
            };
        Ok((bytes, usage))
    }

    pub fn stream_translator(&self, kind: EndpointType) -> GeminiStream {
        GeminiStream {
            model: self.model.clone(),
            provider: self.provider,
            kind,
            seen_calls: HashMap::new(),
            finished: HashMap::new(),
        }
    }
}

fn generate_method(stream: bool) -> &'static str {
    if stream {
        "streamGenerateContent"
    } else {
        "generateContent"
    }
}

/// Per-stream state: how many tool calls each candidate has streamed so far, and which
/// candidates have finished.
#[derive(Debug)]
pub struct GeminiStream {
    model: String,
    provider: Provider,
    kind: EndpointType,
    seen_calls: HashMap<u32, u32>,
    /// Per candidate index seen: whether it has carried its `finishReason` yet.
    finished: HashMap<u32, bool>,
}

impl GeminiStream {
    /// One `alt=sse` event (a whole `GenerateContentResponse`) as one unified chunk. Gemini has
    /// no end marker; `[DONE]` is honoured anyway, as MLflow does.
    pub fn event(&mut self, event: &SseEvent) -> Result<EventOutcome, GatewayError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(EventOutcome::Skip);
        }
        if data == "[DONE]" {
            return Ok(EventOutcome::Done);
        }
        let body: Value = serde_json::from_str(data).map_err(|_| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                502,
                "The provider sent a stream event that is not JSON.",
            )
        })?;
        if let Some(error) = body.get("error") {
            return Err(stream_error(error));
        }
        let now = unix_now();
        let chunk = match self.kind {
            EndpointType::Chat => {
                let chunk = gemini_response::chat_chunk(
                    &body,
                    &self.model,
                    self.provider.as_str(),
                    now,
                    &self.seen_calls,
                )?;
                gemini_response::count_calls(&body, &mut self.seen_calls);
                response_body(&chunk)?
            }
            EndpointType::Completions => {
                response_body(&gemini_response::completions_chunk(&body, &self.model, now))?
            }
            EndpointType::Embeddings => return Ok(EventOutcome::Skip),
        };
        let chunk = StreamChunk {
            json: chunk,
            usage: gemini_response::token_usage(&body),
        };
        // Gemini sends no end marker: the stream is complete once every candidate it has
        // streamed carried a finish reason, or the prompt itself was blocked.
        gemini_response::note_finishes(&body, &mut self.finished);
        let complete = gemini_response::prompt_blocked(&body)
            || (!self.finished.is_empty() && self.finished.values().all(|done| *done));
        Ok(if complete {
            EventOutcome::Final(chunk)
        } else {
            EventOutcome::Chunk(chunk)
        })
    }
}

/// An error object inside a stream (Google's `{"error": {"code", "message", "status"}}`).
fn stream_error(error: &Value) -> GatewayError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code))
        .unwrap_or(502);
    GatewayError::new(ErrorKind::UpstreamStatus, status, message)
}
