//! The built-in `mock` provider: a deterministic demo and testing backend that needs no key and no
//! network. Chat replies with the text of the last message, completions echo the prompt,
//! embeddings are unit vectors derived from a hash of each input. Streams split the reply into
//! `chunks` events; `latency_ms`, `chunk_delay_ms`, `fail_status` and `fail_after_chunks` simulate
//! slow and failing providers for tests.
//!
//! The response building is pure (the clock is an argument); only [`MockBackend::invoke`] sleeps
//! and spawns.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::config::{Endpoint, MockConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::{ChunkSender, InvokeReply, StreamChunk, Usage};
use crate::providers::wire_json::{response_body, unix_now};
use crate::schema::{
    ChatChunk, ChatDelta, ChatRequest, ChatResponse, ChatUsage, CompletionsChunk,
    CompletionsRequest, CompletionsResponse, CompletionsUsage, ContentPart, Embedding,
    EmbeddingsInput, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage, MessageContent,
    UnifiedRequest,
};

const PROVIDER: &str = "mock";

/// One mock endpoint's behaviour on one worker.
#[derive(Clone)]
pub struct MockBackend {
    endpoint: Arc<str>,
    model: Arc<str>,
    config: Arc<MockConfig>,
    buffer: usize,
}

impl MockBackend {
    pub fn new(endpoint: &Endpoint, config: MockConfig, buffer: usize) -> Self {
        Self {
            endpoint: endpoint.name.as_str().into(),
            model: endpoint.model.name.as_deref().unwrap_or("mock").into(),
            config: Arc::new(config),
            buffer,
        }
    }

    pub async fn invoke(self, request: UnifiedRequest) -> Result<InvokeReply, GatewayError> {
        if self.config.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.config.latency_ms)).await;
        }
        if let Some(status) = self.config.fail_status {
            return Err(GatewayError::new(
                ErrorKind::UpstreamStatus,
                status,
                self.config.fail_message.clone(),
            ));
        }
        let created = unix_now();
        let model = &*self.model;
        if request.is_stream() {
            let pieces = match &request {
                UnifiedRequest::Chat(chat) => chat_chunks(chat, model, created, self.config.chunks)
                    .iter()
                    .map(|chunk| {
                        let usage = chunk
                            .usage
                            .as_ref()
                            .map(|u| Usage::new(u.prompt_tokens, u.completion_tokens));
                        Ok(StreamChunk {
                            json: response_body(chunk)?,
                            usage,
                        })
                    })
                    .collect::<Result<Vec<_>, GatewayError>>(),
                UnifiedRequest::Completions(completions) => {
                    completion_chunks(completions, model, created, self.config.chunks)
                        .iter()
                        .map(|chunk| Ok(StreamChunk::new(response_body(chunk)?)))
                        .collect::<Result<Vec<_>, GatewayError>>()
                }
                UnifiedRequest::Embeddings(_) => Ok(Vec::new()),
            }?;
            let (sender, receiver) = mpsc::channel(self.buffer);
            actix_rt::spawn(self.stream(pieces, sender));
            return Ok(InvokeReply::Stream(receiver));
        }
        let (body, usage) = match &request {
            UnifiedRequest::Chat(chat) => {
                let response = chat_response(chat, model, created);
                let usage = Usage::new(
                    response.usage.prompt_tokens,
                    response.usage.completion_tokens,
                );
                (response_body(&response)?, usage)
            }
            UnifiedRequest::Completions(completions) => {
                let response = completions_response(completions, model, created);
                let usage = Usage::new(
                    response.usage.prompt_tokens,
                    response.usage.completion_tokens,
                );
                (response_body(&response)?, usage)
            }
            UnifiedRequest::Embeddings(embeddings) => {
                let response = embeddings_response(embeddings, model, self.config.embedding_dims);
                let usage = Usage::new(response.usage.prompt_tokens, None);
                (response_body(&response)?, usage)
            }
        };
        Ok(InvokeReply::Json { body, usage })
    }

    /// Sends the chunks with the configured pacing; stops as soon as the client is gone.
    async fn stream(self, pieces: Vec<StreamChunk>, sender: ChunkSender) {
        let delay = Duration::from_millis(self.config.chunk_delay_ms);
        for (sent, piece) in pieces.into_iter().enumerate() {
            if sent > 0 && !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = sender.closed() => {}
                }
            }
            if self.config.fail_after_chunks == Some(sent as u32) {
                let error = GatewayError::new(
                    ErrorKind::UpstreamProtocol,
                    502,
                    format!("The mock provider failed the stream after {sent} chunks (fail_after_chunks)."),
                );
                let _ = sender.send(Err(Box::new(error))).await;
                return;
            }
            if sender.send(Ok(piece)).await.is_err() {
                tracing::info!(endpoint = %self.endpoint, sent, "mock stream stopped: client went away");
                return;
            }
        }
    }
}

/// Text of a message: the string content, or its text parts joined.
fn message_text(content: Option<&MessageContent>) -> String {
    match content {
        Some(MessageContent::Text(text)) => text.clone(),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    }
}

/// Whitespace-separated words: the mock's token count.
fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn chat_reply(request: &ChatRequest) -> (String, u64) {
    let reply = request
        .messages
        .last()
        .map(|m| message_text(m.content.as_ref()))
        .unwrap_or_default();
    let prompt_tokens = request
        .messages
        .iter()
        .map(|m| words(&message_text(m.content.as_ref())))
        .sum();
    (reply, prompt_tokens)
}

pub fn chat_response(request: &ChatRequest, model: &str, created: i64) -> ChatResponse {
    let (reply, prompt) = chat_reply(request);
    let completion = words(&reply);
    let usage = ChatUsage::new(Some(prompt), Some(completion), Some(prompt + completion));
    ChatResponse::assistant_text(
        Some(format!("chatcmpl-mock-{created}")),
        created,
        model,
        reply,
        Some("stop".to_owned()),
        usage,
        PROVIDER,
    )
}

/// Splits `text` into `parts` consecutive pieces of nearly equal length (by characters), so the
/// pieces concatenate back to exactly `text`.
pub fn split_even(text: &str, parts: u32) -> Vec<String> {
    let parts = parts.max(1) as usize;
    let chars: Vec<char> = text.chars().collect();
    let base = chars.len() / parts;
    let extra = chars.len() % parts;
    let mut pieces = Vec::with_capacity(parts);
    let mut start = 0;
    for i in 0..parts {
        let len = base + usize::from(i < extra);
        pieces.push(chars[start..start + len].iter().collect());
        start += len;
    }
    pieces
}

pub fn chat_chunks(request: &ChatRequest, model: &str, created: i64, parts: u32) -> Vec<ChatChunk> {
    let (reply, prompt) = chat_reply(request);
    let completion = words(&reply);
    let pieces = split_even(&reply, parts);
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let delta = ChatDelta {
                role: (i == 0).then(|| "assistant".to_owned()),
                content: Some(piece),
                tool_calls: None,
            };
            let finish = (i == last).then(|| "stop".to_owned());
            let mut chunk = ChatChunk::delta(
                Some(format!("chatcmpl-mock-{created}")),
                created,
                model,
                0,
                delta,
                finish,
                PROVIDER,
            );
            if i == last {
                chunk.usage = Some(ChatUsage::new(
                    Some(prompt),
                    Some(completion),
                    Some(prompt + completion),
                ));
            }
            chunk
        })
        .collect()
}

pub fn completions_response(
    request: &CompletionsRequest,
    model: &str,
    created: i64,
) -> CompletionsResponse {
    let tokens = words(&request.prompt);
    CompletionsResponse::text(
        Some(format!("cmpl-mock-{created}")),
        created,
        model,
        request.prompt.clone(),
        Some("stop".to_owned()),
        CompletionsUsage {
            prompt_tokens: Some(tokens),
            completion_tokens: Some(tokens),
            total_tokens: Some(tokens * 2),
        },
    )
}

pub fn completion_chunks(
    request: &CompletionsRequest,
    model: &str,
    created: i64,
    parts: u32,
) -> Vec<CompletionsChunk> {
    let pieces = split_even(&request.prompt, parts);
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let finish = (i == last).then(|| "stop".to_owned());
            CompletionsChunk::text(
                Some(format!("cmpl-mock-{created}")),
                created,
                model,
                0,
                Some(piece),
                finish,
            )
        })
        .collect()
}

/// A unit vector of `dims` values in [-1, 1], derived from SHA-256 of the input's JSON.
pub fn embed(input: &serde_json::Value, dims: usize) -> Vec<f64> {
    let seed = Sha256::digest(input.to_string().as_bytes());
    let mut values = Vec::with_capacity(dims);
    let mut block = seed.to_vec();
    while values.len() < dims {
        for pair in block.chunks(2) {
            if values.len() == dims {
                break;
            }
            let raw = u16::from_le_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            values.push(f64::from(raw) / 32767.5 - 1.0);
        }
        block = Sha256::digest(&block).to_vec();
    }
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        for v in &mut values {
            *v /= norm;
        }
    }
    values
}

pub fn embeddings_response(
    request: &EmbeddingsRequest,
    model: &str,
    dims: usize,
) -> EmbeddingsResponse {
    let items: Vec<serde_json::Value> = match &request.input {
        EmbeddingsInput::Text(text) => vec![text.clone().into()],
        EmbeddingsInput::Texts(texts) => texts.iter().map(|t| t.clone().into()).collect(),
        EmbeddingsInput::Tokens(tokens) => vec![tokens.clone().into()],
        EmbeddingsInput::TokenBatches(batches) => {
            batches.iter().map(|b| b.clone().into()).collect()
        }
    };
    let tokens: u64 = items
        .iter()
        .map(|item| match item {
            serde_json::Value::String(text) => words(text),
            serde_json::Value::Array(ids) => ids.len() as u64,
            _ => 0,
        })
        .sum();
    // The OpenAI SDK asks for base64 by default: little-endian f32s, as OpenAI encodes them.
    let base64 = request.extra.get_str("encoding_format").as_deref() == Some("base64");
    let embeddings = items
        .iter()
        .map(|item| {
            let vector = embed(item, dims);
            if base64 {
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|v| (*v as f32).to_le_bytes())
                    .collect();
                Embedding::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Embedding::Floats(vector)
            }
        })
        .collect();
    EmbeddingsResponse::new(
        model,
        embeddings,
        EmbeddingsUsage {
            prompt_tokens: Some(tokens),
            total_tokens: Some(tokens),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EndpointType;
    use serde_json::json;

    fn chat(body: serde_json::Value) -> ChatRequest {
        match UnifiedRequest::validate(EndpointType::Chat, body).unwrap() {
            UnifiedRequest::Chat(chat) => chat,
            _ => unreachable!(),
        }
    }

    #[test]
    fn chat_echoes_the_last_message_with_word_counts() {
        let request = chat(
            json!({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]}),
        );
        let response = serde_json::to_value(chat_response(&request, "m", 7)).unwrap();
        assert_eq!(
            response,
            json!({"id": "chatcmpl-mock-7", "object": "chat.completion", "created": 7, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello there", "tool_calls": null, "refusal": null}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}, "provider": "mock"})
        );
    }

    #[test]
    fn stream_pieces_concatenate_to_the_reply() {
        for parts in 1..12 {
            let pieces = split_even("one two three", parts);
            assert_eq!(pieces.len(), parts as usize);
            assert_eq!(pieces.concat(), "one two three");
        }
        let request = chat(
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "a b"}]}]}),
        );
        let chunks = chat_chunks(&request, "m", 1, 2);
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        assert_eq!(chunks[1].choices[0].finish_reason.as_deref(), Some("stop"));
        assert!(chunks[1].usage.is_some());
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embed(&json!("a"), 16);
        assert_eq!(a, embed(&json!("a"), 16));
        assert_ne!(a, embed(&json!("b"), 16));
        let norm: f64 = a.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-9);
        assert_eq!(embed(&json!("x"), 100).len(), 100);
    }
}
