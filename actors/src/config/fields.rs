//! Reading typed fields out of the untyped YAML tree, with pydantic-style messages and YAML paths.
//!
//! The loader deserialises the file into a `serde_json::Value` and walks it by hand (rather than
//! with serde structs) so that every problem is collected, not just the first, and each one names
//! its exact path, e.g. `endpoints[2].model.config.openai_api_key`.
//!
//! One deliberate leniency: an explicit `null` on a field that has a default means "use the
//! default" (pydantic would reject it). It changes nothing for files MLflow accepts.

use serde_json::{Map, Value};

use super::load::ConfigIssue;

pub(crate) const FIELD_REQUIRED: &str = "Field required";
pub(crate) const NOT_A_STRING: &str = "Input should be a valid string";
pub(crate) const NOT_A_DICT: &str = "Input should be a valid dictionary";
pub(crate) const NOT_A_LIST: &str = "Input should be a valid list";
pub(crate) const NOT_AN_INT: &str = "Input should be a valid integer";
pub(crate) const NOT_AN_INT_FRACTION: &str =
    "Input should be a valid integer, got a number with a fractional part";
pub(crate) const NOT_AN_INT_STRING: &str =
    "Input should be a valid integer, unable to parse string as an integer";
pub(crate) const UNKNOWN_KEY: &str = "unknown key, ignored";

/// Every error and warning found so far; loading fails if `errors` is not empty at the end.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub errors: Vec<ConfigIssue>,
    pub warnings: Vec<ConfigIssue>,
}

impl Report {
    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigIssue {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(ConfigIssue {
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

/// `endpoints` + `name` → `endpoints.name`; an empty parent is the document root.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Reads an integer as pydantic's lax mode does: integral floats (`80.0`) pass, fractional ones
/// and booleans do not; decimal strings only where `strings` is set (the raw-dict checks MLflow
/// runs on traffic percentages crash on strings, so they are not accepted there).
pub(crate) fn int_value(value: &Value, strings: bool) -> Result<i64, &'static str> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.as_u64().is_some() {
                // Larger than i64: no config field is meaningful at that size.
                Err(NOT_AN_INT)
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                    Some(f) if f.is_finite() && f.fract() != 0.0 => Err(NOT_AN_INT_FRACTION),
                    _ => Err(NOT_AN_INT),
                }
            }
        }
        Value::String(s) if strings => s.trim().parse::<i64>().map_err(|_| NOT_AN_INT_STRING),
        _ => Err(NOT_AN_INT),
    }
}

/// A mapping in the tree and its path.
pub(crate) struct Obj<'v> {
    pub map: &'v Map<String, Value>,
    pub path: String,
}

impl<'v> Obj<'v> {
    /// `None` (after recording an error) when `value` is not a mapping.
    pub fn new(rep: &mut Report, value: &'v Value, path: String) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Self { map, path }),
            _ => {
                rep.error(&path, NOT_A_DICT);
                None
            }
        }
    }

    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value under `key`, treating an explicit `null` like a missing key.
    pub fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// MLflow ignores unknown keys everywhere; we accept them too but say so, since a typo
    /// (`confg:`) would otherwise silently change behaviour.
    pub fn warn_unknown(&self, rep: &mut Report, known: &[&str]) {
        for key in self.map.keys() {
            if !known.contains(&key.as_str()) {
                rep.warn(&self.at(key), UNKNOWN_KEY);
            }
        }
    }

    /// A required string: missing → "Field required", anything but a string (null included) →
    /// "Input should be a valid string".
    pub fn req_str(&self, rep: &mut Report, key: &str) -> Option<String> {
        match self.map.get(key) {
            None => {
                rep.error(&self.at(key), FIELD_REQUIRED);
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                rep.error(&self.at(key), NOT_A_STRING);
                None
            }
        }
    }

    /// An optional string; `Err(())` (already reported) when present but not a string.
    pub fn opt_str(&self, rep: &mut Report, key: &str) -> Result<Option<String>, ()> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => {
                rep.error(&self.at(key), NOT_A_STRING);
                Err(())
            }
        }
    }

    /// A defaulted string; a wrong type is reported and the default stands in.
    pub fn str_or(&self, rep: &mut Report, key: &str, default: &str) -> String {
        self.opt_str(rep, key)
            .ok()
            .flatten()
            .unwrap_or_else(|| default.to_owned())
    }

    /// An optional integer within `min..=max`; `Err(())` once reported.
    pub fn opt_int(
        &self,
        rep: &mut Report,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ()> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match int_value(value, false) {
            Ok(n) if n < min => {
                rep.error(
                    &self.at(key),
                    format!("Input should be greater than or equal to {min}"),
                );
                Err(())
            }
            Ok(n) if n > max => {
                rep.error(
                    &self.at(key),
                    format!("Input should be less than or equal to {max}"),
                );
                Err(())
            }
            Ok(n) => Ok(Some(n)),
            Err(message) => {
                rep.error(&self.at(key), message);
                Err(())
            }
        }
    }
}

/// Renders a scalar for an error message the way Python's `str()` would (strings bare).
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_value_follows_pydantic_lax_mode() {
        assert_eq!(int_value(&json!(80), false), Ok(80));
        assert_eq!(int_value(&json!(80.0), false), Ok(80));
        assert_eq!(int_value(&json!(-3), false), Ok(-3));
        assert_eq!(int_value(&json!(80.5), false), Err(NOT_AN_INT_FRACTION));
        assert_eq!(int_value(&json!("80"), false), Err(NOT_AN_INT));
        assert_eq!(int_value(&json!("80"), true), Ok(80));
        assert_eq!(int_value(&json!("eighty"), true), Err(NOT_AN_INT_STRING));
        assert_eq!(int_value(&json!(true), true), Err(NOT_AN_INT));
        assert_eq!(int_value(&json!(u64::MAX), false), Err(NOT_AN_INT));
    }

    #[test]
    fn unknown_keys_become_warnings_with_their_path() {
        let value = json!({"known": 1, "confg": 2});
        let mut rep = Report::default();
        let obj = Obj::new(&mut rep, &value, "endpoints[0].model".into()).expect("map");
        obj.warn_unknown(&mut rep, &["known"]);
        assert!(rep.errors.is_empty());
        assert_eq!(
            rep.warnings,
            vec![ConfigIssue {
                path: "endpoints[0].model.confg".into(),
                message: UNKNOWN_KEY.into()
            }]
        );
    }

    #[test]
    fn required_string_reports_missing_and_wrong_type() {
        let value = json!({"n": 5, "s": "ok", "z": null});
        let mut rep = Report::default();
        let obj = Obj::new(&mut rep, &value, "x".into()).expect("map");
        assert_eq!(obj.req_str(&mut rep, "s").as_deref(), Some("ok"));
        assert_eq!(obj.req_str(&mut rep, "n"), None);
        assert_eq!(obj.req_str(&mut rep, "z"), None);
        assert_eq!(obj.req_str(&mut rep, "missing"), None);
        let got: Vec<_> = rep.errors.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            got,
            [
                "x.n: Input should be a valid string",
                "x.z: Input should be a valid string",
                "x.missing: Field required"
            ]
        );
    }
}
