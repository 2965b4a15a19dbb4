//! TogetherAI: chat, completions and embeddings on Together's OpenAI-like API. Pure
//! code: no HTTP, no clock (Together's bodies carry `created`).
//!
//! Deliberate difference from MLflow 3.17: MLflow lets a client's `model` replace the configured
//! one here, and sends embeddings without any `model` (so they only work when the client names
//! one). The invocation handlers refuse a client `model`, and every upstream body, embeddings
//! included, starts with the configured model.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{EndpointType, Provider, TogetherAiConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::{StreamChunk, Usage};
use crate::schema::{
    ChatChoice, ChatChunk, ChatChunkChoice, ChatDelta, ChatResponse, ChatUsage, CompletionsChoice,
    CompletionsChunk, CompletionsChunkChoice, CompletionsResponse, CompletionsUsage,
    EmbeddingsResponse, EmbeddingsUsage, ResponseMessage, UnifiedRequest,
};
use crate::sse::SseEvent;
use crate::upstream::{EventOutcome, UpstreamRequest};

use super::mistral::{
    bearer, embedding_objects, model_first, payload, stream_data, three_counts, RequiredUsage,
    WireEmbedding,
};
use super::openai::join_url;
use crate::providers::wire_json::{request_body, response_body, unreadable_because};

const MAX_TOKENS_REQUIRED: &str =
    "max_tokens is not present in payload.It is a required parameter for TogetherAI completions.";

/// One endpoint's TogetherAI translation.
#[derive(Debug, Clone)]
pub struct TogetherAiWire {
    config: TogetherAiConfig,
    model: Option<String>,
    provider: Provider,
}

impl TogetherAiWire {
    pub fn new(config: &TogetherAiConfig, model: Option<String>, provider: Provider) -> Self {
        Self {
            config: config.clone(),
            model,
            provider,
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        vec![self.config.api_key.expose()]
    }

    /// The unified request as Together's HTTP request, with MLflow's `max_tokens` and
    /// `logprobs` rules (422).
    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let model = self.model.as_deref();
        let (path, body) = match request {
            UnifiedRequest::Chat(chat) => ("chat/completions", logprobs_rules(payload(chat)?)?),
            UnifiedRequest::Completions(completions) => {
                if completions.common.max_tokens.is_none() {
                    return Err(invalid(MAX_TOKENS_REQUIRED));
                }
                ("completions", logprobs_rules(payload(completions)?)?)
            }
            UnifiedRequest::Embeddings(embeddings) => ("embeddings", payload(embeddings)?),
        };
        Ok(UpstreamRequest {
            url: join_url(&self.config.api_base, path),
            headers: bearer(self.config.api_key.expose()),
            body: request_body(&model_first(model, body))?,
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
                let response = chat_response(body, model, self.provider.as_str())?;
                let usage = Usage::new(
                    response.usage.prompt_tokens,
                    response.usage.completion_tokens,
                );
                Ok((response_body(&response)?, usage))
            }
            EndpointType::Completions => {
                let response = completions_response(body, model)?;
                let usage = Usage::new(
                    response.usage.prompt_tokens,
                    response.usage.completion_tokens,
                );
                Ok((response_body(&response)?, usage))
            }
            EndpointType::Embeddings => Ok((
                response_body(&embeddings_response(body, model)?)?,
                Usage::default(),
            )),
        }
    }

    /// One stream event of a chat or completions stream.
    pub fn stream_event(
        &self,
        kind: EndpointType,
        event: &SseEvent,
    ) -> Result<EventOutcome, GatewayError> {
        let Some(value) = stream_data(event)? else {
            return Ok(EventOutcome::Done);
        };
        if value.is_null() {
            return Ok(EventOutcome::Skip);
        }
        let usage = three_counts(value.get("usage")).map(|u| Usage::new(u.0, u.1));
        let model = self.model.as_deref().unwrap_or_default();
        let json = match kind {
            EndpointType::Chat => {
                response_body(&chat_chunk(value, model, self.provider.as_str())?)?
            }
            EndpointType::Completions => response_body(&completions_chunk(value, model)?)?,
            EndpointType::Embeddings => return Ok(EventOutcome::Skip),
        };
        Ok(EventOutcome::Chunk(StreamChunk { json, usage }))
    }
}

fn invalid(message: &str) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidParameter, 422, message)
}

/// Python's `isinstance(v, int)`, which booleans pass.
fn is_python_int(value: &Value) -> bool {
    value.is_boolean() || value.is_i64() || value.is_u64()
}

/// Together's `logprobs` is a count where OpenAI's is a flag: a non-integer `logprobs` or
/// `top_logprobs` is refused, and `top_logprobs` is renamed `logprobs` where it stands.
fn logprobs_rules(payload: Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    if payload.get("logprobs").is_some_and(|v| !is_python_int(v)) {
        return Err(invalid(
            "Wrong type for logprobs. It should be an 32bit integer.",
        ));
    }
    if payload
        .get("top_logprobs")
        .is_some_and(|v| !is_python_int(v))
    {
        return Err(invalid(
            "Wrong type for top_logprobs. It should a 32bit integer.",
        ));
    }
    // Collecting into a map keeps a duplicate key's first position with the later value, as
    // MLflow's dict comprehension does.
    Ok(payload
        .into_iter()
        .map(|(key, value)| match key.as_str() {
            "top_logprobs" => ("logprobs".to_owned(), value),
            _ => (key, value),
        })
        .collect())
}

#[derive(Deserialize)]
struct WireChat {
    id: String,
    created: i64,
    choices: Vec<WireChatChoice>,
    usage: RequiredUsage,
}

#[derive(Deserialize)]
struct WireChatChoice {
    message: WireMessage,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<String>,
}

/// Chat: the configured model, role `assistant`, no finish reason and no tool calls (MLflow maps
/// only the content), usage limited to the three counters.
pub fn chat_response(
    body: Value,
    model: &str,
    provider: &str,
) -> Result<ChatResponse, GatewayError> {
    let wire: WireChat =
        serde_json::from_value(body).map_err(|e| unreadable_because("chat response", e))?;
    Ok(ChatResponse {
        id: Some(wire.id),
        object: "chat.completion".to_owned(),
        created: wire.created,
        model: model.to_owned(),
        choices: wire
            .choices
            .into_iter()
            .zip(0u32..)
            .map(|(choice, index)| ChatChoice {
                index,
                message: ResponseMessage {
                    role: "assistant".to_owned(),
                    content: choice.message.content,
                    tool_calls: None,
                    refusal: None,
                },
                finish_reason: None,
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
    id: String,
    created: i64,
    choices: Vec<WireText>,
    usage: RequiredUsage,
}

#[derive(Deserialize)]
struct WireText {
    text: String,
}

/// Completions: id and created copied, the configured model, no finish reason.
pub fn completions_response(body: Value, model: &str) -> Result<CompletionsResponse, GatewayError> {
    let wire: WireCompletions =
        serde_json::from_value(body).map_err(|e| unreadable_because("completions response", e))?;
    Ok(CompletionsResponse {
        id: Some(wire.id),
        object: "text_completion".to_owned(),
        created: wire.created,
        model: model.to_owned(),
        choices: wire
            .choices
            .into_iter()
            .zip(0u32..)
            .map(|(choice, index)| CompletionsChoice {
                index,
                text: choice.text,
                finish_reason: None,
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
}

/// Embeddings: vectors and indexes copied, the configured model, no usage (MLflow's).
pub fn embeddings_response(body: Value, model: &str) -> Result<EmbeddingsResponse, GatewayError> {
    let wire: WireEmbeddings =
        serde_json::from_value(body).map_err(|e| unreadable_because("embeddings response", e))?;
    Ok(EmbeddingsResponse {
        object: "list".to_owned(),
        data: embedding_objects(wire.data),
        model: model.to_owned(),
        usage: EmbeddingsUsage::default(),
    })
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    created: Option<i64>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    delta: Option<WireDelta>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
}

impl WireChunkChoice {
    /// Together's chunks carry the token twice, as `text` and `delta.content`; MLflow reads
    /// `text`, and we fall back to `delta.content` when a chunk has only that.
    fn text(self) -> Option<String> {
        self.text.or_else(|| self.delta.and_then(|d| d.content))
    }
}

/// A chat chunk: text from `choices[].text`, indexes renumbered, the configured model, usage
/// copied when present.
pub fn chat_chunk(value: Value, model: &str, provider: &str) -> Result<ChatChunk, GatewayError> {
    let wire: WireChunk =
        serde_json::from_value(value).map_err(|e| unreadable_because("stream event", e))?;
    Ok(ChatChunk {
        id: wire.id,
        object: "chat.completion.chunk".to_owned(),
        created: wire.created.unwrap_or_default(),
        model: model.to_owned(),
        choices: wire
            .choices
            .into_iter()
            .zip(0u32..)
            .map(|(choice, index)| ChatChunkChoice {
                index,
                finish_reason: choice.finish_reason.clone(),
                delta: ChatDelta {
                    role: None,
                    content: choice.text(),
                    tool_calls: None,
                },
            })
            .collect(),
        usage: wire.usage,
        provider: provider.to_owned(),
    })
}

/// A completions chunk: text from `choices[].text`, indexes renumbered, the configured model, no
/// usage (MLflow's completions chunks never carry it).
pub fn completions_chunk(value: Value, model: &str) -> Result<CompletionsChunk, GatewayError> {
    let wire: WireChunk =
        serde_json::from_value(value).map_err(|e| unreadable_because("stream event", e))?;
    Ok(CompletionsChunk {
        id: wire.id,
        object: "text_completion_chunk".to_owned(),
        created: wire.created.unwrap_or_default(),
        model: model.to_owned(),
        choices: wire
            .choices
            .into_iter()
            .zip(0u32..)
            .map(|(choice, index)| CompletionsChunkChoice {
                index,
                finish_reason: choice.finish_reason.clone(),
                text: choice.text(),
            })
            .collect(),
        usage: None,
    })
}

#[cfg(test)]
mod tests {
    //! Fixtures in `tests/fixtures/togetherai/`, after Together's API reference and MLflow's
    //! recorded chunks.

    use super::*;
    use crate::config::Secret;
    use crate::sse::SseDecoder;
    use crate::upstream::status_error;
    use serde_json::json;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../../tests/fixtures/togetherai/", $name))
        };
    }

    fn wire(model: &str) -> TogetherAiWire {
        let config = TogetherAiConfig {
            api_key: Secret::new("sk-together-test"),
            api_base: "https://api.together.test/v1".to_owned(),
        };
        TogetherAiWire::new(&config, Some(model.to_owned()), Provider::TogetherAi)
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn upstream(
        model: &str,
        kind: EndpointType,
        input: Value,
    ) -> Result<UpstreamRequest, GatewayError> {
        wire(model).request(&UnifiedRequest::validate(kind, input).unwrap())
    }

    fn body(request: &UpstreamRequest) -> String {
        String::from_utf8(request.body.clone()).unwrap()
    }

    /// Every chunk a stream fixture produces, and whether `[DONE]` ended it.
    fn run_stream(
        model: &str,
        kind: EndpointType,
        sse: &str,
    ) -> (Vec<String>, Vec<Option<Usage>>, bool) {
        let events = SseDecoder::new().push(sse.as_bytes()).unwrap();
        let wire = wire(model);
        let (mut lines, mut usage) = (Vec::new(), Vec::new());
        for event in &events {
            match wire.stream_event(kind, event) {
                Ok(EventOutcome::Chunk(chunk) | EventOutcome::Final(chunk)) => {
                    lines.push(String::from_utf8(chunk.json.to_vec()).unwrap());
                    usage.push(chunk.usage);
                }
                Ok(EventOutcome::Skip) => {}
                Ok(EventOutcome::Done) => return (lines, usage, true),
                Err(error) => panic!("{error:?}"),
            }
        }
        (lines, usage, false)
    }

    #[test]
    fn chat_request_renames_top_logprobs_and_sends_the_configured_model() {
        let request = upstream(
            "mistralai/Mixtral-8x7B-Instruct-v0.1",
            EndpointType::Chat,
            parse(fixture!("chat_request.json")),
        )
        .unwrap();
        assert_eq!(request.url, "https://api.together.test/v1/chat/completions");
        assert_eq!(
            request.headers,
            vec![("authorization", "Bearer sk-together-test".to_owned())]
        );
        assert_eq!(
            body(&request),
            fixture!("chat_request.upstream.json").trim()
        );
    }

    #[test]
    fn completions_request_fixture() {
        let request = upstream(
            "mistralai/Mixtral-8x7B-v0.1",
            EndpointType::Completions,
            parse(fixture!("completions_request.json")),
        )
        .unwrap();
        assert_eq!(request.url, "https://api.together.test/v1/completions");
        assert_eq!(
            body(&request),
            fixture!("completions_request.upstream.json").trim()
        );
    }

    /// Unlike MLflow, which sends embeddings without `model`; the configured one goes first.
    #[test]
    fn embeddings_request_names_the_configured_model() {
        let request = upstream(
            "togethercomputer/m2-bert-80M-8k-retrieval",
            EndpointType::Embeddings,
            parse(fixture!("embeddings_request.json")),
        )
        .unwrap();
        assert_eq!(request.url, "https://api.together.test/v1/embeddings");
        assert_eq!(
            body(&request),
            fixture!("embeddings_request.upstream.json").trim()
        );
    }

    #[test]
    fn parameter_rules_use_mlflows_messages() {
        let cases = [
            (
                EndpointType::Completions,
                json!({"prompt": "x"}),
                "max_tokens is not present in payload.It is a required parameter for TogetherAI completions.",
            ),
            (
                EndpointType::Completions,
                json!({"prompt": "x", "stream": true, "logprobs": "yes"}),
                "max_tokens is not present in payload.It is a required parameter for TogetherAI completions.",
            ),
            (
                EndpointType::Completions,
                json!({"prompt": "x", "max_tokens": 5, "logprobs": 1.5}),
                "Wrong type for logprobs. It should be an 32bit integer.",
            ),
            (
                EndpointType::Chat,
                json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": "2"}),
                "Wrong type for top_logprobs. It should a 32bit integer.",
            ),
        ];
        for (kind, input, message) in cases {
            let error = upstream("m", kind, input.clone()).unwrap_err();
            assert_eq!(
                (error.status, error.kind, error.detail),
                (422, ErrorKind::InvalidParameter, json!(message)),
                "{input}"
            );
        }
        // Python's `isinstance(True, int)` holds, so a boolean `logprobs` passes, as in MLflow.
        let flag = upstream(
            "m",
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 3}),
        )
        .unwrap();
        assert_eq!(
            body(&flag),
            r#"{"model":"m","n":1,"messages":[{"role":"user","content":"x"}],"logprobs":3}"#
        );
    }

    #[test]
    fn chat_response_fixture() {
        let response = chat_response(
            parse(fixture!("chat_response.json")),
            "mistralai/Mixtral-8x7B-Instruct-v0.1-configured",
            "togetherai",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            fixture!("chat_response.unified.json").trim()
        );
    }

    #[test]
    fn completions_response_fixture() {
        let response = completions_response(
            parse(fixture!("completions_response.json")),
            "mistralai/Mixtral-8x7B-v0.1",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            fixture!("completions_response.unified.json").trim()
        );
    }

    #[test]
    fn embeddings_response_fixture() {
        let response = embeddings_response(
            parse(fixture!("embeddings_response.json")),
            "togethercomputer/m2-bert-80M-8k-retrieval",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            fixture!("embeddings_response.unified.json").trim()
        );
    }

    #[test]
    fn chat_stream_fixture_reads_text_and_copies_usage() {
        let (lines, usage, done) = run_stream(
            "mistralai/Mixtral-8x7B-v0.1-configured",
            EndpointType::Chat,
            fixture!("chat_stream.sse"),
        );
        assert!(done);
        let expected: Vec<&str> = fixture!("chat_stream.unified.jsonl").lines().collect();
        assert_eq!(lines, expected);
        assert_eq!(usage[2], Some(Usage::new(Some(93), Some(100))));
    }

    #[test]
    fn completions_stream_fixture_drops_usage_from_the_chunk_only() {
        let (lines, usage, done) = run_stream(
            "mistralai/Mixtral-8x7B-v0.1",
            EndpointType::Completions,
            fixture!("completions_stream.sse"),
        );
        assert!(done);
        let expected: Vec<&str> = fixture!("completions_stream.unified.jsonl")
            .lines()
            .collect();
        assert_eq!(lines, expected);
        assert_eq!(usage[2], Some(Usage::new(Some(17), Some(200))));
    }

    #[test]
    fn chunks_without_text_fall_back_to_delta_content() {
        let chunk = chat_chunk(
            json!({"id": "x", "created": 1, "choices": [{"index": 4, "delta": {"content": "hi"}}]}),
            "m",
            "togetherai",
        )
        .unwrap();
        assert_eq!(chunk.choices[0].delta.content.as_deref(), Some("hi"));
        assert_eq!(chunk.choices[0].index, 0);
    }

    #[test]
    fn upstream_error_statuses_keep_status_and_message() {
        let table: [(u16, &str); 5] = [
            (400, fixture!("error_400.json")),
            (401, fixture!("error_401.json")),
            (404, fixture!("error_404.json")),
            (429, fixture!("error_429.json")),
            (503, fixture!("error_503.json")),
        ];
        for (status, body) in table {
            let parsed = parse(body);
            let error = status_error(status, &parsed);
            assert_eq!(
                (error.status, error.kind, &error.detail),
                (
                    status,
                    ErrorKind::UpstreamStatus,
                    &parsed["error"]["message"]
                )
            );
        }
    }
}
