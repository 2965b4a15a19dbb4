//! Anthropic: chat over the Messages API (`/messages`), completions over the legacy
//! Text Completions API (`/complete`), no embeddings. Pure code: no HTTP, no clock (the caller
//! passes `created`).
//!
//! This file turns unified requests into Anthropic's wire bodies with MLflow's rules (system
//! messages lifted into `system`, tool calls and results as `tool_use` / `tool_result` blocks,
//! temperature halved, `max_tokens` defaulted, `n` refused); `anthropic_response.rs` reads
//! responses and stream events back.
//!
//! Bodies are built by editing the serialised unified payload in place, the way MLflow edits its
//! dict, so keys keep MLflow's order (a key that is replaced stays where it was, a new key goes at
//! the end) and the upstream body matches MLflow's byte for byte.

#[path = "anthropic_response.rs"]
mod response;
#[cfg(test)]
#[path = "anthropic_tests.rs"]
mod tests;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::config::{AnthropicConfig, EndpointType, Provider};
use crate::error::{ErrorKind, GatewayError};
use crate::messages::Usage;
use crate::schema::{
    ChatRequest, CompletionsRequest, ContentPart, Message, MessageContent, ResponseFormatKind,
    ToolChoice, ToolChoiceMode, ToolKind, UnifiedRequest,
};
use crate::upstream::UpstreamRequest;

use super::openai::join_url;
use crate::providers::wire_json::{
    request_body, request_not_serialisable, request_object, unix_now,
};
pub use response::AnthropicStream;

/// `max_tokens` when the client sets neither it nor `max_completion_tokens`.
const DEFAULT_MAX_TOKENS: u64 = 8192;
/// The largest `max_tokens` MLflow lets through.
const MAXIMUM_MAX_TOKENS: u64 = 1_000_000;
/// Anthropic's temperature range is 0–1 where the unified one is 0–2.
const TEMPERATURE_SCALE: f64 = 0.5;
/// What MLflow adds to `system` for `response_format: json_object` (Anthropic has no JSON mode
/// without a schema).
const JSON_OBJECT_INSTRUCTION: &str = "Respond with only a single valid JSON object. Do not include any explanatory text, markdown, or code fences before or after the JSON object.";
/// MLflow's message for `n` ≠ 1 on chat; the literal `{n}` is really in it (an f-string MLflow
/// forgot), so it is kept as is.
const CHAT_N_MESSAGE: &str = "'n' must be '1' for the Anthropic provider. Received value: '{n}'.";

/// One endpoint's Anthropic translation.
#[derive(Debug, Clone)]
pub struct AnthropicWire {
    config: AnthropicConfig,
    model: Option<String>,
    provider: Provider,
}

impl AnthropicWire {
    pub fn new(config: &AnthropicConfig, model: Option<String>, provider: Provider) -> Self {
        Self {
            config: config.clone(),
            model,
            provider,
        }
    }

    pub fn secrets(&self) -> Vec<&str> {
        vec![self.config.api_key.expose()]
    }

    /// The unified request as Anthropic's HTTP request; 501 for embeddings and completions
    /// streams, 422 for MLflow's parameter rules. Decided before anything is sent.
    pub fn request(&self, request: &UnifiedRequest) -> Result<UpstreamRequest, GatewayError> {
        let display = self.provider.display_name();
        let (path, body) = match request {
            UnifiedRequest::Chat(chat) => ("messages", chat_body(chat, self.model.as_deref())?),
            UnifiedRequest::Completions(completions) => {
                if request.is_stream() {
                    return Err(GatewayError::streaming_not_supported(
                        EndpointType::Completions.route_word(),
                        display,
                    ));
                }
                (
                    "complete",
                    completions_body(completions, self.model.as_deref())?,
                )
            }
            UnifiedRequest::Embeddings(_) => {
                return Err(GatewayError::not_implemented(
                    EndpointType::Embeddings.route_word(),
                    display,
                ))
            }
        };
        let body = request_body(&body)?;
        Ok(UpstreamRequest {
            url: join_url(&self.config.api_base, path),
            headers: vec![
                ("x-api-key", self.config.api_key.expose().to_owned()),
                ("anthropic-version", self.config.version.clone()),
            ],
            body,
        })
    }

    /// A whole upstream JSON body as the serialised unified response and its token usage.
    pub fn response(
        &self,
        kind: EndpointType,
        body: Value,
    ) -> Result<(Bytes, Usage), GatewayError> {
        response::response(kind, body, self.provider.as_str(), unix_now())
    }

    /// The translator for one chat stream (completions never stream here).
    pub fn stream(&self) -> AnthropicStream {
        AnthropicStream::new(self.provider.as_str(), unix_now())
    }
}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidParameter, 422, message.into())
}

/// The unified payload as MLflow dumps it (nulls dropped, extras kept), without any client
/// `model` (the handlers never let one through; the configured model is what Anthropic gets).
fn payload<T: serde::Serialize>(request: &T) -> Result<Map<String, Value>, GatewayError> {
    let mut map = request_object(request)?;
    map.shift_remove("model");
    Ok(map)
}

/// Renames keys where they stand; a renamed key that already exists keeps its first position and
/// takes the later value, as a Python dict comprehension does.
fn rename_keys(map: Map<String, Value>, renames: &[(&str, &str)]) -> Map<String, Value> {
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

fn scaled_temperature(temperature: Option<f64>) -> Option<Value> {
    temperature.map(|t| Value::from(TEMPERATURE_SCALE * t))
}

/// The Messages API body for a chat request, built in the order MLflow 3.17.2 builds it.
fn chat_body(chat: &ChatRequest, model: Option<&str>) -> Result<Map<String, Value>, GatewayError> {
    let mut body = payload(chat)?;
    body.insert("model".to_owned(), Value::from(model));
    let mut body = rename_keys(body, &[("stop", "stop_sequences")]);
    let common = &chat.common;
    if common.top_p.is_some() && common.temperature.is_some() {
        return Err(invalid(
            "Cannot set both 'temperature' and 'top_p' parameters.",
        ));
    }
    body.shift_remove("max_completion_tokens");
    // OpenAI clients (LangChain's `stream_usage`) send `stream_options`; Anthropic refuses unknown
    // keys with a 400 and always reports usage in `message_delta`, so it is dropped here where
    // MLflow forwards it.
    body.shift_remove("stream_options");
    let max_tokens = common
        .max_tokens
        .or(common.max_completion_tokens)
        .map_or(DEFAULT_MAX_TOKENS, u64::from);
    if max_tokens > MAXIMUM_MAX_TOKENS {
        return Err(invalid(format!(
            "Invalid value for max_tokens: cannot exceed {MAXIMUM_MAX_TOKENS}."
        )));
    }
    body.insert("max_tokens".to_owned(), Value::from(max_tokens));
    body.shift_remove("n");
    if common.n != 1 {
        return Err(invalid(CHAT_N_MESSAGE));
    }
    if let Some(system) = system_prompt(&chat.messages) {
        body.insert("system".to_owned(), system);
    }
    body.insert(
        "messages".to_owned(),
        Value::Array(convert_messages(&chat.messages)?),
    );
    if let Some(temperature) = scaled_temperature(common.temperature) {
        body.insert("temperature".to_owned(), temperature);
    }
    // An empty `tools` list is dropped, as MLflow's truthiness test drops it.
    body.shift_remove("tools");
    if let Some(tools) = chat.tools.as_deref().filter(|t| !t.is_empty()) {
        let tools = tools
            .iter()
            .map(|tool| match (&tool.kind, &tool.function) {
                (ToolKind::Function, Some(function)) => {
                    let mut out = Map::new();
                    out.insert("name".to_owned(), Value::from(function.name.clone()));
                    // MLflow crashes (500) without a description or parameters; Anthropic's
                    // description is optional and an argument-less tool has an empty schema.
                    if let Some(description) = &function.description {
                        out.insert("description".to_owned(), Value::from(description.clone()));
                    }
                    let schema = function.parameters.clone().unwrap_or_else(empty_schema);
                    out.insert("input_schema".to_owned(), Value::Object(schema));
                    Ok(Value::Object(out))
                }
                (kind, _) => Err(invalid(format!(
                    "Only function calling tool is supported, but received tool type {}",
                    tool_kind(*kind)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        body.insert("tools".to_owned(), Value::Array(tools));
    }
    body.shift_remove("tool_choice");
    if let Some(choice) = &chat.tool_choice {
        body.insert("tool_choice".to_owned(), tool_choice(choice));
    }
    body.shift_remove("response_format");
    if let Some(format) = &common.response_format {
        match format.kind {
            ResponseFormatKind::JsonSchema => {
                if let Some(spec) = &format.json_schema {
                    let mut schema = Value::Object(spec.schema.clone());
                    // Anthropic needs `additionalProperties: false` on every object; a free-form
                    // object cannot say that, so MLflow then skips structured output silently.
                    if enforce_strict_schema(&mut schema) {
                        let mut format = Map::new();
                        format.insert("type".to_owned(), Value::from("json_schema"));
                        format.insert("schema".to_owned(), schema);
                        let mut config = Map::new();
                        config.insert("format".to_owned(), Value::Object(format));
                        body.insert("output_config".to_owned(), Value::Object(config));
                    }
                }
            }
            ResponseFormatKind::JsonObject => {
                // A reassigned key keeps its place in a Python dict; a new one goes last.
                match body.get_mut("system") {
                    Some(Value::String(text)) if !text.is_empty() => {
                        text.push('\n');
                        text.push_str(JSON_OBJECT_INSTRUCTION);
                    }
                    Some(Value::Array(blocks)) => blocks.push(text_block(JSON_OBJECT_INSTRUCTION)),
                    _ => {
                        body.insert("system".to_owned(), Value::from(JSON_OBJECT_INSTRUCTION));
                    }
                }
            }
            ResponseFormatKind::Text => {}
        }
    }
    Ok(body)
}

fn empty_schema() -> Map<String, Value> {
    let mut schema = Map::new();
    schema.insert("type".to_owned(), Value::from("object"));
    schema.insert("properties".to_owned(), Value::Object(Map::new()));
    schema
}

fn tool_kind(kind: ToolKind) -> &'static str {
    match kind {
        ToolKind::Function => "function",
        ToolKind::UcFunction => "uc_function",
    }
}

fn tool_choice(choice: &ToolChoice) -> Value {
    let mut out = Map::new();
    match choice {
        ToolChoice::Mode(mode) => {
            let kind = match mode {
                ToolChoiceMode::None => "none",
                ToolChoiceMode::Auto => "auto",
                ToolChoiceMode::Required => "any",
            };
            out.insert("type".to_owned(), Value::from(kind));
        }
        ToolChoice::Named(named) => {
            out.insert("type".to_owned(), Value::from("tool"));
            out.insert("name".to_owned(), Value::from(named.function.name.clone()));
        }
    }
    Value::Object(out)
}

/// Sets `additionalProperties: false` on every `type: object` node; false (and the schema is not
/// used) when some object node has no `properties`.
fn enforce_strict_schema(schema: &mut Value) -> bool {
    let Value::Object(map) = schema else {
        return true;
    };
    if map.get("type").and_then(Value::as_str) == Some("object") {
        if !map.contains_key("properties") {
            return false;
        }
        map.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    map.values_mut().all(|value| match value {
        Value::Object(_) => enforce_strict_schema(value),
        Value::Array(items) => items
            .iter_mut()
            .filter(|item| item.is_object())
            .all(enforce_strict_schema),
        _ => true,
    })
}

fn text_block(text: &str) -> Value {
    let mut block = Map::new();
    block.insert("type".to_owned(), Value::from("text"));
    block.insert("text".to_owned(), Value::from(text));
    Value::Object(block)
}

/// Every system message's content, joined with `\n` (MLflow). MLflow crashes on list contents; we
/// send Anthropic's block form instead, which keeps per-block keys such as `cache_control`.
fn system_prompt(messages: &[Message]) -> Option<Value> {
    let systems: Vec<&Message> = messages.iter().filter(|m| m.role == "system").collect();
    if systems.is_empty() {
        return None;
    }
    if systems
        .iter()
        .all(|m| !matches!(m.content, Some(MessageContent::Parts(_))))
    {
        let texts: Vec<&str> = systems.iter().map(|m| m.text().unwrap_or("")).collect();
        return Some(Value::from(texts.join("\n")));
    }
    let mut blocks = Vec::new();
    for message in systems {
        match &message.content {
            Some(MessageContent::Text(text)) => blocks.push(text_block(text)),
            Some(MessageContent::Parts(parts)) => {
                blocks.extend(parts.iter().filter_map(|p| serde_json::to_value(p).ok()))
            }
            None => {}
        }
    }
    Some(Value::Array(blocks))
}

/// The chat history without system messages: user and assistant messages as they are (user image
/// parts converted, assistant tool calls as `tool_use` blocks), tool results as user messages
/// with a `tool_result` block; other roles dropped, as MLflow does.
fn convert_messages(messages: &[Message]) -> Result<Vec<Value>, GatewayError> {
    let mut out = Vec::with_capacity(messages.len());
    for message in messages {
        match message.role.as_str() {
            "user" => {
                let mut m = message_map(message)?;
                if let Some(MessageContent::Parts(parts)) = &message.content {
                    let parts = parts.iter().map(user_part).collect::<Result<_, _>>()?;
                    m.insert("content".to_owned(), Value::Array(parts));
                }
                out.push(Value::Object(m));
            }
            "assistant" => {
                let mut m = message_map(message)?;
                if let Some(calls) = message.tool_calls.as_deref().filter(|c| !c.is_empty()) {
                    let blocks = calls
                        .iter()
                        .map(|call| {
                            let mut block = Map::new();
                            block.insert("type".to_owned(), Value::from("tool_use"));
                            block.insert("id".to_owned(), Value::from(call.id.clone()));
                            block
                                .insert("name".to_owned(), Value::from(call.function.name.clone()));
                            block.insert(
                                "input".to_owned(),
                                tool_input(call.function.arguments.as_deref())?,
                            );
                            Ok(Value::Object(block))
                        })
                        .collect::<Result<Vec<_>, GatewayError>>()?;
                    m.insert("content".to_owned(), Value::Array(blocks));
                    m.shift_remove("tool_calls");
                }
                out.push(Value::Object(m));
            }
            "tool" => {
                let mut result = Map::new();
                result.insert("type".to_owned(), Value::from("tool_result"));
                if let Some(id) = &message.tool_call_id {
                    result.insert("tool_use_id".to_owned(), Value::from(id.clone()));
                }
                if let Some(content) = &message.content {
                    let content =
                        serde_json::to_value(content).map_err(|_| request_not_serialisable())?;
                    result.insert("content".to_owned(), content);
                }
                let mut m = Map::new();
                m.insert("role".to_owned(), Value::from("user"));
                m.insert(
                    "content".to_owned(),
                    Value::Array(vec![Value::Object(result)]),
                );
                out.push(Value::Object(m));
            }
            other => tracing::debug!(
                role = other,
                "skipping a message role Anthropic has no use for"
            ),
        }
    }
    Ok(out)
}

/// A message as the unified payload has it, minus `name`: Anthropic has no participant names
/// and refuses unknown message keys, and MLflow drops `name` too, so forwarding it would only
/// turn a working request into an upstream 400.
fn message_map(message: &Message) -> Result<Map<String, Value>, GatewayError> {
    let mut map = request_object(message)?;
    map.shift_remove("name");
    Ok(map)
}

/// A tool call's JSON arguments as the `tool_use` input object (MLflow: `json.loads`, and a 500
/// when they are not JSON; here a 422 that says which call).
fn tool_input(arguments: Option<&str>) -> Result<Value, GatewayError> {
    match arguments.map(str::trim) {
        None | Some("") => Ok(Value::Object(Map::new())),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            invalid(format!(
                "The arguments of an assistant tool call are not valid JSON: {e}."
            ))
        }),
    }
}

/// A user content part: base64 `data:` images become Anthropic image blocks, other image URLs a
/// text note (MLflow's rule), everything else unchanged.
fn user_part(part: &ContentPart) -> Result<Value, GatewayError> {
    if let ContentPart::ImageUrl { image_url, .. } = part {
        return Ok(match parse_base64_data_url(&image_url.url) {
            Some((media_type, data)) => {
                let mut source = Map::new();
                source.insert("type".to_owned(), Value::from("base64"));
                source.insert("media_type".to_owned(), Value::from(media_type));
                source.insert("data".to_owned(), Value::from(data));
                let mut block = Map::new();
                block.insert("type".to_owned(), Value::from("image"));
                block.insert("source".to_owned(), Value::Object(source));
                Value::Object(block)
            }
            None => text_block(&format!("[unsupported image reference: {}]", image_url.url)),
        });
    }
    serde_json::to_value(part).map_err(|_| request_not_serialisable())
}

/// `data:<mime>;base64,<data>` → `(mime, data)`; the MIME type runs to the first `;`.
fn parse_base64_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (mime, rest) = rest.split_once(';')?;
    let data = rest.strip_prefix("base64,")?;
    (!mime.is_empty()).then_some((mime, data))
}

/// The legacy Text Completions body.
fn completions_body(
    request: &CompletionsRequest,
    model: Option<&str>,
) -> Result<Map<String, Value>, GatewayError> {
    let mut body = payload(request)?;
    body.insert("model".to_owned(), Value::from(model));
    let common = &request.common;
    if common.top_p.is_some() {
        return Err(invalid("Cannot set both 'temperature' and 'top_p' parameters. Please use only the temperature parameter for your query."));
    }
    let max_tokens = common.max_tokens.map_or(DEFAULT_MAX_TOKENS, u64::from);
    if max_tokens > MAXIMUM_MAX_TOKENS {
        return Err(invalid(format!(
            "Invalid value for max_tokens: cannot exceed {MAXIMUM_MAX_TOKENS}."
        )));
    }
    body.insert("max_tokens".to_owned(), Value::from(max_tokens));
    body.shift_remove("n");
    if common.n != 1 {
        return Err(invalid(format!(
            "'n' must be '1' for the Anthropic provider. Received value: '{}'.",
            common.n
        )));
    }
    let mut body = rename_keys(
        body,
        &[
            ("max_tokens", "max_tokens_to_sample"),
            ("stop", "stop_sequences"),
        ],
    );
    body.insert(
        "prompt".to_owned(),
        Value::from(human_prompt(&request.prompt)),
    );
    if let Some(temperature) = scaled_temperature(common.temperature) {
        body.insert("temperature".to_owned(), temperature);
    }
    Ok(body)
}

/// The `\n\nHuman: ...\n\nAssistant:` framing the legacy API requires.
fn human_prompt(prompt: &str) -> String {
    let mut prompt = if prompt.starts_with("Human: ") {
        format!("\n\n{prompt}")
    } else {
        prompt.to_owned()
    };
    if !prompt.starts_with("\n\nHuman: ") {
        prompt = format!("\n\nHuman: {prompt}");
    }
    if !prompt.ends_with("\n\nAssistant:") {
        prompt.push_str("\n\nAssistant:");
    }
    prompt
}
