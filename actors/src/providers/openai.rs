//! OpenAI, Azure OpenAI and the OpenAI-compatible family (groq, deepseek, xai, openrouter,
//! ollama): unified requests to their wire format and their responses and stream events back.
//! Pure code: no HTTP, no clock.
//!
//! The unified schemas are OpenAI's shapes, so most of the work is choosing the URL and auth
//! headers, placing `model`, and normalising what MLflow normalises (choice indexes, dropped
//! extras, the `provider` field).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{EndpointType, OpenAiApiType, OpenAiCompatibleConfig, OpenAiConfig, Provider};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::{StreamChunk, Usage};
use crate::providers::wire_json::{request_body_sized, response_body, unreadable_because};
use crate::schema::{
    ChatChoice, ChatChunk, ChatChunkChoice, ChatDelta, ChatResponse, ChatUsage, CommonParams,
    CompletionsChoice, CompletionsChunk, CompletionsChunkChoice, CompletionsResponse,
    CompletionsUsage, Embedding, EmbeddingObject, EmbeddingsInput, EmbeddingsResponse,
    EmbeddingsUsage, Message, ResponseMessage, Tool, ToolCall, ToolCallDelta, ToolChoice,
    UnifiedRequest,
};
use crate::sse::SseEvent;
use crate::upstream::{EventOutcome, UpstreamRequest};

/// Where requests go and how they authenticate.
#[derive(Debug, Clone)]
enum Target {
    OpenAi(OpenAiConfig),
    Compatible(OpenAiCompatibleConfig),
}

/// One endpoint's OpenAI-wire translation.
#[derive(Debug, Clone)]
pub struct OpenAiWire {
    target: Target,
    model: Option<String>,
    provider: Provider,
}

impl OpenAiWire {
    pub fn openai(config: &OpenAiConfig, model: Option<String>, provider: Provider) -> Self {
        Self {
            target: Target::OpenAi(config.clone()),
            model,
            provider,
        }
    }

    pub fn compatible(
        config: &OpenAiCompatibleConfig,
        model: Option<String>,
        provider: Provider,
    ) -> Self {
        Self {
            target: Target::Compatible(config.clone()),
            model,
            provider,
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        match &self.target {
            Target::OpenAi(config) => vec![config.api_key.expose()],
            Target::Compatible(config) => vec![config.api_key.expose()],
        }
    }

    /// The unified request as the provider's HTTP request; 501 for what it does not serve.
    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let kind = request.endpoint_type();
        if matches!(self.target, Target::Compatible(_)) && kind == EndpointType::Completions {
            return Err(GatewayError::not_implemented(
                kind.route_word(),
                self.provider.display_name(),
            ));
        }
        let path = match kind {
            EndpointType::Chat => "chat/completions",
            EndpointType::Completions => "completions",
            EndpointType::Embeddings => "embeddings",
        };
        let (url, headers, send_model) = match &self.target {
            Target::OpenAi(config) => openai_target(config, path),
            Target::Compatible(config) => compatible_target(config, self.provider, path),
        };
        let body = wire_body(
            request,
            send_model.then_some(self.model.as_deref()).flatten(),
        )?;
        Ok(UpstreamRequest { url, headers, body })
    }

    /// A whole upstream JSON body as the serialised unified response and its token usage.
    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
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
                let response = completions_response(body)?;
                let usage = Usage::new(
                    response.usage.prompt_tokens,
                    response.usage.completion_tokens,
                );
                Ok((response_body(&response)?, usage))
            }
            EndpointType::Embeddings => embeddings_reply(&embeddings_response(body)?),
        }
    }

    /// [`OpenAiWire::response`] from the reply's JSON text. Embeddings skip the parse into a
    /// `Value` (see [`embeddings_response_from_text`]); the rest parse it and go on as usual.
    pub fn response_from_text(
        &self,
        kind: EndpointType,
        body: &[u8],
    ) -> Result<(Bytes, Usage), GatewayError> {
        if kind == EndpointType::Embeddings {
            if let Some(response) = embeddings_response_from_text(body) {
                return embeddings_reply(&response);
            }
        }
        self.response(kind, crate::upstream::parse_json(body)?)
    }

    /// One upstream SSE event as zero or one unified chunk.
    pub fn stream_event(
        &self,
        kind: EndpointType,
        event: &SseEvent,
    ) -> Result<EventOutcome, GatewayError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(EventOutcome::Skip);
        }
        if data == "[DONE]" {
            return Ok(EventOutcome::Done);
        }
        // The common case parses straight into the typed chunk; anything unusual (an `error`
        // event, a shape that does not fit, text that is not JSON) takes the general path,
        // which decides exactly as before.
        let wire = match serde_json::from_str::<WireChunk>(data) {
            Ok(wire) if !wire.error => wire,
            _ => match general_event(data)? {
                Some(wire) => wire,
                None => return Ok(EventOutcome::Skip),
            },
        };
        let chunk = match kind {
            EndpointType::Chat => {
                let chunk = chat_chunk_from(wire, self.provider.as_str())?;
                let usage = chunk
                    .usage
                    .as_ref()
                    .map(|u| Usage::new(u.prompt_tokens, u.completion_tokens));
                StreamChunk {
                    json: response_body(&chunk)?,
                    usage,
                }
            }
            EndpointType::Completions => {
                let chunk = completions_chunk_from(wire)?;
                let usage = chunk
                    .usage
                    .as_ref()
                    .map(|u| Usage::new(u.prompt_tokens, u.completion_tokens));
                StreamChunk {
                    json: response_body(&chunk)?,
                    usage,
                }
            }
            EndpointType::Embeddings => return Ok(EventOutcome::Skip),
        };
        Ok(EventOutcome::Chunk(chunk))
    }
}

/// A stream event the typed fast path did not take: `None` for text that is not JSON (MLflow
/// skips such lines; a proxy should not fail a stream on a comment), an error for an upstream
/// `error` event or a JSON value that is not a chunk.
fn general_event(data: &str) -> Result<Option<WireChunk>, GatewayError> {
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        tracing::debug!("skipping a non-JSON stream event from the provider");
        return Ok(None);
    };
    if let Some(error) = value.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| error.to_string());
        return Err(GatewayError::new(ErrorKind::UpstreamStatus, 502, message));
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| unreadable_because("stream event", e))
}

/// URL, auth headers and whether the body names the model, for `openai` / `azure` / `azuread`.
fn openai_target(config: &OpenAiConfig, path: &str) -> (String, Vec<(&'static str, String)>, bool) {
    let key = config.api_key.expose().to_owned();
    match config.api_type {
        OpenAiApiType::OpenAi => {
            let mut url = join_url(&config.api_base, path);
            if let Some(version) = &config.api_version {
                url = with_query(url, "api-version", version);
            }
            let mut headers = vec![("authorization", format!("Bearer {key}"))];
            if let Some(organization) = &config.organization {
                headers.push(("openai-organization", organization.clone()));
            }
            (url, headers, true)
        }
        OpenAiApiType::Azure | OpenAiApiType::AzureAd => {
            let deployment = config.deployment_name.as_deref().unwrap_or_default();
            let url = join_url(
                &config.api_base,
                &format!("openai/deployments/{deployment}/{path}"),
            );
            let url = with_query(
                url,
                "api-version",
                config.api_version.as_deref().unwrap_or_default(),
            );
            let header = match config.api_type {
                OpenAiApiType::Azure => ("api-key", key),
                _ => ("authorization", format!("Bearer {key}")),
            };
            (url, vec![header], false)
        }
    }
}

fn compatible_target(
    config: &OpenAiCompatibleConfig,
    provider: Provider,
    path: &str,
) -> (String, Vec<(&'static str, String)>, bool) {
    let key = config.api_key.expose();
    // Ollama's placeholder key means "no authentication".
    let headers = if provider == Provider::Ollama && key == "ollama" {
        Vec::new()
    } else {
        vec![("authorization", format!("Bearer {key}"))]
    };
    (join_url(&config.api_base, path), headers, true)
}

/// Joins `base` and `path` with exactly one slash, keeping a query string on `base` at the end.
pub fn join_url(base: &str, path: &str) -> String {
    let (base, query) = match base.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (base, None),
    };
    let mut url = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

fn with_query(mut url: String, key: &str, value: &str) -> String {
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(key);
    url.push('=');
    url.push_str(&encode_query_value(value));
    url
}

fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The request as OpenAI's body, written in one pass without a tree: the configured model first
/// (the client's `model` never), the unified fields in MLflow's order, unknown keys as the
/// client's JSON text, and for a stream `stream_options.include_usage: true` unless the client
/// set it (appended last when the client sent no `stream_options`, as a dict insert would).
fn wire_body(request: &UnifiedRequest, model: Option<&str>) -> Result<Vec<u8>, GatewayError> {
    let stream = request.is_stream();
    // The upstream body is the client's, give or take `model`: sized once from it.
    let capacity = match request {
        UnifiedRequest::Chat(r) => r.extra.body_len(),
        UnifiedRequest::Completions(r) => r.extra.body_len(),
        UnifiedRequest::Embeddings(r) => r.extra.body_len(),
    } + 256;
    match request {
        UnifiedRequest::Chat(chat) => {
            let (common, stream_options) = wire_common(&chat.common, stream);
            request_body_sized(
                &ChatWire {
                    model,
                    common,
                    messages: &chat.messages,
                    tools: chat.tools.as_deref(),
                    tool_choice: chat.tool_choice.as_ref(),
                    extra: chat.extra.without("model"),
                    stream_options,
                },
                capacity,
            )
        }
        UnifiedRequest::Completions(completions) => {
            let (common, stream_options) = wire_common(&completions.common, stream);
            request_body_sized(
                &CompletionsWire {
                    model,
                    common,
                    prompt: &completions.prompt,
                    extra: completions.extra.without("model"),
                    stream_options,
                },
                capacity,
            )
        }
        UnifiedRequest::Embeddings(embeddings) => request_body_sized(
            &EmbeddingsWire {
                model,
                input: &embeddings.input,
                extra: embeddings.extra.without("model"),
            },
            capacity,
        ),
    }
}

/// The common parameters without `model`, with `include_usage` added for a stream; the second
/// value is the `stream_options` to append when the client sent none.
fn wire_common(common: &CommonParams, stream: bool) -> (CommonParams, Option<Map<String, Value>>) {
    let mut common = CommonParams {
        model: None,
        ..common.clone()
    };
    if !stream {
        return (common, None);
    }
    match &mut common.stream_options {
        Some(options) => {
            options.entry("include_usage").or_insert(Value::Bool(true));
            (common, None)
        }
        None => {
            let mut options = Map::new();
            options.insert("include_usage".to_owned(), Value::Bool(true));
            (common, Some(options))
        }
    }
}

#[derive(Serialize)]
struct ChatWire<'a, E: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(flatten)]
    common: CommonParams,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [Tool]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a ToolChoice>,
    #[serde(flatten)]
    extra: E,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Map<String, Value>>,
}

#[derive(Serialize)]
struct CompletionsWire<'a, E: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(flatten)]
    common: CommonParams,
    prompt: &'a str,
    #[serde(flatten)]
    extra: E,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Map<String, Value>>,
}

#[derive(Serialize)]
struct EmbeddingsWire<'a, E: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    input: &'a EmbeddingsInput,
    #[serde(flatten)]
    extra: E,
}

#[derive(Deserialize)]
struct WireChat {
    id: Option<String>,
    object: String,
    created: i64,
    model: String,
    #[serde(default)]
    choices: Vec<WireChatChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct WireChatChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default = "assistant")]
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    refusal: Option<String>,
}

fn assistant() -> String {
    "assistant".to_owned()
}

/// Chat: choices renumbered by position, message extras and top-level extras dropped.
pub fn chat_response(body: Value, provider: &str) -> Result<ChatResponse, GatewayError> {
    let wire: WireChat =
        serde_json::from_value(body).map_err(|e| unreadable_because("chat response", e))?;
    Ok(ChatResponse {
        id: wire.id,
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
                    content: choice.message.content,
                    tool_calls: choice.message.tool_calls,
                    refusal: choice.message.refusal,
                },
                finish_reason: choice.finish_reason,
            })
            .collect(),
        usage: wire.usage.unwrap_or_default(),
        provider: provider.to_owned(),
    })
}

#[derive(Deserialize)]
struct WireCompletions {
    id: Option<String>,
    created: i64,
    model: String,
    #[serde(default)]
    choices: Vec<WireCompletionsChoice>,
    usage: CompletionsUsage,
}

#[derive(Deserialize)]
struct WireCompletionsChoice {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// Completions: text from `message.content`, else `text`, else empty.
pub fn completions_response(body: Value) -> Result<CompletionsResponse, GatewayError> {
    let wire: WireCompletions =
        serde_json::from_value(body).map_err(|e| unreadable_because("completions response", e))?;
    Ok(CompletionsResponse {
        id: wire.id,
        object: "text_completion".to_owned(),
        created: wire.created,
        model: wire.model,
        choices: wire
            .choices
            .into_iter()
            .zip(0u32..)
            .map(|(choice, index)| CompletionsChoice {
                index,
                text: choice
                    .message
                    .and_then(|m| m.content)
                    .or(choice.text)
                    .unwrap_or_default(),
                finish_reason: choice.finish_reason,
            })
            .collect(),
        usage: wire.usage,
    })
}

fn embeddings_reply(response: &EmbeddingsResponse) -> Result<(Bytes, Usage), GatewayError> {
    Ok((
        response_body(response)?,
        Usage::new(response.usage.prompt_tokens, None),
    ))
}

/// OpenAI's embeddings reply; `E` is how each vector is read.
#[derive(Deserialize)]
struct WireEmbeddings<E = Embedding> {
    data: Vec<WireEmbedding<E>>,
    model: String,
    usage: EmbeddingsUsage,
}

#[derive(Deserialize)]
struct WireEmbedding<E> {
    embedding: E,
}

pub fn embeddings_response(body: Value) -> Result<EmbeddingsResponse, GatewayError> {
    let wire: WireEmbeddings =
        serde_json::from_value(body).map_err(|e| unreadable_because("embeddings response", e))?;
    Ok(unified_embeddings(wire))
}

/// An embeddings reply read straight from its text, each vector copied rather than parsed
/// into floats and printed again. `None` when the reply is not the plain shape (invalid JSON,
/// a missing field, a vector that is not all numbers): the caller then takes the parsing path,
/// which reports it exactly as before.
pub fn embeddings_response_from_text(body: &[u8]) -> Option<EmbeddingsResponse> {
    // Checked as a whole first: serde_json checks UTF-8 only in the strings it keeps, and a
    // reply the parsing path refuses for a bad byte in an ignored field must not pass here.
    let body = std::str::from_utf8(body).ok()?;
    let wire: WireEmbeddings<Box<serde_json::value::RawValue>> = serde_json::from_str(body).ok()?;
    let data = wire
        .data
        .into_iter()
        .map(|item| {
            Embedding::from_raw(item.embedding).map(|embedding| WireEmbedding { embedding })
        })
        .collect::<Option<_>>()?;
    Some(unified_embeddings(WireEmbeddings {
        data,
        model: wire.model,
        usage: wire.usage,
    }))
}

fn unified_embeddings(wire: WireEmbeddings) -> EmbeddingsResponse {
    EmbeddingsResponse {
        object: "list".to_owned(),
        data: wire
            .data
            .into_iter()
            .zip(0u32..)
            .map(|(item, index)| EmbeddingObject {
                object: "embedding".to_owned(),
                embedding: item.embedding,
                index,
            })
            .collect(),
        model: wire.model,
        usage: wire.usage,
    }
}

#[derive(Deserialize)]
struct WireChunk {
    id: Option<String>,
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    created: i64,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<Value>,
    /// Whether the event has an `error` member (its content is read by [`general_event`]).
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

fn parse_usage<T: for<'de> Deserialize<'de>>(
    usage: Option<Value>,
) -> Result<Option<T>, GatewayError> {
    match usage {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|e| unreadable_because("stream usage", e)),
    }
}

/// One chat stream event: indexes copied (as MLflow does in streams), usage kept when present.
pub fn chat_chunk(value: Value, provider: &str) -> Result<ChatChunk, GatewayError> {
    let wire: WireChunk =
        serde_json::from_value(value).map_err(|e| unreadable_because("stream event", e))?;
    chat_chunk_from(wire, provider)
}

fn chat_chunk_from(wire: WireChunk, provider: &str) -> Result<ChatChunk, GatewayError> {
    Ok(ChatChunk {
        id: wire.id,
        object: wire
            .object
            .unwrap_or_else(|| "chat.completion.chunk".to_owned()),
        created: wire.created,
        model: wire.model,
        choices: wire
            .choices
            .into_iter()
            .map(|choice| {
                let delta = choice.delta.unwrap_or_default();
                ChatChunkChoice {
                    index: choice.index,
                    finish_reason: choice.finish_reason,
                    delta: ChatDelta {
                        role: delta.role,
                        content: delta.content,
                        tool_calls: delta.tool_calls,
                    },
                }
            })
            .collect(),
        usage: parse_usage(wire.usage)?,
        provider: provider.to_owned(),
    })
}

/// One completions stream event. Real OpenAI legacy chunks carry `text`; MLflow only reads
/// `delta.content` and so breaks on them (DIFFERENCES #14); we read `text`, then `delta.content`.
pub fn completions_chunk(value: Value) -> Result<CompletionsChunk, GatewayError> {
    let wire: WireChunk =
        serde_json::from_value(value).map_err(|e| unreadable_because("stream event", e))?;
    completions_chunk_from(wire)
}

fn completions_chunk_from(wire: WireChunk) -> Result<CompletionsChunk, GatewayError> {
    Ok(CompletionsChunk {
        id: wire.id,
        object: "text_completion_chunk".to_owned(),
        created: wire.created,
        model: wire.model,
        choices: wire
            .choices
            .into_iter()
            .map(|choice| CompletionsChunkChoice {
                index: choice.index,
                finish_reason: choice.finish_reason,
                text: choice.text.or_else(|| choice.delta.and_then(|d| d.content)),
            })
            .collect(),
        usage: parse_usage(wire.usage)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use serde_json::json;

    fn config(api_type: OpenAiApiType) -> OpenAiConfig {
        OpenAiConfig {
            api_key: Secret::new("sk-test"),
            api_type,
            api_base: "https://example.test/v1".to_owned(),
            api_version: None,
            deployment_name: None,
            organization: None,
        }
    }

    fn chat_request(body: Value) -> UnifiedRequest {
        UnifiedRequest::validate(EndpointType::Chat, body).unwrap()
    }

    #[test]
    fn openai_request_puts_model_first_and_keeps_extras() {
        let mut cfg = config(OpenAiApiType::OpenAi);
        cfg.organization = Some("my-org".to_owned());
        let wire = OpenAiWire::openai(&cfg, Some("gpt-4o-mini".to_owned()), Provider::OpenAi);
        let request = chat_request(
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20, "stop": ["END"], "temperature": 0.5, "foo": "bar"}),
        );
        let upstream = wire.request(&request).unwrap();
        assert_eq!(upstream.url, "https://example.test/v1/chat/completions");
        assert_eq!(
            upstream.headers,
            vec![
                ("authorization", "Bearer sk-test".to_owned()),
                ("openai-organization", "my-org".to_owned())
            ]
        );
        assert_eq!(
            String::from_utf8(upstream.body).unwrap(),
            r#"{"model":"gpt-4o-mini","n":1,"stop":["END"],"max_tokens":20,"temperature":0.5,"messages":[{"role":"user","content":"hi"}],"foo":"bar"}"#
        );
    }

    #[test]
    fn azure_request_uses_the_deployment_url_and_api_key() {
        let mut cfg = config(OpenAiApiType::Azure);
        cfg.api_base = "https://myres.openai.azure.com".to_owned();
        cfg.deployment_name = Some("mydep".to_owned());
        cfg.api_version = Some("2023-05-15".to_owned());
        let wire = OpenAiWire::openai(&cfg, Some("gpt-4".to_owned()), Provider::Azure);
        let upstream = wire
            .request(&chat_request(
                json!({"messages": [{"role": "user", "content": "hi"}]}),
            ))
            .unwrap();
        assert_eq!(
            upstream.url,
            "https://myres.openai.azure.com/openai/deployments/mydep/chat/completions?api-version=2023-05-15"
        );
        assert_eq!(upstream.headers, vec![("api-key", "sk-test".to_owned())]);
        assert_eq!(
            String::from_utf8(upstream.body).unwrap(),
            r#"{"n":1,"messages":[{"role":"user","content":"hi"}]}"#
        );
    }

    #[test]
    fn streaming_asks_for_usage_unless_the_client_decided() {
        let wire = OpenAiWire::openai(
            &config(OpenAiApiType::OpenAi),
            Some("m".to_owned()),
            Provider::OpenAi,
        );
        let body = |extra: Value| {
            let mut request =
                json!({"messages": [{"role": "user", "content": "hi"}], "stream": true});
            request
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let upstream = wire.request(&chat_request(request)).unwrap();
            serde_json::from_slice::<Value>(&upstream.body).unwrap()["stream_options"].clone()
        };
        assert_eq!(body(json!({})), json!({"include_usage": true}));
        assert_eq!(
            body(json!({"stream_options": {"include_usage": false}})),
            json!({"include_usage": false})
        );
        assert_eq!(
            body(json!({"stream_options": {"x": 1}})),
            json!({"x": 1, "include_usage": true})
        );
    }

    #[test]
    fn urls_join_with_one_slash_and_keep_base_queries() {
        assert_eq!(join_url("http://h/v1/", "/chat"), "http://h/v1/chat");
        assert_eq!(join_url("http://h/d?x=1", "chat"), "http://h/d/chat?x=1");
        assert_eq!(
            with_query("http://h/a?x=1".to_owned(), "api-version", "v 1"),
            "http://h/a?x=1&api-version=v%201"
        );
    }

    #[test]
    fn chat_response_renumbers_choices_and_drops_extras() {
        let body = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "system_fingerprint": "x",
            "choices": [{"index": 5, "message": {"role": "assistant", "content": "hi", "annotations": []}, "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "completion_tokens_details": {"reasoning_tokens": 0}}});
        let out = serde_json::to_string(&chat_response(body, "openai").unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","tool_calls":null,"refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"completion_tokens_details":{"reasoning_tokens":0}},"provider":"openai"}"#
        );
        let missing = chat_response(
            json!({"id": "c", "object": "o", "model": "m", "choices": []}),
            "openai",
        )
        .unwrap_err();
        assert_eq!(
            (missing.status, missing.kind),
            (502, ErrorKind::UpstreamProtocol)
        );
    }

    #[test]
    fn completions_stream_reads_real_openai_text_chunks() {
        let chunk = completions_chunk(
            json!({"id": "c", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "text": "Hel", "finish_reason": null, "logprobs": null}]}),
        )
        .unwrap();
        assert_eq!(chunk.choices[0].text.as_deref(), Some("Hel"));
        let chunk = completions_chunk(json!({"id": "c", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "lo"}}]}))
        .unwrap();
        assert_eq!(chunk.choices[0].text.as_deref(), Some("lo"));
    }

    #[test]
    fn stream_events_done_skip_and_errors() {
        let wire = OpenAiWire::openai(&config(OpenAiApiType::OpenAi), None, Provider::OpenAi);
        let event = |data: &str| SseEvent {
            event: None,
            data: data.to_owned(),
        };
        assert!(matches!(
            wire.stream_event(EndpointType::Chat, &event("[DONE]")),
            Ok(EventOutcome::Done)
        ));
        assert!(matches!(
            wire.stream_event(EndpointType::Chat, &event("not json")),
            Ok(EventOutcome::Skip)
        ));
        let error = wire.stream_event(
            EndpointType::Chat,
            &event(r#"{"error":{"message":"overloaded"}}"#),
        );
        assert!(matches!(error, Err(e) if e.detail == json!("overloaded")));
        let chunk = wire
            .stream_event(EndpointType::Chat, &event(r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"#))
            .unwrap();
        let EventOutcome::Chunk(StreamChunk { json: bytes, .. }) = chunk else {
            panic!("expected a chunk")
        };
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"finish_reason":null,"delta":{"role":null,"content":"a","tool_calls":null}}],"usage":null,"provider":"openai"}"#
        );
    }

    #[test]
    fn compatible_family_has_no_completions_and_ollama_sends_no_key() {
        let cfg = OpenAiCompatibleConfig {
            api_key: Secret::new("ollama"),
            api_base: "http://127.0.0.1:11434/v1".to_owned(),
        };
        let wire = OpenAiWire::compatible(&cfg, Some("llama3".to_owned()), Provider::Ollama);
        let completions =
            UnifiedRequest::validate(EndpointType::Completions, json!({"prompt": "x"})).unwrap();
        let error = wire.request(&completions).unwrap_err();
        assert_eq!(
            error.detail,
            json!("The completions route is not implemented for Ollama models.")
        );
        let upstream = wire
            .request(&chat_request(
                json!({"messages": [{"role": "user", "content": "hi"}]}),
            ))
            .unwrap();
        assert!(upstream.headers.is_empty());
        assert_eq!(upstream.url, "http://127.0.0.1:11434/v1/chat/completions");
    }

    /// The text path and the parsing path give the same response for the same reply, with the
    /// vectors' own text kept on the text path.
    #[test]
    fn embeddings_from_text_match_the_parsing_path() {
        let wire = OpenAiWire::openai(
            &config(OpenAiApiType::OpenAi),
            Some("text-embedding-3-small".to_owned()),
            Provider::OpenAi,
        );
        let reply = br#"{"object": "list", "data": [
            {"object": "embedding", "index": 4, "embedding": [ -0.0028842222, 4.5489726e-05 ,1E+2, 0.0, -1.0 ]},
            {"object": "embedding", "index": 9, "embedding": "AAAAPwAAgL4="},
            {"object": "embedding", "index": 2, "embedding": []}
        ], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}, "extra": {"a": [1]}}"#;
        let (text_path, text_usage) = wire
            .response_from_text(EndpointType::Embeddings, reply)
            .unwrap();
        let (parsed_path, parsed_usage) = wire
            .response(
                EndpointType::Embeddings,
                serde_json::from_slice(reply).unwrap(),
            )
            .unwrap();
        assert_eq!(text_usage, parsed_usage);
        assert_eq!(
            serde_json::from_slice::<Value>(&text_path).unwrap(),
            serde_json::from_slice::<Value>(&parsed_path).unwrap()
        );
        let text = std::str::from_utf8(&text_path).unwrap();
        assert!(
            text.contains(
                r#""embedding":[ -0.0028842222, 4.5489726e-05 ,1E+2, 0.0, -1.0 ],"index":0"#
            ),
            "{text}"
        );
        assert!(text.starts_with(r#"{"object":"list","data":[{"object":"embedding","#));
    }

    /// What the text path does not take goes the parsing way and fails (or succeeds) as it
    /// always did.
    #[test]
    fn embeddings_the_text_path_does_not_take_are_reported_as_before() {
        let wire = OpenAiWire::openai(&config(OpenAiApiType::OpenAi), None, Provider::OpenAi);
        let usage = r#""model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}"#;
        for vector in [
            "[1e400]",
            "[null]",
            "[[0.5]]",
            r#"["0.5"]"#,
            "{}",
            "true",
            "[123456789012345678901234567890.123]",
            "[0.5, 1]",
        ] {
            let reply = format!(r#"{{"data": [{{"embedding": {vector}}}], {usage}}}"#);
            assert!(
                embeddings_response_from_text(reply.as_bytes()).is_none(),
                "{vector}"
            );
            let by_text = wire.response_from_text(EndpointType::Embeddings, reply.as_bytes());
            let by_value = serde_json::from_str(&reply)
                .map_err(|_| ())
                .and_then(|v| wire.response(EndpointType::Embeddings, v).map_err(|_| ()));
            match (&by_text, &by_value) {
                (Ok(a), Ok(b)) => assert_eq!(a.0, b.0, "{vector}"),
                (Err(e), Err(())) => assert_eq!(e.status, 502, "{vector}: {e}"),
                _ => panic!("{vector}: {by_text:?} vs {by_value:?}"),
            }
        }
        // A bad byte in a field nobody reads still makes the reply invalid JSON.
        let mut bad_utf8 = format!(r#"{{"object": "lis?", "data": [], {usage}}}"#).into_bytes();
        let at = bad_utf8.iter().position(|&b| b == b'?').unwrap();
        bad_utf8[at] = 0xb6;
        assert!(embeddings_response_from_text(&bad_utf8).is_none());
        assert_eq!(
            wire.response_from_text(EndpointType::Embeddings, &bad_utf8)
                .unwrap_err()
                .to_string(),
            crate::upstream::parse_json(&bad_utf8)
                .unwrap_err()
                .to_string()
        );
        for reply in ["not json", r#"{"data": [], "model": "m"}"#] {
            let error = wire
                .response_from_text(EndpointType::Embeddings, reply.as_bytes())
                .unwrap_err();
            assert_eq!(error.status, 502, "{reply}: {error}");
        }
        let error = wire
            .response_from_text(EndpointType::Embeddings, b"{")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            crate::upstream::parse_json(b"{").unwrap_err().to_string()
        );
    }
}
