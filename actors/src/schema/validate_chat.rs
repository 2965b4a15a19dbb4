//! Validation of chat messages (content parts, tool calls) and tool definitions, with pydantic's
//! union reporting: `content` is tried left to right (`str`, then the part list) and
//! `tool_choice` lists the literal's error, then `ToolChoice`'s.

use serde_json::{json, Map, Value};

use super::lax::{self, Errors, Issue, Loc};
use super::request::{
    AudioFormat, ContentPart, FunctionDef, FunctionName, ImageDetail, ImageUrl, InputAudio,
    Message, MessageContent, NamedToolChoice, SummaryPart, Tool, ToolChoice, ToolChoiceMode,
    ToolKind, UcFunction,
};
use super::response::{FunctionCall, ToolCall};
use super::validate::{check, extras, list_of, optional, required, string};

const MESSAGE_KEYS: [&str; 5] = ["role", "content", "tool_calls", "refusal", "tool_call_id"];

/// pydantic's labels for union alternatives in error locations.
const CONTENT_STR: &str = "str";
const CONTENT_PARTS: &str =
    "list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]";
const TOOL_CHOICE_LITERAL: &str = "literal['none','auto','required']";
const TOOL_CHOICE_MODEL: &str = "ToolChoice";
const PART_TAGS: &str = "'text', 'image_url', 'input_audio', 'reasoning'";

pub(super) fn message(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<Message> {
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

pub(super) fn tool(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<Tool> {
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

/// A tool's JSON Schema. Only the shape MLflow insists on is checked (an object whose
/// `properties` maps names to objects, `type` absent or `"object"`); the schema is then forwarded
/// as sent, with `type: "object"` added after `properties` when absent, as MLflow always sends it.
fn parameters(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<Map<String, Value>> {
    let obj = errs.check(loc, v, lax::model)?;
    let properties = required(errs, loc, obj, "properties", |errs, loc, v| {
        let props = errs.check(loc, v, lax::dict)?;
        // Each property must itself be a schema object; what is inside it is not checked.
        let start = errs.0.len();
        for (name, prop) in props {
            errs.check(&loc.key(name), prop, lax::model);
        }
        (errs.0.len() == start).then_some(())
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
pub(super) fn tool_choice(errs: &mut Errors, loc: &Loc<'_>, v: &Value) -> Option<ToolChoice> {
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
