//! Python's `json.dumps(value)` with its defaults (`", "` and `": "` separators, non-ASCII
//! escaped as `\uXXXX`), because MLflow builds a tool call's `arguments` string that way from
//! a provider's structured tool input (Bedrock's `toolUse.input`, Gemini's `functionCall.args`),
//! and clients compare those strings across gateways.

use serde_json::Value;

/// `json.dumps(value)` as CPython writes it.
pub fn dumps(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
            Some(float) => out.push_str(&float_repr(float)),
            None => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation (always with a
/// fractional part) for exponents from -4 to 15, otherwise as `d.ddde±XX`.
pub fn float_repr(value: f64) -> String {
    // Rust's `{:e}` gives the same shortest round-trip digits: `-1.2345e-7`, `1e16`, `0e0`.
    let scientific = format!("{value:e}");
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    if !(-4..16).contains(&exp) {
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs());
    }
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let body = if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
        } else {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    format!("{sign}{body}")
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_cpython_json_dumps() {
        // Expected strings printed by CPython 3.11's json.dumps.
        assert_eq!(
            dumps(
                &json!({"a": [1.5e16, 1e-5, 0.0001, 123.0, -0.0, 1e15, "é😀\u{7f}\u{1}"], "b": {}})
            ),
            r#"{"a": [1.5e+16, 1e-05, 0.0001, 123.0, -0.0, 1000000000000000.0, "\u00e9\ud83d\ude00\u007f\u0001"], "b": {}}"#
        );
        assert_eq!(
            dumps(&json!([1, -2, 0.5, true, null, "q\"\\\n/"])),
            r#"[1, -2, 0.5, true, null, "q\"\\\n/"]"#
        );
    }

    #[test]
    fn matches_python_defaults() {
        assert_eq!(
            dumps(&json!({"city": "Singapore"})),
            r#"{"city": "Singapore"}"#
        );
        assert_eq!(
            dumps(&json!({"a": [1, 2.5, true, null], "b": {}})),
            r#"{"a": [1, 2.5, true, null], "b": {}}"#
        );
        assert_eq!(dumps(&json!("é😀\n\"")), r#""\u00e9\ud83d\ude00\n\"""#);
        assert_eq!(dumps(&json!(1e16)), "1e+16");
        assert_eq!(dumps(&json!(0.5)), "0.5");
        assert_eq!(dumps(&json!(0.00001)), "1e-05");
        for (value, python) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (123.456, "123.456"),
            (-2.5e-7, "-2.5e-07"),
            (1e15, "1000000000000000.0"),
            (1.2345678901234567e16, "1.2345678901234568e+16"),
            (1e300, "1e+300"),
        ] {
            assert_eq!(float_repr(value), python, "{value}");
        }
        assert_eq!(dumps(&json!("\u{7f}")), r#""\u007f""#);
    }
}
