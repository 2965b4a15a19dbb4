//! Hugging Face Text Generation Inference (`huggingface-text-generation-inference`): completions
//! only, through TGI's `POST {hf_server_url}/generate`, with no authentication. Pure code apart
//! from reading the clock for `created`.
//!
//! TGI cannot return several candidates and names its limits differently, so MLflow's rules
//! apply: `n` must be 1, `max_tokens` becomes `max_new_tokens` (sending `max_new_tokens` itself is
//! refused), and the temperature is scaled from our 0..2 range onto TGI's 0..100 (never 0, which
//! TGI refuses). TGI does stream, but MLflow's provider does not, so neither do we.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{EndpointType, HuggingFaceTgiConfig, Provider};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::Usage;
use crate::schema::{CompletionsResponse, CompletionsUsage, UnifiedRequest};
use crate::upstream::UpstreamRequest;

use super::openai::join_url;
use crate::providers::wire_json::{
    request_body, request_object, response_body, unix_now, unreadable_because,
};

/// TGI's temperature range is 0..100 where ours is 0..2.
const TEMPERATURE_SCALE: f64 = 50.0;
/// TGI refuses a temperature of 0; MLflow sends this instead.
const MIN_TEMPERATURE: f64 = 0.001;

/// One endpoint's TGI translation.
#[derive(Debug, Clone)]
pub struct TgiWire {
    server_url: String,
    model: String,
    provider: Provider,
}

impl TgiWire {
    pub fn new(config: &HuggingFaceTgiConfig, model: Option<String>, provider: Provider) -> Self {
        Self {
            server_url: config.server_url.clone(),
            model: model.unwrap_or_default(),
            provider,
        }
    }

    /// TGI sends no credential.
    pub fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }

    /// The `/generate` request; 501 for chat, embeddings and any stream, 422 for MLflow's rules.
    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let kind = request.endpoint_type();
        let display = self.provider.display_name();
        if request.is_stream() {
            return Err(GatewayError::streaming_not_supported(
                kind.route_word(),
                display,
            ));
        }
        if kind != EndpointType::Completions {
            return Err(GatewayError::not_implemented(kind.route_word(), display));
        }
        let body = generate_body(request_object(request)?)?;
        Ok(UpstreamRequest {
            url: join_url(&self.server_url, "generate"),
            headers: Vec::new(),
            body: request_body(&body)?,
        })
    }

    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        if kind != EndpointType::Completions {
            return Err(GatewayError::not_implemented(
                kind.route_word(),
                self.provider.display_name(),
            ));
        }
        let response = completions_response(body, &self.model, unix_now())?;
        let usage = Usage::new(
            response.usage.prompt_tokens,
            response.usage.completion_tokens,
        );
        Ok((response_body(&response)?, usage))
    }
}

fn invalid(message: String) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidParameter, 422, message)
}

/// `{"inputs": prompt, "parameters": {...}}` from a completions payload, with MLflow's checks in
/// MLflow's order (the `max_new_tokens` rule first, then `n`).
pub fn generate_body(mut payload: Map<String, Value>) -> Result<Value, GatewayError> {
    if payload.contains_key("max_new_tokens") {
        return Err(invalid(
            "Invalid parameter max_new_tokens. Use max_tokens instead.".to_owned(),
        ));
    }
    let n = payload.shift_remove("n").unwrap_or(Value::from(1));
    if n != 1 {
        return Err(invalid(format!(
            "'n' must be '1' for the Text Generation Inference provider.Received value: '{n}'."
        )));
    }
    let prompt = payload.shift_remove("prompt").unwrap_or(Value::Null);
    // Renamed in place, so the parameters keep the client's (MLflow's) order.
    let mut parameters: Map<String, Value> = payload
        .into_iter()
        .map(|(key, value)| match key.as_str() {
            "max_tokens" => ("max_new_tokens".to_owned(), value),
            _ => (key, value),
        })
        .collect();
    if let Some(temperature) = parameters.get_mut("temperature") {
        if let Some(t) = temperature.as_f64() {
            *temperature = Value::from((TEMPERATURE_SCALE * t).max(MIN_TEMPERATURE));
        }
    }
    parameters.insert("details".to_owned(), Value::Bool(true));
    parameters.insert("decoder_input_details".to_owned(), Value::Bool(true));
    let mut body = Map::new();
    body.insert("inputs".to_owned(), prompt);
    body.insert("parameters".to_owned(), Value::Object(parameters));
    Ok(Value::Object(body))
}

#[derive(Deserialize)]
struct WireGenerate {
    generated_text: String,
    details: WireDetails,
}

#[derive(Deserialize)]
struct WireDetails {
    #[serde(default)]
    finish_reason: Option<String>,
    generated_tokens: u64,
    /// The prompt's tokens (we ask for them with `decoder_input_details`); only counted.
    prefill: Vec<serde::de::IgnoredAny>,
}

/// TGI's `/generate` answer as one completions choice; usage from `details` (prompt tokens are
/// the `prefill` entries).
pub fn completions_response(
    body: Value,
    model: &str,
    created: i64,
) -> Result<CompletionsResponse, GatewayError> {
    let wire: WireGenerate =
        serde_json::from_value(body).map_err(|e| unreadable_because("completions response", e))?;
    let prompt_tokens = wire.details.prefill.len() as u64;
    let completion_tokens = wire.details.generated_tokens;
    Ok(CompletionsResponse::text(
        None,
        created,
        model,
        wire.generated_text,
        wire.details.finish_reason,
        CompletionsUsage {
            prompt_tokens: Some(prompt_tokens),
            completion_tokens: Some(completion_tokens),
            // `generated_tokens` is the upstream's number: saturate rather than overflow.
            total_tokens: Some(prompt_tokens.saturating_add(completion_tokens)),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let text = match name {
            "completions_request" => {
                include_str!("../../../tests/fixtures/tgi/completions_request.json")
            }
            "generate_request" => include_str!("../../../tests/fixtures/tgi/generate_request.json"),
            "generate_response" => {
                include_str!("../../../tests/fixtures/tgi/generate_response.json")
            }
            "completions_response" => {
                include_str!("../../../tests/fixtures/tgi/completions_response.json")
            }
            "error_validation" => include_str!("../../../tests/fixtures/tgi/error_validation.json"),
            "error_overloaded" => include_str!("../../../tests/fixtures/tgi/error_overloaded.json"),
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).unwrap()
    }

    fn wire() -> TgiWire {
        TgiWire::new(
            &HuggingFaceTgiConfig {
                server_url: "http://tgi.test:8080/".to_owned(),
            },
            Some("tgi-model".to_owned()),
            Provider::HuggingFaceTgi,
        )
    }

    fn completions(body: Value) -> UnifiedRequest {
        UnifiedRequest::validate(EndpointType::Completions, body).unwrap()
    }

    #[test]
    fn completions_request_fixture_becomes_the_generate_request_fixture() {
        let upstream = wire()
            .request(&completions(fixture("completions_request")))
            .unwrap();
        assert_eq!(upstream.url, "http://tgi.test:8080/generate");
        assert!(upstream.headers.is_empty());
        // Byte for byte: key order is part of the contract.
        assert_eq!(
            String::from_utf8(upstream.body).unwrap(),
            fixture("generate_request").to_string()
        );
    }

    #[test]
    fn generate_response_fixture_becomes_the_completions_response_fixture() {
        let response =
            completions_response(fixture("generate_response"), "tgi-model", 1700000000).unwrap();
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            fixture("completions_response")
        );
    }

    #[test]
    fn mlflows_captured_request_is_reproduced() {
        let upstream = wire()
            .request(&completions(json!({"prompt": "hi", "stop": ["x"], "max_tokens": 5, "temperature": 0.0, "top_p": 0.9})))
            .unwrap();
        assert_eq!(
            String::from_utf8(upstream.body).unwrap(),
            r#"{"inputs":"hi","parameters":{"stop":["x"],"max_new_tokens":5,"temperature":0.001,"top_p":0.9,"details":true,"decoder_input_details":true}}"#
        );
    }

    #[test]
    fn parameter_rules_use_mlflows_messages() {
        let cases = [
            (
                json!({"prompt": "hi", "n": 2}),
                "'n' must be '1' for the Text Generation Inference provider.Received value: '2'.",
            ),
            (
                json!({"prompt": "hi", "max_new_tokens": 5, "n": 3}),
                "Invalid parameter max_new_tokens. Use max_tokens instead.",
            ),
        ];
        for (body, message) in cases {
            let error = wire().request(&completions(body)).unwrap_err();
            assert_eq!(
                (error.status, error.kind, error.detail),
                (422, ErrorKind::InvalidParameter, json!(message))
            );
        }
    }

    #[test]
    fn chat_embeddings_and_streams_are_501_before_sending() {
        let chat = UnifiedRequest::validate(
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap();
        let embeddings =
            UnifiedRequest::validate(EndpointType::Embeddings, json!({"input": "hi"})).unwrap();
        let stream = completions(json!({"prompt": "hi", "stream": true}));
        let chat_stream = UnifiedRequest::validate(
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
        )
        .unwrap();
        let display = "Hugging Face Text Generation Inference";
        for (request, message) in [
            (
                chat,
                format!("The chat route is not implemented for {display} models."),
            ),
            (
                embeddings,
                format!("The embeddings route is not implemented for {display} models."),
            ),
            (
                stream,
                format!("The completions streaming route is not implemented for {display} models."),
            ),
            (
                chat_stream,
                format!("The chat streaming route is not implemented for {display} models."),
            ),
        ] {
            let error = wire().request(&request).unwrap_err();
            assert_eq!((error.status, error.detail), (501, json!(message)));
        }
    }

    #[test]
    fn temperature_is_scaled_onto_tgis_range() {
        for (t, expected) in [(0.5, json!(25.0)), (2.0, json!(100.0)), (0.0, json!(0.001))] {
            let upstream = wire()
                .request(&completions(json!({"prompt": "p", "temperature": t})))
                .unwrap();
            let body: Value = serde_json::from_slice(&upstream.body).unwrap();
            assert_eq!(body["parameters"]["temperature"], expected, "{t}");
        }
    }

    #[test]
    fn a_response_without_details_is_502() {
        let error = completions_response(json!({"generated_text": "x"}), "m", 1).unwrap_err();
        assert_eq!(
            (error.status, error.kind),
            (502, ErrorKind::UpstreamProtocol)
        );
    }

    #[test]
    fn error_statuses_keep_tgis_message() {
        // TGI's error bodies carry `error` as a string; the detail is that string, the status
        // is TGI's.
        for (status, name, message) in [
            (
                422,
                "error_validation",
                "Input validation error: `inputs` must have less than 1024 tokens. Given: 2048",
            ),
            (429, "error_overloaded", "Model is overloaded"),
            (503, "error_overloaded", "Model is overloaded"),
        ] {
            let error = crate::upstream::status_error(status, &fixture(name));
            assert_eq!(
                (error.status, error.kind, error.detail),
                (status, ErrorKind::UpstreamStatus, json!(message))
            );
        }
    }

    /// `generated_tokens` is the upstream's number: the total saturates instead of overflowing.
    #[test]
    fn huge_generated_tokens_saturate() {
        let body = json!({"generated_text": "x", "details": {"finish_reason": "length",
            "generated_tokens": u64::MAX, "prefill": [{}]}});
        let response = completions_response(body, "tgi-model", 1700000000).unwrap();
        assert_eq!(response.usage.total_tokens, Some(u64::MAX));
    }
}
