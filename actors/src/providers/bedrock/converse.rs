//! Chat through Bedrock's Converse API: the unified request as a Converse body, a Converse
//! response as the unified response, and ConverseStream events (already unframed into
//! [`SseEvent`]s named by their `:event-type`) as unified chunks. Pure: the time is an argument.

use serde_json::{json, Map, Value};

use crate::error::{ErrorKind, GatewayError};
use crate::framing::{AWS_EXCEPTION_EVENT_PREFIX, AWS_MALFORMED_EVENT};
use crate::messages::{StreamChunk, Usage};
use crate::schema::{
    ChatChoice, ChatChunk, ChatDelta, ChatRequest, ChatResponse, ChatUsage, ContentPart,
    FunctionCall, Message, MessageContent, ResponseMessage, ToolCall, ToolCallDelta, ToolKind,
};
use crate::sse::SseEvent;
use crate::upstream::EventOutcome;

use crate::providers::pyjson;
use crate::providers::wire_json::{response_body, unreadable};

fn invalid(detail: String) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidParameter, 422, detail)
}

/// A message's content as Converse text: a string as is, list content's text parts joined with
/// `\n` (other parts dropped), none as `""`.
fn content_text(content: Option<&MessageContent>) -> String {
    match content {
        None => String::new(),
        Some(MessageContent::Text(text)) => text.clone(),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The Converse body (the model id goes in the URL): `messages`, then `system`,
/// `inferenceConfig` and `toolConfig` when they have content. Everything else MLflow ignores
/// (`n`, `tool_choice`, `response_format`, extras) is ignored here too.
pub fn request_body(chat: &ChatRequest) -> Result<Value, GatewayError> {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    let mut index = 0;
    while index < chat.messages.len() {
        let message = &chat.messages[index];
        let content = content_text(message.content.as_ref());
        match message.role.as_str() {
            "system" => system.push(json!({ "text": content })),
            "assistant" => messages.push(json!({
                "role": "assistant",
                "content": assistant_content(message, content)?,
            })),
            "tool" => {
                // Consecutive tool results are one user turn.
                let mut results = Vec::new();
                while let Some(tool) = chat.messages.get(index).filter(|m| m.role == "tool") {
                    results.push(json!({"toolResult": {
                        "toolUseId": tool.tool_call_id.as_deref().unwrap_or_default(),
                        "content": [{"text": content_text(tool.content.as_ref())}],
                    }}));
                    index += 1;
                }
                messages.push(json!({"role": "user", "content": results}));
                continue;
            }
            // Every other role, `user` included, is a user turn.
            _ => messages.push(json!({"role": "user", "content": [{"text": content}]})),
        }
        index += 1;
    }
    let mut body = Map::new();
    body.insert("messages".to_owned(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".to_owned(), Value::Array(system));
    }
    let common = &chat.common;
    let mut inference = Map::new();
    if let Some(t) = common.temperature {
        inference.insert("temperature".to_owned(), json!(t));
    }
    if let Some(p) = common.top_p {
        inference.insert("topP".to_owned(), json!(p));
    }
    if let Some(max) = common.max_tokens.or(common.max_completion_tokens) {
        inference.insert("maxTokens".to_owned(), json!(max));
    }
    if let Some(stop) = &common.stop {
        inference.insert("stopSequences".to_owned(), json!(stop));
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".to_owned(), Value::Object(inference));
    }
    let tools: Vec<Value> = chat
        .tools
        .iter()
        .flatten()
        .filter(|tool| tool.kind == ToolKind::Function)
        .filter_map(|tool| tool.function.as_ref())
        .map(|function| {
            json!({"toolSpec": {
                "name": function.name,
                "description": function.description.as_deref().unwrap_or_default(),
                "inputSchema": {"json": function.parameters.clone().unwrap_or_default()},
            }})
        })
        .collect();
    if !tools.is_empty() {
        body.insert("toolConfig".to_owned(), json!({ "tools": tools }));
    }
    Ok(Value::Object(body))
}

/// An assistant turn: its text, then one `toolUse` block per tool call (whose JSON arguments
/// become the block's `input`).
fn assistant_content(message: &Message, content: String) -> Result<Vec<Value>, GatewayError> {
    let calls = message.tool_calls.as_deref().unwrap_or_default();
    if calls.is_empty() {
        return Ok(vec![json!({ "text": content })]);
    }
    let mut blocks = Vec::new();
    if !content.is_empty() {
        blocks.push(json!({ "text": content }));
    }
    for call in calls {
        let name = match call.function.name.as_deref() {
            Some(name) if !name.trim().is_empty() => name,
            _ => {
                return Err(invalid(format!(
                    "Invalid assistant tool call: missing function name for tool_call_id={}.",
                    call.id
                )))
            }
        };
        let input = match call.function.arguments.as_deref() {
            None => json!({}),
            Some(arguments) => serde_json::from_str::<Value>(arguments)
                .ok()
                .filter(|_| !arguments.trim().is_empty())
                .ok_or_else(|| {
                    invalid(format!(
                        "Invalid assistant tool call arguments: not valid JSON for tool_call_id={}, tool_name={name}.",
                        call.id
                    ))
                })?,
        };
        blocks.push(json!({"toolUse": {"toolUseId": call.id, "name": name, "input": input}}));
    }
    Ok(blocks)
}

/// Converse's `stopReason` as an OpenAI finish reason.
fn finish_reason(stop_reason: Option<&str>) -> String {
    match stop_reason {
        Some("tool_use") => "tool_calls",
        Some("max_tokens") => "length",
        Some("content_filtered") => "content_filter",
        _ => "stop",
    }
    .to_owned()
}

fn usage(value: &Value) -> ChatUsage {
    let count = |key: &str| value.get(key).and_then(Value::as_u64);
    ChatUsage::new(
        count("inputTokens"),
        count("outputTokens"),
        count("totalTokens"),
    )
}

/// A Converse response: text blocks joined with `\n` (null when there are none), `toolUse`
/// blocks as tool calls, no id, the configured model. Missing parts read as empty, as MLflow's
/// lookups with defaults do.
pub fn response(
    body: Value,
    model: &str,
    provider: &str,
    now: i64,
) -> Result<ChatResponse, GatewayError> {
    if !body.is_object() {
        return Err(unreadable("chat response"));
    }
    let blocks = body
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in &blocks {
        if let Some(text) = block.get("text") {
            texts.push(text.as_str().unwrap_or_default().to_owned());
        } else if let Some(tool) = block.get("toolUse") {
            let field = |key: &str| tool.get(key).and_then(Value::as_str).unwrap_or_default();
            let input = tool.get("input").cloned().unwrap_or_else(|| json!({}));
            tool_calls.push(ToolCall::function(
                field("toolUseId"),
                field("name"),
                pyjson::dumps(&input),
            ));
        }
    }
    Ok(ChatResponse {
        id: None,
        object: "chat.completion".to_owned(),
        created: now,
        model: model.to_owned(),
        choices: vec![ChatChoice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".to_owned(),
                content: (!texts.is_empty()).then(|| texts.join("\n")),
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                refusal: None,
            },
            finish_reason: Some(finish_reason(
                body.get("stopReason").and_then(Value::as_str),
            )),
        }],
        usage: body.get("usage").map(usage).unwrap_or_default(),
        provider: provider.to_owned(),
    })
}

/// HTTP status for a ConverseStream exception, per the API reference.
fn exception_status(kind: &str) -> u16 {
    match kind {
        "validationException" => 400,
        "throttlingException" => 429,
        "modelStreamErrorException" => 424,
        "serviceUnavailableException" => 503,
        "modelTimeoutException" => 408,
        _ => 500,
    }
}

/// Per-stream state for one ConverseStream: the model and provider names its chunks carry.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    provider: &'static str,
}

impl StreamTranslator {
    pub fn new(model: String, provider: &'static str) -> Self {
        Self { model, provider }
    }

    fn chunk(
        &self,
        now: i64,
        delta: ChatDelta,
        finish_reason: Option<String>,
        usage: Option<ChatUsage>,
    ) -> Result<StreamChunk, GatewayError> {
        let mut chunk = ChatChunk::delta(
            None,
            now,
            self.model.clone(),
            0,
            delta,
            finish_reason,
            self.provider,
        );
        chunk.usage = usage;
        let usage = chunk
            .usage
            .as_ref()
            .map(|u| Usage::new(u.prompt_tokens, u.completion_tokens));
        Ok(StreamChunk {
            json: response_body(&chunk)?,
            usage,
        })
    }

    /// One ConverseStream event as zero or one unified chunk.
    pub fn event(&mut self, event: &SseEvent, now: i64) -> Result<EventOutcome, GatewayError> {
        let name = event.event.as_deref().unwrap_or_default();
        if name == AWS_MALFORMED_EVENT {
            return Err(GatewayError::new(
                ErrorKind::UpstreamProtocol,
                502,
                format!("The provider's event stream is malformed: {}.", event.data),
            ));
        }
        if let Some(kind) = name.strip_prefix(AWS_EXCEPTION_EVENT_PREFIX) {
            let message = serde_json::from_str::<Value>(&event.data)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| event.data.clone());
            return Err(GatewayError::new(
                ErrorKind::UpstreamStatus,
                exception_status(kind),
                format!("Amazon Bedrock returned {kind} while streaming: {message}"),
            ));
        }
        let body: Value =
            serde_json::from_str(&event.data).map_err(|_| unreadable("stream event"))?;
        let index = || {
            body.get("contentBlockIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32
        };
        match name {
            "contentBlockStart" => match body.pointer("/start/toolUse") {
                Some(tool) => {
                    let field =
                        |key: &str| tool.get(key).and_then(Value::as_str).map(str::to_owned);
                    let call = ToolCallDelta {
                        index: index(),
                        id: field("toolUseId"),
                        kind: Some("function".to_owned()),
                        function: FunctionCall {
                            name: field("name"),
                            arguments: Some(String::new()),
                        },
                        thought_signature: None,
                    };
                    let delta = ChatDelta {
                        tool_calls: Some(vec![call]),
                        ..ChatDelta::default()
                    };
                    self.chunk(now, delta, None, None).map(EventOutcome::Chunk)
                }
                None => Ok(EventOutcome::Skip),
            },
            "contentBlockDelta" => {
                let delta = body.get("delta").cloned().unwrap_or_default();
                if let Some(text) = delta
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    let delta = ChatDelta {
                        content: Some(text.to_owned()),
                        ..ChatDelta::default()
                    };
                    return self.chunk(now, delta, None, None).map(EventOutcome::Chunk);
                }
                let Some(tool) = delta.get("toolUse") else {
                    return Ok(EventOutcome::Skip);
                };
                let arguments = match tool.get("input") {
                    Some(Value::String(partial)) => partial.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => pyjson::dumps(other),
                };
                let call = ToolCallDelta {
                    index: index(),
                    id: None,
                    kind: None,
                    function: FunctionCall {
                        name: None,
                        arguments: Some(arguments),
                    },
                    thought_signature: None,
                };
                let delta = ChatDelta {
                    tool_calls: Some(vec![call]),
                    ..ChatDelta::default()
                };
                self.chunk(now, delta, None, None).map(EventOutcome::Chunk)
            }
            "messageStop" => {
                let reason = finish_reason(body.get("stopReason").and_then(Value::as_str));
                self.chunk(now, ChatDelta::default(), Some(reason), None)
                    .map(EventOutcome::Chunk)
            }
            // The last event of every ConverseStream: it completes the stream, so a body that
            // ends before it was cut.
            "metadata" => match body.get("usage") {
                Some(u) if u.as_object().is_some_and(|m| !m.is_empty()) => self
                    .chunk(now, ChatDelta::default(), None, Some(usage(u)))
                    .map(EventOutcome::Final),
                _ => Ok(EventOutcome::Done),
            },
            // messageStart, contentBlockStop and anything newer.
            _ => Ok(EventOutcome::Skip),
        }
    }
}
