//! The properties the fuzz targets check, as plain functions over bytes: `fuzz/` drives them with
//! libFuzzer, and `actors/tests/fuzz_corpus.rs` replays the committed corpus through them on
//! stable Rust in every test run. Each must return without panicking for any input.
//!
//! The `provider_*` checks treat the input as what an upstream sent back, through the same calls
//! the provider actor makes: the first byte picks the mode (low bit clear: a whole JSON response
//! body; set: a raw streamed body, framed by the provider's own framing), the rest is the body.
//! The corpus seeds start with `R` (0x52) or `S` (0x53) so they read as what they are; for
//! Bedrock, `W` (0x57, bit 2 also set) is a stream whose checksums are filled in before decoding.
//! Providers that never stream read every input as a response body. The properties:
//! - nothing panics;
//! - a failure is the upstream's fault, never the client's: a 5xx, or the status the upstream
//!   itself reported in-band (an error event naming its type, [`ErrorKind::UpstreamStatus`]), which
//!   the gateway relays just as it relays an HTTP error status;
//! - what the gateway would send the client (a response body, a stream chunk) is valid JSON.
//!
//! Endpoints are loaded from YAML once per process (fuzzing runs millions of inputs) with dummy
//! keys; nothing here does I/O, and the clock the providers read for `created` never decides a
//! property (Bedrock takes the time as an argument: a constant here).

use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::config::{load_str, Endpoint, EndpointType, LoadOptions, ProviderConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::framing::{FrameDecoder, Framing};
use crate::messages::Usage;
use crate::providers::bedrock::credentials::AwsEnvironment;
use crate::providers::bedrock::{eventstream, BedrockWire, Plan};
use crate::providers::openai::{
    chat_chunk, chat_response, completions_chunk, completions_response, embeddings_response,
    embeddings_response_from_text,
};
use crate::providers::{StreamTranslator, Wire};
use crate::schema::{parse_json_body, UnifiedRequest};
use crate::upstream::EventOutcome;

/// Any text as an endpoint file loads or fails with issues.
pub fn config_load(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let env = |name: &str| {
            name.len()
                .is_multiple_of(2)
                .then(|| format!("value-of-{name}"))
        };
        let options = LoadOptions {
            env: &env,
            resolve_keys: true,
            allowed_providers: None,
        };
        let _ = load_str(text, &options);
    }
}

/// Any body, for each route type, validates or is refused with a 4xx; a valid request
/// serialises for the upstream.
pub fn request_validation(data: &[u8]) {
    let Ok(body) = parse_json_body(Some("application/json"), data) else {
        return;
    };
    for kind in EndpointType::ALL {
        match UnifiedRequest::validate(kind, body.clone()) {
            Ok(request) => assert!(serde_json::to_vec(&request).is_ok()),
            Err(error) => assert!((400..500).contains(&error.status), "{error}"),
        }
    }
}

fn decode(framing: Framing, data: &[u8], step: usize) -> Option<Vec<(Option<String>, String)>> {
    let mut decoder = FrameDecoder::new(framing);
    let mut events = Vec::new();
    for chunk in data.chunks(step.max(1)) {
        events.extend(decoder.push(chunk).ok()?);
    }
    events.extend(decoder.finish());
    Some(events.into_iter().map(|e| (e.event, e.data)).collect())
}

/// The first byte picks a read size; the events must not depend on where reads were split.
pub fn stream_framing(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    for framing in [Framing::Sse, Framing::JsonLines] {
        let whole = decode(framing, data, data.len());
        let pieces = decode(framing, data, usize::from(split));
        if let (Some(whole), Some(pieces)) = (whole, pieces) {
            assert_eq!(whole, pieces);
        }
    }
}

/// Any upstream JSON as an OpenAI response or stream event translates or is a 5xx; an
/// embeddings reply read from its text reads as it does when parsed.
pub fn openai_responses(data: &[u8]) {
    if let Some(by_text) = embeddings_response_from_text(data) {
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            // Only one refusal of the parsing path is not the text path's: serde_json refuses a
            // number beyond f64 (`1e400`) even in a field nobody reads, which is valid JSON and
            // which MLflow's Python parser takes. Anything else the text path must refuse too.
            let valid_json = std::str::from_utf8(data).is_ok()
                && serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok();
            assert!(
                valid_json,
                "the text path took a reply that is not valid JSON"
            );
            return;
        };
        let by_value = embeddings_response(value).ok();
        assert!(
            by_value.is_some(),
            "the text path took a reply the parsing path refuses"
        );
        let as_client_reads = |response: &crate::schema::EmbeddingsResponse| {
            serde_json::to_vec(response)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        };
        let by_text = as_client_reads(&by_text);
        assert!(by_text.is_some(), "the text path wrote invalid JSON");
        let by_value = by_value.as_ref().and_then(as_client_reads);
        assert!(
            same_up_to_rounding(&by_text, &by_value),
            "{by_text:?} != {by_value:?}"
        );
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let check = |result: Result<(), crate::error::GatewayError>| {
        if let Err(error) = result {
            assert!(error.status >= 500, "{error}");
        }
    };
    check(chat_response(value.clone(), "openai").map(drop));
    check(completions_response(value.clone()).map(drop));
    check(embeddings_response(value.clone()).map(drop));
    check(chat_chunk(value.clone(), "openai").map(drop));
    check(completions_chunk(value).map(drop));
}

/// Equal JSON, floats allowed a few units in the last place apart: serde_json's float parser
/// (without `float_roundtrip`) is not correctly rounded for long or far-exponent numbers, so the
/// parsing path can move a value by an ulp where the text path keeps the upstream's digits.
fn same_up_to_rounding(a: &Option<Value>, b: &Option<Value>) -> bool {
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
                match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => {
                        (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                    }
                    _ => false,
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        _ => false,
    }
}

use EndpointType::{Chat, Completions, Embeddings};

/// A failure caused by what the upstream sent is never blamed on the client: a 5xx, or a status
/// the upstream reported itself (relayed as `UpstreamStatus`, as HTTP error statuses are).
fn assert_upstream_failure(error: &GatewayError) {
    let relayed = error.kind == ErrorKind::UpstreamStatus && (400..600).contains(&error.status);
    assert!(
        relayed || (500..600).contains(&error.status),
        "upstream data became a {} {:?}: {error}",
        error.status,
        error.kind
    );
}

/// A translated whole response: valid JSON, or an upstream failure.
fn assert_response(result: Result<(Bytes, Usage), GatewayError>) {
    match result {
        Ok((body, _)) => assert!(
            serde_json::from_slice::<Value>(&body).is_ok(),
            "invalid JSON for the client: {body:?}"
        ),
        Err(error) => assert_upstream_failure(&error),
    }
}

/// One translated stream event; `false` once the stream is over (as `upstream::pump_events`
/// stops at `Done` or the first error; after `Final` it reads on, and so does this).
fn assert_event(outcome: Result<EventOutcome, GatewayError>) -> bool {
    match outcome {
        Ok(EventOutcome::Chunk(chunk) | EventOutcome::Final(chunk)) => {
            assert!(
                serde_json::from_slice::<Value>(&chunk.json).is_ok(),
                "invalid JSON chunk for the client: {:?}",
                chunk.json
            );
            true
        }
        Ok(EventOutcome::Skip) => true,
        Ok(EventOutcome::Done) => false,
        Err(error) => {
            assert_upstream_failure(&error);
            false
        }
    }
}

/// The whole body as the events its framing yields, the final unterminated one included; `None`
/// when the framing refuses it (an oversized event, which `pump_events` reports as its own 502).
fn frame(framing: Framing, body: &[u8]) -> Option<Vec<crate::sse::SseEvent>> {
    let mut decoder = FrameDecoder::new(framing);
    let mut events = decoder.push(body).ok()?;
    events.extend(decoder.finish());
    Some(events)
}

/// The endpoints of one YAML `endpoints:` list (JSON is YAML), keys taken literally. A harness
/// whose config does not load is a bug in the harness, so that is asserted too.
fn load_endpoints(endpoints: Value) -> Vec<std::sync::Arc<Endpoint>> {
    let options = LoadOptions {
        env: &|_| None,
        resolve_keys: false,
        allowed_providers: None,
    };
    let loaded = load_str(&json!({ "endpoints": endpoints }).to_string(), &options);
    assert!(loaded.is_ok(), "the fuzz endpoints must load: {loaded:?}");
    loaded.map(|l| l.config.endpoints).unwrap_or_default()
}

/// One provider as the actor sees it: an endpoint per route type it serves, and the route types
/// whose requests may stream (the others are refused before anything is sent, so their
/// translators never see a body).
struct Provider {
    wires: Vec<(EndpointType, Wire)>,
    streams: &'static [EndpointType],
}

impl Provider {
    fn new(
        provider: &str,
        model: &str,
        config: Value,
        kinds: &[EndpointType],
        streams: &'static [EndpointType],
    ) -> Self {
        let endpoints = kinds
            .iter()
            .map(|kind| {
                json!({
                    "name": format!("fuzz-{}", kind.route_word()),
                    "endpoint_type": kind.as_str(),
                    "model": {"provider": provider, "name": model, "config": config},
                })
            })
            .collect();
        let wires: Vec<_> = load_endpoints(endpoints)
            .iter()
            .filter_map(|e| Some((e.endpoint_type, Wire::for_endpoint(e)?)))
            .collect();
        assert_eq!(
            wires.len(),
            kinds.len(),
            "{provider}: a wire per route type"
        );
        Self { wires, streams }
    }

    fn check(&self, data: &[u8]) {
        let Some((&mode, body)) = data.split_first() else {
            return;
        };
        if mode & 1 == 1 && !self.streams.is_empty() {
            self.check_stream(body);
        } else {
            self.check_response(body);
        }
    }

    fn check_response(&self, body: &[u8]) {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        for (kind, wire) in &self.wires {
            assert_response(wire.response(*kind, value.clone()));
        }
    }

    fn check_stream(&self, body: &[u8]) {
        for (kind, wire) in self.wires.iter().filter(|(k, _)| self.streams.contains(k)) {
            // A fresh translator per stream: some keep state from event to event.
            let mut translator = wire.stream_translator(*kind);
            assert!(!matches!(translator, StreamTranslator::Unsupported));
            let Some(events) = frame(translator.framing(), body) else {
                return;
            };
            for event in &events {
                if !assert_event(translator.event(event)) {
                    break;
                }
            }
        }
    }
}

const KEY: &str = "fuzz-not-a-key";

static ANTHROPIC: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "anthropic",
        "claude-3-5-sonnet-latest",
        json!({"anthropic_api_key": KEY}),
        &[Chat, Completions],
        &[Chat],
    )
});

/// Anthropic's Messages and Text Completions responses, and its chat SSE stream.
pub fn provider_anthropic(data: &[u8]) {
    ANTHROPIC.check(data);
}

static MISTRAL: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "mistral",
        "mistral-small-latest",
        json!({"mistral_api_key": KEY}),
        &EndpointType::ALL,
        &[Chat],
    )
});

/// Mistral's chat (completions ride on it), embeddings, and chat SSE stream.
pub fn provider_mistral(data: &[u8]) {
    MISTRAL.check(data);
}

static TOGETHERAI: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "togetherai",
        "mistralai/Mixtral-8x7B-v0.1",
        json!({"togetherai_api_key": KEY}),
        &EndpointType::ALL,
        &[Chat, Completions],
    )
});

/// TogetherAI's responses, and its chat and completions SSE streams.
pub fn provider_togetherai(data: &[u8]) {
    TOGETHERAI.check(data);
}

static GEMINI: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "gemini",
        "gemini-2.0-flash",
        json!({"gemini_api_key": KEY}),
        &EndpointType::ALL,
        &[Chat, Completions],
    )
});

/// Gemini's generateContent / embedContent responses and its `alt=sse` streams.
pub fn provider_gemini(data: &[u8]) {
    GEMINI.check(data);
}

static COHERE: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "cohere",
        "command",
        json!({"cohere_api_key": KEY}),
        &EndpointType::ALL,
        &[Chat, Completions],
    )
});

/// Cohere v1's chat / generate / embed responses and its JSON-lines streams.
pub fn provider_cohere(data: &[u8]) {
    COHERE.check(data);
}

static PALM: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "palm",
        "chat-bison-001",
        json!({"palm_api_key": KEY}),
        &EndpointType::ALL,
        &[],
    )
});

/// PaLM's generateMessage / generateText / batchEmbedText responses (PaLM never streams).
pub fn provider_palm(data: &[u8]) {
    PALM.check(data);
}

static TGI: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "huggingface-text-generation-inference",
        "tgi",
        json!({"hf_server_url": "http://127.0.0.1:8080"}),
        &[Completions],
        &[],
    )
});

/// Text Generation Inference's `/generate` response (completions only, never streamed).
pub fn provider_tgi(data: &[u8]) {
    TGI.check(data);
}

static MLFLOW_SERVING: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "mlflow-model-serving",
        "my-model",
        json!({"model_server_url": "http://127.0.0.1:5001"}),
        &EndpointType::ALL,
        &[],
    )
});

/// MLflow Model Serving's `/invocations` predictions, for each route type (never streamed).
pub fn provider_mlflow_serving(data: &[u8]) {
    MLFLOW_SERVING.check(data);
}

static AI21LABS: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "ai21labs",
        "j2-ultra",
        json!({"ai21labs_api_key": KEY}),
        &[Completions],
        &[],
    )
});

/// AI21 Labs' `complete` response (completions only, never streamed).
pub fn provider_ai21labs(data: &[u8]) {
    AI21LABS.check(data);
}

static MOSAICML: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "mosaicml",
        // The loader wants a Llama-2 name for chat.
        "llama2-70b-chat",
        json!({"mosaicml_api_key": KEY}),
        &EndpointType::ALL,
        &[],
    )
});

/// MosaicML's `predict` outputs, for each route type (never streamed).
pub fn provider_mosaicml(data: &[u8]) {
    MOSAICML.check(data);
}

static PORTKEY: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "portkey",
        "gpt-4o-mini",
        json!({"api_key": KEY, "portkey_provider": "openai"}),
        &[Chat, Embeddings],
        &[Chat],
    )
});

/// Portkey's OpenAI-shaped chat and embeddings responses and chat SSE stream.
pub fn provider_portkey(data: &[u8]) {
    PORTKEY.check(data);
}

static DATABRICKS: LazyLock<Provider> = LazyLock::new(|| {
    Provider::new(
        "databricks",
        "databricks-meta-llama-3-3-70b-instruct",
        // Both set, or every call is the "no credentials" 501 and nothing is parsed.
        json!({"host": "https://dbc.invalid", "token": KEY}),
        &[Chat, Embeddings],
        &[Chat],
    )
});

/// Databricks serving endpoints' chat (list-of-parts content included) and embeddings
/// responses and chat SSE stream.
pub fn provider_databricks(data: &[u8]) {
    DATABRICKS.check(data);
}

/// Bedrock's calls, which do not go through [`Wire`]: each takes the time as an argument.
type BedrockCall = Box<dyn Fn(Value) -> Result<(Bytes, Usage), GatewayError> + Send + Sync>;

/// The `created` Bedrock is given: any constant does, the properties never read it.
const BEDROCK_NOW: i64 = 1_700_000_000;

struct Bedrock {
    /// Converse, each InvokeModel completions family, and InvokeModel embeddings.
    responses: Vec<BedrockCall>,
    /// The ConverseStream endpoint.
    chat: BedrockWire,
}

/// The Bedrock translation of the endpoint for `model`, with static keys (bearer tokens
/// cannot stream or embed) and no process environment.
fn bedrock_wire(kind: EndpointType, model: &str) -> Option<BedrockWire> {
    let endpoint = load_endpoints(json!([{
        "name": "fuzz",
        "endpoint_type": kind.as_str(),
        "model": {"provider": "bedrock", "name": model, "config": {"aws_config": {
            "aws_region": "us-east-1",
            "aws_access_key_id": "AKIDFUZZ",
            "aws_secret_access_key": KEY,
        }}},
    }]));
    let endpoint = endpoint.first()?;
    let ProviderConfig::Bedrock(config) = &endpoint.model.config else {
        return None;
    };
    Some(BedrockWire::new(
        config,
        endpoint.model.name.clone(),
        endpoint.model.provider,
        &AwsEnvironment::from_lookup(|_| None),
    ))
}

static BEDROCK: LazyLock<Option<Bedrock>> = LazyLock::new(|| {
    let chat = bedrock_wire(Chat, "anthropic.claude-3-haiku-20240307-v1:0")?;
    let mut responses: Vec<BedrockCall> = Vec::new();
    let converse = chat.clone();
    responses.push(Box::new(move |body| {
        converse.chat_response(body, BEDROCK_NOW)
    }));
    // Each InvokeModel family reads its own completions shape; the family comes from the
    // model name through the same plan the backend follows.
    let prompt = UnifiedRequest::validate(Completions, json!({"prompt": "x"})).ok()?;
    for model in [
        "amazon.titan-text-express-v1",
        "cohere.command-text-v14",
        "ai21.j2-ultra-v1",
        "anthropic.claude-v2",
    ] {
        let wire = bedrock_wire(Completions, model)?;
        let Ok(Plan::Completions { family, .. }) = wire.plan(&prompt) else {
            return None;
        };
        responses.push(Box::new(move |body| {
            wire.completions_response(family, body, BEDROCK_NOW)
        }));
    }
    // One InvokeModel call per input: two bodies, so the per-input numbering and the token sum
    // across them are exercised.
    let embed = bedrock_wire(Embeddings, "amazon.titan-embed-text-v1")?;
    responses.push(Box::new(move |body| {
        embed.embeddings_response(vec![body.clone(), body])
    }));
    Some(Bedrock { responses, chat })
});

/// Bedrock's Converse, InvokeModel (every family, embeddings) responses, and ConverseStream
/// bodies through the binary AWS event-stream decoder.
pub fn provider_bedrock(data: &[u8]) {
    let bedrock = BEDROCK.as_ref();
    assert!(bedrock.is_some(), "the Bedrock fuzz endpoints must load");
    let (Some(bedrock), Some((&mode, body))) = (bedrock, data.split_first()) else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        for call in &bedrock.responses {
            assert_response(call(value.clone()));
        }
        return;
    }
    // A fuzzer cannot compute CRC32s, so almost every mutation of a valid stream dies at the
    // first checksum and the header and payload code behind it stays unexplored. With bit 2 of
    // the mode byte set, the checks are made to pass first; clear, the bytes go as they are.
    let filled;
    let body = if mode & 4 == 4 {
        filled = eventstream::with_checksums_filled_in(body);
        &filled[..]
    } else {
        body
    };
    let Some(events) = frame(Framing::AwsEventStream, body) else {
        return;
    };
    let mut translator = bedrock.chat.stream_translator();
    for event in &events {
        if !assert_event(translator.event(event, BEDROCK_NOW)) {
            break;
        }
    }
}
