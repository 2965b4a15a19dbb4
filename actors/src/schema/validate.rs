//! Validation of a parsed body into a [`UnifiedRequest`], with MLflow's (pydantic v2's) error list.
//!
//! Fields are checked in the order of MLflow's models and every error is collected, so the 422
//! `detail` lists the same items in the same order as MLflow. Union fields report each
//! alternative the way pydantic does: `content` (left to right: `str`, then the part list),
//! `tool_choice` (the literal, then `ToolChoice`) and embeddings `input` (four alternatives).

use serde_json::{json, Map, Value};

use super::body::{not_an_object, unprocessable};
use super::lax::{self, Errors, Issue, Loc};
use super::request::{
    AudioFormat, ChatRequest, CommonParams, CompletionsRequest, ContentPart, EmbeddingsInput,
    EmbeddingsRequest, FunctionDef, FunctionName, ImageDetail, ImageUrl, InputAudio,
    JsonSchemaSpec, Message, MessageContent, NamedToolChoice, ResponseFormat, ResponseFormatKind,
    SummaryPart, Tool, ToolChoice, ToolChoiceMode, ToolKind, UcFunction, UnifiedRequest,
};
use super::response::{FunctionCall, ToolCall};
use crate::config::EndpointType;
use crate::error::GatewayError;

/// Our ceiling for the integer parameters (`n`, `max_tokens`, `max_completion_tokens`,
/// `top_k`). pydantic has none; beyond this a value can only be a mistake or an attack.
const MAX_INT_PARAM: i128 = u32::MAX as i128;

const COMMON_KEYS: [&str; 13] = [
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
const CHAT_KEYS: [&str; 3] = ["messages", "tools", "tool_choice"];
const MESSAGE_KEYS: [&str; 5] = ["role", "content", "tool_calls", "refusal", "tool_call_id"];

/// pydantic's labels for union alternatives in error locations.
const CONTENT_STR: &str = "str";
const CONTENT_PARTS: &str =
    "list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]";
const TOOL_CHOICE_LITERAL: &str = "literal['none','auto','required']";
const TOOL_CHOICE_MODEL: &str = "ToolChoice";
const PART_TAGS: &str = "'text', 'image_url', 'input_audio', 'reasoning'";

impl UnifiedRequest {
    /// Validates a parsed body for an endpoint of type `kind`. On failure the error is a 422 whose
    /// `detail` is the pydantic-style list MLflow would return.
    pub fn validate(kind: EndpointType, body: Value) -> Result<UnifiedRequest, GatewayError> {
        let Value::Object(obj) = body else {
            return Err(not_an_object(body));
        };
        let loc = Loc::body();
        let mut errs = Errors::default();
        let request = match kind {
            EndpointType::Chat => chat(&mut errs, &loc, &obj).map(Self::Chat),
            EndpointType::Completions => completions(&mut errs, &loc, &obj).map(Self::Completions),
            EndpointType::Embeddings => embeddings(&mut errs, &loc, &obj).map(Self::Embeddings),
        };
        match request {
            Some(request) if errs.0.is_empty() => Ok(request),
            _ => Err(unprocessable(errs.0)),
        }
    }
}

// ---- field helpers -------------------------------------------------------------------------

/// An optional field: absent or null is `None`; otherwise `validate` decides.
fn optional<T>(
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
fn required<T>(
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
fn check<T>(
    f: impl FnOnce(&Value) -> Result<T, Issue>,
) -> impl FnOnce(&mut Errors, &Loc<'_>, &Value) -> Option<T> {
    move |errs, loc, v| errs.check(loc, v, f)
}

/// A list whose items are all validated (every item's errors are reported).
fn list_of<T>(
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
fn extras(obj: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, v)| !v.is_null() && !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), lax::strip_nulls(v)))
        .collect()
}

fn string(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<String> {
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
    let known: Vec<&str> = COMMON_KEYS.iter().chain(&CHAT_KEYS).copied().collect();
    Some(ChatRequest {
        common: common?,
        messages: messages?,
        tools: tools?,
        tool_choice: tool_choice?,
        extra: extras(obj, &known),
    })
}

fn completions(
    errs: &mut Errors,
    loc: &Loc<'_>,
    obj: &Map<String, Value>,
) -> Option<CompletionsRequest> {
    let common = common(errs, loc, obj);
    let prompt = required(errs, loc, obj, "prompt", string);
    let known: Vec<&str> = COMMON_KEYS.iter().chain(&["prompt"]).copied().collect();
    Some(CompletionsRequest {
        common: common?,
        prompt: prompt?,
        extra: extras(obj, &known),
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
        extra: extras(obj, &["input"]),
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

// ---- messages ------------------------------------------------------------------------------

fn message(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<Message> {
    let obj = errs.check(loc, v, lax::model)?;
    let role = required(errs, loc, obj, "role", string);
    let content = optional(errs, loc, obj, "content", content);
    let tool_calls = optional(errs, loc, obj, "tool_calls", |errs, loc, v| {
        list_of(errs, loc, v, tool_call)
    });
    let refusal = optional(errs, loc, obj, "refusal", string);
    let tool_call_id = optional(errs, loc, obj, "tool_call_id", string);
    Some(Message {
        role: role?,
        content: content?,
        tool_calls: tool_calls?,
        refusal: refusal?,
        tool_call_id: tool_call_id?,
        extra: extras(obj, &MESSAGE_KEYS),
    })
}

/// `str | list[part]`, left to right: on failure the `str` error comes first, then the list's.
fn content(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<MessageContent> {
    if let Value::String(text) = v {
        return Some(MessageContent::Text(text.clone()));
    }
    let mut as_parts = Errors::default();
    if let Some(parts) = list_of(&mut as_parts, &loc.key(CONTENT_PARTS), v, content_part) {
        return Some(MessageContent::Parts(parts));
    }
    errs.report(
        &loc.key(CONTENT_STR),
        v,
        Issue::new("string_type", lax::NOT_A_STRING),
    );
    errs.0.extend(as_parts.0);
    None
}

/// A content part, discriminated on `type`; errors inside a part are located under its tag.
fn content_part(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<ContentPart> {
    let obj = errs.check(loc, v, lax::model)?;
    let Some(tag) = obj.get("type") else {
        errs.report(
            loc,
            v,
            Issue::with_ctx(
                "union_tag_not_found",
                "Unable to extract tag using discriminator 'type'",
                json!({"discriminator": "'type'"}),
            ),
        );
        return None;
    };
    match tag.as_str() {
        Some("text") => {
            let loc = loc.key("text");
            let text = required(errs, &loc, obj, "text", string)?;
            Some(ContentPart::Text {
                text,
                extra: extras(obj, &["type", "text"]),
            })
        }
        Some("image_url") => {
            let loc = loc.key("image_url");
            let image_url = required(errs, &loc, obj, "image_url", image_url)?;
            Some(ContentPart::ImageUrl {
                image_url,
                extra: extras(obj, &["type", "image_url"]),
            })
        }
        Some("input_audio") => {
            let loc = loc.key("input_audio");
            let input_audio = required(errs, &loc, obj, "input_audio", input_audio)?;
            Some(ContentPart::InputAudio {
                input_audio,
                extra: extras(obj, &["type", "input_audio"]),
            })
        }
        Some("reasoning") => {
            let loc = loc.key("reasoning");
            // Defaults to [] when absent, but null is a list_type error.
            let summary = match obj.get("summary") {
                None => Some(Vec::new()),
                Some(v) => list_of(errs, &loc.key("summary"), v, summary_part),
            };
            Some(ContentPart::Reasoning {
                summary: summary?,
                extra: extras(obj, &["type", "summary"]),
            })
        }
        _ => {
            let tag = lax::py_str(tag);
            errs.report(
                loc,
                v,
                Issue::with_ctx(
                    "union_tag_invalid",
                    format!(
                        "Input tag '{tag}' found using 'type' does not match any of the expected tags: {PART_TAGS}"
                    ),
                    json!({"discriminator": "'type'", "tag": tag, "expected_tags": PART_TAGS}),
                ),
            );
            None
        }
    }
}

fn image_url(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<ImageUrl> {
    let obj = errs.check(loc, v, lax::model)?;
    let url = required(errs, loc, obj, "url", string);
    let detail = optional(
        errs,
        loc,
        obj,
        "detail",
        check(|v| lax::literal(v, &["auto", "low", "high"])),
    );
    Some(ImageUrl {
        url: url?,
        detail: detail?.map(|i| match i {
            0 => ImageDetail::Auto,
            1 => ImageDetail::Low,
            _ => ImageDetail::High,
        }),
    })
}

fn input_audio(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<InputAudio> {
    let obj = errs.check(loc, v, lax::model)?;
    let data = required(errs, loc, obj, "data", string);
    let format = required(
        errs,
        loc,
        obj,
        "format",
        check(|v| lax::literal(v, &["wav", "mp3"])),
    );
    Some(InputAudio {
        data: data?,
        format: if format? == 0 {
            AudioFormat::Wav
        } else {
            AudioFormat::Mp3
        },
    })
}

fn summary_part(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<SummaryPart> {
    let obj = errs.check(loc, v, lax::model)?;
    let kind = required(
        errs,
        loc,
        obj,
        "type",
        check(|v| lax::literal(v, &["summary_text"])),
    );
    let text = required(errs, loc, obj, "text", string);
    kind?;
    Some(SummaryPart {
        kind: "summary_text".to_owned(),
        text: text?,
    })
}

fn tool_call(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<ToolCall> {
    let obj = errs.check(loc, v, lax::model)?;
    let id = required(errs, loc, obj, "id", string);
    // `type` defaults to "function" but is not optional: null is a string_type error.
    let kind = match obj.get("type") {
        None => Some("function".to_owned()),
        Some(v) => string(errs, &loc.key("type"), v),
    };
    let function = required(errs, loc, obj, "function", |errs, loc, v| {
        let f = errs.check(loc, v, lax::model)?;
        let name = optional(errs, loc, f, "name", string);
        let arguments = optional(errs, loc, f, "arguments", string);
        Some(FunctionCall {
            name: name?,
            arguments: arguments?,
        })
    });
    let thought_signature = optional(errs, loc, obj, "thought_signature", string);
    Some(ToolCall {
        id: id?,
        kind: kind?,
        function: function?,
        thought_signature: thought_signature?,
    })
}

// ---- tools ---------------------------------------------------------------------------------

fn tool(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<Tool> {
    let obj = errs.check(loc, v, lax::model)?;
    let kind = required(
        errs,
        loc,
        obj,
        "type",
        check(|v| lax::literal(v, &["function", "uc_function"])),
    );
    let function = optional(errs, loc, obj, "function", function_def);
    let uc_function = optional(errs, loc, obj, "uc_function", |errs, loc, v| {
        let uc = errs.check(loc, v, lax::model)?;
        let name = required(errs, loc, uc, "name", string)?;
        Some(UcFunction {
            name,
            extra: extras(uc, &["name"]),
        })
    });
    Some(Tool {
        kind: if kind? == 0 {
            ToolKind::Function
        } else {
            ToolKind::UcFunction
        },
        function: function?,
        uc_function: uc_function?,
    })
}

fn function_def(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<FunctionDef> {
    let obj = errs.check(loc, v, lax::model)?;
    let name = required(errs, loc, obj, "name", string);
    let description = optional(errs, loc, obj, "description", string);
    let parameters = optional(errs, loc, obj, "parameters", parameters);
    let strict = optional(errs, loc, obj, "strict", check(lax::boolean));
    Some(FunctionDef {
        name: name?,
        description: description?,
        parameters: parameters?,
        strict: strict?,
    })
}

/// A tool's JSON Schema. Only what MLflow insists on is checked (an object with a `properties`
/// object, `type` absent or `"object"`); the schema is then forwarded as sent, with
/// `type: "object"` added after `properties` when absent, as MLflow always sends it.
fn parameters(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<Map<String, Value>> {
    let obj = errs.check(loc, v, lax::model)?;
    let properties = required(errs, loc, obj, "properties", |errs, loc, v| {
        errs.check(loc, v, lax::dict).map(|_| ())
    });
    let kind = match obj.get("type") {
        None => Some(()),
        Some(v) => errs
            .check(&loc.key("type"), v, |v| lax::literal(v, &["object"]))
            .map(|_| ()),
    };
    properties?;
    kind?;
    let mut schema = obj.clone();
    if !schema.contains_key("type") {
        let at = schema
            .keys()
            .position(|k| k == "properties")
            .map_or(schema.len(), |i| i + 1);
        schema.shift_insert(at, "type".to_owned(), Value::from("object"));
    }
    Some(schema)
}

/// `Literal["none","auto","required"] | ToolChoice`: on failure both alternatives' errors.
fn tool_choice(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<ToolChoice> {
    let modes = ["none", "auto", "required"];
    let mode = lax::literal(v, &modes);
    if let Ok(i) = mode {
        return Some(ToolChoice::Mode(match i {
            0 => ToolChoiceMode::None,
            1 => ToolChoiceMode::Auto,
            _ => ToolChoiceMode::Required,
        }));
    }
    let mut as_named = Errors::default();
    if let Some(named) = named_tool_choice(&mut as_named, &loc.key(TOOL_CHOICE_MODEL), v) {
        return Some(ToolChoice::Named(named));
    }
    if let Err(issue) = mode {
        errs.report(&loc.key(TOOL_CHOICE_LITERAL), v, issue);
    }
    errs.0.extend(as_named.0);
    None
}

fn named_tool_choice(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<NamedToolChoice> {
    let obj = errs.check(loc, v, lax::model)?;
    let kind = required(
        errs,
        loc,
        obj,
        "type",
        check(|v| lax::literal(v, &["function"])),
    );
    let function = required(errs, loc, obj, "function", |errs, loc, v| {
        let f = errs.check(loc, v, lax::model)?;
        let name = required(errs, loc, f, "name", string)?;
        Some(FunctionName { name })
    });
    kind?;
    Some(NamedToolChoice {
        kind: "function".to_owned(),
        function: function?,
    })
}
