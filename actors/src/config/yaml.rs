//! The endpoint file as an untyped tree, with plain scalars typed the way MLflow's loader (PyYAML's
//! `safe_load`, YAML 1.1 rules) types them, not by YAML 1.2's rules: `y`, `n`, `1e3`, `0o17` and
//! hex-like keys such as `12e45678` stay strings; `yes`/`off`, `0x1F`, `017` (octal) and `1:20`
//! (base 60) are a boolean and numbers.
//!
//! serde-saphyr parses the text first, so syntax errors, the budget against alias bombs and error
//! positions stay its own; this module then walks the same parser's events and builds the tree.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span, Tag};

// YAML 1.1's implicit types (yaml.org/type/bool, int, float, null), as PyYAML resolves them.
const BOOL: &str =
    "^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$";
const INT: &str = "^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$";
const FLOAT: &str = r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$";
const NULL: &str = "^(?:~|null|Null|NULL|)$";

/// `None` only if a pattern above failed to compile, which the tests rule out.
static PATTERNS: LazyLock<Option<[Regex; 4]>> = LazyLock::new(|| {
    Some([
        Regex::new(BOOL).ok()?,
        Regex::new(INT).ok()?,
        Regex::new(FLOAT).ok()?,
        Regex::new(NULL).ok()?,
    ])
});

/// What a plain scalar's text means under YAML 1.1.
#[derive(Debug, PartialEq)]
enum Implicit {
    Bool,
    Int,
    Float,
    Null,
    Str,
}

fn implicit_type(text: &str) -> Implicit {
    let Some([bool_re, int_re, float_re, null_re]) = PATTERNS.as_ref() else {
        return Implicit::Str;
    };
    if bool_re.is_match(text) {
        Implicit::Bool
    } else if float_re.is_match(text) {
        Implicit::Float
    } else if int_re.is_match(text) {
        Implicit::Int
    } else if null_re.is_match(text) {
        Implicit::Null
    } else {
        Implicit::Str
    }
}

/// Builds the tree of a text serde-saphyr has already accepted. The `Err` is a message that ends
/// with the position of the offending node.
pub(crate) fn build_tree(text: &str) -> Result<Value, String> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
    };
    loop {
        match builder.next()? {
            (Event::StreamStart | Event::DocumentStart(..), _) => {}
            // No node at all: an empty file, or one of comments only.
            (Event::StreamEnd | Event::DocumentEnd, _) => return Ok(Value::Null),
            (event, span) => return builder.node(event, span),
        }
    }
}

struct Builder<'a> {
    parser: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    /// Anchor id → the node it names, for aliases (the first pass bounded how often they repeat).
    anchors: HashMap<usize, Value>,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), String> {
        loop {
            match self.parser.next_event() {
                None => return Err("unexpected end of the YAML stream".to_owned()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok((Event::Anchor(..), _))) => {}
                Some(Ok(pair)) => return Ok(pair),
            }
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Value, String> {
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                (scalar(&text, style, tag.as_deref(), span)?, anchor)
            }
            Event::SequenceStart(_, anchor, _) => (Value::Array(self.sequence()?), anchor),
            Event::MappingStart(_, anchor, _) => (Value::Object(self.mapping()?), anchor),
            Event::Alias(id) => {
                return self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| format!("alias to an unknown anchor{}", at(span)));
            }
            other => return Err(format!("unexpected YAML event {other:?}{}", at(span))),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    fn sequence(&mut self) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        loop {
            match self.next()? {
                (Event::SequenceEnd, _) => return Ok(items),
                (event, span) => items.push(self.node(event, span)?),
            }
        }
    }

    /// A mapping, with PyYAML's merge keys: `<<: *base` (or `<<: [*a, *b]`) adds the keys the
    /// mapping lacks. Precedence as in PyYAML: the mapping's own keys, then the last `<<` entry,
    /// and within a list the first mapping.
    fn mapping(&mut self) -> Result<Map<String, Value>, String> {
        let mut own = Map::new();
        let mut merges: Vec<Vec<Map<String, Value>>> = Vec::new();
        loop {
            let (key_event, key_span) = self.next()?;
            let key = match key_event {
                Event::MappingEnd => break,
                Event::Scalar(text, style, _, _) if style == ScalarStyle::Plain && text == "<<" => {
                    let (event, span) = self.next()?;
                    merges.push(merge_sources(self.node(event, span)?, span)?);
                    continue;
                }
                Event::Scalar(text, ..) => text.into_owned(),
                Event::Alias(id) => match self.anchors.get(&id) {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(_) | Value::Object(_)) | None => {
                        return Err(format!("found an unhashable key{}", at(key_span)));
                    }
                    Some(other) => other.to_string(),
                },
                _ => return Err(format!("found an unhashable key{}", at(key_span))),
            };
            let (event, span) = self.next()?;
            let value = self.node(event, span)?;
            // Two equal keys: the last wins, as in PyYAML.
            own.insert(key, value);
        }
        if merges.is_empty() {
            return Ok(own);
        }
        let mut out = Map::new();
        for source in merges.into_iter().rev().flatten() {
            for (key, value) in source {
                out.entry(key).or_insert(value);
            }
        }
        for (key, value) in own {
            out.insert(key, value);
        }
        Ok(out)
    }
}

fn merge_sources(value: Value, span: Span) -> Result<Vec<Map<String, Value>>, String> {
    let not_mergeable = || {
        format!(
            "expected a mapping or a list of mappings for merging{}",
            at(span)
        )
    };
    match value {
        Value::Object(map) => Ok(vec![map]),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map),
                _ => Err(not_mergeable()),
            })
            .collect(),
        _ => Err(not_mergeable()),
    }
}

fn at(span: Span) -> String {
    format!(
        " at line {}, column {}",
        span.start.line(),
        span.start.col() + 1
    )
}

/// A scalar's value: quoted and block scalars are strings; a plain one is typed by its text; an
/// explicit core tag (`!!str`, `!!int`, ...) decides on its own.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>, span: Span) -> Result<Value, String> {
    let kind = match tag {
        Some(t) if t.is_yaml_core_schema_tag("str") => Implicit::Str,
        Some(t) if t.is_yaml_core_schema_tag("int") => Implicit::Int,
        Some(t) if t.is_yaml_core_schema_tag("float") => Implicit::Float,
        Some(t) if t.is_yaml_core_schema_tag("bool") => Implicit::Bool,
        Some(t) if t.is_yaml_core_schema_tag("null") => Implicit::Null,
        _ if style == ScalarStyle::Plain => implicit_type(text),
        _ => Implicit::Str,
    };
    let invalid = |what: &str| format!("'{text}' is not a valid {what}{}", at(span));
    match kind {
        Implicit::Str => Ok(Value::String(text.to_owned())),
        Implicit::Null => Ok(Value::Null),
        Implicit::Bool => match text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" => Ok(Value::Bool(true)),
            "no" | "false" | "off" => Ok(Value::Bool(false)),
            _ => Err(invalid("boolean")),
        },
        Implicit::Int => int(text).ok_or_else(|| invalid("integer")),
        Implicit::Float => match float(text) {
            Some(f) if f.is_finite() => Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| invalid("float")),
            Some(_) => Err(format!(
                "non-finite float `{text}` is not supported{}",
                at(span)
            )),
            None => Err(invalid("float")),
        },
    }
}

/// Splits a number's text into its sign and its digits with `_` removed.
fn sign_and_digits(text: &str) -> (f64, String) {
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    match digits.strip_prefix('-') {
        Some(rest) => (-1.0, rest.to_owned()),
        None => (1.0, digits.strip_prefix('+').unwrap_or(&digits).to_owned()),
    }
}

/// YAML 1.1 integers: `0b` binary, `0x` hex, a leading `0` octal, `:`-separated base 60.
/// Exact as `i64`/`u64` when it fits; PyYAML's integers are unbounded, so a longer one becomes a
/// float, correctly rounded for decimals and within rounding otherwise (no config field takes one
/// that big, and the field check then says so).
fn int(text: &str) -> Option<Value> {
    let (sign, digits) = sign_and_digits(text);
    let (body, radix) = if let Some(bin) = digits.strip_prefix("0b") {
        (bin, 2)
    } else if let Some(hex) = digits.strip_prefix("0x") {
        (hex, 16)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (digits.as_str(), 8)
    } else {
        (digits.as_str(), 10)
    };
    if body.is_empty() {
        return None; // `0b_`, `0x_`: PyYAML fails on these too
    }
    let exact = if body.contains(':') {
        body.split(':').try_fold(0u128, |total, part| {
            total
                .checked_mul(60)?
                .checked_add(part.parse::<u128>().ok()?)
        })
    } else {
        u128::from_str_radix(body, radix).ok()
    };
    let Some(magnitude) = exact else {
        let approximate = if body.contains(':') {
            base_60(body)?
        } else if radix == 10 {
            body.parse::<f64>().ok()? // correctly rounded, as Python's float(int) is
        } else {
            body.chars().try_fold(0.0, |total: f64, c| {
                Some(total * f64::from(radix) + f64::from(c.to_digit(radix)?))
            })?
        };
        return Number::from_f64(sign * approximate).map(Value::Number);
    };
    let number = if sign < 0.0 {
        i128::try_from(magnitude)
            .ok()
            .and_then(|m| i64::try_from(-m).ok())
            .map(Number::from)
    } else {
        u64::try_from(magnitude).ok().map(Number::from)
    };
    Some(Value::Number(match number {
        Some(n) => n,
        None => Number::from_f64(sign * magnitude as f64)?,
    }))
}

/// `a:b:c` as `(a * 60 + b) * 60 + c`.
fn base_60(digits: &str) -> Option<f64> {
    digits.split(':').try_fold(0.0, |total: f64, part| {
        Some(total * 60.0 + part.parse::<f64>().ok()?)
    })
}

/// YAML 1.1 floats: `.inf`, `.nan`, `:`-separated base 60, or a decimal (a `.` is required).
fn float(text: &str) -> Option<f64> {
    let (sign, digits) = sign_and_digits(&text.to_ascii_lowercase());
    match digits.as_str() {
        ".inf" => Some(sign * f64::INFINITY),
        ".nan" => Some(f64::NAN),
        _ if digits.contains(':') => base_60(&digits).map(|f| sign * f),
        _ => digits.parse::<f64>().ok().map(|f| sign * f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree(text: &str) -> Value {
        build_tree(text).unwrap()
    }

    fn scalar_of(text: &str) -> Value {
        tree(&format!("a: {text}\n"))["a"].clone()
    }

    fn assert_refused(text: &str, reason: &str) {
        let err = build_tree(text).unwrap_err();
        assert!(err.contains(reason), "{err}");
    }

    #[test]
    fn the_patterns_compile() {
        assert!(PATTERNS.is_some());
    }

    /// Each pair was checked against PyYAML 6 `yaml.safe_load`.
    #[test]
    fn plain_scalars_are_typed_as_pyyaml_types_them() {
        let cases = [
            ("y", json!("y")),
            ("n", json!("n")),
            ("N", json!("N")),
            ("yes", json!(true)),
            ("On", json!(true)),
            ("OFF", json!(false)),
            ("NO", json!(false)),
            ("True", json!(true)),
            ("tRue", json!("tRue")),
            ("~", json!(null)),
            ("Null", json!(null)),
            ("", json!(null)),
            ("nULL", json!("nULL")),
            ("1e3", json!("1e3")),
            ("1.0e3", json!("1.0e3")),
            ("1.0e+3", json!(1000.0)),
            ("12e45678", json!("12e45678")),
            ("0o17", json!("0o17")),
            ("017", json!(15)),
            ("09", json!("09")),
            ("0", json!(0)),
            ("-0", json!(0)),
            ("+12", json!(12)),
            ("1_000", json!(1000)),
            ("0x1F", json!(31)),
            ("-0x1f", json!(-31)),
            ("0b101", json!(5)),
            ("1:20", json!(80)),
            ("-1:20", json!(-80)),
            ("1:20.5", json!(80.5)),
            (".5", json!(0.5)),
            ("1.", json!(1.0)),
            ("-1_0.2_5", json!(-10.25)),
            ("2024-02-01", json!("2024-02-01")),
            ("18446744073709551615", json!(18446744073709551615u64)),
            ("-9223372036854775808", json!(-9223372036854775808i64)),
            ("abc", json!("abc")),
            ("=", json!("=")),
        ];
        for (text, expected) in cases {
            assert_eq!(scalar_of(text), expected, "{text:?}");
        }
    }

    #[test]
    fn quoted_and_block_scalars_are_strings() {
        assert_eq!(
            tree("a: 'yes'\nb: \"017\"\nc: |\n  1.0e+3\n"),
            json!({"a": "yes", "b": "017", "c": "1.0e+3\n"})
        );
    }

    #[test]
    fn core_tags_decide_the_type() {
        assert_eq!(
            tree("a: !!str 017\nb: !!int '017'\nc: !!float '1'\nd: !!bool 'off'\ne: !!null ''\n"),
            json!({"a": "017", "b": 15, "c": 1.0, "d": false, "e": null})
        );
        assert_refused("a: !!int x\n", "'x' is not a valid integer at line 1");
    }

    #[test]
    fn non_finite_floats_are_refused_with_their_position() {
        for text in [".inf", "-.Inf", ".NaN", "1.0e+400"] {
            let err = build_tree(&format!("a:\n  b: {text}\n")).unwrap_err();
            assert!(err.contains(&format!("`{text}`")), "{err}");
            assert!(err.ends_with("at line 2, column 6"), "{err}");
        }
    }

    #[test]
    fn huge_integers_become_floats() {
        assert_eq!(
            scalar_of("123456789012345678901234567890"),
            json!(1.2345678901234568e29)
        );
        assert_eq!(
            scalar_of("-18446744073709551616"),
            json!(-18446744073709551616.0)
        );
        assert_eq!(
            scalar_of(&format!("0x{}", "f".repeat(40))),
            json!(16f64.powi(40))
        );
        // Summed in floats, so within rounding of 60^30.
        let base_60 = scalar_of(&format!("1{}", ":00".repeat(30)));
        let expected = 60f64.powi(30);
        assert!(
            (base_60.as_f64().unwrap() - expected).abs() < expected * 1e-12,
            "{base_60}"
        );
        assert_refused("a: 0x_\n", "'0x_' is not a valid integer");
        assert_refused("a: ._\n", "'._' is not a valid float");
    }

    #[test]
    fn aliases_repeat_their_anchor_and_merge_keys_fill_in_what_is_missing() {
        let text = "\
base: &base {provider: openai, name: a, config: {k: 1}}
other: &other {name: b, extra: 2}
one: {<<: *base, name: c}
two:
  <<: [*other, *base]
  config: {k: 3}
list: [*base, *other]
";
        assert_eq!(
            tree(text),
            json!({
                "base": {"provider": "openai", "name": "a", "config": {"k": 1}},
                "other": {"name": "b", "extra": 2},
                "one": {"provider": "openai", "name": "c", "config": {"k": 1}},
                "two": {"name": "b", "extra": 2, "provider": "openai", "config": {"k": 3}},
                "list": [
                    {"provider": "openai", "name": "a", "config": {"k": 1}},
                    {"name": "b", "extra": 2}
                ],
            })
        );
        // Two `<<` entries: the later one wins (PyYAML appends each in turn).
        assert_eq!(
            tree("a: &a {k: 1}\nb: &b {k: 2}\nc: {<<: *a, <<: *b}\n")["c"],
            json!({"k": 2})
        );
        assert_refused(
            "a: &x 1\nb: {<<: *x}\n",
            "expected a mapping or a list of mappings for merging",
        );
    }

    #[test]
    fn keys_are_their_text_and_the_last_of_two_equal_keys_wins() {
        assert_eq!(
            tree("1: a\nyes: b\nk: c\nk: d\n"),
            json!({"1": "a", "yes": "b", "k": "d"})
        );
        assert_refused("? [a]\n: b\n", "unhashable key");
    }

    #[test]
    fn an_empty_document_is_null() {
        assert_eq!(tree(""), Value::Null);
        assert_eq!(tree("---\n...\n"), Value::Null);
    }
}
