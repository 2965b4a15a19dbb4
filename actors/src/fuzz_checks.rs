//! The properties the fuzz targets check, as plain functions over bytes: `fuzz/` drives them with
//! libFuzzer, and `actors/tests/fuzz_corpus.rs` replays the committed corpus through them on
//! stable Rust in every test run. Each must return without panicking for any input.

use crate::config::{load_str, EndpointType, LoadOptions};
use crate::framing::{FrameDecoder, Framing};
use crate::providers::openai::{
    chat_chunk, chat_response, completions_chunk, completions_response, embeddings_response,
};
use crate::schema::{parse_json_body, UnifiedRequest};

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

/// Any upstream JSON as an OpenAI response or stream event translates or is a 5xx.
pub fn openai_responses(data: &[u8]) {
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
