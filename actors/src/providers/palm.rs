//! PaLM (Google's `v1beta3` API, deprecated in MLflow and shut down by Google; kept for parity):
//! chat through `{model}:generateMessage`, completions through `{model}:generateText`,
//! embeddings through `{model}:batchEmbedText`, with the key in the `x-goog-api-key` header (as
//! MLflow sends it, never in the URL). PaLM never streams: `stream: true` is MLflow's 501, decided
//! before anything is sent.
//!
//! The request side is MLflow 3.17.2's dict surgery on the unified payload (renames with their
//! 422s, temperature halved, messages moved under `prompt` with `role` renamed `author`), done on
//! the serialised payload so key order matches MLflow's. Errors are Google's
//! `{"error": {"message"}}`, which the shared upstream mapping reads. Pure code but for the clock
//! read for `created`.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::openai::join_url;
use crate::config::{EndpointType, PalmConfig, Provider};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::Usage;
use crate::providers::wire_json::{
    request_body, request_object, response_body, unix_now, unreadable,
};
use crate::schema::{
    ChatChoice, ChatResponse, ChatUsage, CompletionsChoice, CompletionsResponse, CompletionsUsage,
    Embedding, EmbeddingsResponse, EmbeddingsUsage, ResponseMessage, UnifiedRequest,
};
use crate::upstream::UpstreamRequest;

/// One endpoint's PaLM translation.
#[derive(Debug, Clone)]
pub struct PalmWire {
    config: PalmConfig,
    model: String,
    provider: Provider,
}

impl PalmWire {
    pub fn new(config: &PalmConfig, model: Option<String>, provider: Provider) -> Self {
        Self {
            config: config.clone(),
            model: model.unwrap_or_default(),
            provider,
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        vec![self.config.api_key.expose()]
    }

    /// The unified request as a PaLM HTTP request; 501 for streams, MLflow's parameter rules as
    /// 422s, all before anything is sent.
    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let kind = request.endpoint_type();
        if request.is_stream() {
            return Err(GatewayError::streaming_not_supported(
                kind.route_word(),
                self.provider.display_name(),
            ));
        }
        let payload = request_object(request)?;
        let (method, body) = match kind {
            EndpointType::Chat => ("generateMessage", chat_payload(payload)?),
            EndpointType::Completions => ("generateText", text_payload(payload)?),
            EndpointType::Embeddings => ("batchEmbedText", embed_payload(payload)?),
        };
        let body = request_body(&body)?;
        Ok(UpstreamRequest {
            url: join_url(&self.config.api_base, &format!("{}:{method}", self.model)),
            headers: vec![("x-goog-api-key", self.config.api_key.expose().to_owned())],
            body,
        })
    }

    /// A whole PaLM JSON body as the serialised unified response (PaLM reports no usage).
    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        let now = unix_now();
        let bytes = match kind {
            EndpointType::Chat => response_body(&chat_response(
                &body,
                &self.model,
                self.provider.as_str(),
                now,
            )?)?,
            EndpointType::Completions => {
                response_body(&completions_response(&body, &self.model, now)?)?
            }
            EndpointType::Embeddings => response_body(&embeddings_response(&body, &self.model)?)?,
        };
        Ok((bytes, Usage::default()))
    }
}

fn invalid(message: String) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidParameter, 422, message)
}

/// Refuses PaLM's own names for renamed keys, then renames in place (key order kept).
fn renamed(
    payload: Map<String, Value>,
    mapping: &[(&str, &str)],
) -> Result<Map<String, Value>, GatewayError> {
    for (unified, palm) in mapping {
        if payload.contains_key(*palm) {
            return Err(invalid(format!(
                "Invalid parameter {palm}. Use {unified} instead."
            )));
        }
    }
    Ok(payload
        .into_iter()
        .map(
            |(key, value)| match mapping.iter().find(|(from, _)| *from == key) {
                Some((_, to)) => ((*to).to_owned(), value),
                None => (key, value),
            },
        )
        .collect())
}

/// PaLM's temperature range is 0..1 where ours is 0..2; MLflow halves any value (0 included).
fn halve_temperature(payload: &mut Map<String, Value>) {
    if let Some(temperature) = payload.get("temperature").and_then(Value::as_f64) {
        payload.insert("temperature".to_owned(), json!(0.5 * temperature));
    }
}

/// `generateMessage`: `role` becomes `author` (moved to the end of each message), and the
/// messages, plus optional extra `examples` and `context` keys, move under `prompt`.
fn chat_payload(payload: Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    if payload.contains_key("max_tokens") || payload.contains_key("maxOutputTokens") {
        return Err(invalid(
            "Max tokens is not supported for PaLM chat.".to_owned(),
        ));
    }
    let mut payload = renamed(
        payload,
        &[("stop", "stopSequences"), ("n", "candidateCount")],
    )?;
    halve_temperature(&mut payload);
    let messages = match payload.shift_remove("messages") {
        Some(Value::Array(messages)) => messages,
        _ => Vec::new(),
    };
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|message| match message {
            Value::Object(mut message) => {
                let role = message.shift_remove("role").unwrap_or(Value::Null);
                message.insert("author".to_owned(), role);
                Value::Object(message)
            }
            other => other,
        })
        .collect();
    let mut prompt = Map::new();
    prompt.insert("messages".to_owned(), Value::Array(messages));
    for key in ["examples", "context"] {
        if let Some(value) = payload.shift_remove(key) {
            prompt.insert(key.to_owned(), value);
        }
    }
    payload.insert("prompt".to_owned(), Value::Object(prompt));
    Ok(payload)
}

/// `generateText`: the renames, temperature halved, `prompt` → `{"text": prompt}` in place.
fn text_payload(payload: Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    let mut payload = renamed(
        payload,
        &[
            ("stop", "stopSequences"),
            ("n", "candidateCount"),
            ("max_tokens", "maxOutputTokens"),
        ],
    )?;
    halve_temperature(&mut payload);
    if let Some(prompt) = payload.get_mut("prompt") {
        *prompt = json!({ "text": prompt.take() });
    }
    Ok(payload)
}

/// `batchEmbedText`: `input` → `texts`.
fn embed_payload(payload: Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    renamed(payload, &[("input", "texts")])
}

/// `candidates`, or none when PaLM filtered them all out (it then omits the key).
fn candidates(body: &Value) -> &[Value] {
    body.get("candidates")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn text_field<'a>(candidate: &'a Value, key: &str, what: &str) -> Result<&'a str, GatewayError> {
    candidate
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| unreadable(what))
}

/// `generateMessage`: one choice per candidate, whose role is the candidate's `author`.
pub fn chat_response(
    body: &Value,
    model: &str,
    provider: &str,
    now: i64,
) -> Result<ChatResponse, GatewayError> {
    let choices = (0u32..)
        .zip(candidates(body))
        .map(|(index, candidate)| {
            Ok(ChatChoice {
                index,
                message: ResponseMessage {
                    role: text_field(candidate, "author", "chat response")?.to_owned(),
                    content: Some(text_field(candidate, "content", "chat response")?.to_owned()),
                    tool_calls: None,
                    refusal: None,
                },
                finish_reason: None,
            })
        })
        .collect::<Result<Vec<_>, GatewayError>>()?;
    Ok(ChatResponse {
        id: None,
        object: "chat.completion".to_owned(),
        created: now,
        model: model.to_owned(),
        choices,
        usage: ChatUsage::default(),
        provider: provider.to_owned(),
    })
}

/// `generateText`: one choice per candidate's `output`.
pub fn completions_response(
    body: &Value,
    model: &str,
    now: i64,
) -> Result<CompletionsResponse, GatewayError> {
    let choices = (0u32..)
        .zip(candidates(body))
        .map(|(index, candidate)| {
            Ok(CompletionsChoice {
                index,
                text: text_field(candidate, "output", "text response")?.to_owned(),
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

/// `batchEmbedText`: `embeddings[].value`.
pub fn embeddings_response(body: &Value, model: &str) -> Result<EmbeddingsResponse, GatewayError> {
    let embeddings = body
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| unreadable("embeddings response"))?;
    let vectors = embeddings
        .iter()
        .map(|item| {
            item.get("value")
                .cloned()
                .and_then(|value| serde_json::from_value::<Vec<f64>>(value).ok())
                .map(Embedding::Floats)
                .ok_or_else(|| unreadable("embeddings response"))
        })
        .collect::<Result<Vec<_>, GatewayError>>()?;
    Ok(EmbeddingsResponse::new(
        model,
        vectors,
        EmbeddingsUsage::default(),
    ))
}

#[cfg(test)]
mod tests {
    //! One test per fixture in `tests/fixtures/palm/` (shaped after the v1beta3 reference),
    //! MLflow's parameter rules, the streaming 501, and the error mapping table.
    use super::*;
    use crate::config::Secret;

    const KEY: &str = "sk-canary-palm-unit";
    const NOW: i64 = 1_700_000_000;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../../tests/fixtures/palm/", $name))
        };
    }

    fn wire() -> PalmWire {
        let config = PalmConfig {
            api_key: Secret::new(KEY),
            api_base: "https://generativelanguage.googleapis.com/v1beta3/models/".to_owned(),
        };
        PalmWire::new(&config, Some("chat-bison-001".to_owned()), Provider::Palm)
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn sent(kind: EndpointType, body: Value) -> Result<UpstreamRequest, GatewayError> {
        wire().request(&UnifiedRequest::validate(kind, body).unwrap())
    }

    #[test]
    fn chat_request_fixture_is_mlflows_capture() {
        let request = sent(
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0.8}),
        )
        .unwrap();
        assert_eq!(request.url, "https://generativelanguage.googleapis.com/v1beta3/models/chat-bison-001:generateMessage");
        assert_eq!(request.headers, vec![("x-goog-api-key", KEY.to_owned())]);
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            parse(fixture!("chat_request.json")).to_string()
        );
    }

    #[test]
    fn generate_text_request_fixture() {
        let request = sent(
            EndpointType::Completions,
            json!({"prompt": "Write a haiku", "n": 2, "stop": ["END"],
            "max_tokens": 64, "temperature": 0.5}),
        )
        .unwrap();
        assert!(request.url.ends_with("/models/chat-bison-001:generateText"));
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            parse(fixture!("generate_text_request.json")).to_string()
        );
    }

    #[test]
    fn batch_embed_text_request_fixture() {
        let request = sent(
            EndpointType::Embeddings,
            json!({"input": ["hello", "world"]}),
        )
        .unwrap();
        assert!(request
            .url
            .ends_with("/models/chat-bison-001:batchEmbedText"));
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            parse(fixture!("batch_embed_text_request.json")).to_string()
        );
    }

    #[test]
    fn examples_and_context_move_under_prompt() {
        let request = sent(EndpointType::Chat, json!({"messages": [{"role": "user", "content": "hi"}],
            "context": "Be terse.", "examples": [{"input": {"content": "a"}, "output": {"content": "b"}}], "stop": ["x"]})).unwrap();
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            r#"{"candidateCount":1,"stopSequences":["x"],"prompt":{"messages":[{"content":"hi","author":"user"}],"examples":[{"input":{"content":"a"},"output":{"content":"b"}}],"context":"Be terse."}}"#
        );
    }

    #[test]
    fn parameter_rules_and_streams_are_mlflows() {
        let user = json!([{"role": "user", "content": "hi"}]);
        let cases = [
            (
                EndpointType::Chat,
                json!({"messages": user, "max_tokens": 5}),
                422,
                "Max tokens is not supported for PaLM chat.",
            ),
            (
                EndpointType::Chat,
                json!({"messages": user, "candidateCount": 2}),
                422,
                "Invalid parameter candidateCount. Use n instead.",
            ),
            (
                EndpointType::Completions,
                json!({"prompt": "p", "maxOutputTokens": 5}),
                422,
                "Invalid parameter maxOutputTokens. Use max_tokens instead.",
            ),
            (
                EndpointType::Embeddings,
                json!({"input": "x", "texts": ["y"]}),
                422,
                "Invalid parameter texts. Use input instead.",
            ),
            (
                EndpointType::Chat,
                json!({"messages": user, "stream": true}),
                501,
                "The chat streaming route is not implemented for PaLM models.",
            ),
            (
                EndpointType::Completions,
                json!({"prompt": "p", "stream": true}),
                501,
                "The completions streaming route is not implemented for PaLM models.",
            ),
        ];
        for (kind, body, status, message) in cases {
            let error = sent(kind, body).unwrap_err();
            assert_eq!((error.status, error.detail), (status, json!(message)));
        }
    }

    #[test]
    fn chat_response_fixture() {
        let response = chat_response(
            &parse(fixture!("chat_response.json")),
            "chat-bison-001",
            "palm",
            NOW,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"id":null,"object":"chat.completion","created":1700000000,"model":"chat-bison-001","choices":[{"index":0,"message":{"role":"1","content":"Hi there! How can I help you today?","tool_calls":null,"refusal":null},"finish_reason":null}],"usage":{"prompt_tokens":null,"completion_tokens":null,"total_tokens":null},"provider":"palm"}"#
        );
    }

    #[test]
    fn generate_text_response_fixture() {
        let response = completions_response(
            &parse(fixture!("generate_text_response.json")),
            "text-bison-001",
            NOW,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"id":null,"object":"text_completion","created":1700000000,"model":"text-bison-001","choices":[{"index":0,"text":"Morning light on snow","finish_reason":null},{"index":1,"text":"Quiet pond, one frog","finish_reason":null}],"usage":{"prompt_tokens":null,"completion_tokens":null,"total_tokens":null}}"#
        );
    }

    #[test]
    fn batch_embed_text_response_fixture() {
        let response = embeddings_response(
            &parse(fixture!("batch_embed_text_response.json")),
            "embedding-gecko-001",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"object":"list","data":[{"object":"embedding","embedding":[3.25,0.7685547,-2.3554688],"index":0},{"object":"embedding","embedding":[1.2597656,-0.30126953,2.65625],"index":1}],"model":"embedding-gecko-001","usage":{"prompt_tokens":null,"total_tokens":null}}"#
        );
    }

    #[test]
    fn error_fixtures_map_to_mlflows_details() {
        for (status, text, message) in [
            (400, fixture!("error_invalid_key.json"), "API key not valid. Please pass a valid API key."),
            (404, fixture!("error_not_found.json"), "models/chat-bison-001 is not found for API version v1beta3, or is not supported for generateMessage. Call ListModels to see the list of available models and their supported methods."),
        ] {
            let error = crate::upstream::status_error(status, &parse(text));
            assert_eq!((error.status, error.kind, error.detail), (status, ErrorKind::UpstreamStatus, json!(message)));
        }
    }
}
