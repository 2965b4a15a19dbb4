//! InvokeModel: completions for the model families MLflow routes (Amazon Titan, Cohere, AI21,
//! Anthropic), each with its own body and response, and Titan-style embeddings (one call per
//! input). Pure: the time is an argument.

use serde_json::{json, Map, Value};

use crate::error::{ErrorKind, GatewayError};
use crate::schema::{
    CompletionsChoice, CompletionsRequest, CompletionsResponse, CompletionsUsage, Embedding,
    EmbeddingObject, EmbeddingsInput, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage,
};

use crate::providers::wire_json::{request_object, unreadable};

/// Anthropic's default `max_tokens` in MLflow, and Bedrock's cap for the legacy completion API.
const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 8192;
const ANTHROPIC_MAXIMUM_MAX_TOKENS: u64 = 1_000_000;
const BEDROCK_ANTHROPIC_MAXIMUM_MAX_TOKENS: u64 = 8191;

/// The model family, which decides the InvokeModel body and response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Titan,
    Cohere,
    Ai21,
    Anthropic,
}

fn invalid(status: u16, detail: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidParameter, status, detail.into())
}

/// MLflow's choice: the lower-cased model name must contain a `.`, then the first family whose
/// name it contains, in the order amazon, cohere, ai21, anthropic.
pub fn family(model: &str) -> Result<Family, GatewayError> {
    let name = model.to_lowercase();
    let found = name.contains('.').then(|| {
        [
            ("amazon", Family::Titan),
            ("cohere", Family::Cohere),
            ("ai21", Family::Ai21),
            ("anthropic", Family::Anthropic),
        ]
        .into_iter()
        .find(|(word, _)| name.contains(word))
        .map(|(_, family)| family)
    });
    found
        .flatten()
        .ok_or_else(|| invalid(422, "Unknown Amazon Bedrock model type None"))
}

/// The request as MLflow dumps it for InvokeModel: nulls and defaults (`n: 1`) left out.
/// `stream` and `stream_options` are dropped as well: InvokeModel never streams here (a
/// streaming completions request got its 501 already), and the model bodies have no such keys.
fn payload(request: &CompletionsRequest) -> Result<Map<String, Value>, GatewayError> {
    let mut map = request_object(request)?;
    if map.get("n") == Some(&json!(1)) {
        map.shift_remove("n");
    }
    for key in ["stream", "stream_options", "model"] {
        map.shift_remove(key);
    }
    Ok(map)
}

/// Renames keys in place, keeping their order.
fn rename(map: Map<String, Value>, renames: &[(&str, &str)]) -> Map<String, Value> {
    map.into_iter()
        .map(|(key, value)| {
            let key = renames
                .iter()
                .find(|(from, _)| *from == key)
                .map_or(key, |(_, to)| (*to).to_owned());
            (key, value)
        })
        .collect()
}

fn scale(map: &mut Map<String, Value>, key: &str, factor: f64) {
    if let Some(t) = map.get(key).and_then(Value::as_f64) {
        map.insert(key.to_owned(), json!(t * factor));
    }
}

/// The InvokeModel body for a completions request.
pub fn completions_body(
    family: Family,
    request: &CompletionsRequest,
) -> Result<Value, GatewayError> {
    let mut map = payload(request)?;
    match family {
        Family::Titan => {
            let n = map.shift_remove("n").and_then(|n| n.as_u64()).unwrap_or(1);
            if n != 1 {
                return Err(invalid(
                    422,
                    format!("'n' must be '1' for AWS Titan models. Received value: '{n}'."),
                ));
            }
            if let Some(top_p) = map
                .get("top_p")
                .and_then(Value::as_f64)
                .filter(|p| *p == 0.0)
            {
                return Err(invalid(
                    422,
                    format!(
                        "'top_p' must be greater than 0 for AWS Titan models. Received value: '{}'.",
                        crate::providers::pyjson::float_repr(top_p)
                    ),
                ));
            }
            // Titan's temperature range is 0-1, the unified one 0-2.
            scale(&mut map, "temperature", 0.5);
            let prompt = map.shift_remove("prompt").unwrap_or_default();
            let config = rename(
                map,
                &[
                    ("max_tokens", "maxTokenCount"),
                    ("stop", "stopSequences"),
                    ("top_p", "topP"),
                ],
            );
            Ok(json!({"inputText": prompt, "textGenerationConfig": config}))
        }
        Family::Ai21 => Ok(Value::Object(rename(
            map,
            &[
                ("stop", "stopSequences"),
                ("n", "numResults"),
                ("max_tokens", "maxTokens"),
                ("top_p", "topP"),
            ],
        ))),
        Family::Cohere => {
            for (ours, theirs) in [("stop", "stop_sequences"), ("n", "num_generations")] {
                if map.contains_key(theirs) {
                    return Err(invalid(
                        400,
                        format!("Invalid parameter {theirs}. Use {ours} instead."),
                    ));
                }
            }
            // Cohere's range is 0-5; a zero temperature stays zero, as in MLflow.
            if map
                .get("temperature")
                .and_then(Value::as_f64)
                .is_some_and(|t| t != 0.0)
            {
                scale(&mut map, "temperature", 2.5);
            }
            Ok(Value::Object(rename(
                map,
                &[("stop", "stop_sequences"), ("n", "num_generations")],
            )))
        }
        Family::Anthropic => anthropic_body(map),
    }
}

/// MLflow's Anthropic legacy-completion body, then Bedrock's changes: `"\n\nHuman:"` added to
/// the stop sequences, `max_tokens_to_sample` capped at 8191, `anthropic_version`, no `model`.
fn anthropic_body(mut map: Map<String, Value>) -> Result<Value, GatewayError> {
    if map.contains_key("top_p") {
        return Err(invalid(
            422,
            "Cannot set both 'temperature' and 'top_p' parameters. Please use only the temperature parameter for your query.",
        ));
    }
    // MLflow sets `model` here and removes it at the end; inserting it keeps the key order.
    map.insert("model".to_owned(), Value::Null);
    let max_tokens = map
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS);
    if max_tokens > ANTHROPIC_MAXIMUM_MAX_TOKENS {
        return Err(invalid(
            422,
            format!("Invalid value for max_tokens: cannot exceed {ANTHROPIC_MAXIMUM_MAX_TOKENS}."),
        ));
    }
    map.insert("max_tokens".to_owned(), json!(max_tokens));
    let n = map.shift_remove("n").and_then(|n| n.as_u64()).unwrap_or(1);
    if n != 1 {
        return Err(invalid(
            422,
            format!("'n' must be '1' for the Anthropic provider. Received value: '{n}'."),
        ));
    }
    let mut map = rename(
        map,
        &[
            ("max_tokens", "max_tokens_to_sample"),
            ("stop", "stop_sequences"),
        ],
    );
    let mut prompt = map
        .get("prompt")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if prompt.starts_with("Human: ") {
        prompt.insert_str(0, "\n\n");
    }
    if !prompt.starts_with("\n\nHuman: ") {
        prompt.insert_str(0, "\n\nHuman: ");
    }
    if !prompt.ends_with("\n\nAssistant:") {
        prompt.push_str("\n\nAssistant:");
    }
    map.insert("prompt".to_owned(), Value::String(prompt));
    scale(&mut map, "temperature", 0.5);
    let stops = map
        .entry("stop_sequences")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(stops) = stops {
        if !stops.iter().any(|s| s == "\n\nHuman:") {
            stops.push(json!("\n\nHuman:"));
        }
    }
    map.insert(
        "max_tokens_to_sample".to_owned(),
        json!(max_tokens.min(BEDROCK_ANTHROPIC_MAXIMUM_MAX_TOKENS)),
    );
    map.insert("anthropic_version".to_owned(), json!("bedrock-2023-05-31"));
    map.shift_remove("model");
    Ok(Value::Object(map))
}

/// A family's InvokeModel response as a unified completions response (usage unknown, no id).
pub fn completions_response(
    family: Family,
    body: Value,
    model: &str,
    now: i64,
) -> Result<CompletionsResponse, GatewayError> {
    let text = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| unreadable("completions response"))
    };
    let list = |key: &str| {
        body.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let choices: Vec<(String, Option<String>)> = match family {
        Family::Titan => list("results")
            .iter()
            .map(|r| Ok((text(r.get("outputText"))?, None)))
            .collect::<Result<_, GatewayError>>()?,
        Family::Ai21 => list("completions")
            .iter()
            .map(|c| Ok((text(c.pointer("/data/text"))?, None)))
            .collect::<Result<_, GatewayError>>()?,
        Family::Cohere => list("generations")
            .iter()
            .map(|g| Ok((text(g.get("text"))?, None)))
            .collect::<Result<_, GatewayError>>()?,
        Family::Anthropic => {
            let reason = match body.get("stop_reason").and_then(Value::as_str) {
                Some("stop_sequence") => "stop",
                _ => "length",
            };
            vec![(text(body.get("completion"))?, Some(reason.to_owned()))]
        }
    };
    Ok(CompletionsResponse {
        id: None,
        object: "text_completion".to_owned(),
        created: now,
        model: model.to_owned(),
        choices: choices
            .into_iter()
            .zip(0u32..)
            .map(|((text, finish_reason), index)| CompletionsChoice {
                index,
                text,
                finish_reason,
            })
            .collect(),
        usage: CompletionsUsage::default(),
    })
}

/// One `{"inputText": ...}` body per input, in order (token inputs are forwarded as they are,
/// as MLflow does; Titan refuses them).
pub fn embeddings_bodies(request: &EmbeddingsRequest) -> Vec<Value> {
    let inputs: Vec<Value> = match &request.input {
        EmbeddingsInput::Text(text) => vec![json!(text)],
        EmbeddingsInput::Texts(texts) => texts.iter().map(|t| json!(t)).collect(),
        EmbeddingsInput::Tokens(tokens) => tokens.iter().map(|t| json!(t)).collect(),
        EmbeddingsInput::TokenBatches(batches) => batches.iter().map(|b| json!(b)).collect(),
    };
    inputs
        .into_iter()
        .map(|input| json!({ "inputText": input }))
        .collect()
}

/// The per-input responses as one embeddings response; usage is the sum of
/// `inputTextTokenCount`.
pub fn embeddings_response(
    bodies: Vec<Value>,
    model: &str,
) -> Result<EmbeddingsResponse, GatewayError> {
    let mut data = Vec::with_capacity(bodies.len());
    let mut tokens = 0u64;
    for (body, index) in bodies.into_iter().zip(0u32..) {
        let embedding: Vec<f64> = match body.get("embedding") {
            None => Vec::new(),
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|_| unreadable("embeddings response"))?,
        };
        // Saturating: the counts are the upstream's, and their sum must not overflow.
        tokens = tokens.saturating_add(
            body.get("inputTextTokenCount")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        );
        data.push(EmbeddingObject {
            object: "embedding".to_owned(),
            embedding: Embedding::Floats(embedding),
            index,
        });
    }
    Ok(EmbeddingsResponse {
        object: "list".to_owned(),
        data,
        model: model.to_owned(),
        usage: EmbeddingsUsage {
            prompt_tokens: Some(tokens),
            total_tokens: Some(tokens),
        },
    })
}
