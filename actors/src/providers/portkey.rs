//! Portkey (`portkey`): the OpenAI-compatible translation (chat, embeddings, chat streaming;
//! completions 501) sent through Portkey's gateway at `{api_base}` (default
//! `https://api.portkey.ai/v1`). Only the headers differ from the compatible family: Portkey's own
//! key in `x-portkey-api-key`, the routing target in `x-portkey-provider` and/or
//! `x-portkey-config`, and the upstream provider's key, when configured, as the bearer token.

use bytes::Bytes;
use serde_json::Value;

use crate::config::{EndpointType, OpenAiCompatibleConfig, PortkeyConfig, Provider, Secret};
use crate::error::GatewayError;
use crate::messages::Usage;
use crate::schema::UnifiedRequest;
use crate::sse::SseEvent;
use crate::upstream::{EventOutcome, UpstreamRequest};

use super::openai::OpenAiWire;

/// One endpoint's Portkey translation: the compatible wire, with Portkey's headers.
#[derive(Debug, Clone)]
pub struct PortkeyWire {
    inner: OpenAiWire,
    config: PortkeyConfig,
}

impl PortkeyWire {
    pub fn new(config: &PortkeyConfig, model: Option<String>, provider: Provider) -> Self {
        let compatible = OpenAiCompatibleConfig {
            api_key: Secret::new(config.api_key.expose()),
            api_base: config.api_base.clone(),
        };
        Self {
            inner: OpenAiWire::compatible(&compatible, model, provider),
            config: config.clone(),
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        let mut secrets = vec![self.config.api_key.expose()];
        if let Some(key) = &self.config.provider_api_key {
            secrets.push(key.expose());
        }
        secrets
    }

    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let mut upstream = self.inner.request(request)?;
        upstream.headers = headers(&self.config);
        Ok(upstream)
    }

    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        self.inner.response(kind, body)
    }

    /// [`PortkeyWire::response`] from the reply's text (OpenAI's embeddings path).
    pub fn response_from_text(
        &self,
        kind: EndpointType,
        body: &[u8],
    ) -> Result<(Bytes, Usage), GatewayError> {
        self.inner.response_from_text(kind, body)
    }

    pub fn stream_event(
        &self,
        kind: EndpointType,
        event: &SseEvent,
    ) -> Result<EventOutcome, GatewayError> {
        self.inner.stream_event(kind, event)
    }
}

/// Portkey's headers, in MLflow's order.
pub fn headers(config: &PortkeyConfig) -> Vec<(&'static str, String)> {
    let mut headers = vec![("x-portkey-api-key", config.api_key.expose().to_owned())];
    if let Some(target) = &config.portkey_provider {
        headers.push(("x-portkey-provider", target.clone()));
    }
    if let Some(saved) = &config.portkey_config {
        headers.push(("x-portkey-config", saved.clone()));
    }
    if let Some(key) = &config.provider_api_key {
        headers.push(("authorization", format!("Bearer {}", key.expose())));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::messages::StreamChunk;
    use serde_json::json;

    fn fixture(name: &str) -> &'static str {
        match name {
            "chat_response" => include_str!("../../../tests/fixtures/portkey/chat_response.json"),
            "gateway_chat_response" => {
                include_str!("../../../tests/fixtures/portkey/gateway_chat_response.json")
            }
            "chat_stream" => include_str!("../../../tests/fixtures/portkey/chat_stream.sse"),
            "embeddings_response" => {
                include_str!("../../../tests/fixtures/portkey/embeddings_response.json")
            }
            "error_missing_target" => {
                include_str!("../../../tests/fixtures/portkey/error_missing_target.json")
            }
            "error_provider" => include_str!("../../../tests/fixtures/portkey/error_provider.json"),
            other => panic!("no fixture {other}"),
        }
    }

    fn json_fixture(name: &str) -> Value {
        serde_json::from_str(fixture(name)).unwrap()
    }

    fn config(full: bool) -> PortkeyConfig {
        PortkeyConfig {
            api_key: Secret::new("pk-test"),
            api_base: "https://api.portkey.ai/v1".to_owned(),
            portkey_provider: full.then(|| "openai".to_owned()),
            portkey_config: full.then(|| "pc-abc123".to_owned()),
            provider_api_key: full.then(|| Secret::new("sk-upstream")),
        }
    }

    fn chat(body: Value) -> UnifiedRequest {
        UnifiedRequest::validate(EndpointType::Chat, body).unwrap()
    }

    #[test]
    fn headers_carry_every_configured_routing_field() {
        let wire = PortkeyWire::new(&config(true), Some("gpt-4o".to_owned()), Provider::Portkey);
        let upstream = wire
            .request(&chat(
                json!({"messages": [{"role": "user", "content": "hi"}]}),
            ))
            .unwrap();
        assert_eq!(upstream.url, "https://api.portkey.ai/v1/chat/completions");
        assert_eq!(
            upstream.headers,
            vec![
                ("x-portkey-api-key", "pk-test".to_owned()),
                ("x-portkey-provider", "openai".to_owned()),
                ("x-portkey-config", "pc-abc123".to_owned()),
                ("authorization", "Bearer sk-upstream".to_owned()),
            ]
        );
        assert_eq!(
            String::from_utf8(upstream.body).unwrap(),
            r#"{"model":"gpt-4o","n":1,"messages":[{"role":"user","content":"hi"}]}"#
        );
        assert_eq!(wire.secrets(), ["pk-test", "sk-upstream"]);
    }

    #[test]
    fn only_the_portkey_key_is_required() {
        let wire = PortkeyWire::new(
            &config(false),
            Some("@openai/gpt-4o".to_owned()),
            Provider::Portkey,
        );
        let upstream = wire
            .request(
                &UnifiedRequest::validate(EndpointType::Embeddings, json!({"input": "x"})).unwrap(),
            )
            .unwrap();
        assert_eq!(upstream.url, "https://api.portkey.ai/v1/embeddings");
        assert_eq!(
            upstream.headers,
            vec![("x-portkey-api-key", "pk-test".to_owned())]
        );
    }

    #[test]
    fn completions_are_501() {
        let wire = PortkeyWire::new(&config(false), None, Provider::Portkey);
        let request =
            UnifiedRequest::validate(EndpointType::Completions, json!({"prompt": "x"})).unwrap();
        let error = wire.request(&request).unwrap_err();
        assert_eq!(
            (error.status, error.detail),
            (
                501,
                json!("The completions route is not implemented for Portkey models.")
            )
        );
    }

    #[test]
    fn chat_response_fixture_reports_provider_portkey() {
        let wire = PortkeyWire::new(&config(false), None, Provider::Portkey);
        let (bytes, usage) = wire
            .response(EndpointType::Chat, json_fixture("chat_response"))
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body, json_fixture("gateway_chat_response"));
        assert_eq!(
            (usage.input_tokens, usage.output_tokens),
            (Some(12), Some(9))
        );
    }

    #[test]
    fn embeddings_response_fixture() {
        let wire = PortkeyWire::new(&config(false), None, Provider::Portkey);
        let (bytes, _) = wire
            .response(
                EndpointType::Embeddings,
                json_fixture("embeddings_response"),
            )
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            json!({"object": "list", "data": [{"object": "embedding", "embedding": [0.0023, -0.0093], "index": 0}],
                "model": "text-embedding-3-small", "usage": {"prompt_tokens": 2, "total_tokens": 2}})
        );
    }

    #[test]
    fn chat_stream_fixture_translates_event_by_event() {
        let wire = PortkeyWire::new(&config(false), None, Provider::Portkey);
        let mut contents = Vec::new();
        let mut done = false;
        for block in fixture("chat_stream")
            .split("\n\n")
            .filter(|b| !b.trim().is_empty())
        {
            let data = block.strip_prefix("data: ").unwrap().to_owned();
            match wire
                .stream_event(EndpointType::Chat, &SseEvent { event: None, data })
                .unwrap()
            {
                EventOutcome::Chunk(StreamChunk { json, .. })
                | EventOutcome::Final(StreamChunk { json, .. }) => {
                    let chunk: Value = serde_json::from_slice(&json).unwrap();
                    assert_eq!(chunk["provider"], "portkey");
                    contents.push(chunk["choices"][0]["delta"]["content"].clone());
                }
                EventOutcome::Done => done = true,
                EventOutcome::Skip => {}
            }
        }
        assert!(done);
        assert_eq!(
            contents,
            [json!(""), json!("Hello"), json!(" there"), Value::Null]
        );
    }

    #[test]
    fn error_statuses_follow_mlflows_detail_rule() {
        // Portkey's own errors are `{"status": "failure", "message": ...}` (no `error` key: the
        // whole body is the detail); a provider's error passes through Portkey as the provider
        // wrote it (OpenAI's `error.message`).
        for status in [400, 401, 412, 429, 446, 500] {
            let own = crate::upstream::status_error(status, &json_fixture("error_missing_target"));
            assert_eq!(
                (own.status, own.kind, own.detail),
                (
                    status,
                    ErrorKind::UpstreamStatus,
                    json_fixture("error_missing_target")
                )
            );
            let passed = crate::upstream::status_error(status, &json_fixture("error_provider"));
            assert_eq!(
                (passed.status, passed.detail),
                (status, json!("Incorrect API key provided: sk-up***"))
            );
        }
    }
}
