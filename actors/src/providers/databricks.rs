//! Databricks serving endpoints (`databricks`, `databricks-model-serving`): the OpenAI-compatible
//! translation (chat, embeddings, chat streaming; completions 501) against a workspace `host`,
//! authenticated with a personal access `token` as the bearer.
//!
//! MLflow resolves host and credentials through the Databricks SDK's whole credential chain
//! (environment, `~/.databrickscfg`, OAuth machine-to-machine, cloud identities). This build takes
//! `host` and `token` from the endpoint's config only; an endpoint without both answers 501 with a
//! message saying so, rather than guessing credentials.
//!
//! URLs follow MLflow: `{host}/serving-endpoints/...` for a serving endpoint name, and
//! `{host}/ai-gateway/mlflow/v1/...` for a Unity Catalog name (`catalog.schema.model`). Chat
//! answers whose content is a list of parts (reasoning models) are reduced to their text parts
//! joined by newlines, as MLflow's Databricks adapter does.

use bytes::Bytes;
use serde_json::Value;

use crate::config::{DatabricksConfig, EndpointType, OpenAiCompatibleConfig, Provider, Secret};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::Usage;
use crate::schema::UnifiedRequest;
use crate::sse::SseEvent;
use crate::upstream::{EventOutcome, UpstreamRequest};

use super::openai::OpenAiWire;

const SERVING_ENDPOINTS_PATH: &str = "/serving-endpoints";
const AI_GATEWAY_PATH: &str = "ai-gateway/mlflow/v1";

/// One endpoint's Databricks translation: the compatible wire with the workspace's base URL and
/// token, or the reason it cannot be built.
#[derive(Debug, Clone)]
pub struct DatabricksWire {
    inner: Result<OpenAiWire, &'static str>,
    token: Option<Secret>,
}

impl DatabricksWire {
    pub fn new(config: &DatabricksConfig, model: Option<String>, provider: Provider) -> Self {
        let inner = match (&config.host, &config.token) {
            (Some(host), Some(token)) if !host.trim().is_empty() => {
                let compatible = OpenAiCompatibleConfig {
                    api_key: Secret::new(token.expose()),
                    api_base: api_base(host, model.as_deref().unwrap_or_default()),
                };
                Ok(OpenAiWire::compatible(&compatible, model, provider))
            }
            _ => Err(
                "Databricks endpoints need both 'host' and 'token' in their config in this Switchyard build; the Databricks SDK credential chain (environment, ~/.databrickscfg, OAuth client_id/client_secret) is not supported.",
            ),
        };
        Self {
            inner,
            token: config.token.clone(),
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        self.token.iter().map(Secret::expose).collect()
    }

    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        self.wire()?.request(request)
    }

    pub fn response(
        &self,
        kind: EndpointType,
        mut body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        if kind == EndpointType::Chat {
            normalise_content(&mut body);
        }
        self.wire()?.response(kind, body)
    }

    /// [`DatabricksWire::response`] from the reply's text: only chat is changed on the way, so
    /// the other routes are OpenAI's as they are (embeddings take its text path).
    pub fn response_from_text(
        &self,
        kind: EndpointType,
        body: &[u8],
    ) -> Result<(Bytes, Usage), GatewayError> {
        match kind {
            EndpointType::Chat => self.response(kind, crate::upstream::parse_json(body)?),
            _ => self.wire()?.response_from_text(kind, body),
        }
    }

    pub fn stream_event(
        &self,
        kind: EndpointType,
        event: &SseEvent,
    ) -> Result<EventOutcome, GatewayError> {
        self.wire()?.stream_event(kind, event)
    }

    fn wire(&self) -> Result<&OpenAiWire, GatewayError> {
        self.inner
            .as_ref()
            .map_err(|reason| GatewayError::new(ErrorKind::NotImplemented, 501, *reason))
    }
}

/// The workspace URL the compatible paths hang off: a scheme is added when missing (as the SDK
/// does), then the AI Gateway path for Unity Catalog names, else `/serving-endpoints` unless the
/// host already ends in it.
pub fn api_base(host: &str, model: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    let host = if host.contains("://") {
        host.to_owned()
    } else {
        format!("https://{host}")
    };
    if model.matches('.').count() >= 2 {
        return format!("{host}/{AI_GATEWAY_PATH}");
    }
    if host.contains(SERVING_ENDPOINTS_PATH) {
        host
    } else {
        format!("{host}{SERVING_ENDPOINTS_PATH}")
    }
}

/// Content given as a list of parts becomes the text of its text parts joined by newlines (null
/// when there are none); other part types (`reasoning`, ...) are dropped.
pub fn normalise_content(body: &mut Value) {
    let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) else {
        return;
    };
    for choice in choices {
        let Some(message) = choice.get_mut("message").and_then(Value::as_object_mut) else {
            continue;
        };
        let Some(Value::Array(parts)) = message.get("content") else {
            continue;
        };
        let texts: Vec<&str> = parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
            .map(|part| part.get("text").and_then(Value::as_str).unwrap_or_default())
            .collect();
        let content = if texts.is_empty() {
            Value::Null
        } else {
            Value::String(texts.join("\n"))
        };
        message.insert("content".to_owned(), content);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let text = match name {
            "chat_reasoning_response" => {
                include_str!("../../../tests/fixtures/databricks/chat_reasoning_response.json")
            }
            "gateway_chat_response" => {
                include_str!("../../../tests/fixtures/databricks/gateway_chat_response.json")
            }
            "error_bad_request" => {
                include_str!("../../../tests/fixtures/databricks/error_bad_request.json")
            }
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).unwrap()
    }

    fn config(host: Option<&str>, token: Option<&str>) -> DatabricksConfig {
        DatabricksConfig {
            host: host.map(str::to_owned),
            token: token.map(Secret::new),
            client_id: None,
            client_secret: None,
        }
    }

    fn chat() -> UnifiedRequest {
        UnifiedRequest::validate(
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap()
    }

    #[test]
    fn base_urls_follow_mlflow() {
        let cases = [
            (
                "https://ws.cloud.databricks.com",
                "databricks-meta-llama",
                "https://ws.cloud.databricks.com/serving-endpoints",
            ),
            (
                "https://ws.cloud.databricks.com/",
                "m",
                "https://ws.cloud.databricks.com/serving-endpoints",
            ),
            (
                "https://ws.cloud.databricks.com/serving-endpoints/",
                "m",
                "https://ws.cloud.databricks.com/serving-endpoints",
            ),
            (
                "ws.cloud.databricks.com",
                "m",
                "https://ws.cloud.databricks.com/serving-endpoints",
            ),
            (
                "https://ws.cloud.databricks.com",
                "system.ai.claude-haiku-4-5",
                "https://ws.cloud.databricks.com/ai-gateway/mlflow/v1",
            ),
        ];
        for (host, model, expected) in cases {
            assert_eq!(api_base(host, model), expected, "{host} {model}");
        }
    }

    #[test]
    fn requests_carry_the_token_as_bearer_and_the_model() {
        let wire = DatabricksWire::new(
            &config(Some("https://ws.cloud.databricks.com"), Some("dapi-test")),
            Some("databricks-llama".to_owned()),
            Provider::Databricks,
        );
        let upstream = wire.request(&chat()).unwrap();
        assert_eq!(
            upstream.url,
            "https://ws.cloud.databricks.com/serving-endpoints/chat/completions"
        );
        assert_eq!(
            upstream.headers,
            vec![("authorization", "Bearer dapi-test".to_owned())]
        );
        assert_eq!(
            String::from_utf8(upstream.body).unwrap(),
            r#"{"model":"databricks-llama","n":1,"messages":[{"role":"user","content":"hi"}]}"#
        );
        assert_eq!(wire.secrets(), ["dapi-test"]);
    }

    #[test]
    fn missing_host_or_token_is_501_naming_both() {
        for cfg in [
            config(None, Some("t")),
            config(Some("https://h"), None),
            config(Some(" "), Some("t")),
        ] {
            let wire = DatabricksWire::new(&cfg, Some("m".to_owned()), Provider::Databricks);
            let error = wire.request(&chat()).unwrap_err();
            assert_eq!((error.status, error.kind), (501, ErrorKind::NotImplemented));
            assert!(error.message().contains("'host' and 'token'"));
        }
    }

    #[test]
    fn completions_are_501_as_mlflow() {
        let wire = DatabricksWire::new(
            &config(Some("https://h"), Some("t")),
            Some("m".to_owned()),
            Provider::DatabricksModelServing,
        );
        let request =
            UnifiedRequest::validate(EndpointType::Completions, json!({"prompt": "x"})).unwrap();
        assert_eq!(
            wire.request(&request).unwrap_err().detail,
            json!("The completions route is not implemented for Databricks models.")
        );
    }

    #[test]
    fn chat_reasoning_response_fixture_keeps_only_text() {
        let wire = DatabricksWire::new(
            &config(Some("https://h"), Some("t")),
            Some("databricks-claude".to_owned()),
            Provider::Databricks,
        );
        let (bytes, _) = wire
            .response(EndpointType::Chat, fixture("chat_reasoning_response"))
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body, fixture("gateway_chat_response"));
    }

    #[test]
    fn error_statuses_pass_databricks_body_through() {
        // Databricks errors are `{"error_code", "message"}` with no `error` key: the whole body is
        // MLflow's detail.
        for status in [400, 401, 403, 404, 429, 500] {
            let error = crate::upstream::status_error(status, &fixture("error_bad_request"));
            assert_eq!(
                (error.status, error.kind, error.detail),
                (
                    status,
                    ErrorKind::UpstreamStatus,
                    fixture("error_bad_request")
                )
            );
        }
    }
}
