//! The one error type of the request path: what went wrong, where it came from, and whether a retry
//! may help. Mapping it to an HTTP status and body happens in exactly one place, in the binary's
//! `error` module, because the body shape depends on the API family the client called.

use std::time::Duration;

use serde_json::Value;

/// Where a failure originated; decides logging level and retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client sent something we refuse (validation, unknown endpoint, wrong type).
    Client,
    /// The provider failed or answered with an error.
    Upstream,
    /// Something in the gateway itself (a stopped actor, a bug).
    Internal,
}

/// A payload-free classification of the error. `label()` is what metrics and logs use, so a metric
/// label can never carry a message, a key or a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Request body failed schema validation (422, pydantic-style list in `detail`).
    Validation,
    /// Request body is bigger than the configured limit (413).
    PayloadTooLarge,
    /// The client did not send its whole body in time (408).
    BodyTimeout,
    /// The request body is compressed (`Content-Encoding`), which the gateway does not take (415).
    UnsupportedEncoding,
    /// `model` was passed on an invocation path that does not allow it (422).
    ModelNotPermitted,
    /// A provider-specific parameter rule (422 or 400, message from the provider module).
    InvalidParameter,
    /// No endpoint or route has that name (404).
    NotFound,
    /// `/v1/*` asked an endpoint of another type (400).
    WrongEndpointType,
    /// The provider does not implement this route type or streaming for it (501).
    NotImplemented,
    /// The provider answered with an HTTP error status; passed through.
    UpstreamStatus,
    /// The provider answered with a content type we cannot read (502).
    UpstreamContentType,
    /// The provider answered 2xx with a body we could not translate (502).
    UpstreamProtocol,
    /// Could not connect to the provider (502).
    UpstreamConnect,
    /// The provider took too long (504).
    UpstreamTimeout,
    /// Rate limit exceeded (429).
    RateLimited,
    /// The target is unavailable: circuit open or no actor to serve it (503).
    Unavailable,
    /// A gateway bug or a lost actor (500).
    Internal,
}

impl ErrorKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::PayloadTooLarge => "payload_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::UnsupportedEncoding => "unsupported_encoding",
            Self::ModelNotPermitted => "model_not_permitted",
            Self::InvalidParameter => "invalid_parameter",
            Self::NotFound => "not_found",
            Self::WrongEndpointType => "wrong_endpoint_type",
            Self::NotImplemented => "not_implemented",
            Self::UpstreamStatus => "upstream_status",
            Self::UpstreamContentType => "upstream_content_type",
            Self::UpstreamProtocol => "upstream_protocol",
            Self::UpstreamConnect => "upstream_connect",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    pub fn origin(self) -> Origin {
        match self {
            Self::Validation
            | Self::PayloadTooLarge
            | Self::BodyTimeout
            | Self::UnsupportedEncoding
            | Self::ModelNotPermitted
            | Self::InvalidParameter
            | Self::NotFound
            | Self::WrongEndpointType
            | Self::NotImplemented
            | Self::RateLimited => Origin::Client,
            Self::UpstreamStatus
            | Self::UpstreamContentType
            | Self::UpstreamProtocol
            | Self::UpstreamConnect
            | Self::UpstreamTimeout => Origin::Upstream,
            Self::Unavailable | Self::Internal => Origin::Internal,
        }
    }
}

/// A request-path failure. `detail` is what MLflow puts under `"detail"`: usually a string, a
/// pydantic-style list for validation errors, or the upstream's JSON object when it had no
/// `error.message`. It never contains a credential: provider modules build it from upstream bodies
/// only after the request was sent, and never from headers or URLs.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub status: u16,
    pub detail: Value,
    /// From an upstream `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, status: u16, detail: impl Into<Value>) -> Self {
        Self {
            kind,
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// MLflow's 501 for a route type a provider does not serve.
    pub fn not_implemented(route_word: &str, provider_display: &str) -> Self {
        Self::new(
            ErrorKind::NotImplemented,
            501,
            format!("The {route_word} route is not implemented for {provider_display} models."),
        )
    }

    /// Streaming asked of a provider (or route type) that cannot stream; decided before any byte.
    pub fn streaming_not_supported(route_word: &str, provider_display: &str) -> Self {
        Self::new(
            ErrorKind::NotImplemented,
            501,
            format!("The {route_word} streaming route is not implemented for {provider_display} models."),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, 500, message.into())
    }

    pub fn origin(&self) -> Origin {
        self.kind.origin()
    }

    /// Connection errors, 429 and 5xx from upstream may succeed on another try (before the first
    /// byte reached the client); nothing else does.
    pub fn retryable(&self) -> bool {
        match self.kind {
            ErrorKind::UpstreamConnect | ErrorKind::UpstreamTimeout => true,
            ErrorKind::UpstreamStatus => self.status == 429 || self.status >= 500,
            _ => false,
        }
    }

    /// Replaces every occurrence of each secret in the detail with `***`, in string values and
    /// object keys alike, and in the encodings an upstream may echo it in (see
    /// [`secret_forms`]): an upstream that echoes the key it was sent in an error message must not
    /// hand it to our client or our logs.
    pub fn redact(mut self, secrets: &[&str]) -> Self {
        let forms: Vec<String> = secrets.iter().flat_map(|s| secret_forms(s)).collect();
        if !forms.is_empty() {
            scrub_value(&mut self.detail, &forms);
        }
        self
    }

    /// The detail as one human-readable line (for `/v1` bodies and log lines).
    pub fn message(&self) -> String {
        match &self.detail {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    let loc = item
                        .get("loc")
                        .and_then(Value::as_array)
                        .map(|parts| {
                            parts
                                .iter()
                                .map(|p| match p {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                })
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    let msg = item.get("msg").and_then(Value::as_str).unwrap_or("invalid");
                    format!("{loc}: {msg}")
                })
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }
}

/// What a redacted secret becomes.
const REDACTED: &str = "***";

/// Secrets shorter than this are not scrubbed: `***` in place of every `ab` would wreck any text
/// and protect nothing (real keys are tens of characters; `ollama`-style placeholders are not
/// secret).
const MIN_SECRET_LEN: usize = 4;

/// Base64 fragments shorter than this are not scrubbed: a short run of base64 letters occurs in
/// ordinary text by chance.
const MIN_BASE64_FRAGMENT_LEN: usize = 16;

/// The sets of characters common URL encoders escape: everything but letters and digits (a
/// strict encoder), everything but RFC 3986's unreserved characters (most libraries), and the
/// same with `/` kept (Python's `urllib.parse.quote` default).
const PERCENT_ENCODE_SETS: [&percent_encoding::AsciiSet; 3] = [
    percent_encoding::NON_ALPHANUMERIC,
    &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~'),
    &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/'),
];

/// Every text form in which `secret` may come back from an upstream, longest first:
/// - as is (JSON string escapes such as `\u002d` are already decoded, since details are parsed
///   JSON);
/// - percent-encoded (a URL or form body echoed back) by each of [`PERCENT_ENCODE_SETS`], with
///   upper- and lower-case hex digits;
/// - base64, standard and URL-safe alphabets, at each of the three byte alignments it can have
///   inside a longer encoded text (an echoed `Authorization: Basic` header or a token that
///   embeds it): for each alignment, the run of characters that depends on the secret alone.
pub fn secret_forms(secret: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;

    if secret.len() < MIN_SECRET_LEN {
        return Vec::new();
    }
    let mut forms = vec![secret.to_owned()];
    for set in PERCENT_ENCODE_SETS {
        let encoded = percent_encoding::utf8_percent_encode(secret, set).to_string();
        forms.push(encoded.to_ascii_lowercase());
        forms.push(encoded);
    }
    let bytes = secret.as_bytes();
    for offset in 0..3usize {
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(bytes);
        // Character i of the encoding covers bits [6i, 6i + 6); keep those inside the secret's
        // bits [8 * offset, 8 * (offset + len)).
        let first = (8 * offset).div_ceil(6);
        let end = 8 * (offset + bytes.len()) / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let text = engine.encode(&shifted);
            if let Some(core) = text.get(first..end) {
                if core.len() >= MIN_BASE64_FRAGMENT_LEN {
                    forms.push(core.to_owned());
                }
            }
        }
    }
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    forms.dedup();
    forms
}

/// `text` with every form replaced, or `None` when it holds none (the common case: no copy).
fn scrub_text(text: &str, forms: &[String]) -> Option<String> {
    let mut scrubbed: Option<String> = None;
    for form in forms {
        let current = scrubbed.as_deref().unwrap_or(text);
        if memchr::memmem::find(current.as_bytes(), form.as_bytes()).is_some() {
            scrubbed = Some(current.replace(form.as_str(), REDACTED));
        }
    }
    scrubbed
}

fn scrub_value(value: &mut Value, forms: &[String]) {
    match value {
        Value::String(text) => {
            if let Some(scrubbed) = scrub_text(text, forms) {
                *text = scrubbed;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_value(v, forms)),
        Value::Object(map) => {
            // Keys are upstream text too (`{"sk-...": "invalid"}`); rebuilding the map keeps the
            // order, and two keys that scrub to the same text keep the later value.
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                scrub_value(&mut item, forms);
                let key = scrub_text(&key, forms).unwrap_or(key);
                map.insert(key, item);
            }
        }
        _ => {}
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status,
            self.kind.label(),
            self.message()
        )
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redact_scrubs_secrets_anywhere_in_the_detail() {
        let error = GatewayError::new(
            ErrorKind::UpstreamStatus,
            401,
            json!({"message": "bad key sk-secret-1", "nested": ["sk-secret-1!"]}),
        )
        .redact(&["sk-secret-1"]);
        assert_eq!(
            error.detail,
            json!({"message": "bad key ***", "nested": ["***!"]})
        );
    }

    #[test]
    fn redact_scrubs_object_keys_too() {
        let error = GatewayError::new(
            ErrorKind::UpstreamStatus,
            400,
            json!({"sk-CANARY-123456": "invalid", "outer": {"x sk-CANARY-123456 y": ["sk-CANARY-123456"]}}),
        )
        .redact(&["sk-CANARY-123456"]);
        assert_eq!(
            error.detail,
            json!({"***": "invalid", "outer": {"x *** y": ["***"]}})
        );
        assert!(!error.message().contains("CANARY"), "{}", error.message());
    }

    #[test]
    fn redact_scrubs_percent_encoded_and_base64_forms() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        use base64::Engine;
        let secret = "sk-CANARY/123456+abcdef=";
        let percent = "sk%2DCANARY%2F123456%2Babcdef%3D";
        for prefix in ["", "a", "ab"] {
            let basic = STANDARD.encode(format!("{prefix}{secret}"));
            let url = URL_SAFE.encode(format!("Bearer {prefix}{secret}"));
            let python = "sk-CANARY/123456%2Babcdef%3D";
            let text = format!(
                "{percent} {} {python} {basic} {url}",
                percent.to_lowercase()
            );
            let error = GatewayError::new(ErrorKind::UpstreamStatus, 401, text).redact(&[secret]);
            let message = error.message();
            for form in secret_forms(secret) {
                assert!(!message.contains(&form), "{form} in {message}");
            }
            assert!(
                !message.contains("CANARY") && !message.contains("2DCANARY"),
                "{message}"
            );
        }
    }

    #[test]
    fn short_secrets_are_not_scrubbed() {
        assert!(secret_forms("abc").is_empty());
        let error = GatewayError::new(ErrorKind::UpstreamStatus, 401, "abc abc").redact(&["abc"]);
        assert_eq!(error.detail, json!("abc abc"));
    }
}
