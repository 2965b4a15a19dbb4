//! Validation of a parsed body into a [`UnifiedRequest`], with MLflow's (pydantic v2's) error list:
//! the entry point, the field helpers, and the top-level request models. Chat messages and tools
//! live in `validate_chat`.
//!
//! Fields are checked in the order of MLflow's models and every error is collected, so the 422
//! `detail` lists the same items in the same order as MLflow. Union fields report each
//! alternative the way pydantic does (embeddings `input` lists all four).

use serde_json::{json, Map, Value};

use super::body::{not_an_object, too_many_nodes, unprocessable, BodyObject};
use super::lax::{self, Errors, Issue, Loc};
use super::raw_extras::{RawExtras, RawText};
use super::request::{
    ChatRequest, CommonParams, CompletionsRequest, EmbeddingsInput, EmbeddingsRequest,
    JsonSchemaSpec, ResponseFormat, ResponseFormatKind, UnifiedRequest,
};
use super::validate_chat::{message, tool, tool_choice};
use crate::config::EndpointType;
use crate::error::GatewayError;

/// Our ceiling for the integer parameters (`n`, `max_tokens`, `max_completion_tokens`,
/// `top_k`). pydantic has none; beyond this a value can only be a mistake or an attack.
const MAX_INT_PARAM: i128 = u32::MAX as i128;

impl UnifiedRequest {
    /// Validates a parsed body for an endpoint of type `kind`. On failure the error is a 422 whose
    /// `detail` is the pydantic-style list MLflow would return.
    pub fn validate(kind: EndpointType, body: Value) -> Result<UnifiedRequest, GatewayError> {
        let Value::Object(obj) = body else {
            return Err(not_an_object(body));
        };
        Self::from_body(kind, BodyObject::from_map(obj)?)
    }

    /// Validates a body read by [`parse_request_body`](super::parse_request_body): only the
    /// members the endpoint type knows are built into a tree (all of them counted against the
    /// body's node limit before any is built); unknown ones stay text in `extra`.
    pub fn from_body(kind: EndpointType, body: BodyObject) -> Result<UnifiedRequest, GatewayError> {
        let BodyObject {
            members,
            max_nodes,
            body_len,
        } = body;
        // Where each member went, in the client's order, to rebuild the whole body for an error
        // that echoes it; extras that were changed (nulls) keep their original text here.
        let mut layout = Vec::with_capacity(members.len());
        // Embeddings `input` in one of its exact shapes is read straight into its type: a token
        // array of OpenAI's size (300k ids) would otherwise be 300k tree nodes.
        let mut direct_input = None;
        let mut obj = Map::new();
        let mut plain_extras = Vec::new();
        let mut texts = Vec::new();
        // The object itself is one node; `all` also counts what stays text.
        let mut built = 1usize;
        let mut all = 1usize;
        for member in members {
            all = all.saturating_add(member.counts.nodes);
            if is_known_key(kind, &member.key) {
                if kind == EndpointType::Embeddings {
                    if let Some(input) = exact_embeddings_input(member.raw.get()) {
                        direct_input = Some(input);
                        continue;
                    }
                }
                built = built.saturating_add(member.counts.nodes);
                layout.push(Slot::Known(member.key.clone()));
                obj.insert(member.key, Value::Null);
                plain_extras.push(None);
                texts.push(Some(member.raw));
            } else if member.counts.nulls == 0 {
                layout.push(Slot::Extra(member.key.clone()));
                plain_extras.push(Some((member.key, member.raw, member.counts.nodes)));
                texts.push(None);
            } else {
                // A null extra is dropped and one with nulls inside is built to drop them, as
                // MLflow's encoder does.
                if member.raw.get() != "null" {
                    built = built.saturating_add(member.counts.nodes);
                }
                layout.push(Slot::Original(member.key.clone()));
                plain_extras.push(None);
                texts.push(Some(member.raw));
            }
        }
        if built > max_nodes {
            return Err(too_many_nodes(max_nodes));
        }
        // Build the known members and the cleaned extras, now that they are known to fit.
        let mut extra = RawExtras::with_room(max_nodes, max_nodes - built, body_len);
        for ((slot, plain), original) in layout.iter().zip(plain_extras).zip(&texts) {
            match (slot, plain, original) {
                (Slot::Known(key), _, Some(raw)) => {
                    obj.insert(key.clone(), parse_checked(raw.get())?);
                }
                (Slot::Extra(_), Some((key, raw, nodes)), _) => extra.push(key, raw, nodes),
                (Slot::Original(key), _, Some(raw)) if raw.get() != "null" => {
                    let stripped = lax::strip_nulls(&parse_checked(raw.get())?);
                    let nodes = scan_nodes(&stripped);
                    let raw = serde_json::value::to_raw_value(&stripped).map_err(|_| {
                        GatewayError::internal("a request value could not be serialised")
                    })?;
                    extra.push(key.clone(), RawText::Owned(raw), nodes);
                }
                _ => {}
            }
        }
        // Known members' text is no longer needed; changed extras' originals are kept for errors.
        let originals: Vec<Option<RawText>> = layout
            .iter()
            .zip(texts)
            .map(|(slot, raw)| match slot {
                Slot::Original(_) => raw,
                _ => None,
            })
            .collect();
        if let Some(input) = direct_input {
            return Ok(Self::Embeddings(EmbeddingsRequest { input, extra }));
        }
        let loc = Loc::body();
        let mut errs = Errors::default();
        let request = match kind {
            EndpointType::Chat => chat(&mut errs, &loc, &obj).map(Self::Chat),
            EndpointType::Completions => completions(&mut errs, &loc, &obj).map(Self::Completions),
            EndpointType::Embeddings => embeddings(&mut errs, &loc, &obj).map(Self::Embeddings),
        };
        match request {
            Some(mut request) if errs.0.is_empty() => {
                match &mut request {
                    Self::Chat(r) => r.extra = extra,
                    Self::Completions(r) => r.extra = extra,
                    Self::Embeddings(r) => r.extra = extra,
                }
                Ok(request)
            }
            _ if errs.0.iter().any(is_top_level_missing) => {
                // A top-level `missing` item echoes the whole body as its input, extras included:
                // build all of it (within the limit) for MLflow's exact answer.
                if all > max_nodes {
                    return Err(too_many_nodes(max_nodes));
                }
                let mut whole = Map::with_capacity(layout.len());
                for (slot, original) in layout.iter().zip(&originals) {
                    let (key, value) = match (slot, original) {
                        (Slot::Known(key), _) => (key, obj.get(key).cloned()),
                        (Slot::Extra(key), _) => {
                            (key, extra.get(key).map(parse_checked).transpose()?)
                        }
                        (Slot::Original(key), Some(raw)) => (key, Some(parse_checked(raw.get())?)),
                        (Slot::Original(key), None) => (key, None),
                    };
                    if let Some(value) = value {
                        whole.insert(key.clone(), value);
                    }
                }
                let mut errs = Errors::default();
                match kind {
                    EndpointType::Chat => drop(chat(&mut errs, &loc, &whole)),
                    EndpointType::Completions => drop(completions(&mut errs, &loc, &whole)),
                    EndpointType::Embeddings => drop(embeddings(&mut errs, &loc, &whole)),
                }
                Err(unprocessable(errs.0))
            }
            _ => Err(unprocessable(errs.0)),
        }
    }
}

/// Where a body member went during validation.
enum Slot {
    /// Built into the tree the validators read.
    Known(String),
    /// Kept as sent in `extra`.
    Extra(String),
    /// Null, or with nulls inside: dropped or cleaned, its original text kept for errors.
    Original(String),
}

/// Values in a tree (for an extra rebuilt without its nulls).
fn scan_nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(scan_nodes).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(scan_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// The top-level keys the chat and completions validators both read (`CommonParams`).
const COMMON_PARAM_KEYS: [&str; 13] = [
    "n",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "stream",
    "stream_options",
    "model",
    "response_format",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
];

/// Whether the validator for `kind` reads the top-level `key` (anything else stays text).
fn is_known_key(kind: EndpointType, key: &str) -> bool {
    match kind {
        EndpointType::Chat => {
            COMMON_PARAM_KEYS.contains(&key) || ["messages", "tools", "tool_choice"].contains(&key)
        }
        EndpointType::Completions => COMMON_PARAM_KEYS.contains(&key) || key == "prompt",
        EndpointType::Embeddings => key == "input",
    }
}

/// A member's text as a tree; it was checked when the body was read, so failing is a bug here.
fn parse_checked(raw: &str) -> Result<Value, GatewayError> {
    serde_json::from_str(raw)
        .map_err(|_| GatewayError::internal("a checked request value did not parse"))
}

/// `missing` at `["body", key]`: the item whose input is the whole body.
fn is_top_level_missing(item: &Value) -> bool {
    item["type"] == "missing" && item["loc"].as_array().is_some_and(|loc| loc.len() == 2)
}

/// `input` when it is exactly a string, strings, token ids or batches of token ids, tried in
/// that order as [`embeddings_input`] tries them on a tree (the same parser decides what is an
/// integer, so `1.0` or `-0` fall to the lax path in both).
fn exact_embeddings_input(raw: &str) -> Option<EmbeddingsInput> {
    if let Ok(text) = serde_json::from_str(raw) {
        return Some(EmbeddingsInput::Text(text));
    }
    if let Ok(texts) = serde_json::from_str(raw) {
        return Some(EmbeddingsInput::Texts(texts));
    }
    if let Ok(tokens) = serde_json::from_str(raw) {
        return Some(EmbeddingsInput::Tokens(tokens));
    }
    serde_json::from_str(raw)
        .ok()
        .map(EmbeddingsInput::TokenBatches)
}

// ---- field helpers -------------------------------------------------------------------------

/// An optional field: absent or null is `None`; otherwise `validate` decides.
pub(super) fn optional<T>(
    errs: &mut Errors,
    loc: &Loc<'_>,
    obj: &Map<String, Value>,
    key: &str,
    validate: impl FnOnce(&mut Errors, &Loc<'_>, &Value) -> Option<T>,
) -> Option<Option<T>> {
    match obj.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(v) => validate(errs, &loc.key(key), v).map(Some),
    }
}

/// A required field: absent is `missing` (with the whole object as input); null is validated
/// like any other value.
pub(super) fn required<T>(
    errs: &mut Errors,
    loc: &Loc<'_>,
    obj: &Map<String, Value>,
    key: &str,
    validate: impl FnOnce(&mut Errors, &Loc<'_>, &Value) -> Option<T>,
) -> Option<T> {
    match obj.get(key) {
        None => {
            errs.missing(&loc.key(key), obj);
            None
        }
        Some(v) => validate(errs, &loc.key(key), v),
    }
}

/// Adapts a plain check (`lax::string`, ...) to the shape `optional` and `required` take.
pub(super) fn check<T>(
    f: impl FnOnce(&Value) -> Result<T, Issue>,
) -> impl FnOnce(&mut Errors, &Loc<'_>, &Value) -> Option<T> {
    move |errs, loc, v| errs.check(loc, v, f)
}

/// A list whose items are all validated (every item's errors are reported).
pub(super) fn list_of<T>(
    errs: &mut Errors,
    loc: &Loc<'_>,
    v: &Value,
    mut item: impl FnMut(&mut Errors, &Loc<'_>, &Value) -> Option<T>,
) -> Option<Vec<T>> {
    let items = errs.check(loc, v, lax::list)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, v) in items.iter().enumerate() {
        match item(errs, &loc.index(i), v) {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `min_length=1` on a list that validated: pydantic's `too_short`.
fn non_empty<T>(errs: &mut Errors, loc: &Loc<'_>, v: &Value, items: Vec<T>) -> Option<Vec<T>> {
    if !items.is_empty() {
        return Some(items);
    }
    errs.report(
        loc,
        v,
        Issue::with_ctx(
            "too_short",
            "List should have at least 1 item after validation, not 0",
            json!({"field_type": "List", "min_length": 1, "actual_length": 0}),
        ),
    );
    None
}

/// The object's keys that are not `known`, with nulls dropped as MLflow's encoder drops them.
pub(super) fn extras(obj: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, v)| !v.is_null() && !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), lax::strip_nulls(v)))
        .collect()
}

pub(super) fn string(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<String> {
    errs.check(loc, v, lax::string)
}

fn int_param(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<u32> {
    errs.check(loc, v, |v| lax::int_in_range(v, 1, MAX_INT_PARAM))
        .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
}

fn float_param(ge: f64, le: f64) -> impl FnOnce(&mut Errors, &Loc<'_>, &Value) -> Option<f64> {
    move |errs, loc, v| errs.check(loc, v, |v| lax::float_in_range(v, ge, le))
}

// ---- requests ------------------------------------------------------------------------------

fn common(errs: &mut Errors, loc: &Loc<'_>, obj: &Map<String, Value>) -> Option<CommonParams> {
    // `n` is not optional: null is an int_type error, absent is 1.
    let n = match obj.get("n") {
        None => Some(1),
        Some(v) => int_param(errs, &loc.key("n"), v),
    };
    let stop = optional(errs, loc, obj, "stop", |errs, loc, v| {
        let items = list_of(errs, loc, v, string)?;
        non_empty(errs, loc, v, items)
    });
    let max_tokens = optional(errs, loc, obj, "max_tokens", int_param);
    let max_completion_tokens = optional(errs, loc, obj, "max_completion_tokens", int_param);
    let stream = optional(errs, loc, obj, "stream", check(lax::boolean));
    let stream_options = optional(errs, loc, obj, "stream_options", |errs, loc, v| {
        errs.check(loc, v, lax::dict).map(lax::strip_nulls_map)
    });
    let model = optional(errs, loc, obj, "model", string);
    let response_format = optional(errs, loc, obj, "response_format", response_format);
    let temperature = optional(errs, loc, obj, "temperature", float_param(0.0, 2.0));
    let top_p = optional(errs, loc, obj, "top_p", float_param(0.0, 1.0));
    let presence_penalty = optional(errs, loc, obj, "presence_penalty", float_param(-2.0, 2.0));
    let frequency_penalty = optional(errs, loc, obj, "frequency_penalty", float_param(-2.0, 2.0));
    let top_k = optional(errs, loc, obj, "top_k", int_param);
    Some(CommonParams {
        n: n?,
        stop: stop?,
        max_tokens: max_tokens?,
        max_completion_tokens: max_completion_tokens?,
        stream: stream?,
        stream_options: stream_options?,
        model: model?,
        response_format: response_format?,
        temperature: temperature?,
        top_p: top_p?,
        presence_penalty: presence_penalty?,
        frequency_penalty: frequency_penalty?,
        top_k: top_k?,
    })
}

fn chat(errs: &mut Errors, loc: &Loc<'_>, obj: &Map<String, Value>) -> Option<ChatRequest> {
    let common = common(errs, loc, obj);
    let messages = required(errs, loc, obj, "messages", |errs, loc, v| {
        let items = list_of(errs, loc, v, message)?;
        non_empty(errs, loc, v, items)
    });
    let tools = optional(errs, loc, obj, "tools", |errs, loc, v| {
        list_of(errs, loc, v, tool)
    });
    let tool_choice = optional(errs, loc, obj, "tool_choice", tool_choice);
    Some(ChatRequest {
        common: common?,
        messages: messages?,
        tools: tools?,
        tool_choice: tool_choice?,
        extra: RawExtras::default(),
    })
}

fn completions(
    errs: &mut Errors,
    loc: &Loc<'_>,
    obj: &Map<String, Value>,
) -> Option<CompletionsRequest> {
    let common = common(errs, loc, obj);
    let prompt = required(errs, loc, obj, "prompt", string);
    Some(CompletionsRequest {
        common: common?,
        prompt: prompt?,
        extra: RawExtras::default(),
    })
}

fn embeddings(
    errs: &mut Errors,
    loc: &Loc<'_>,
    obj: &Map<String, Value>,
) -> Option<EmbeddingsRequest> {
    let input = required(errs, loc, obj, "input", embeddings_input)?;
    Some(EmbeddingsRequest {
        input,
        extra: RawExtras::default(),
    })
}

/// `str | list[str] | list[int] | list[list[int]]` in pydantic's smart mode: an exact (strict)
/// match wins, in order; otherwise the first lax match; otherwise every alternative's errors.
fn embeddings_input(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<EmbeddingsInput> {
    let strict_int = |v: &Value| v.as_i64().filter(|_| !v.is_f64());
    match v {
        Value::String(s) => return Some(EmbeddingsInput::Text(s.clone())),
        Value::Array(items) => {
            if let Some(texts) = items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect()
            {
                return Some(EmbeddingsInput::Texts(texts));
            }
            if let Some(tokens) = items.iter().map(strict_int).collect() {
                return Some(EmbeddingsInput::Tokens(tokens));
            }
            let strict_batch =
                |i: &Value| -> Option<Vec<i64>> { i.as_array()?.iter().map(strict_int).collect() };
            if let Some(batches) = items.iter().map(strict_batch).collect() {
                return Some(EmbeddingsInput::TokenBatches(batches));
            }
        }
        _ => {}
    }
    // No exact match: try the lax alternatives, collecting each one's errors.
    let mut as_texts = Errors::default();
    list_of(&mut as_texts, &loc.key("list[str]"), v, string);
    let mut as_tokens = Errors::default();
    if let Some(tokens) = list_of(&mut as_tokens, &loc.key("list[int]"), v, token) {
        return Some(EmbeddingsInput::Tokens(tokens));
    }
    let mut as_batches = Errors::default();
    if let Some(batches) = list_of(
        &mut as_batches,
        &loc.key("list[list[int]]"),
        v,
        |e, l, v| list_of(e, l, v, token),
    ) {
        return Some(EmbeddingsInput::TokenBatches(batches));
    }
    errs.report(
        &loc.key("str"),
        v,
        Issue::new("string_type", lax::NOT_A_STRING),
    );
    errs.0.extend(as_texts.0);
    errs.0.extend(as_tokens.0);
    errs.0.extend(as_batches.0);
    None
}

/// A token id: a lax int that fits i64 (larger ones get pydantic's size error).
fn token(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<i64> {
    errs.check(loc, v, |v| {
        let i = lax::int(v)?;
        i64::try_from(i).map_err(|_| {
            Issue::new(
                "int_parsing_size",
                "Unable to parse input string as an integer, exceeded maximum size",
            )
        })
    })
}

fn response_format(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<ResponseFormat> {
    let obj = errs.check(loc, v, lax::model)?;
    let kind = required(
        errs,
        loc,
        obj,
        "type",
        check(|v| lax::literal(v, &["text", "json_object", "json_schema"])),
    );
    let json_schema = optional(errs, loc, obj, "json_schema", json_schema_spec);
    Some(ResponseFormat {
        kind: match kind? {
            0 => ResponseFormatKind::Text,
            1 => ResponseFormatKind::JsonObject,
            _ => ResponseFormatKind::JsonSchema,
        },
        json_schema: json_schema?,
    })
}

fn json_schema_spec(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<JsonSchemaSpec> {
    let obj = errs.check(loc, v, lax::model)?;
    let name = required(errs, loc, obj, "name", string);
    let schema = required(errs, loc, obj, "schema", |errs, loc, v| {
        errs.check(loc, v, lax::dict).map(lax::strip_nulls_map)
    });
    // `strict` defaults to true but is not optional: null is a bool_type error.
    let strict = match obj.get("strict") {
        None => Some(true),
        Some(v) => errs.check(&loc.key("strict"), v, lax::boolean),
    };
    Some(JsonSchemaSpec {
        name: name?,
        schema: schema?,
        strict: strict?,
        extra: extras(obj, &["name", "schema", "strict"]),
    })
}
