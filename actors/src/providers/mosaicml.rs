//! MosaicML (`mosaicml`, deprecated by MLflow): chat (Llama-2 models; the config loader checks
//! the name), completions and embeddings through `POST {mosaicml_api_base}/<model>/v1/predict`,
//! authenticated by the bare key in `Authorization` (no `Bearer`). Pure code apart from reading
//! the clock for `created`.
//!
//! MosaicML's text models take prompts, not messages, so chat renders the conversation as one
//! Llama-2 prompt (`<s>[INST] <<SYS>> ... <</SYS>> ... [/INST] ... </s>`), exactly as MLflow does.
//! MosaicML reports a too-long prompt or output as a 500; MLflow re-labels those as the client's
//! fault (422), and so do we ([`MosaicMlWire::upstream_error`]).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{EndpointType, MosaicMlConfig, Provider};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::Usage;
use crate::schema::{
    ChatChoice, ChatResponse, ChatUsage, CompletionsChoice, CompletionsResponse, CompletionsUsage,
    ContentPart, Embedding, EmbeddingsResponse, EmbeddingsUsage, Message, MessageContent,
    ResponseMessage, UnifiedRequest,
};
use crate::upstream::UpstreamRequest;

use super::openai::join_url;
use crate::providers::wire_json::{
    request_body, request_object, response_body, unix_now, unreadable_because,
};

/// MosaicML's 500 messages that are really about the request (prompt or output too long).
const CLIENT_FAULT_PREFIXES: [&str; 2] = [
    "Error: max output tokens is limited to",
    "Error: prompt token count",
];

/// One endpoint's MosaicML translation.
#[derive(Debug, Clone)]
pub struct MosaicMlWire {
    config: MosaicMlConfig,
    model: String,
    provider: Provider,
}

impl MosaicMlWire {
    pub fn new(config: &MosaicMlConfig, model: Option<String>, provider: Provider) -> Self {
        Self {
            config: config.clone(),
            model: model.unwrap_or_default(),
            provider,
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        vec![self.config.api_key.expose()]
    }

    /// The `predict` request; 501 for streams, 422 for MLflow's parameter and role rules.
    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let kind = request.endpoint_type();
        if request.is_stream() {
            return Err(GatewayError::streaming_not_supported(
                kind.route_word(),
                self.provider.display_name(),
            ));
        }
        let payload = request_object(request)?;
        let body = match request {
            UnifiedRequest::Chat(chat) => chat_body(payload, &chat.messages)?,
            UnifiedRequest::Completions(_) => completions_body(payload)?,
            UnifiedRequest::Embeddings(_) => embeddings_body(payload)?,
        };
        Ok(UpstreamRequest {
            url: join_url(&self.config.api_base, &format!("{}/v1/predict", self.model)),
            headers: vec![("authorization", self.config.api_key.expose().to_owned())],
            body: request_body(&body)?,
        })
    }

    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        let outputs: WireOutputs =
            serde_json::from_value(body).map_err(|e| unreadable_because("response", e))?;
        let created = unix_now();
        let bytes = match kind {
            EndpointType::Chat => response_body(&chat_response(
                outputs,
                &self.model,
                self.provider.as_str(),
                created,
            )?)?,
            EndpointType::Completions => {
                response_body(&completions_response(outputs, &self.model, created)?)?
            }
            EndpointType::Embeddings => response_body(&embeddings_response(outputs, &self.model)?)?,
        };
        // MosaicML's answers carry no token counts.
        Ok((bytes, Usage::new(None, None)))
    }

    /// MosaicML's "too many tokens" 500s become 422 with the same detail, for chat and
    /// completions (MLflow does not re-label embeddings errors).
    pub fn upstream_error(&self, kind: EndpointType, error: GatewayError) -> GatewayError {
        client_fault(kind, error)
    }
}

pub fn client_fault(kind: EndpointType, mut error: GatewayError) -> GatewayError {
    let is_token_limit = error
        .detail
        .get("message")
        .and_then(Value::as_str)
        .is_some_and(|m| CLIENT_FAULT_PREFIXES.iter().any(|p| m.starts_with(p)));
    if kind != EndpointType::Embeddings
        && error.kind == ErrorKind::UpstreamStatus
        && error.status == 500
        && is_token_limit
    {
        error.status = 422;
        error.kind = ErrorKind::InvalidParameter;
    }
    error
}

fn invalid(message: String) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidParameter, 422, message)
}

/// `max_tokens` → `max_new_tokens` in place; sending `max_new_tokens` itself is refused.
fn rename_max_tokens(payload: Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    if payload.contains_key("max_new_tokens") {
        return Err(invalid(
            "Invalid parameter max_new_tokens. Use max_tokens instead.".to_owned(),
        ));
    }
    Ok(payload
        .into_iter()
        .map(|(key, value)| match key.as_str() {
            "max_tokens" => ("max_new_tokens".to_owned(), value),
            _ => (key, value),
        })
        .collect())
}

fn inputs_and_parameters(inputs: Value, parameters: Map<String, Value>) -> Value {
    let mut body = Map::new();
    body.insert("inputs".to_owned(), inputs);
    body.insert("parameters".to_owned(), Value::Object(parameters));
    Value::Object(body)
}

/// `{"inputs": [<llama-2 prompt>], "parameters": {<every other key>}}`.
pub fn chat_body(
    mut payload: Map<String, Value>,
    messages: &[Message],
) -> Result<Value, GatewayError> {
    payload.shift_remove("messages");
    let parameters = rename_max_tokens(payload)?;
    let prompt = llama2_prompt(messages)?;
    Ok(inputs_and_parameters(
        Value::Array(vec![Value::String(prompt)]),
        parameters,
    ))
}

/// `{"inputs": [prompt], "parameters": {<every other key>}}`.
pub fn completions_body(payload: Map<String, Value>) -> Result<Value, GatewayError> {
    let mut parameters = rename_max_tokens(payload)?;
    let prompt = parameters.shift_remove("prompt").unwrap_or(Value::Null);
    let inputs = match prompt {
        Value::Array(items) => Value::Array(items),
        other => Value::Array(vec![other]),
    };
    Ok(inputs_and_parameters(inputs, parameters))
}

/// The payload with `input` renamed `inputs` (a lone string wrapped in a list); extras stay at the
/// top level, not under `parameters` (MLflow's embeddings body).
pub fn embeddings_body(payload: Map<String, Value>) -> Result<Value, GatewayError> {
    if payload.contains_key("inputs") {
        return Err(invalid(
            "Invalid parameter inputs. Use input instead.".to_owned(),
        ));
    }
    Ok(Value::Object(
        payload
            .into_iter()
            .map(|(key, value)| match (key.as_str(), value) {
                ("input", Value::String(text)) => {
                    ("inputs".to_owned(), Value::Array(vec![Value::String(text)]))
                }
                ("input", value) => ("inputs".to_owned(), value),
                (_, value) => (key, value),
            })
            .collect(),
    ))
}

/// A message's text: the string content, or its text parts joined with newlines (MLflow would
/// fail on parts; a Llama-2 prompt can only hold text). No content is the empty string.
fn message_text(message: &Message) -> String {
    match &message.content {
        Some(MessageContent::Text(text)) => text.clone(),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        None => String::new(),
    }
}

/// The conversation as one Llama-2 prompt, following MLflow's rules: a system message is wrapped
/// in `<<SYS>>`, consecutive system/user messages share one `[INST]` block, an assistant answer
/// closes the turn with `</s><s>`, and a trailing `</s><s>` is dropped so the model continues an
/// assistant turn. Any other role is refused.
pub fn llama2_prompt(messages: &[Message]) -> Result<String, GatewayError> {
    const CLOSE: &str = "[/INST]";
    let mut prompt = String::from("<s>");
    for message in messages {
        let text = message_text(message);
        match message.role.as_str() {
            role @ ("system" | "user") => {
                let mut inst = if role == "system" {
                    format!("<<SYS>> {text} <</SYS>>")
                } else {
                    text
                };
                inst.push(' ');
                inst.push_str(CLOSE);
                if prompt.ends_with(CLOSE) {
                    prompt.truncate(prompt.len() - CLOSE.len());
                } else {
                    inst.insert_str(0, "[INST] ");
                }
                prompt.push_str(&inst);
            }
            "assistant" => {
                prompt.push(' ');
                prompt.push_str(&text);
                prompt.push_str(" </s><s>");
            }
            other => {
                return Err(invalid(format!(
                    "An invalid request structure was submitted. Invalid role {other} inputted. Must be one of 'system', 'user', or 'assistant'."
                )))
            }
        }
    }
    if let Some(stripped) = prompt.strip_suffix("</s><s>") {
        prompt.truncate(stripped.len());
    }
    Ok(prompt)
}

#[derive(Deserialize)]
pub struct WireOutputs {
    outputs: Vec<Value>,
}

fn bad_output(what: &str) -> GatewayError {
    unreadable_because("response", format_args!("an output is not {what}"))
}

fn texts(outputs: WireOutputs) -> Result<Vec<String>, GatewayError> {
    outputs
        .outputs
        .into_iter()
        .map(|output| match output {
            Value::String(text) => Ok(text),
            _ => Err(bad_output("a string")),
        })
        .collect()
}

/// One assistant choice per output; no id, finish reason or usage.
pub fn chat_response(
    outputs: WireOutputs,
    model: &str,
    provider: &str,
    created: i64,
) -> Result<ChatResponse, GatewayError> {
    Ok(ChatResponse {
        id: None,
        object: "chat.completion".to_owned(),
        created,
        model: model.to_owned(),
        choices: texts(outputs)?
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
        usage: ChatUsage::default(),
        provider: provider.to_owned(),
    })
}

/// One choice per output; no id, finish reason or usage.
pub fn completions_response(
    outputs: WireOutputs,
    model: &str,
    created: i64,
) -> Result<CompletionsResponse, GatewayError> {
    Ok(CompletionsResponse {
        id: None,
        object: "text_completion".to_owned(),
        created,
        model: model.to_owned(),
        choices: texts(outputs)?
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

pub fn embeddings_response(
    outputs: WireOutputs,
    model: &str,
) -> Result<EmbeddingsResponse, GatewayError> {
    let vectors = outputs
        .outputs
        .into_iter()
        .map(|output| {
            serde_json::from_value::<Vec<f64>>(output).map_err(|_| bad_output("a list of numbers"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EmbeddingsResponse::new(
        model,
        vectors.into_iter().map(Embedding::Floats).collect(),
        EmbeddingsUsage::default(),
    ))
}

#[cfg(test)]
#[path = "mosaicml_tests.rs"]
mod tests;
