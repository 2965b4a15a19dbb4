//! API-key indirection: `$ENV_VAR`, a path to a key file, or the literal key.
//!
//! Only the fields MLflow resolves this way (`openai_api_key`, `anthropic_api_key`, ..., `api_key`)
//! go through here; URLs, AWS credentials and other fields are taken literally. Errors never
//! contain the key itself (nor the file's contents).

use std::path::{Path, PathBuf};

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
///
/// Whitespace around the value is trimmed before it is read (`" $OPENAI_API_KEY"` is the
/// variable, not a literal key with a space): YAML already trims plain scalars, so only a quoted
/// value can carry it, and no provider issues keys that begin or end with a space. A value that
/// looks like a path (`/`, `./`, `../`, `~`) must name a readable key file; sending the path as
/// the key would only fail later, at the provider, with the path in its `Authorization` header.
pub fn resolve_api_key(value: &Value, source: &KeySource<'_>) -> Result<Secret, String> {
    let Value::String(raw) = value else {
        return Err(KEY_NOT_A_STRING.to_owned());
    };
    if !source.resolve {
        return checked(raw.clone(), || "given in the file".to_owned());
    }
    let text = raw.trim();
    if let Some(name) = text.strip_prefix('$') {
        let name = name.trim();
        // Set-but-empty counts as unset, as in MLflow (`if env_var := os.environ.get(...)`).
        return match (source.env)(name) {
            Some(v) if !v.is_empty() => {
                checked(v, || format!("from environment variable '{name}'"))
            }
            _ => Err(missing_env_message(name, source.endpoint)),
        };
    }
    if looks_like_path(text) {
        let path = expand_home(text, source)?;
        let contents = read_key_file(text, &path, source.endpoint)?;
        return checked(contents, || format!("read from file '{text}'"));
    }
    // MLflow reads any existing file, a relative path too; what is not one is the key itself.
    if is_regular_file(Path::new(text)) {
        let contents = read_key_file(text, Path::new(text), source.endpoint)?;
        return checked(contents, || format!("read from file '{text}'"));
    }
    checked(text.to_owned(), || "given in the file".to_owned())
}

/// A key with a control character is refused: a CR/LF would inject or break HTTP headers. The
/// message says where the key came from (`origin`), never what it is.
fn checked(key: String, origin: impl FnOnce() -> String) -> Result<Secret, String> {
    if key.chars().any(char::is_control) {
        return Err(format!(
            "the API key {} contains a control character (such as a newline); it cannot be sent in an HTTP header",
            origin()
        ));
    }
    Ok(Secret::new(key))
}

fn missing_env_message(name: &str, endpoint: Option<&str>) -> String {
    format!(
        "Environment variable '{name}' is not set{}",
        needed_by(endpoint)
    )
}

/// ` (needed by endpoint 'chat')`, or nothing when resolving outside an endpoint.
fn needed_by(endpoint: Option<&str>) -> String {
    match endpoint {
        Some(endpoint) => format!(" (needed by endpoint '{endpoint}')"),
        None => String::new(),
    }
}

/// Absolute, explicitly relative and home-relative paths. No provider key starts like this
/// (they are `sk-...`, hex, base64url or JWTs); a key that would must come from `$VAR`.
fn looks_like_path(text: &str) -> bool {
    text.starts_with('/')
        || text.starts_with("./")
        || text.starts_with("../")
        || text.starts_with('~')
}

/// `~` and `~/...` become the HOME directory, as a shell would expand them (MLflow does not
/// expand them and sends `~/keys/openai.txt` as the key). `~user/...` is refused rather than
/// looked up in the user database.
fn expand_home(text: &str, source: &KeySource<'_>) -> Result<PathBuf, String> {
    let Some(rest) = text.strip_prefix('~') else {
        return Ok(PathBuf::from(text));
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(format!(
            "the API key file '{text}' cannot be read: only '~/' (the HOME directory) is expanded{}",
            needed_by(source.endpoint)
        ));
    }
    match (source.env)("HOME").filter(|home| !home.is_empty()) {
        Some(home) => Ok(PathBuf::from(format!("{home}{rest}"))),
        None => Err(format!(
            "the API key file '{text}' cannot be read: HOME is not set to expand '~'{}",
            needed_by(source.endpoint)
        )),
    }
}

fn is_regular_file(path: &Path) -> bool {
    // `is_file` follows symlinks and reports any OS error (name too long, NUL byte) as false,
    // which is what MLflow does (`pathlib.Path.is_file` inside `except OSError`).
    !path.as_os_str().is_empty() && path.is_file()
}

/// The key in the file at `path` (`text` as written in the config, for messages). The content's
/// trailing whitespace is trimmed: MLflow keeps the newline most editors add, which then breaks
/// the request header. A missing file, a directory or an unreadable file is an error.
fn read_key_file(text: &str, path: &Path, endpoint: Option<&str>) -> Result<String, String> {
    let shown = if Path::new(text) == path {
        format!("'{text}'")
    } else {
        format!("'{text}' ({})", path.display())
    };
    let needed = needed_by(endpoint);
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("the API key file {shown} does not exist{needed}"),
        _ => format!("cannot read the API key file {shown}: {e}{needed}"),
    })?;
    if metadata.is_dir() {
        return Err(format!(
            "the API key file {shown} is a directory, not a file{needed}"
        ));
    }
    if !metadata.is_file() {
        // A device or FIFO (`/dev/zero`) could be read forever.
        return Err(format!(
            "the API key file {shown} is not a regular file{needed}"
        ));
    }
    if metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "the API key file {shown} is larger than {MAX_KEY_FILE_BYTES} bytes{needed}"
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the API key file {shown}: {e}{needed}"))?;
    let contents = String::from_utf8(bytes)
        .map_err(|_| format!("the API key file {shown} is not valid UTF-8{needed}"))?;
    let trimmed = contents.trim_end();
    if trimmed.is_empty() {
        return Err(format!("the API key file {shown} is empty{needed}"));
    }
    Ok(trimmed.to_owned())
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
        assert!(
            err.contains("is empty (needed by endpoint 'chat')"),
            "{err}"
        );
    }

    /// A source whose environment has HOME set to `home` (and the variables of [`env`]).
    fn source_with_home(home: &str, run: impl FnOnce(&KeySource<'_>)) {
        let lookup = |name: &str| match name {
            "HOME" => Some(home.to_owned()),
            other => env(other),
        };
        run(&KeySource {
            env: &lookup,
            resolve: true,
            endpoint: Some("chat"),
        });
    }

    #[test]
    fn a_missing_key_file_path_is_an_error_not_the_key() {
        for text in [
            "/run/secrets/openai-key-typo",
            "./keys/missing.txt",
            "../keys/missing.txt",
        ] {
            let err = resolve_api_key(&json!(text), &source(true)).expect_err(text);
            assert_eq!(
                err,
                format!("the API key file '{text}' does not exist (needed by endpoint 'chat')")
            );
        }
    }

    #[test]
    fn a_directory_or_device_is_not_a_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().to_string_lossy().into_owned();
        let err = resolve_api_key(&json!(text), &source(true)).expect_err("directory");
        assert!(
            err.ends_with("is a directory, not a file (needed by endpoint 'chat')"),
            "{err}"
        );
        let err = resolve_api_key(&json!("/dev/zero"), &source(true)).expect_err("device");
        assert!(err.contains("is not a regular file"), "{err}");
    }

    #[test]
    fn tilde_is_the_home_directory() {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(home.path().join("keys")).expect("mkdir");
        std::fs::write(home.path().join("keys/openai.txt"), "sk-home\n").expect("write");
        let home_text = home.path().to_string_lossy().into_owned();
        source_with_home(&home_text, |source| {
            let key = resolve_api_key(&json!("~/keys/openai.txt"), source).expect("resolves");
            assert_eq!(key.expose(), "sk-home");
            let err = resolve_api_key(&json!("~/keys/typo.txt"), source).expect_err("missing");
            assert_eq!(
                err,
                format!("the API key file '~/keys/typo.txt' ({home_text}/keys/typo.txt) does not exist (needed by endpoint 'chat')")
            );
            let err = resolve_api_key(&json!("~bob/keys/openai.txt"), source).expect_err("user");
            assert!(
                err.contains("only '~/' (the HOME directory) is expanded"),
                "{err}"
            );
        });
        // `source` has no HOME.
        let err = resolve_api_key(&json!("~/keys/openai.txt"), &source(true)).expect_err("home");
        assert!(err.contains("HOME is not set"), "{err}");
    }

    #[test]
    fn whitespace_around_a_variable_or_key_is_trimmed() {
        for text in [" $SET", "$SET ", "\t$SET\n", "$ SET"] {
            let key = resolve_api_key(&json!(text), &source(true)).expect(text);
            assert_eq!(key.expose(), "from-env", "{text:?}");
        }
        let err = resolve_api_key(&json!(" $NOPE"), &source(true)).expect_err("unset");
        assert!(
            err.starts_with("Environment variable 'NOPE' is not set"),
            "{err}"
        );
        let key = resolve_api_key(&json!(" sk-literal "), &source(true)).expect("literal");
        assert_eq!(key.expose(), "sk-literal");
        let err = resolve_api_key(&json!(" /run/secrets/typo"), &source(true)).expect_err("path");
        assert!(err.contains("'/run/secrets/typo' does not exist"), "{err}");
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
