//! Shared test helpers: a known-good sample config, one-field edits of it, and an injected
//! environment (tests never call `set_var`).

use serde_json::{json, Value};

use super::load::{load_str, ConfigErrors, LoadOptions, Loaded};

/// Every variable is set to `test-key`, except `UNSET` (absent) and `EMPTY` (empty).
pub(crate) fn test_env(name: &str) -> Option<String> {
    match name {
        "UNSET" => None,
        "EMPTY" => Some(String::new()),
        _ => Some("test-key".to_owned()),
    }
}

pub(crate) fn opts() -> LoadOptions<'static> {
    LoadOptions {
        env: &test_env,
        resolve_keys: true,
        allowed_providers: None,
    }
}

/// A valid config touching every part: three endpoint types, a limit, a traffic route.
pub(crate) fn good() -> Value {
    json!({
        "endpoints": [
            {
                "name": "chat",
                "endpoint_type": "llm/v1/chat",
                "model": {
                    "provider": "openai",
                    "name": "gpt-4o-mini",
                    "config": {"openai_api_key": "$OPENAI_API_KEY"}
                },
                "limit": {"renewal_period": "minute", "calls": 10}
            },
            {
                "name": "chat-2",
                "endpoint_type": "llm/v1/chat",
                "model": {
                    "provider": "anthropic",
                    "name": "claude-3-5-sonnet-latest",
                    "config": {"anthropic_api_key": "literal-key"}
                }
            },
            {
                "name": "embeddings",
                "endpoint_type": "llm/v1/embeddings",
                "model": {"provider": "mock", "name": "mock-embed"}
            }
        ],
        "routes": [
            {
                "name": "chat-split",
                "task_type": "llm/v1/chat",
                "destinations": [
                    {"name": "chat", "traffic_percentage": 80},
                    {"name": "chat-2", "traffic_percentage": 20}
                ],
                "routing_strategy": "TRAFFIC_SPLIT"
            }
        ]
    })
}

/// `good()` with the value at a JSON pointer replaced (`/endpoints/0/name`).
pub(crate) fn with(pointer: &str, value: Value) -> Value {
    let mut doc = good();
    set(&mut doc, pointer, value);
    doc
}

/// `good()` with the key at a JSON pointer removed.
pub(crate) fn without(pointer: &str) -> Value {
    let mut doc = good();
    remove(&mut doc, pointer);
    doc
}

pub(crate) fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let parent = doc.pointer_mut(parent).expect("parent exists");
    match parent {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => {
            let i: usize = key.parse().expect("index");
            items[i] = value;
        }
        other => panic!("cannot set inside {other}"),
    }
}

pub(crate) fn remove(doc: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    match doc.pointer_mut(parent).expect("parent exists") {
        Value::Object(map) => {
            map.shift_remove(key).expect("key exists");
        }
        Value::Array(items) => {
            items.remove(key.parse().expect("index"));
        }
        other => panic!("cannot remove inside {other}"),
    }
}

/// JSON is YAML, so a `Value` document goes through the real YAML loader.
pub(crate) fn load(doc: &Value) -> Result<Loaded, ConfigErrors> {
    load_str(&doc.to_string(), &opts())
}

pub(crate) fn load_with(doc: &Value, opts: &LoadOptions<'_>) -> Result<Loaded, ConfigErrors> {
    load_str(&doc.to_string(), opts)
}

/// The errors of a document that must fail, as `path: message` lines.
pub(crate) fn errors(doc: &Value) -> Vec<String> {
    match load(doc) {
        Ok(_) => panic!("expected errors for {doc}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts the document fails with exactly one error, at `path`, with `message`.
#[track_caller]
pub(crate) fn assert_error(doc: &Value, path: &str, message: &str) {
    assert_eq!(errors(doc), vec![format!("{path}: {message}")]);
}

/// The warnings of a document that must load, as `path: message` lines.
pub(crate) fn warnings(doc: &Value) -> Vec<String> {
    match load(doc) {
        Ok(loaded) => loaded.warnings.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("expected success, got:\n{e}"),
    }
}
