//! AI21 Labs (`ai21labs`): completions only, with the Jurassic-2 models (`j2-ultra`, `j2-mid`,
//! `j2-light`; the config loader refuses others, as MLflow does) through
//! `POST {ai21labs_api_base}/<model>/complete` and a bearer key. Pure code apart from reading the
//! clock for `created`.
//!
//! AI21 names three parameters its own way (`stopSequences`, `numResults`, `maxTokens`); MLflow
//! renames ours and refuses a request that uses AI21's names directly, so a client cannot send
//! both spellings at once.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{Ai21LabsConfig, EndpointType, Provider};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::Usage;
use crate::schema::{CompletionsChoice, CompletionsResponse, CompletionsUsage, UnifiedRequest};
use crate::upstream::UpstreamRequest;

use super::openai::join_url;
use crate::providers::wire_json::{
    request_body, request_object, response_body, unix_now, unreadable_because,
};

/// Our parameter names and AI21's, in the order MLflow checks them.
const RENAMES: [(&str, &str); 3] = [
    ("stop", "stopSequences"),
    ("n", "numResults"),
    ("max_tokens", "maxTokens"),
];

/// One endpoint's AI21 translation.
#[derive(Debug, Clone)]
pub struct Ai21LabsWire {
    config: Ai21LabsConfig,
    model: String,
    provider: Provider,
}

impl Ai21LabsWire {
    pub fn new(config: &Ai21LabsConfig, model: Option<String>, provider: Provider) -> Self {
        Self {
            config: config.clone(),
            model: model.unwrap_or_default(),
            provider,
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        vec![self.config.api_key.expose()]
    }

    /// The `complete` request; 501 for chat, embeddings and any stream, 422 for AI21's own names.
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
        let payload = request_object(request)?;
        let body = complete_body(payload)?;
        Ok(UpstreamRequest {
            url: join_url(&self.config.api_base, &format!("{}/complete", self.model)),
            headers: vec![(
                "authorization",
                format!("Bearer {}", self.config.api_key.expose()),
            )],
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
        let bytes = response_body(&response)?;
        // AI21's J2 answer carries no token counts.
        Ok((bytes, Usage::new(None, None)))
    }
}

/// The payload with our names renamed in place (so MLflow's key order holds); 422 when the client
/// used one of AI21's names itself.
pub fn complete_body(payload: Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    for (ours, theirs) in RENAMES {
        if payload.contains_key(theirs) {
            return Err(GatewayError::new(
                ErrorKind::InvalidParameter,
                422,
                format!("Invalid parameter {theirs}. Use {ours} instead."),
            ));
        }
    }
    Ok(payload
        .into_iter()
        .map(|(key, value)| {
            let renamed = RENAMES
                .iter()
                .find(|(ours, _)| *ours == key)
                .map_or(key, |(_, theirs)| (*theirs).to_owned());
            (renamed, value)
        })
        .collect())
}

#[derive(Deserialize)]
struct WireComplete {
    completions: Vec<WireCompletion>,
}

#[derive(Deserialize)]
struct WireCompletion {
    data: WireData,
    #[serde(rename = "finishReason")]
    finish_reason: WireFinishReason,
}

#[derive(Deserialize)]
struct WireData {
    text: String,
}

#[derive(Deserialize)]
struct WireFinishReason {
    #[serde(default)]
    reason: Option<String>,
}

/// One choice per AI21 completion; AI21's own `id` is not kept (MLflow drops it), and no usage.
pub fn completions_response(
    body: Value,
    model: &str,
    created: i64,
) -> Result<CompletionsResponse, GatewayError> {
    let wire: WireComplete =
        serde_json::from_value(body).map_err(|e| unreadable_because("completions response", e))?;
    Ok(CompletionsResponse {
        id: None,
        object: "text_completion".to_owned(),
        created,
        model: model.to_owned(),
        choices: wire
            .completions
            .into_iter()
            .zip(0u32..)
            .map(|(completion, index)| CompletionsChoice {
                index,
                text: completion.data.text,
                finish_reason: completion.finish_reason.reason,
            })
            .collect(),
        usage: CompletionsUsage::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let text = match name {
            "complete_request" => {
                include_str!("../../../tests/fixtures/ai21labs/complete_request.json")
            }
            "complete_response" => {
                include_str!("../../../tests/fixtures/ai21labs/complete_response.json")
            }
            "completions_response" => {
                include_str!("../../../tests/fixtures/ai21labs/completions_response.json")
            }
            "error_unauthorized" => {
                include_str!("../../../tests/fixtures/ai21labs/error_unauthorized.json")
            }
            "error_validation" => {
                include_str!("../../../tests/fixtures/ai21labs/error_validation.json")
            }
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).unwrap()
    }

    fn wire() -> Ai21LabsWire {
        Ai21LabsWire::new(
            &Ai21LabsConfig {
                api_key: Secret::new("sk-test-ai21"),
                api_base: "https://api.ai21.com/studio/v1".to_owned(),
            },
            Some("j2-ultra".to_owned()),
            Provider::Ai21Labs,
        )
    }

    fn completions(body: Value) -> UnifiedRequest {
        UnifiedRequest::validate(EndpointType::Completions, body).unwrap()
    }

    #[test]
    fn mlflows_capture_becomes_the_complete_request_fixture() {
        let upstream = wire()
            .request(&completions(
                json!({"prompt": "I will", "stop": ["x"], "max_tokens": 2, "temperature": 0.7}),
            ))
            .unwrap();
        assert_eq!(
            upstream.url,
            "https://api.ai21.com/studio/v1/j2-ultra/complete"
        );
        assert_eq!(
            upstream.headers,
            vec![("authorization", "Bearer sk-test-ai21".to_owned())]
        );
        assert_eq!(
            String::from_utf8(upstream.body).unwrap(),
            fixture("complete_request").to_string()
        );
    }

    #[test]
    fn complete_response_fixture_becomes_the_completions_response_fixture() {
        let response =
            completions_response(fixture("complete_response"), "j2-ultra", 1700000000).unwrap();
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            fixture("completions_response")
        );
    }

    #[test]
    fn ai21s_own_names_are_refused_in_mlflows_order() {
        for (body, message) in [
            (
                json!({"prompt": "p", "stopSequences": ["x"], "maxTokens": 3}),
                "Invalid parameter stopSequences. Use stop instead.",
            ),
            (
                json!({"prompt": "p", "numResults": 2}),
                "Invalid parameter numResults. Use n instead.",
            ),
            (
                json!({"prompt": "p", "maxTokens": 3}),
                "Invalid parameter maxTokens. Use max_tokens instead.",
            ),
        ] {
            let error = wire().request(&completions(body)).unwrap_err();
            assert_eq!(
                (error.status, error.kind, error.detail),
                (422, ErrorKind::InvalidParameter, json!(message))
            );
        }
    }

    #[test]
    fn chat_embeddings_and_streams_are_501() {
        let cases = [
            (
                EndpointType::Chat,
                json!({"messages": [{"role": "user", "content": "q"}]}),
                "The chat route is not implemented for AI21Labs models.",
            ),
            (
                EndpointType::Embeddings,
                json!({"input": "q"}),
                "The embeddings route is not implemented for AI21Labs models.",
            ),
            (
                EndpointType::Completions,
                json!({"prompt": "q", "stream": true}),
                "The completions streaming route is not implemented for AI21Labs models.",
            ),
        ];
        for (kind, body, message) in cases {
            let request = UnifiedRequest::validate(kind, body).unwrap();
            let error = wire().request(&request).unwrap_err();
            assert_eq!((error.status, error.detail), (501, json!(message)));
        }
    }

    #[test]
    fn a_response_without_completions_is_502() {
        let error = completions_response(json!({"id": "x"}), "j2-mid", 1).unwrap_err();
        assert_eq!(
            (error.status, error.kind),
            (502, ErrorKind::UpstreamProtocol)
        );
    }

    #[test]
    fn error_statuses_pass_ai21s_body_through() {
        // AI21 answers errors with `{"detail": ...}` (no `error` key), so MLflow's detail is the
        // whole body, under the same status.
        for (status, name) in [
            (401, "error_unauthorized"),
            (422, "error_validation"),
            (429, "error_unauthorized"),
            (500, "error_validation"),
        ] {
            let error = crate::upstream::status_error(status, &fixture(name));
            assert_eq!(
                (error.status, error.kind, error.detail),
                (status, ErrorKind::UpstreamStatus, fixture(name))
            );
        }
    }
}
