//! pydantic v2's lax-mode coercions for JSON input, and the error items it reports.
//!
//! FastAPI validates the parsed body in pydantic's "python lax" mode: `"2"` is a valid int,
//! `"yes"` a valid bool, `1` a valid float. Each function here accepts exactly what pydantic
//! 2.14 accepts for one primitive type and, when it refuses, names the error with pydantic's
//! `type`, `msg` and `ctx`. Locations are built lazily ([`Loc`]) so the happy path allocates
//! nothing for them.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

/// One step of an error location: an object key or a list index.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// A location as a borrowed chain back to `["body"]`; turned into JSON only when an error is
/// reported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loc<'a> {
    parent: Option<&'a Loc<'a>>,
    seg: Seg<'a>,
}

impl<'a> Loc<'a> {
    pub(crate) fn body() -> Loc<'static> {
        Loc {
            parent: None,
            seg: Seg::Key("body"),
        }
    }

    pub(crate) fn key<'b>(&'b self, key: &'b str) -> Loc<'b> {
        Loc {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    pub(crate) fn index(&self, index: usize) -> Loc<'_> {
        Loc {
            parent: Some(self),
            seg: Seg::Index(index),
        }
    }

    fn to_value(self) -> Value {
        let mut segs = Vec::new();
        let mut cur = Some(&self);
        while let Some(loc) = cur {
            segs.push(match loc.seg {
                Seg::Key(k) => Value::String(k.to_owned()),
                Seg::Index(i) => Value::from(i),
            });
            cur = loc.parent;
        }
        segs.reverse();
        Value::Array(segs)
    }
}

/// Why a value was refused, before it is placed at a location.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issue {
    pub kind: &'static str,
    pub msg: Cow<'static, str>,
    pub ctx: Option<Value>,
}

impl Issue {
    pub(crate) fn new(kind: &'static str, msg: &'static str) -> Self {
        Self {
            kind,
            msg: Cow::Borrowed(msg),
            ctx: None,
        }
    }

    pub(crate) fn with_ctx(
        kind: &'static str,
        msg: impl Into<Cow<'static, str>>,
        ctx: Value,
    ) -> Self {
        Self {
            kind,
            msg: msg.into(),
            ctx: Some(ctx),
        }
    }
}

/// Collected error items, in pydantic's order (fields in model order, depth first).
#[derive(Debug, Default)]
pub(crate) struct Errors(pub Vec<Value>);

impl Errors {
    pub(crate) fn report(&mut self, loc: &Loc<'_>, input: &Value, issue: Issue) {
        let mut item = Map::new();
        item.insert("type".into(), Value::from(issue.kind));
        item.insert("loc".into(), loc.to_value());
        item.insert("msg".into(), Value::from(issue.msg.into_owned()));
        item.insert("input".into(), input.clone());
        if let Some(ctx) = issue.ctx {
            item.insert("ctx".into(), ctx);
        }
        self.0.push(Value::Object(item));
    }

    /// `missing`: the input reported is the object the field is missing from.
    pub(crate) fn missing(&mut self, loc: &Loc<'_>, parent: &Map<String, Value>) {
        self.report(
            loc,
            &Value::Object(parent.clone()),
            Issue::new("missing", "Field required"),
        );
    }

    /// Runs `check` and reports its issue at `loc`, returning the value on success.
    pub(crate) fn check<'v, T>(
        &mut self,
        loc: &Loc<'_>,
        input: &'v Value,
        check: impl FnOnce(&'v Value) -> Result<T, Issue>,
    ) -> Option<T> {
        match check(input) {
            Ok(v) => Some(v),
            Err(issue) => {
                self.report(loc, input, issue);
                None
            }
        }
    }
}

pub(crate) const NOT_A_STRING: &str = "Input should be a valid string";
pub(crate) const NOT_A_LIST: &str = "Input should be a valid list";
pub(crate) const NOT_A_DICT: &str = "Input should be a valid dictionary";
pub(crate) const NOT_A_MODEL: &str = super::body::NOT_AN_OBJECT;

/// `str`: only strings (pydantic never turns numbers into strings).
pub(crate) fn string(v: &Value) -> Result<String, Issue> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| Issue::new("string_type", NOT_A_STRING))
}

pub(crate) fn list(v: &Value) -> Result<&Vec<Value>, Issue> {
    v.as_array()
        .ok_or_else(|| Issue::new("list_type", NOT_A_LIST))
}

pub(crate) fn dict(v: &Value) -> Result<&Map<String, Value>, Issue> {
    v.as_object()
        .ok_or_else(|| Issue::new("dict_type", NOT_A_DICT))
}

/// A nested model accepts only objects.
pub(crate) fn model(v: &Value) -> Result<&Map<String, Value>, Issue> {
    v.as_object()
        .ok_or_else(|| Issue::new("model_attributes_type", NOT_A_MODEL))
}

const INT_TYPE: &str = "Input should be a valid integer";
const INT_PARSING: &str = "Input should be a valid integer, unable to parse string as an integer";
const INT_FROM_FLOAT: &str = "Input should be a valid integer, got a number with a fractional part";
const INT_SIZE: &str = "Unable to parse input string as an integer, exceeded maximum size";
/// pydantic refuses integer strings longer than this.
const MAX_INT_STRING: usize = 4300;
/// Floats at or beyond ±2^63 do not fit pydantic's i64 fast path and are refused.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// `int` in lax mode: integers, floats without a fraction, booleans, and integer strings
/// (whitespace, `_` separators and a `.000` tail allowed). The result is widened to i128 and
/// saturates, so callers can bound-check absurd values instead of overflowing.
pub(crate) fn int(v: &Value) -> Result<i128, Issue> {
    match v {
        Value::Bool(b) => Ok(i128::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Ok(i128::from(u))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 || !f.is_finite() {
                    Err(Issue::new("int_from_float", INT_FROM_FLOAT))
                } else if f.abs() >= I64_LIMIT {
                    Err(Issue::new("int_parsing_size", INT_SIZE))
                } else {
                    // In range and integral, so the cast is exact.
                    Ok(f as i128)
                }
            }
        }
        Value::String(s) => int_from_str(s),
        _ => Err(Issue::new("int_type", INT_TYPE)),
    }
}

fn int_from_str(s: &str) -> Result<i128, Issue> {
    let t = s.trim();
    if t.len() > MAX_INT_STRING {
        return Err(Issue::new("int_parsing_size", INT_SIZE));
    }
    let parsing = || Issue::new("int_parsing", INT_PARSING);
    // "3.00" is an int for pydantic; "3." and "3.01" are not.
    let t = match t.split_once('.') {
        Some((whole, frac)) if !frac.is_empty() && frac.bytes().all(|b| b == b'0') => whole,
        Some(_) => return Err(parsing()),
        None => t,
    };
    let digits = strip_underscores(t).ok_or_else(parsing)?;
    let (negative, digits) = match digits.as_bytes().first() {
        Some(b'-') => (true, &digits[1..]),
        Some(b'+') => (false, &digits[1..]),
        _ => (false, &digits[..]),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(parsing());
    }
    let mut value: i128 = 0;
    for b in digits.bytes() {
        value = value
            .saturating_mul(10)
            .saturating_add(i128::from(b - b'0'));
    }
    Ok(if negative { -value } else { value })
}

/// Python numeric literals allow single underscores between digits only.
fn strip_underscores(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('_') {
        return Some(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'_' {
            let before = i.checked_sub(1).and_then(|j| bytes.get(j));
            let after = bytes.get(i + 1);
            if !before.is_some_and(u8::is_ascii_digit) || !after.is_some_and(u8::is_ascii_digit) {
                return None;
            }
        }
    }
    Some(Cow::Owned(s.replace('_', "")))
}

const FLOAT_TYPE: &str = "Input should be a valid number";
const FLOAT_PARSING: &str = "Input should be a valid number, unable to parse string as a number";

/// `float` in lax mode: numbers, booleans and numeric strings (including `inf` and `nan`, which
/// the range checks then refuse).
pub(crate) fn float(v: &Value) -> Result<f64, Issue> {
    match v {
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| Issue::new("float_type", FLOAT_TYPE)),
        Value::String(s) => strip_underscores(s.trim())
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or_else(|| Issue::new("float_parsing", FLOAT_PARSING)),
        _ => Err(Issue::new("float_type", FLOAT_TYPE)),
    }
}

const BOOL_TYPE: &str = "Input should be a valid boolean";
const BOOL_PARSING: &str = "Input should be a valid boolean, unable to interpret input";

/// `bool` in lax mode: booleans, 0/1 (also as 0.0/1.0), and the usual yes/no words in any case.
pub(crate) fn boolean(v: &Value) -> Result<bool, Issue> {
    let parsing = || Issue::new("bool_parsing", BOOL_PARSING);
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => {
            let whole = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Some(i128::from(i)),
                (None, Some(u), _) => Some(i128::from(u)),
                // Only floats that pydantic can read as an i64 go on to the 0/1 check.
                (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < I64_LIMIT => Some(f as i128),
                _ => None,
            };
            match whole {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                Some(_) => Err(parsing()),
                // A float with a fraction is not even considered a number of the right kind.
                None => Err(Issue::new("bool_type", BOOL_TYPE)),
            }
        }
        Value::String(s) => match s.to_lowercase().as_str() {
            "0" | "off" | "f" | "false" | "n" | "no" => Ok(false),
            "1" | "on" | "t" | "true" | "y" | "yes" => Ok(true),
            _ => Err(parsing()),
        },
        _ => Err(Issue::new("bool_type", BOOL_TYPE)),
    }
}

/// `Literal[...]` of strings: the index of the matching choice.
pub(crate) fn literal(v: &Value, choices: &[&str]) -> Result<usize, Issue> {
    v.as_str()
        .and_then(|s| choices.iter().position(|c| *c == s))
        .ok_or_else(|| {
            let expected = expected_list(choices);
            Issue::with_ctx(
                "literal_error",
                format!("Input should be {expected}"),
                json!({ "expected": expected }),
            )
        })
}

/// pydantic's rendering of choices: `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`.
pub(crate) fn expected_list(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Integer `>= ge` (pydantic's check) and `<= max` (ours: a bound pydantic does not have, so
/// absurd values become a clean 422 instead of being forwarded or overflowing).
pub(crate) fn int_in_range(v: &Value, ge: i128, max: i128) -> Result<i128, Issue> {
    let i = int(v)?;
    if i < ge {
        return Err(Issue::with_ctx(
            "greater_than_equal",
            format!("Input should be greater than or equal to {ge}"),
            json!({ "ge": ge as i64 }),
        ));
    }
    if i > max {
        return Err(Issue::with_ctx(
            "less_than_equal",
            format!("Input should be less than or equal to {max}"),
            json!({ "le": max as i64 }),
        ));
    }
    Ok(i)
}

/// Float within `[ge, le]`; pydantic checks `le` first, so NaN reports `less_than_equal`.
pub(crate) fn float_in_range(v: &Value, ge: f64, le: f64) -> Result<f64, Issue> {
    let f = float(v)?;
    // The message prints the bound as an integer (`2`), the ctx as a float (`2.0`).
    if f.is_nan() || f > le {
        return Err(Issue::with_ctx(
            "less_than_equal",
            format!("Input should be less than or equal to {le}"),
            json!({ "le": le }),
        ));
    }
    if f < ge {
        return Err(Issue::with_ctx(
            "greater_than_equal",
            format!("Input should be greater than or equal to {ge}"),
            json!({ "ge": ge }),
        ));
    }
    Ok(f)
}

/// Python's `str()` of a decoded JSON value, as pydantic prints a discriminator tag.
pub(crate) fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a decoded JSON value.
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::String(s) => {
            // Python prefers single quotes unless the text contains one and no double quote.
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::with_capacity(s.len() + 2);
            out.push(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// What FastAPI's `jsonable_encoder(..., exclude_none=True)` does to free-form values: object
/// entries whose value is null are dropped, at any depth; nulls inside lists stay.
pub(crate) fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(strip_nulls_map(map)),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

pub(crate) fn strip_nulls_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), strip_nulls(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind<T: std::fmt::Debug>(r: Result<T, Issue>) -> &'static str {
        r.err().map(|i| i.kind).unwrap_or("ok")
    }

    // Each expectation was checked against pydantic 2.14.3 through MLflow's request models.
    #[test]
    fn lax_int() {
        for (input, expected) in [
            (json!("2"), 2),
            (json!(2.0), 2),
            (json!(true), 1),
            (json!(false), 0),
            (json!(" 3 "), 3),
            (json!("3.0"), 3),
            (json!("3.00"), 3),
            (json!("1_000"), 1000),
            (json!("+3"), 3),
            (json!("0003"), 3),
            (json!("\t5\n"), 5),
            (json!(-0.0), 0),
            (json!(1e18), 1_000_000_000_000_000_000),
        ] {
            assert_eq!(int(&input).ok(), Some(expected), "{input}");
        }
        for (input, expected) in [
            (json!(2.5), "int_from_float"),
            (json!(null), "int_type"),
            (json!([]), "int_type"),
            (json!("abc"), "int_parsing"),
            (json!("1e3"), "int_parsing"),
            (json!("1__0"), "int_parsing"),
            (json!("_10"), "int_parsing"),
            (json!("10_"), "int_parsing"),
            (json!("3."), "int_parsing"),
            (json!("3.01"), "int_parsing"),
            (json!(".0"), "int_parsing"),
            (json!("- 3"), "int_parsing"),
            (json!("٣"), "int_parsing"),
            (json!(""), "int_parsing"),
            (json!(1e30), "int_parsing_size"),
            (json!(9.3e18), "int_parsing_size"),
            (json!(-1e19), "int_parsing_size"),
        ] {
            assert_eq!(kind(int(&input)), expected, "{input}");
        }
        assert_eq!(
            int(&json!("99999999999999999999999")).ok(),
            Some(99_999_999_999_999_999_999_999)
        );
    }

    #[test]
    fn lax_float() {
        for (input, expected) in [
            (json!("1"), 1.0),
            (json!(true), 1.0),
            (json!(false), 0.0),
            (json!(" 1.5 "), 1.5),
            (json!(".5"), 0.5),
            (json!("5."), 5.0),
            (json!("1e0"), 1.0),
            (json!("+1"), 1.0),
            (json!("1_0.5"), 10.5),
            (json!("1.5e-1"), 0.15),
            (json!(3), 3.0),
        ] {
            assert_eq!(float(&input).ok(), Some(expected), "{input}");
        }
        for s in ["inf", "infinity", "-Infinity"] {
            assert!(float(&json!(s)).is_ok_and(f64::is_infinite), "{s}");
        }
        assert!(float(&json!("-nan")).is_ok_and(f64::is_nan));
        assert_eq!(kind(float(&json!("0x1"))), "float_parsing");
        assert_eq!(kind(float(&json!(""))), "float_parsing");
        assert_eq!(kind(float(&json!([1]))), "float_type");
        assert_eq!(kind(float(&json!(null))), "float_type");
    }

    #[test]
    fn lax_bool() {
        for (input, expected) in [
            (json!("true"), true),
            (json!("yes"), true),
            (json!("TRUE"), true),
            (json!("OFF"), false),
            (json!(1), true),
            (json!(1.0), true),
            (json!(0), false),
        ] {
            assert_eq!(boolean(&input).ok(), Some(expected), "{input}");
        }
        for (input, expected) in [
            (json!("maybe"), "bool_parsing"),
            (json!(2), "bool_parsing"),
            (json!(2.0), "bool_parsing"),
            (json!(-1), "bool_parsing"),
            (json!(""), "bool_parsing"),
            (json!(" true"), "bool_parsing"),
            (json!(0.5), "bool_type"),
            (json!(9.3e18), "bool_type"),
            (json!([]), "bool_type"),
            (json!(null), "bool_type"),
        ] {
            assert_eq!(kind(boolean(&input)), expected, "{input}");
        }
    }

    #[test]
    fn literal_messages() {
        assert_eq!(expected_list(&["function"]), "'function'");
        assert_eq!(expected_list(&["wav", "mp3"]), "'wav' or 'mp3'");
        assert_eq!(
            expected_list(&["text", "json_object", "json_schema"]),
            "'text', 'json_object' or 'json_schema'"
        );
    }

    #[test]
    fn python_str_of_tags() {
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(1)), "1");
        assert_eq!(py_str(&json!(1.5)), "1.5");
        assert_eq!(py_str(&json!(2.0)), "2.0");
        assert_eq!(py_str(&json!([1])), "[1]");
        assert_eq!(py_str(&json!({"a": 1})), "{'a': 1}");
        assert_eq!(py_str(&json!(["it's"])), "[\"it's\"]");
    }

    #[test]
    fn nulls_are_stripped_like_jsonable_encoder() {
        assert_eq!(
            strip_nulls(&json!({"a": null, "b": [null, {"c": null}], "d": {"e": 1}})),
            json!({"b": [null, {}], "d": {"e": 1}})
        );
    }
}
