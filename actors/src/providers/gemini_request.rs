//! Unified chat, completions and embeddings requests as Gemini `generateContent` /
//! `embedContent` / `batchEmbedContents` bodies, following MLflow 3.17.2's translation: roles
//! (`assistant` → `model`, `system` → `system_instruction`, `tool` → a user turn of
//! `functionResponse` parts), the `generationConfig` renames and their 422s, structured output,
//! tools and `tool_choice`. Pure code.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::{ErrorKind, GatewayError};
use crate::providers::wire_json::{request_not_serialisable, request_object};
use crate::schema::{
    ChatRequest, CompletionsRequest, ContentPart, EmbeddingsInput, Message, MessageContent,
    ResponseFormat, ResponseFormatKind, Tool, ToolChoice, ToolChoiceMode, ToolKind,
};

/// Unified names and their `generationConfig` names, in the order MLflow checks them.
const RENAMES: [(&str, &str); 7] = [
    ("stop", "stopSequences"),
    ("n", "candidateCount"),
    ("max_tokens", "maxOutputTokens"),
    ("top_k", "topK"),
    ("top_p", "topP"),
    ("frequency_penalty", "frequencyPenalty"),
    ("presence_penalty", "presencePenalty"),
];

/// The only keys that reach `generationConfig`; everything else in the unified payload (`stream`,
/// `stream_options`, extra keys) is dropped, as MLflow does.
const GENERATION_KEYS: [&str; 8] = [
    "temperature",
    "stopSequences",
    "candidateCount",
    "maxOutputTokens",
    "topK",
    "topP",
    "frequencyPenalty",
    "presencePenalty",
];

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidParameter, 422, message.into())
}

fn to_map<T: Serialize>(value: &T) -> Result<Map<String, Value>, GatewayError> {
    request_object(value)
}

/// The `generateContent` body for a chat request.
pub(super) fn chat_body(request: &ChatRequest) -> Result<Map<String, Value>, GatewayError> {
    let payload = to_map(request)?;
    build_body(
        &payload,
        &request.messages,
        request.common.response_format.as_ref(),
        request.tools.as_deref(),
        request.tool_choice.as_ref(),
    )
}

/// The `generateContent` body for a completions request: the prompt becomes one user message,
/// after a system message made from an extra `system_prompt` key when there is one.
pub(super) fn completions_body(
    request: &CompletionsRequest,
) -> Result<Map<String, Value>, GatewayError> {
    let payload = to_map(request)?;
    let text_message = |role: &str, text: &str| Message {
        role: role.to_owned(),
        content: Some(MessageContent::Text(text.to_owned())),
        tool_calls: None,
        refusal: None,
        tool_call_id: None,
        extra: Map::new(),
    };
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = request.extra.get_str("system_prompt") {
        if !system.is_empty() {
            messages.push(text_message("system", &system));
        }
    }
    messages.push(text_message("user", &request.prompt));
    build_body(
        &payload,
        &messages,
        request.common.response_format.as_ref(),
        None,
        None,
    )
}

fn build_body(
    payload: &Map<String, Value>,
    messages: &[Message],
    response_format: Option<&ResponseFormat>,
    tools: Option<&[Tool]>,
    tool_choice: Option<&ToolChoice>,
) -> Result<Map<String, Value>, GatewayError> {
    let mut generation = generation_config(payload)?;
    let (contents, system) = convert_messages(messages)?;
    let mut body = Map::new();
    body.insert("contents".to_owned(), Value::Array(contents));
    if let Some(parts) = system {
        body.insert("system_instruction".to_owned(), json!({ "parts": parts }));
    }
    if let Some(format) = response_format {
        match (format.kind, &format.json_schema) {
            (ResponseFormatKind::JsonSchema, Some(spec)) => {
                generation.insert(
                    "responseJsonSchema".to_owned(),
                    Value::Object(spec.schema.clone()),
                );
                generation.insert("responseMimeType".to_owned(), json!("application/json"));
            }
            (ResponseFormatKind::JsonObject, _) => {
                generation.insert("responseMimeType".to_owned(), json!("application/json"));
            }
            _ => {}
        }
    }
    if !generation.is_empty() {
        body.insert("generationConfig".to_owned(), Value::Object(generation));
    }
    // An empty tool list is treated as no tools, and `tool_choice` only counts with tools.
    if let Some(tools) = tools.filter(|tools| !tools.is_empty()) {
        body.insert("tools".to_owned(), function_declarations(tools)?);
        let config = match tool_choice {
            Some(ToolChoice::Mode(ToolChoiceMode::None)) => Some(json!({"mode": "NONE"})),
            Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Some(json!({"mode": "ANY"})),
            Some(ToolChoice::Named(named)) => {
                Some(json!({"mode": "ANY", "allowedFunctionNames": [named.function.name.clone()]}))
            }
            Some(ToolChoice::Mode(ToolChoiceMode::Auto)) | None => None,
        };
        if let Some(config) = config {
            body.insert(
                "toolConfig".to_owned(),
                json!({ "functionCallingConfig": config }),
            );
        }
    }
    Ok(body)
}

/// `generationConfig` from the unified payload: Gemini's own names are refused (MLflow's 422),
/// `max_completion_tokens` stands in for an absent `max_tokens`, the renames are applied in
/// place, and only generation keys are kept, in payload order.
fn generation_config(payload: &Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
    for (unified, gemini) in RENAMES {
        if payload.contains_key(gemini) {
            return Err(invalid(format!(
                "Invalid parameter {gemini}. Use {unified} instead."
            )));
        }
    }
    let mut entries: Vec<(&str, &Value)> = payload.iter().map(|(k, v)| (k.as_str(), v)).collect();
    if !payload.contains_key("max_tokens") {
        // MLflow pops `max_completion_tokens` and sets `max_tokens` as a new, last key.
        if let Some(position) = entries
            .iter()
            .position(|(k, _)| *k == "max_completion_tokens")
        {
            let (_, value) = entries.remove(position);
            entries.push(("max_tokens", value));
        }
    }
    let mut config = Map::new();
    for (key, value) in entries {
        let key = RENAMES
            .iter()
            .find(|(unified, _)| *unified == key)
            .map_or(key, |(_, gemini)| gemini);
        if GENERATION_KEYS.contains(&key) {
            config.insert(key.to_owned(), value.clone());
        }
    }
    Ok(config)
}

/// `contents` and the `system_instruction` parts (None when there was no system message).
fn convert_messages(
    messages: &[Message],
) -> Result<(Vec<Value>, Option<Vec<Value>>), GatewayError> {
    let mut contents: Vec<Value> = Vec::new();
    let mut system: Option<Vec<Value>> = None;
    // Gemini's functionResponse needs the function name, which tool messages do not carry.
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut signatures: HashMap<&str, &str> = HashMap::new();
    for message in messages {
        match message.role.as_str() {
            "user" | "assistant" => {
                let role = if message.role == "assistant" {
                    "model"
                } else {
                    "user"
                };
                let calls = match (role, &message.tool_calls) {
                    ("model", Some(calls)) if !calls.is_empty() => calls.as_slice(),
                    _ => &[],
                };
                if calls.is_empty() {
                    let parts = match &message.content {
                        Some(content) => content_parts(content),
                        None => {
                            return Err(invalid(format!(
                                "Invalid message: a '{}' message without tool calls needs content.",
                                message.role
                            )))
                        }
                    };
                    contents.push(json!({"role": role, "parts": parts}));
                    continue;
                }
                // A model turn with tool calls carries only the calls; its text is dropped.
                let mut parts = Vec::with_capacity(calls.len());
                for call in calls {
                    let name = call.function.name.as_deref().unwrap_or_default();
                    names.insert(&call.id, name);
                    if let Some(signature) = &call.thought_signature {
                        signatures.insert(&call.id, signature);
                    }
                    let args = match call.function.arguments.as_deref() {
                        None => json!({}),
                        Some(arguments) => {
                            serde_json::from_str::<Value>(arguments).map_err(|_| {
                                invalid(format!(
                                    "Invalid tool call '{}': its arguments are not valid JSON.",
                                    call.id
                                ))
                            })?
                        }
                    };
                    let mut part = Map::new();
                    part.insert(
                        "functionCall".to_owned(),
                        json!({"id": call.id, "name": name, "args": args}),
                    );
                    if let Some(signature) = signatures.get(call.id.as_str()) {
                        part.insert("thoughtSignature".to_owned(), json!(signature));
                    }
                    parts.push(Value::Object(part));
                }
                contents.push(json!({"role": "model", "parts": parts}));
            }
            "system" => {
                let parts = system.get_or_insert_with(Vec::new);
                match &message.content {
                    Some(MessageContent::Text(text)) => parts.push(json!({ "text": text })),
                    Some(content) => parts.extend(content_parts(content)),
                    None => {}
                }
            }
            "tool" => {
                let call_id = message.tool_call_id.as_deref();
                let Some(name) = call_id.and_then(|id| names.get(id)) else {
                    return Err(invalid(format!(
                        "Invalid tool message: tool_call_id={} does not match any tool call in a preceding assistant message.",
                        call_id.unwrap_or("None")
                    )));
                };
                let part = json!({"functionResponse": {
                    "id": call_id,
                    "name": name,
                    "response": tool_result(message.content.as_ref()),
                }});
                // OpenAI sends one tool message per call; Gemini wants all responses to a model
                // turn in one user turn, so consecutive tool messages are merged.
                if let Some(parts) = contents.last_mut().and_then(function_response_turn) {
                    parts.push(part);
                } else {
                    contents.push(json!({"role": "user", "parts": [part]}));
                }
            }
            // MLflow drops any other role.
            _ => {}
        }
    }
    Ok((contents, system))
}

/// The parts of `turn` when it is a user turn made only of `functionResponse` parts.
fn function_response_turn(turn: &mut Value) -> Option<&mut Vec<Value>> {
    if turn.get("role").and_then(Value::as_str) != Some("user") {
        return None;
    }
    let parts = turn.get_mut("parts")?.as_array_mut()?;
    let all_responses = !parts.is_empty()
        && parts
            .iter()
            .all(|part| part.get("functionResponse").is_some());
    all_responses.then_some(parts)
}

/// Gemini wants an object: a JSON object in the tool's content is used as is, anything else is
/// wrapped as `{"result": ...}`.
fn tool_result(content: Option<&MessageContent>) -> Value {
    match content {
        Some(MessageContent::Text(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => Value::Object(object),
            Ok(other) => json!({ "result": other }),
            Err(_) => json!({ "result": text }),
        },
        Some(MessageContent::Parts(parts)) => {
            json!({ "result": serde_json::to_value(parts).unwrap_or(Value::Null) })
        }
        None => json!({ "result": null }),
    }
}

/// Message content as Gemini parts: text → `{"text"}`, a base64 data-URL image → `inlineData`,
/// any other image → a text note, every other part as the client sent it.
fn content_parts(content: &MessageContent) -> Vec<Value> {
    let parts = match content {
        MessageContent::Text(text) => return vec![json!({ "text": text })],
        MessageContent::Parts(parts) => parts,
    };
    parts
        .iter()
        .map(|part| match part {
            ContentPart::Text { text, .. } => json!({ "text": text }),
            ContentPart::ImageUrl { image_url, .. } => match base64_data_url(&image_url.url) {
                Some((mime, data)) => json!({"inlineData": {"mimeType": mime, "data": data}}),
                None => {
                    json!({ "text": format!("[unsupported image reference: {}]", image_url.url) })
                }
            },
            other => serde_json::to_value(other).unwrap_or(Value::Null),
        })
        .collect()
}

/// `data:<mime>;base64,<data>` → (mime, data); None for anything else (e.g. an https URL).
fn base64_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (mime, after) = rest.split_once(';')?;
    let data = after.strip_prefix("base64,")?;
    (!mime.is_empty()).then_some((mime, data))
}

fn function_declarations(tools: &[Tool]) -> Result<Value, GatewayError> {
    let mut declarations = Vec::with_capacity(tools.len());
    for tool in tools {
        let function =
            match (tool.kind, &tool.function) {
                (ToolKind::Function, Some(function)) => function,
                (ToolKind::Function, None) => {
                    return Err(invalid(
                        "Invalid tool: a function tool needs a 'function' object.",
                    ))
                }
                (ToolKind::UcFunction, _) => return Err(invalid(
                    "Only function calling tool is supported, but received tool type uc_function",
                )),
            };
        // MLflow fails (500) on a tool without description or parameters; Gemini accepts both
        // missing, so they are simply left out.
        let mut declaration = Map::new();
        declaration.insert("name".to_owned(), json!(function.name));
        if let Some(description) = &function.description {
            declaration.insert("description".to_owned(), json!(description));
        }
        if let Some(parameters) = &function.parameters {
            declaration.insert(
                "parametersJsonSchema".to_owned(),
                Value::Object(parameters.clone()),
            );
        }
        declarations.push(Value::Object(declaration));
    }
    Ok(json!([{ "functionDeclarations": declarations }]))
}

/// The embeddings body and whether it is a batch (`batchEmbedContents`) rather than a single
/// `embedContent` call.
pub(super) fn embeddings_body(
    input: &EmbeddingsInput,
    model: &str,
) -> Result<(Map<String, Value>, bool), GatewayError> {
    let texts: Vec<&str> = match input {
        EmbeddingsInput::Text(text) => vec![text.as_str()],
        EmbeddingsInput::Texts(texts) => texts.iter().map(String::as_str).collect(),
        EmbeddingsInput::Tokens(tokens) if tokens.is_empty() => Vec::new(),
        EmbeddingsInput::TokenBatches(batches) if batches.is_empty() => Vec::new(),
        // MLflow would send the numbers as texts, which Gemini rejects; say so before sending.
        EmbeddingsInput::Tokens(_) | EmbeddingsInput::TokenBatches(_) => {
            return Err(invalid(
                "Gemini embeddings take text input; token ids are not supported.",
            ))
        }
    };
    let body = if let [text] = texts.as_slice() {
        json!({"content": {"parts": [{"text": text}]}})
    } else {
        let requests: Vec<Value> = texts
            .iter()
            .map(|text| json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}}))
            .collect();
        json!({ "requests": requests })
    };
    let batch = texts.len() != 1;
    match body {
        Value::Object(map) => Ok((map, batch)),
        _ => Err(request_not_serialisable()),
    }
}
