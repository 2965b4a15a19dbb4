//! Gemini `generateContent` responses, `streamGenerateContent` events and embeddings responses as
//! unified responses and chunks, following MLflow 3.17.2: one choice per usable candidate, tool
//! calls from `functionCall` parts (ids made up as MLflow does when Gemini sends none), finish
//! reasons lowercased (`MAX_TOKENS` → `length`, `stop` → `tool_calls` after calls), and
//! `usageMetadata` as usage with its extra keys kept. Pure code: the caller passes the clock.
//!
//! MLflow reads these bodies with lenient dict lookups, so this does too (`serde_json::Value`
//! navigation instead of strict structs): an absent field means "nothing there", not a failure.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::GatewayError;
use crate::messages::Usage;
use crate::providers::pyjson::dumps;
use crate::providers::wire_json::unreadable;
use crate::schema::{
    ChatChoice, ChatChunk, ChatChunkChoice, ChatDelta, ChatResponse, ChatUsage, CompletionsChoice,
    CompletionsChunk, CompletionsChunkChoice, CompletionsResponse, CompletionsUsage, Embedding,
    EmbeddingObject, EmbeddingsResponse, EmbeddingsUsage, FunctionCall, PromptTokensDetails,
    ResponseMessage, ToolCall, ToolCallDelta,
};

const USAGE_KEYS: [&str; 4] = [
    "promptTokenCount",
    "candidatesTokenCount",
    "totalTokenCount",
    "cachedContentTokenCount",
];

/// MLflow's finish-reason rule: `MAX_TOKENS` → `length`, anything else lowercased; null and ""
/// stay as they are.
fn normalize_finish(reason: Option<&Value>) -> Option<String> {
    match reason?.as_str()? {
        "MAX_TOKENS" => Some("length".to_owned()),
        other => Some(other.to_lowercase()),
    }
}

fn candidates(body: &Value) -> &[Value] {
    body.get("candidates")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn parts(candidate: &Value) -> &[Value] {
    candidate
        .get("content")
        .and_then(|content| content.get("parts"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A `functionCall` part counts when it is a non-empty object (Python truthiness).
fn function_call(part: &Value) -> Option<&Map<String, Value>> {
    part.get("functionCall")
        .and_then(Value::as_object)
        .filter(|call| !call.is_empty())
}

fn first_text(parts: &[Value]) -> Option<&str> {
    parts.first()?.get("text")?.as_str()
}

/// One Gemini function call as MLflow reports it.
struct Call {
    id: String,
    name: String,
    arguments: String,
    signature: Option<String>,
}

/// The text parts joined (None when empty) and every function call, in part order.
fn function_calls(parts: &[Value]) -> Result<(Option<String>, Vec<Call>), GatewayError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in parts {
        if let Some(piece) = part.get("text").and_then(Value::as_str) {
            text.push_str(piece);
        }
        let Some(call) = function_call(part) else {
            continue;
        };
        let name = call
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| unreadable("function call"))?;
        // Gemini omits `args` for a call without arguments.
        let arguments = dumps(call.get("args").unwrap_or(&Value::Object(Map::new())));
        let id = match call.get("id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => format!("call_{}", md5_hex(format!("{name}/{arguments}").as_bytes())),
        };
        // Gemini 3 puts the signature next to the call; older responses nested it inside.
        let signature = [
            part.get("thoughtSignature"),
            part.get("thought_signature"),
            call.get("thoughtSignature"),
            call.get("thought_signature"),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|s| !s.is_empty())
        .map(str::to_owned);
        calls.push(Call {
            id,
            name: name.to_owned(),
            arguments,
            signature,
        });
    }
    Ok(((!text.is_empty()).then_some(text), calls))
}

/// `usageMetadata` as chat usage: the three counters, `cachedContentTokenCount` as
/// `prompt_tokens_details.cached_tokens`, every other key kept as an extra usage key.
pub(super) fn chat_usage(metadata: &Map<String, Value>) -> ChatUsage {
    let count = |key: &str| metadata.get(key).and_then(Value::as_u64);
    let extra = metadata
        .iter()
        .filter(|(key, _)| !USAGE_KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    ChatUsage {
        prompt_tokens: count("promptTokenCount"),
        completion_tokens: count("candidatesTokenCount"),
        total_tokens: count("totalTokenCount"),
        prompt_tokens_details: metadata.contains_key("cachedContentTokenCount").then(|| {
            PromptTokensDetails {
                cached_tokens: count("cachedContentTokenCount"),
                extra: Map::new(),
            }
        }),
        extra,
    }
}

fn usage_metadata(body: &Value) -> Option<&Map<String, Value>> {
    body.get("usageMetadata").and_then(Value::as_object)
}

/// Token counts for metrics and logs, from `usageMetadata` when present.
pub(super) fn token_usage(body: &Value) -> Option<Usage> {
    let metadata = usage_metadata(body).filter(|m| !m.is_empty())?;
    Some(Usage::new(
        metadata.get("promptTokenCount").and_then(Value::as_u64),
        metadata.get("candidatesTokenCount").and_then(Value::as_u64),
    ))
}

/// A `generateContent` response as a chat response. Choice indexes are candidate positions, so a
/// skipped candidate (no usable parts) leaves a gap, as in MLflow.
pub(super) fn chat_response(
    body: &Value,
    model: &str,
    provider: &str,
    now: i64,
) -> Result<ChatResponse, GatewayError> {
    let mut choices = Vec::new();
    for (index, candidate) in (0u32..).zip(candidates(body)) {
        let finish = match candidate.get("finishReason") {
            None => Some("stop".to_owned()),
            reason => normalize_finish(reason),
        };
        let parts = parts(candidate);
        if parts.is_empty() {
            continue;
        }
        let message = if parts.iter().any(|p| function_call(p).is_some()) {
            let (content, calls) = function_calls(parts)?;
            let tool_calls = calls
                .into_iter()
                .map(|call| ToolCall {
                    id: call.id,
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: Some(call.name),
                        arguments: Some(call.arguments),
                    },
                    thought_signature: call.signature,
                })
                .collect();
            let finish = match finish.as_deref() {
                Some("stop") => Some("tool_calls".to_owned()),
                _ => finish,
            };
            (content, Some(tool_calls), finish)
        } else {
            match first_text(parts).filter(|text| !text.is_empty()) {
                // Later text parts are ignored, as in MLflow.
                Some(text) => (Some(text.to_owned()), None, finish),
                None => continue,
            }
        };
        let (content, tool_calls, finish_reason) = message;
        choices.push(ChatChoice {
            index,
            message: ResponseMessage {
                role: "assistant".to_owned(),
                content,
                tool_calls,
                refusal: None,
            },
            finish_reason,
        });
    }
    Ok(ChatResponse {
        id: Some(format!("gemini-chat-{now}")),
        object: "chat.completion".to_owned(),
        created: now,
        model: model.to_owned(),
        choices,
        usage: chat_usage(usage_metadata(body).unwrap_or(&Map::new())),
        provider: provider.to_owned(),
    })
}

/// A `generateContent` response as a completions response: candidates whose first part has text.
pub(super) fn completions_response(body: &Value, model: &str, now: i64) -> CompletionsResponse {
    let choices = (0u32..)
        .zip(candidates(body))
        .filter_map(|(index, candidate)| {
            let text = first_text(parts(candidate)).filter(|text| !text.is_empty())?;
            let finish_reason = match candidate.get("finishReason") {
                None => Some("stop".to_owned()),
                reason => normalize_finish(reason),
            };
            Some(CompletionsChoice {
                index,
                text: text.to_owned(),
                finish_reason,
            })
        })
        .collect();
    let empty = Map::new();
    let metadata = usage_metadata(body).unwrap_or(&empty);
    let count = |key: &str| metadata.get(key).and_then(Value::as_u64);
    CompletionsResponse {
        id: None,
        object: "text_completion".to_owned(),
        created: now,
        model: model.to_owned(),
        choices,
        usage: CompletionsUsage {
            prompt_tokens: count("promptTokenCount"),
            completion_tokens: count("candidatesTokenCount"),
            total_tokens: count("totalTokenCount"),
        },
    }
}

/// `embedContent` (`embedding.values`) or `batchEmbedContents` (`embeddings[].values`).
pub(super) fn embeddings_response(
    body: &Value,
    model: &str,
) -> Result<EmbeddingsResponse, GatewayError> {
    let items: Vec<&Value> = match body.get("embeddings").and_then(Value::as_array) {
        Some(items) if !items.is_empty() => items.iter().collect(),
        _ => vec![body.get("embedding").unwrap_or(&Value::Null)],
    };
    let data = (0u32..)
        .zip(items)
        .map(|(index, item)| {
            let values = match item.get("values") {
                None | Some(Value::Null) => Vec::new(),
                Some(values) => serde_json::from_value::<Vec<f64>>(values.clone())
                    .map_err(|_| unreadable("embeddings response"))?,
            };
            Ok(EmbeddingObject {
                object: "embedding".to_owned(),
                embedding: Embedding::Floats(values),
                index,
            })
        })
        .collect::<Result<Vec<_>, GatewayError>>()?;
    Ok(EmbeddingsResponse {
        object: "list".to_owned(),
        data,
        model: model.to_owned(),
        usage: EmbeddingsUsage::default(),
    })
}

/// One `streamGenerateContent` event as a chat chunk. `seen_calls` counts, per candidate index,
/// the tool calls earlier events carried: new calls are numbered after them, and a final `stop`
/// after calls becomes `tool_calls`. The caller updates it with [`count_calls`] afterwards.
pub(super) fn chat_chunk(
    body: &Value,
    model: &str,
    provider: &str,
    now: i64,
    seen_calls: &HashMap<u32, u32>,
) -> Result<ChatChunk, GatewayError> {
    let mut choices = Vec::new();
    for (position, candidate) in (0u32..).zip(candidates(body)) {
        // A chunk may carry only some candidates, so the API's index wins over the position.
        let index = candidate_index(candidate, position);
        let parts = parts(candidate);
        let mut finish = normalize_finish(candidate.get("finishReason"));
        let earlier = seen_calls.get(&index).copied().unwrap_or(0);
        if parts.iter().any(|p| function_call(p).is_some()) {
            // Gemini streams each call whole, so each becomes one complete tool-call delta.
            let (content, calls) = function_calls(parts)?;
            let deltas = (earlier..)
                .zip(calls)
                .map(|(call_index, call)| ToolCallDelta {
                    index: call_index,
                    id: Some(call.id),
                    kind: Some("function".to_owned()),
                    function: FunctionCall {
                        name: Some(call.name),
                        arguments: Some(call.arguments),
                    },
                    thought_signature: call.signature,
                })
                .collect();
            if finish.as_deref() == Some("stop") {
                finish = Some("tool_calls".to_owned());
            }
            choices.push(ChatChunkChoice {
                index,
                finish_reason: finish,
                delta: ChatDelta {
                    role: Some("assistant".to_owned()),
                    content,
                    tool_calls: Some(deltas),
                },
            });
            continue;
        }
        // Gemini ends a tool-call stream with a STOP event that has no call in it.
        if finish.as_deref() == Some("stop") && earlier > 0 {
            finish = Some("tool_calls".to_owned());
        }
        choices.push(ChatChunkChoice {
            index,
            finish_reason: finish,
            delta: ChatDelta {
                role: Some("assistant".to_owned()),
                content: Some(first_text(parts).unwrap_or_default().to_owned()),
                tool_calls: None,
            },
        });
    }
    Ok(ChatChunk {
        id: Some(format!("gemini-chat-stream-{now}")),
        object: "chat.completion.chunk".to_owned(),
        created: now,
        model: model.to_owned(),
        choices,
        usage: usage_metadata(body)
            .filter(|m| !m.is_empty())
            .map(chat_usage),
        provider: provider.to_owned(),
    })
}

fn candidate_index(candidate: &Value, position: u32) -> u32 {
    candidate
        .get("index")
        .and_then(Value::as_u64)
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(position)
}

/// Notes, per candidate index, whether this event carried the candidate's finish reason (a
/// candidate stays finished once it has).
pub(super) fn note_finishes(body: &Value, finished: &mut HashMap<u32, bool>) {
    for (position, candidate) in (0u32..).zip(candidates(body)) {
        let done = candidate
            .get("finishReason")
            .and_then(Value::as_str)
            .is_some_and(|reason| !reason.is_empty() && reason != "FINISH_REASON_UNSPECIFIED");
        *finished
            .entry(candidate_index(candidate, position))
            .or_insert(false) |= done;
    }
}

/// Gemini's answer to a blocked prompt: `promptFeedback.blockReason` and no candidates.
pub(super) fn prompt_blocked(body: &Value) -> bool {
    body.get("promptFeedback")
        .and_then(|feedback| feedback.get("blockReason"))
        .is_some_and(|reason| !reason.is_null())
}

/// Adds this event's function calls to the per-candidate counts.
pub(super) fn count_calls(body: &Value, seen_calls: &mut HashMap<u32, u32>) {
    for (position, candidate) in (0u32..).zip(candidates(body)) {
        let index = candidate_index(candidate, position);
        let calls = parts(candidate)
            .iter()
            .filter(|p| function_call(p).is_some())
            .count();
        *seen_calls.entry(index).or_insert(0) += calls as u32;
    }
}

/// One `streamGenerateContent` event as a completions chunk (`object` is MLflow's
/// `text_completion.chunk`; usage is not reported in completions chunks).
pub(super) fn completions_chunk(body: &Value, model: &str, now: i64) -> CompletionsChunk {
    let choices = (0u32..)
        .zip(candidates(body))
        .map(|(index, candidate)| CompletionsChunkChoice {
            index,
            finish_reason: normalize_finish(candidate.get("finishReason")),
            text: Some(first_text(parts(candidate)).unwrap_or_default().to_owned()),
        })
        .collect();
    CompletionsChunk {
        id: Some(format!("gemini-completions-stream-{now}")),
        object: "text_completion.chunk".to_owned(),
        created: now,
        model: model.to_owned(),
        choices,
        usage: None,
    }
}

/// MD5 of `data` as lowercase hex (Python's `hashlib.md5(data).hexdigest()`). Used only to name
/// tool calls the way MLflow does, never for security.
pub(super) fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod md5_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn md5_matches_rfc_1321_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5_hex(b"The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }

    #[test]
    fn the_id_mlflow_derives_for_a_call_without_one() {
        let args = dumps(&json!({"location": "Singapore"}));
        assert_eq!(
            md5_hex(format!("get_weather/{args}").as_bytes()),
            "c8800a29b7c6d0e92541b3fa793048ab"
        );
    }
}
