//! Provider translations: pure code per provider between the unified schemas and the provider's
//! wire format, plus the built-in `mock` provider. [`Wire`] is the closed set the provider actor
//! dispatches on with a `match`.

pub mod ai21labs;
pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod databricks;
pub mod gemini;
pub mod mistral;
pub mod mlflow_serving;
pub mod mock;
pub mod mosaicml;
pub mod openai;
pub mod palm;
pub mod portkey;
pub(crate) mod pyjson;
pub mod tgi;
pub mod togetherai;
pub(crate) mod wire_json;

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
    Tgi(tgi::TgiWire),
    MlflowServing(mlflow_serving::MlflowServingWire),
    Ai21Labs(ai21labs::Ai21LabsWire),
    MosaicMl(mosaicml::MosaicMlWire),
    Portkey(portkey::PortkeyWire),
    Databricks(databricks::DatabricksWire),
    Anthropic(anthropic::AnthropicWire),
    Mistral(mistral::MistralWire),
    TogetherAi(togetherai::TogetherAiWire),
    Gemini(gemini::GeminiWire),
    Cohere(cohere::CohereWire),
    Palm(palm::PalmWire),
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
            ProviderConfig::HuggingFaceTgi(config) => {
                Some(Wire::Tgi(tgi::TgiWire::new(config, model, provider)))
            }
            ProviderConfig::MlflowModelServing(config) => Some(Wire::MlflowServing(
                mlflow_serving::MlflowServingWire::new(config, model, provider),
            )),
            ProviderConfig::Ai21Labs(config) => Some(Wire::Ai21Labs(ai21labs::Ai21LabsWire::new(
                config, model, provider,
            ))),
            ProviderConfig::MosaicMl(config) => Some(Wire::MosaicMl(mosaicml::MosaicMlWire::new(
                config, model, provider,
            ))),
            ProviderConfig::Portkey(config) => Some(Wire::Portkey(portkey::PortkeyWire::new(
                config, model, provider,
            ))),
            ProviderConfig::Databricks(config) => Some(Wire::Databricks(
                databricks::DatabricksWire::new(config, model, provider),
            )),
            ProviderConfig::Anthropic(config) => Some(Wire::Anthropic(
                anthropic::AnthropicWire::new(config, model, provider),
            )),
            ProviderConfig::Mistral(config) => Some(Wire::Mistral(mistral::MistralWire::new(
                config, model, provider,
            ))),
            ProviderConfig::TogetherAi(config) => Some(Wire::TogetherAi(
                togetherai::TogetherAiWire::new(config, model, provider),
            )),
            ProviderConfig::Gemini(config) => Some(Wire::Gemini(gemini::GeminiWire::new(
                config, model, provider,
            ))),
            ProviderConfig::Cohere(config) => Some(Wire::Cohere(cohere::CohereWire::new(
                config, model, provider,
            ))),
            ProviderConfig::Palm(config) => {
                Some(Wire::Palm(palm::PalmWire::new(config, model, provider)))
            }
            _ => None,
        }
    }

    /// The credentials this endpoint sends, so errors can be scrubbed of them.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Wire::OpenAi(wire) => wire.secrets(),
            Wire::Tgi(wire) => wire.secrets(),
            Wire::MlflowServing(wire) => wire.secrets(),
            Wire::Ai21Labs(wire) => wire.secrets(),
            Wire::MosaicMl(wire) => wire.secrets(),
            Wire::Portkey(wire) => wire.secrets(),
            Wire::Databricks(wire) => wire.secrets(),
            Wire::Anthropic(wire) => wire.secrets(),
            Wire::Mistral(wire) => wire.secrets(),
            Wire::TogetherAi(wire) => wire.secrets(),
            Wire::Gemini(wire) => wire.secrets(),
            Wire::Cohere(wire) => wire.secrets(),
            Wire::Palm(wire) => wire.secrets(),
        }
    }

    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        // Only the OpenAI wire writes unknown keys as the client's text; the others rework the
        // payload as a tree, which must fit what is left of the body's node limit.
        if !matches!(self, Wire::OpenAi(_)) {
            request.check_tree_room()?;
        }
        match self {
            Wire::OpenAi(wire) => wire.request(request),
            Wire::Tgi(wire) => wire.request(request),
            Wire::MlflowServing(wire) => wire.request(request),
            Wire::Ai21Labs(wire) => wire.request(request),
            Wire::MosaicMl(wire) => wire.request(request),
            Wire::Portkey(wire) => wire.request(request),
            Wire::Databricks(wire) => wire.request(request),
            Wire::Anthropic(wire) => wire.request(request),
            Wire::Mistral(wire) => wire.request(request),
            Wire::TogetherAi(wire) => wire.request(request),
            Wire::Gemini(wire) => wire.request(request),
            Wire::Cohere(wire) => wire.request(request),
            Wire::Palm(wire) => wire.request(request),
        }
    }

    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        match self {
            Wire::OpenAi(wire) => wire.response(kind, body),
            Wire::Tgi(wire) => wire.response(kind, body),
            Wire::MlflowServing(wire) => wire.response(kind, body),
            Wire::Ai21Labs(wire) => wire.response(kind, body),
            Wire::MosaicMl(wire) => wire.response(kind, body),
            Wire::Portkey(wire) => wire.response(kind, body),
            Wire::Databricks(wire) => wire.response(kind, body),
            Wire::Anthropic(wire) => wire.response(kind, body),
            Wire::Mistral(wire) => wire.response(kind, body),
            Wire::TogetherAi(wire) => wire.response(kind, body),
            Wire::Gemini(wire) => wire.response(kind, body),
            Wire::Cohere(wire) => wire.response(kind, body),
            Wire::Palm(wire) => wire.response(kind, body),
        }
    }

    /// A successful reply's JSON text as the serialised unified response and its usage. The
    /// OpenAI wire (also under Portkey and Databricks) reads embeddings straight from the text;
    /// the others parse it first.
    pub fn response_from_text(
        &self,
        kind: EndpointType,
        body: &[u8],
    ) -> Result<(Bytes, Usage), GatewayError> {
        match self {
            Wire::OpenAi(wire) => wire.response_from_text(kind, body),
            Wire::Portkey(wire) => wire.response_from_text(kind, body),
            Wire::Databricks(wire) => wire.response_from_text(kind, body),
            _ => self.response(kind, crate::upstream::parse_json(body)?),
        }
    }

    /// An upstream error status as the provider's rules want it reported; most providers keep
    /// [`crate::upstream::status_error`]'s mapping unchanged.
    pub fn upstream_error(&self, kind: EndpointType, error: GatewayError) -> GatewayError {
        match self {
            Wire::MosaicMl(wire) => wire.upstream_error(kind, error),
            _ => error,
        }
    }

    /// A translator for one stream; stateful providers keep per-stream state in it.
    pub fn stream_translator(&self, kind: EndpointType) -> StreamTranslator {
        match self {
            Wire::OpenAi(wire) => StreamTranslator::OpenAi(wire.clone(), kind),
            // These refuse `stream: true` in `request`, so no stream ever reaches a translator.
            Wire::Tgi(_) | Wire::MlflowServing(_) | Wire::Ai21Labs(_) | Wire::MosaicMl(_) => {
                StreamTranslator::Unsupported
            }
            Wire::Portkey(wire) => StreamTranslator::Portkey(wire.clone(), kind),
            Wire::Databricks(wire) => StreamTranslator::Databricks(wire.clone(), kind),
            Wire::Anthropic(wire) => StreamTranslator::Anthropic(wire.stream()),
            Wire::Mistral(wire) => StreamTranslator::Mistral(wire.clone()),
            Wire::TogetherAi(wire) => StreamTranslator::TogetherAi(wire.clone(), kind),
            Wire::Gemini(wire) => StreamTranslator::Gemini(wire.stream_translator(kind)),
            Wire::Cohere(wire) => StreamTranslator::Cohere(wire.clone(), kind),
            // PaLM refuses `stream: true` in `request`.
            Wire::Palm(_) => StreamTranslator::Unsupported,
        }
    }
}

/// Per-stream translation state.
pub enum StreamTranslator {
    OpenAi(openai::OpenAiWire, EndpointType),
    Portkey(portkey::PortkeyWire, EndpointType),
    Databricks(databricks::DatabricksWire, EndpointType),
    /// For providers that never stream; fails every event if it is ever driven.
    Unsupported,
    Anthropic(anthropic::AnthropicStream),
    Mistral(mistral::MistralWire),
    TogetherAi(togetherai::TogetherAiWire, EndpointType),
    Gemini(gemini::GeminiStream),
    Cohere(cohere::CohereWire, EndpointType),
}

impl StreamTranslator {
    /// Whether the provider always ends a complete stream with an explicit marker (OpenAI's
    /// `data: [DONE]`), so a body that ends without it was cut short.
    pub fn framing(&self) -> Framing {
        match self {
            StreamTranslator::OpenAi(..) => Framing::Sse,
            StreamTranslator::Portkey(..)
            | StreamTranslator::Databricks(..)
            | StreamTranslator::Unsupported => Framing::Sse,
            StreamTranslator::Anthropic(..)
            | StreamTranslator::Mistral(..)
            | StreamTranslator::TogetherAi(..) => Framing::Sse,
            StreamTranslator::Gemini(..) => Framing::Sse,
            // Cohere v1 streams newline-delimited JSON.
            StreamTranslator::Cohere(..) => Framing::JsonLines,
        }
    }

    pub fn requires_end_marker(&self) -> bool {
        match self {
            StreamTranslator::OpenAi(..) => true,
            // OpenAI-compatible streams end with `[DONE]`.
            StreamTranslator::Portkey(..) | StreamTranslator::Databricks(..) => true,
            StreamTranslator::Unsupported => false,
            // `message_stop` ends Anthropic streams; `[DONE]` ends Mistral's and Together's.
            StreamTranslator::Anthropic(..)
            | StreamTranslator::Mistral(..)
            | StreamTranslator::TogetherAi(..) => true,
            // Their last chunk carries the end (`is_finished`, every candidate's `finishReason`):
            // the translator reports it as `Final`, and a body that ends before it was cut.
            StreamTranslator::Gemini(..) | StreamTranslator::Cohere(..) => true,
        }
    }

    pub fn event(&mut self, event: &SseEvent) -> Result<EventOutcome, GatewayError> {
        match self {
            StreamTranslator::OpenAi(wire, kind) => wire.stream_event(*kind, event),
            StreamTranslator::Portkey(wire, kind) => wire.stream_event(*kind, event),
            StreamTranslator::Databricks(wire, kind) => wire.stream_event(*kind, event),
            StreamTranslator::Unsupported => Err(GatewayError::internal(
                "this provider does not stream, yet a stream reached its translator",
            )),
            StreamTranslator::Anthropic(stream) => stream.event(event),
            StreamTranslator::Mistral(wire) => wire.stream_event(event),
            StreamTranslator::TogetherAi(wire, kind) => wire.stream_event(*kind, event),
            StreamTranslator::Gemini(stream) => stream.event(event),
            StreamTranslator::Cohere(wire, kind) => wire.stream_event(*kind, event),
        }
    }
}
