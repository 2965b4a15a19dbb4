//! MLflow Model Serving (`mlflow-model-serving`): chat, completions and embeddings against a model
//! served by `mlflow models serve`, through its `POST {model_server_url}/invocations` with the
//! `{"inputs": [...], "params": {...}}` payload, and no authentication. Pure code apart from
//! reading the clock for `created`.
//!
//! The served model is a plain function of strings, so MLflow sends only the text: the prompt, the
//! single chat message's content, or the embedding inputs, and every other request key (the
//! client's `model` included) as `params`. Replies are `{"predictions": ...}`; which shapes are
//! accepted, and the pydantic-style 502 for the others, follow MLflow's response models.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::config::{EndpointType, MlflowModelServingConfig, Provider};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::Usage;
use crate::schema::{
    ChatChoice, ChatResponse, ChatUsage, CompletionsChoice, CompletionsResponse, CompletionsUsage,
    Embedding, EmbeddingsResponse, EmbeddingsUsage, ResponseMessage, UnifiedRequest,
};
use crate::upstream::UpstreamRequest;

use super::openai::join_url;
use crate::providers::wire_json::{request_body, request_object, response_body, unix_now};

/// Where pydantic's messages point for details; part of the text MLflow returns.
const PYDANTIC_ERRORS: &str = "https://errors.pydantic.dev/2.14/v";

/// One endpoint's MLflow-serving translation.
#[derive(Debug, Clone)]
pub struct MlflowServingWire {
    server_url: String,
    model: String,
    provider: Provider,
}

impl MlflowServingWire {
    pub fn new(
        config: &MlflowModelServingConfig,
        model: Option<String>,
        provider: Provider,
    ) -> Self {
        Self {
            server_url: config.server_url.clone(),
            model: model.unwrap_or_default(),
            provider,
        }
    }

    /// A model server takes no credential.
    pub fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }

    /// The `/invocations` request; 501 for streams, 422 for a chat with several messages.
    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let kind = request.endpoint_type();
        if request.is_stream() {
            return Err(GatewayError::streaming_not_supported(
                kind.route_word(),
                self.provider.display_name(),
            ));
        }
        let body = invocation_body(kind, request_object(request)?)?;
        let body = request_body(&body)?;
        Ok(UpstreamRequest {
            url: join_url(&self.server_url, "invocations"),
            headers: Vec::new(),
            body,
        })
    }

    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        let created = unix_now();
        let bytes = match kind {
            EndpointType::Chat => response_body(&chat_response(
                body,
                &self.model,
                self.provider.as_str(),
                created,
            )?)?,
            EndpointType::Completions => {
                response_body(&completions_response(body, &self.model, created)?)?
            }
            EndpointType::Embeddings => response_body(&embeddings_response(body, &self.model)?)?,
        };
        // A served model reports no token counts.
        Ok((bytes, Usage::new(None, None)))
    }
}

/// `{"inputs": [...], "params": {...}}`: the route's text key becomes `inputs` (wrapped in a list
/// unless it is one), everything else `params` (left out when empty, which only embeddings can
/// be: chat and completions always carry `n`).
pub fn invocation_body(
    kind: EndpointType,
    mut payload: Map<String, Value>,
) -> Result<Value, GatewayError> {
    let key = match kind {
        EndpointType::Chat => "messages",
        EndpointType::Completions => "prompt",
        EndpointType::Embeddings => "input",
    };
    let inputs = match payload.shift_remove(key) {
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
        None => vec![Value::Null],
    };
    let inputs = if kind == EndpointType::Chat {
        if inputs.len() > 1 {
            return Err(GatewayError::new(
                ErrorKind::InvalidParameter,
                422,
                format!(
                    "MLflow chat models are only capable of processing a single query at a time. The request submitted consists of {} queries.",
                    inputs.len()
                ),
            ));
        }
        // The one message's content, as sent (a string, or a list of parts).
        let content = inputs
            .into_iter()
            .next()
            .and_then(|message| match message {
                Value::Object(mut message) => message.shift_remove("content"),
                _ => None,
            })
            .unwrap_or(Value::Null);
        vec![content]
    } else {
        inputs
    };
    let mut body = Map::new();
    body.insert("inputs".to_owned(), Value::Array(inputs));
    if !payload.is_empty() {
        body.insert("params".to_owned(), Value::Object(payload));
    }
    Ok(Value::Object(body))
}

/// MLflow wraps a pydantic `ValidationError` of its response model into the 502 detail; this
/// builds the same text for one error (`input_value` is left out: it is Python's `repr` of the
/// served model's output, which need not be reproduced to explain the problem).
fn validation_error(
    model: &str,
    loc: &str,
    message: &str,
    kind: &str,
    input: &Value,
) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        502,
        format!(
            "1 validation error for {model}\n{loc}\n  {message} [type={kind}, input_type={}]\n    For further information visit {PYDANTIC_ERRORS}/{kind}",
            python_type(input)
        ),
    )
}

fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

const TEXT_MODEL: &str = "ServingTextResponse";
const EMBEDDINGS_MODEL: &str = "EmbeddingsResponse";

fn predictions(body: &Value, model: &str) -> Result<Value, GatewayError> {
    body.get("predictions")
        .cloned()
        .ok_or_else(|| validation_error(model, "predictions", "Field required", "missing", body))
}

fn value_error(model: &str, message: &str, input: &Value) -> GatewayError {
    validation_error(
        model,
        "predictions",
        &format!("Value error, {message}"),
        "value_error",
        input,
    )
}

/// The texts of a chat or completions reply: a non-empty list of strings, a one-key dict holding
/// one, or a dict whose `choices` holds one.
pub fn text_predictions(body: &Value) -> Result<Vec<String>, GatewayError> {
    let raw = predictions(body, TEXT_MODEL)?;
    let empty = || value_error(TEXT_MODEL, "The input list is empty", &raw);
    let list = match &raw {
        Value::Array(items) if items.is_empty() => return Err(empty()),
        Value::Object(map) => {
            if !map.contains_key("choices") && map.len() > 1 {
                return Err(value_error(
                    TEXT_MODEL,
                    "The dict format is invalid for this route type. Ensure the served model returns a dict key containing 'choices'",
                    &raw,
                ));
            }
            let inner = if map.len() == 1 {
                map.values().next().cloned().unwrap_or(Value::Null)
            } else {
                map.get("choices").cloned().unwrap_or(Value::Null)
            };
            if is_falsy(&inner) {
                return Err(empty());
            }
            inner
        }
        other => other.clone(),
    };
    let Value::Array(items) = list else {
        return Err(validation_error(
            TEXT_MODEL,
            "predictions",
            "Input should be a valid list",
            "list_type",
            &list,
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(text) => Ok(text),
            other => Err(validation_error(
                TEXT_MODEL,
                &format!("predictions.{index}"),
                "Input should be a valid string",
                "string_type",
                &other,
            )),
        })
        .collect()
}

/// Python's truthiness of a decoded JSON value, as MLflow's `if not predictions` tests it.
fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
    }
}

/// The vectors of an embeddings reply: a list of float lists, or one flat float list (one
/// vector). Integers inside a vector are accepted as floats (as pydantic does); a flat list of
/// integers is not a vector to MLflow, so it fails like any other non-list item.
pub fn embedding_predictions(body: &Value) -> Result<Vec<Vec<f64>>, GatewayError> {
    let raw = predictions(body, EMBEDDINGS_MODEL)?;
    let Value::Array(items) = &raw else {
        return Err(validation_error(
            EMBEDDINGS_MODEL,
            "predictions",
            "Input should be a valid list",
            "list_type",
            &raw,
        ));
    };
    if items.is_empty() {
        return Err(value_error(
            EMBEDDINGS_MODEL,
            "The input list is empty",
            &raw,
        ));
    }
    if items
        .iter()
        .all(|item| matches!(item, Value::Array(inner) if inner.is_empty()))
    {
        return Err(value_error(
            EMBEDDINGS_MODEL,
            "One or more lists in the returned prediction response are empty",
            &raw,
        ));
    }
    if items
        .iter()
        .all(|item| matches!(item, Value::Number(n) if n.is_f64()))
    {
        return Ok(vec![items.iter().filter_map(Value::as_f64).collect()]);
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let Value::Array(vector) = item else {
                return Err(validation_error(
                    EMBEDDINGS_MODEL,
                    &format!("predictions.{index}"),
                    "Input should be a valid list",
                    "list_type",
                    item,
                ));
            };
            vector
                .iter()
                .enumerate()
                .map(|(position, number)| match number {
                    Value::Number(n) => n.as_f64().ok_or_else(|| {
                        GatewayError::internal("a JSON number is not representable")
                    }),
                    other => Err(validation_error(
                        EMBEDDINGS_MODEL,
                        &format!("predictions.{index}.{position}"),
                        "Input should be a valid number",
                        "float_type",
                        other,
                    )),
                })
                .collect()
        })
        .collect()
}

/// One assistant choice per prediction; no id, no finish reason, no usage.
pub fn chat_response(
    body: Value,
    model: &str,
    provider: &str,
    created: i64,
) -> Result<ChatResponse, GatewayError> {
    let texts = text_predictions(&body)?;
    Ok(ChatResponse {
        id: None,
        object: "chat.completion".to_owned(),
        created,
        model: model.to_owned(),
        choices: texts
            .into_iter()
            .zip(0u32..)
            .map(|(text, index)| ChatChoice {
                index,
                message: ResponseMessage {
                    role: "assistant".to_owned(),
                    content: Some(text),
                    tool_calls: None,
                    refusal: None,
                },
                finish_reason: None,
            })
            .collect(),
        usage: ChatUsage::new(None, None, None),
        provider: provider.to_owned(),
    })
}

pub fn completions_response(
    body: Value,
    model: &str,
    created: i64,
) -> Result<CompletionsResponse, GatewayError> {
    let texts = text_predictions(&body)?;
    Ok(CompletionsResponse {
        id: None,
        object: "text_completion".to_owned(),
        created,
        model: model.to_owned(),
        choices: texts
            .into_iter()
            .zip(0u32..)
            .map(|(text, index)| CompletionsChoice {
                index,
                text,
                finish_reason: None,
            })
            .collect(),
        usage: CompletionsUsage::default(),
    })
}

pub fn embeddings_response(body: Value, model: &str) -> Result<EmbeddingsResponse, GatewayError> {
    let vectors = embedding_predictions(&body)?;
    Ok(EmbeddingsResponse::new(
        model,
        vectors.into_iter().map(Embedding::Floats).collect(),
        EmbeddingsUsage::default(),
    ))
}

#[cfg(test)]
#[path = "mlflow_serving_tests.rs"]
mod tests;
