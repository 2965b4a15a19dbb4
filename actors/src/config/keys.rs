//! API-key indirection (spec §1.4): `$ENV_VAR`, a path to a key file, or the literal key.
//!
//! Only the API-key fields listed in the spec go through here; URLs, AWS credentials and other
//! fields are taken literally. Errors never contain the key itself (nor the file's contents).

use std::path::Path;

use serde_json::Value;

use super::model::Secret;

/// MLflow's message when a key field holds a number, list, mapping…
pub const KEY_NOT_A_STRING: &str = "The api key provided is not a string. Please provide either an environment variable key, a path to a file containing the api key, or the api key itself";

/// A key file bigger than this is certainly not a key; refusing it avoids reading a huge file
/// that a literal key happened to name.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Where a key is being resolved and how.
pub struct KeySource<'a> {
    /// Environment lookup; injected so tests never touch the process environment.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// MLflow's `MLFLOW_GATEWAY_RESOLVE_API_KEY_FROM_ENV` / `..._FROM_FILE`, both at once. When
    /// false the value is used literally (MLflow's pre-start CLI validation).
    pub resolve: bool,
    /// The endpoint (or route) name, so a missing variable names what needs it.
    pub endpoint: Option<&'a str>,
}

/// Resolves one API-key value. The `Err` is a message without a path; the caller adds it.
pub fn resolve_api_key(value: &Value, source: &KeySource<'_>) -> Result<Secret, String> {
    let Value::String(text) = value else {
        return Err(KEY_NOT_A_STRING.to_owned());
    };
    let resolved = if !source.resolve {
        text.clone()
    } else if let Some(name) = text.strip_prefix('$') {
        // Set-but-empty counts as unset, as in MLflow (`if env_var := os.environ.get(...)`).
        match (source.env)(name) {
            Some(v) if !v.is_empty() => v,
            _ => return Err(missing_env_message(name, source.endpoint)),
        }
    } else if let Some(contents) = read_key_file(text)? {
        contents
    } else {
        text.clone()
    };
    if resolved.chars().any(char::is_control) {
        // A CR/LF would inject or break HTTP headers; say where, never what.
        return Err(format!(
            "the API key {} contains a control character (such as a newline); it cannot be sent in an HTTP header",
            origin(text, source.resolve)
        ));
    }
    Ok(Secret::new(resolved))
}

fn missing_env_message(name: &str, endpoint: Option<&str>) -> String {
    let base = format!("Environment variable '{name}' is not set");
    match endpoint {
        Some(endpoint) => format!("{base} (needed by endpoint '{endpoint}')"),
        None => base,
    }
}

/// Describes where a key came from without revealing it: a variable name or a file path is not
/// secret, but a literal is.
fn origin(text: &str, resolve: bool) -> String {
    if resolve {
        if let Some(name) = text.strip_prefix('$') {
            return format!("from environment variable '{name}'");
        }
        if is_regular_file(text) {
            return format!("read from file '{text}'");
        }
    }
    "given in the file".to_owned()
}

fn is_regular_file(text: &str) -> bool {
    // `is_file` follows symlinks and reports any OS error (name too long, NUL byte) as false,
    // which is what MLflow does (`pathlib.Path.is_file` inside `except OSError`).
    !text.is_empty() && Path::new(text).is_file()
}

/// `Ok(None)` when `text` is not an existing regular file. The content's trailing whitespace is
/// trimmed: MLflow keeps the newline most editors add, which then breaks the request header.
fn read_key_file(text: &str) -> Result<Option<String>, String> {
    if !is_regular_file(text) {
        return Ok(None);
    }
    let path = Path::new(text);
    let too_big = path
        .metadata()
        .map(|m| m.len() > MAX_KEY_FILE_BYTES)
        .unwrap_or(false);
    if too_big {
        return Err(format!(
            "the API key file '{text}' is larger than {MAX_KEY_FILE_BYTES} bytes"
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read the API key file '{text}': {e}"))?;
    let contents = String::from_utf8(bytes)
        .map_err(|_| format!("the API key file '{text}' is not valid UTF-8"))?;
    let trimmed = contents.trim_end();
    if trimmed.is_empty() {
        return Err(format!("the API key file '{text}' is empty"));
    }
    Ok(Some(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("from-env".to_owned()),
            "EMPTY" => Some(String::new()),
            "NEWLINE" => Some("abc\r\nX-Injected: 1".to_owned()),
            _ => None,
        }
    }

    fn source(resolve: bool) -> KeySource<'static> {
        KeySource {
            env: &env,
            resolve,
            endpoint: Some("chat"),
        }
    }

    #[test]
    fn env_var_that_is_set_is_used() {
        let key = resolve_api_key(&json!("$SET"), &source(true)).expect("resolves");
        assert_eq!(key.expose(), "from-env");
    }

    #[test]
    fn unset_env_var_names_variable_and_endpoint() {
        let err = resolve_api_key(&json!("$NOPE"), &source(true)).expect_err("unset");
        assert_eq!(
            err,
            "Environment variable 'NOPE' is not set (needed by endpoint 'chat')"
        );
    }

    #[test]
    fn empty_env_var_counts_as_unset() {
        let err = resolve_api_key(&json!("$EMPTY"), &source(true)).expect_err("empty");
        assert!(
            err.starts_with("Environment variable 'EMPTY' is not set"),
            "{err}"
        );
    }

    #[test]
    fn env_value_with_newline_is_rejected_without_printing_it() {
        let err = resolve_api_key(&json!("$NEWLINE"), &source(true)).expect_err("control");
        assert!(err.contains("control character"), "{err}");
        assert!(err.contains("'NEWLINE'"), "{err}");
        assert!(!err.contains("abc") && !err.contains("Injected"), "{err}");
    }

    #[test]
    fn key_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.txt");
        std::fs::write(&path, "sk-file-key\n\n  ").expect("write");
        let text = path.to_string_lossy().into_owned();
        let key = resolve_api_key(&json!(text), &source(true)).expect("resolves");
        assert_eq!(key.expose(), "sk-file-key");
    }

    #[test]
    fn key_file_with_inner_newline_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.txt");
        std::fs::write(&path, "secret-part-one\nsecret-part-two\n").expect("write");
        let text = path.to_string_lossy().into_owned();
        let err = resolve_api_key(&json!(text), &source(true)).expect_err("control");
        assert!(err.contains("read from file"), "{err}");
        assert!(!err.contains("secret-part"), "{err}");
    }

    #[test]
    fn empty_key_file_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.txt");
        std::fs::write(&path, "\n").expect("write");
        let text = path.to_string_lossy().into_owned();
        let err = resolve_api_key(&json!(text), &source(true)).expect_err("empty");
        assert!(err.ends_with("is empty"), "{err}");
    }

    #[test]
    fn literal_key_is_used_as_is() {
        let key = resolve_api_key(&json!("sk-literal"), &source(true)).expect("literal");
        assert_eq!(key.expose(), "sk-literal");
    }

    #[test]
    fn literal_key_with_control_character_is_rejected_without_printing_it() {
        let err = resolve_api_key(&json!("sk-lit\u{0}eral"), &source(true)).expect_err("nul");
        assert!(err.contains("given in the file"), "{err}");
        assert!(!err.contains("sk-lit"), "{err}");
    }

    #[test]
    fn without_resolution_values_are_literal() {
        let key = resolve_api_key(&json!("$NOPE"), &source(false)).expect("literal");
        assert_eq!(key.expose(), "$NOPE");
    }

    #[test]
    fn non_string_key_gets_mlflow_message() {
        for value in [
            json!(123),
            json!(["a"]),
            json!({"a": 1}),
            json!(true),
            Value::Null,
        ] {
            let err = resolve_api_key(&value, &source(true)).expect_err("not a string");
            assert_eq!(err, KEY_NOT_A_STRING);
        }
    }
}
