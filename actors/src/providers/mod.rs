//! Provider translations: pure code per provider between the unified schemas and the provider's
//! wire format, plus the built-in `mock` provider. [`Wire`] is the closed set the provider actor
//! dispatches on with a `match`.

pub mod mock;
pub mod openai;

use bytes::Bytes;
use serde_json::Value;

use crate::config::{Endpoint, EndpointType, ProviderConfig};
use crate::error::GatewayError;
use crate::framing::Framing;
use crate::messages::Usage;
use crate::schema::UnifiedRequest;
use crate::sse::SseEvent;
use crate::upstream::{EventOutcome, UpstreamRequest};

/// The translation for one endpoint whose provider speaks HTTP + JSON (+ SSE for streams).
#[derive(Debug, Clone)]
pub enum Wire {
    OpenAi(openai::OpenAiWire),
}

impl Wire {
    /// The translation for `endpoint`, or `None` when this build has none for its provider.
    pub fn for_endpoint(endpoint: &Endpoint) -> Option<Wire> {
        let model = endpoint.model.name.clone();
        let provider = endpoint.model.provider;
        match &endpoint.model.config {
            ProviderConfig::OpenAi(config) => Some(Wire::OpenAi(openai::OpenAiWire::openai(
                config, model, provider,
            ))),
            ProviderConfig::OpenAiCompatible(config) => Some(Wire::OpenAi(
                openai::OpenAiWire::compatible(config, model, provider),
            )),
            _ => None,
        }
    }

    /// The credentials this endpoint sends, so errors can be scrubbed of them.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Wire::OpenAi(wire) => wire.secrets(),
        }
    }

    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        match self {
            Wire::OpenAi(wire) => wire.request(request),
        }
    }

    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        match self {
            Wire::OpenAi(wire) => wire.response(kind, body),
        }
    }

    /// A translator for one stream; stateful providers keep per-stream state in it.
    pub fn stream_translator(&self, kind: EndpointType) -> StreamTranslator {
        match self {
            Wire::OpenAi(wire) => StreamTranslator::OpenAi(wire.clone(), kind),
        }
    }
}

/// Per-stream translation state.
pub enum StreamTranslator {
    OpenAi(openai::OpenAiWire, EndpointType),
}

impl StreamTranslator {
    /// Whether the provider always ends a complete stream with an explicit marker (OpenAI's
    /// `data: [DONE]`), so a body that ends without it was cut short.
    pub fn framing(&self) -> Framing {
        match self {
            StreamTranslator::OpenAi(..) => Framing::Sse,
        }
    }

    pub fn requires_end_marker(&self) -> bool {
        match self {
            StreamTranslator::OpenAi(..) => true,
        }
    }

    pub fn event(&mut self, event: &SseEvent) -> Result<EventOutcome, GatewayError> {
        match self {
            StreamTranslator::OpenAi(wire, kind) => wire.stream_event(*kind, event),
        }
    }
}
