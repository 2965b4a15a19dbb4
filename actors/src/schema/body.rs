//! Request body to JSON, with the exact errors MLflow's FastAPI app gives for an empty body,
//! a non-JSON content type, undecodable bytes, malformed JSON and a top-level non-object, and a
//! limit on how many JSON values a body may have built into a tree.
//!
//! [`parse_request_body`] is the invocation paths' reader: it checks and counts the whole body
//! without building it, then keeps each top-level member as raw text ([`BodyObject`]);
//! validation builds only the members it knows. [`parse_json_body`] builds the whole value.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use bytestring::ByteString;
use serde_json::{json, Value};

use super::pyjson::{decode_body, locate_error};
use super::raw_extras::RawText;
use super::scan::{self, Counts};
use crate::error::{ErrorKind, GatewayError};

/// The setting that bounds how many JSON values one body may have built into a tree.
pub const MAX_JSON_NODES_SETTING: &str = "max_json_nodes";

/// The 413 for a body that would build more than `limit` JSON values.
pub(crate) fn too_many_nodes(limit: usize) -> GatewayError {
    GatewayError::new(
        ErrorKind::PayloadTooLarge,
        413,
        format!(
            "The request body has more JSON values than the limit of {limit} (setting `{MAX_JSON_NODES_SETTING}`)."
        ),
    )
}

/// FastAPI's answer when the body bytes cannot even be decoded to text (not a 422).
const UNDECODABLE_BODY: &str = "There was an error parsing the body";

/// The message pydantic gives when a model receives something other than an object.
pub(crate) const NOT_AN_OBJECT: &str =
    "Input should be a valid dictionary or object to extract fields from";

/// A 422 whose `detail` is a pydantic-style error list.
pub(crate) fn unprocessable(items: Vec<Value>) -> GatewayError {
    GatewayError::new(ErrorKind::Validation, 422, Value::Array(items))
}

/// The single error item for a body that is not a JSON object.
pub(crate) fn not_an_object(input: Value) -> GatewayError {
    unprocessable(vec![json!({
        "type": "model_attributes_type",
        "loc": ["body"],
        "msg": NOT_AN_OBJECT,
        "input": input,
    })])
}

/// Parses an HTTP request body as MLflow does before schema validation, building the whole value
/// (no node limit: for bodies known to be small, tests and fuzzing).
///
/// - empty body: 422 `missing` at `["body"]` (whatever the content type);
/// - content type not `application/json` or `application/*+json` (parameters allowed, case
///   ignored): the raw text is what gets validated, so 422 `model_attributes_type` with the text as
///   `input`;
/// - bytes that do not decode (invalid UTF-8, broken UTF-16): 400
///   `There was an error parsing the body`, as FastAPI answers;
/// - malformed JSON: 422 `json_invalid` at `["body", <char offset>]` with Python's message in
///   `ctx.error`; input Python accepts but serde_json does not (`NaN`, numbers beyond f64, lone
///   surrogates, nesting deeper than 128) gets serde_json's reason instead; MLflow fails on those
///   later with a 500 or 400, so a clean 422 is the better answer;
/// - a top-level value that is not an object: 422 `model_attributes_type` with the value as input.
pub fn parse_json_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, GatewayError> {
    parse_json_value(content_type, body, usize::MAX)
}

/// [`parse_json_body`] for a body that may build at most `max_nodes` JSON values: the body is
/// counted first (nothing built) and one over the limit gets a 413 naming the setting.
pub fn parse_json_value(
    content_type: Option<&str>,
    body: &[u8],
    max_nodes: usize,
) -> Result<Value, GatewayError> {
    let text = body_text(content_type, body)?;
    match build_value(&text, max_nodes)? {
        value @ Value::Object(_) => Ok(value),
        other => Err(not_an_object(other)),
    }
}

/// One top-level member of a body: its key, its JSON text, and what that text holds.
#[derive(Debug)]
pub(crate) struct Member {
    pub key: String,
    pub raw: RawText,
    pub counts: Counts,
}

/// A body's top-level object with each member still JSON text (already checked: every member
/// parses), in the client's order, a repeated key keeping its first place and its last value
/// (as a `serde_json` map does).
#[derive(Debug)]
pub struct BodyObject {
    pub(crate) members: Vec<Member>,
    /// The most JSON values validation and providers may build for this body.
    pub(crate) max_nodes: usize,
    /// The body's size in bytes.
    pub(crate) body_len: usize,
}

impl BodyObject {
    /// An object already in memory (requests made in code, tests): no node limit.
    pub(crate) fn from_map(map: serde_json::Map<String, Value>) -> Result<Self, GatewayError> {
        let mut members = Vec::with_capacity(map.len());
        for (key, value) in map {
            let raw = serde_json::value::to_raw_value(&value)
                .map_err(|_| GatewayError::internal("a request value could not be serialised"))?;
            let counts = scan::count(raw.get())
                .map_err(|_| GatewayError::internal("a request value could not be serialised"))?;
            members.push(Member {
                key,
                raw: RawText::Owned(raw),
                counts,
            });
        }
        Ok(Self {
            members,
            max_nodes: usize::MAX,
            body_len: 0,
        })
    }
}

/// The invocation paths' reader: [`parse_json_body`]'s errors, but the body is checked and
/// counted without being built, and its members are kept as text. A non-object body is built
/// (for the 422's `input`) only within `max_nodes`.
pub fn parse_request_body(
    content_type: Option<&str>,
    body: &Bytes,
    max_nodes: usize,
) -> Result<BodyObject, GatewayError> {
    // The text as a share of the body's buffer (or of its decoding, for UTF-16 and UTF-32), so
    // that a member which is most of the body can be kept without a copy.
    let text = match body_text(content_type, body)? {
        Cow::Borrowed(text) => ByteString::try_from(body.slice_ref(text.as_bytes()))
            .map_err(|_| GatewayError::new(ErrorKind::Validation, 400, UNDECODABLE_BODY))?,
        Cow::Owned(text) => ByteString::from(text),
    };
    let is_object = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{');
    if !is_object {
        // Not an object (or not JSON): whatever it is, the error says so; never a success.
        let value = build_value(&text, max_nodes)?;
        return Err(not_an_object(value));
    }
    let counts = scan::count_members(&text).map_err(|err| json_invalid(&text, &err))?;
    let split = scan::split_members(&text).map_err(|err| json_invalid(&text, &err))?;
    let mut members: Vec<Member> = Vec::with_capacity(split.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(split.len());
    for ((key, raw), counts) in split.into_iter().zip(counts) {
        // Sharing keeps the whole buffer alive as long as the request: worth it only for a
        // member that is most of the body (the 16 MiB array), not for small ones.
        let raw = if raw.get().len() >= text.len() / 2 {
            RawText::Shared(text.slice_ref(raw.get()))
        } else {
            RawText::Owned(raw.to_owned())
        };
        match index.get(&key) {
            Some(&at) => {
                members[at].raw = raw;
                members[at].counts = counts;
            }
            None => {
                index.insert(key.clone(), members.len());
                members.push(Member { key, raw, counts });
            }
        }
    }
    Ok(BodyObject {
        members,
        max_nodes,
        body_len: body.len(),
    })
}

/// The checks every body goes through before its JSON is read: not empty, a JSON content type,
/// bytes that decode to text.
fn body_text<'a>(content_type: Option<&str>, body: &'a [u8]) -> Result<Cow<'a, str>, GatewayError> {
    if body.is_empty() {
        return Err(unprocessable(vec![json!({
            "type": "missing",
            "loc": ["body"],
            "msg": "Field required",
            "input": null,
        })]));
    }
    if !is_json_content_type(content_type) {
        return Err(not_an_object(Value::String(
            String::from_utf8_lossy(body).into_owned(),
        )));
    }
    decode_body(body).map_err(|_| GatewayError::new(ErrorKind::Validation, 400, UNDECODABLE_BODY))
}

/// Counts the text (nothing built), refuses it past `max_nodes`, then builds it.
fn build_value(text: &str, max_nodes: usize) -> Result<Value, GatewayError> {
    let counts = scan::count(text).map_err(|err| json_invalid(text, &err))?;
    if counts.nodes > max_nodes {
        return Err(too_many_nodes(max_nodes));
    }
    serde_json::from_str::<Value>(text).map_err(|err| json_invalid(text, &err))
}

/// True for `application/json` and `application/<anything>+json`, read the way Python's
/// `email.message` reads a content type (first `;` part, trimmed, lower-cased, exactly one `/`).
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    let Some(value) = content_type else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim().to_lowercase();
    if media.matches('/').count() != 1 {
        return false;
    }
    match media.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

fn json_invalid(text: &str, err: &serde_json::Error) -> GatewayError {
    let (reason, pos) = match locate_error(text) {
        Some(py) => (py.msg.to_owned(), py.pos),
        None => (serde_reason(err), serde_char_offset(text, err)),
    };
    unprocessable(vec![json!({
        "type": "json_invalid",
        "loc": ["body", pos],
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": reason},
    })])
}

/// serde_json's message without its " at line L column C" suffix.
fn serde_reason(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// serde_json counts 1-based lines and byte columns; Python reports a character offset.
fn serde_char_offset(text: &str, err: &serde_json::Error) -> usize {
    let line_start = text
        .split_inclusive('\n')
        .take(err.line().saturating_sub(1))
        .map(str::len)
        .sum::<usize>();
    let mut byte = (line_start + err.column().saturating_sub(1)).min(text.len());
    while !text.is_char_boundary(byte) {
        byte -= 1;
    }
    text[..byte].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(r: Result<Value, GatewayError>) -> (u16, Value) {
        let e = r.expect_err("expected an error");
        (e.status, e.detail)
    }

    const JSON: Option<&str> = Some("application/json");

    // Expected bodies below were captured from MLflow 3.17.2's FastAPI app (see §3 of the spec).
    #[test]
    fn empty_body_is_missing() {
        for ct in [JSON, Some("text/plain"), None] {
            assert_eq!(
                detail(parse_json_body(ct, b"")),
                (
                    422,
                    json!([{"type":"missing","loc":["body"],"msg":"Field required","input":null}])
                )
            );
        }
    }

    #[test]
    fn non_json_content_type_validates_the_raw_text() {
        for ct in [
            None,
            Some("text/plain"),
            Some(""),
            Some("application/jsonx"),
            Some("application"),
            Some("multipart/form-data"),
        ] {
            assert_eq!(
                detail(parse_json_body(ct, b"{\"a\":1}")),
                (
                    422,
                    json!([{"type":"model_attributes_type","loc":["body"],"msg":NOT_AN_OBJECT,"input":"{\"a\":1}"}])
                ),
                "content type {ct:?}"
            );
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            " application/json ",
            "application/vnd.api+json",
            "application/merge-patch+json;q=1",
        ] {
            assert!(is_json_content_type(Some(ct)), "{ct}");
            assert_eq!(
                parse_json_body(Some(ct), b"{\"a\":1}").ok(),
                Some(json!({"a":1}))
            );
        }
    }

    #[test]
    fn malformed_json_has_pythons_message_and_position() {
        assert_eq!(
            detail(parse_json_body(JSON, b"abc")),
            (
                422,
                json!([{"type":"json_invalid","loc":["body",0],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}])
            )
        );
        let (_, d) = detail(parse_json_body(JSON, b"{\"a\":1,}"));
        assert_eq!(
            d,
            json!([{"type":"json_invalid","loc":["body",7],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting property name enclosed in double quotes"}}])
        );
        let (_, d) = detail(parse_json_body(JSON, b"{\"a\":1} x"));
        assert_eq!(d[0]["loc"], json!(["body", 8]));
        assert_eq!(d[0]["ctx"], json!({"error": "Extra data"}));
        let (_, d) = detail(parse_json_body(JSON, b"  "));
        assert_eq!(d[0]["loc"], json!(["body", 2]));
    }

    #[test]
    fn what_python_accepts_but_serde_refuses_is_a_clean_422() {
        let (status, d) = detail(parse_json_body(JSON, b"{\"t\": NaN}"));
        assert_eq!(status, 422);
        assert_eq!(d[0]["type"], "json_invalid");
        assert_eq!(d[0]["loc"], json!(["body", 6]));

        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        let (status, d) = detail(parse_json_body(JSON, deep.as_bytes()));
        assert_eq!(status, 422);
        assert_eq!(d[0]["ctx"]["error"], "recursion limit exceeded");

        let (status, d) = detail(parse_json_body(JSON, b"{\"a\":\n 1e400}"));
        assert_eq!(status, 422);
        assert_eq!(d[0]["ctx"]["error"], "number out of range");
    }

    #[test]
    fn undecodable_bytes_get_fastapis_400() {
        let e = parse_json_body(JSON, b"{\"a\":\"\xff\"}").expect_err("must fail");
        assert_eq!(e.status, 400);
        assert_eq!(e.detail, json!("There was an error parsing the body"));
    }

    #[test]
    fn bom_and_utf16_are_decoded() {
        assert_eq!(
            parse_json_body(JSON, b"\xef\xbb\xbf{\"a\":1}").ok(),
            Some(json!({"a":1}))
        );
        let utf16: Vec<u8> = "{\"a\":1}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(parse_json_body(JSON, &utf16).ok(), Some(json!({"a":1})));
    }

    #[test]
    fn top_level_non_object_is_model_attributes_type() {
        for (raw, input) in [
            ("[1]", json!([1])),
            ("null", Value::Null),
            ("\"str\"", json!("str")),
            ("1.5", json!(1.5)),
        ] {
            assert_eq!(
                detail(parse_json_body(JSON, raw.as_bytes())),
                (
                    422,
                    json!([{"type":"model_attributes_type","loc":["body"],"msg":NOT_AN_OBJECT,"input":input}])
                )
            );
        }
    }

    /// What the invocation paths' reader answers: the same errors as the tree-building one.
    fn request_detail(body: &[u8]) -> (u16, Value) {
        let e = parse_request_body(JSON, &Bytes::copy_from_slice(body), usize::MAX)
            .expect_err("expected an error");
        (e.status, e.detail)
    }

    #[test]
    fn the_counting_reader_gives_the_same_errors_as_a_tree() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        let edge = format!("{{\"a\":{}{}}}", "[".repeat(127), "]".repeat(127));
        let utf16: Vec<u8> = "[1]".encode_utf16().flat_map(u16::to_le_bytes).collect();
        for body in [
            &b""[..],
            b"abc",
            b"{\"a\":1,}",
            b"{\"a\":1} x",
            b"  ",
            b"{\"t\": NaN}",
            b"{\"a\":\n 1e400}",
            b"{\"a\": \"\\ud800\"}",
            b"{\"a\":\"\xff\"}",
            b"[1]",
            b"null",
            deep.as_bytes(),
            edge.as_bytes(),
            &utf16,
        ] {
            assert_eq!(
                request_detail(body),
                detail(parse_json_body(JSON, body)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn members_keep_the_first_place_and_the_last_value_of_a_repeated_key() {
        let body = Bytes::from_static(br#"{"a": 1, "b": [2, 3], "a": "x"}"#);
        let object = parse_request_body(JSON, &body, usize::MAX).unwrap();
        let members: Vec<(&str, &str, usize)> = object
            .members
            .iter()
            .map(|m| (m.key.as_str(), m.raw.get(), m.counts.nodes))
            .collect();
        assert_eq!(members, vec![("a", "\"x\"", 1), ("b", "[2, 3]", 3)]);
        assert_eq!(object.body_len, body.len());
    }

    #[test]
    fn a_body_over_the_node_limit_is_a_413_before_it_is_built() {
        let e = parse_json_value(JSON, b"[1,2,3]", 3).expect_err("over the limit");
        assert_eq!(e.status, 413);
        assert_eq!(
            e.detail,
            json!("The request body has more JSON values than the limit of 3 (setting `max_json_nodes`).")
        );
        assert!(parse_json_value(JSON, b"{\"a\":[1]}", 3).is_ok());
        // A non-object on the invocation paths is counted before its 422 echoes it.
        let e = parse_request_body(JSON, &Bytes::from_static(b"[1,2,3]"), 3).unwrap_err();
        assert_eq!(e.status, 413);
    }
}
