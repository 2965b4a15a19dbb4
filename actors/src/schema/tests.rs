//! End-to-end schema tests: body bytes through parsing and validation to the upstream JSON or the
//! 422 error list, compared byte for byte with what MLflow 3.17.2 produces.

use serde_json::{json, Value};

use super::*;
use crate::config::EndpointType;

use super::mlflow_cases::{Route, MLFLOW_CASES};

/// Parses and validates `body`, returning the status and the compact JSON MLflow would produce:
/// the upstream payload on success, the `detail` list on failure.
fn run(route: Route, body: &str) -> (u16, String) {
    let result = parse_json_body(Some("application/json"), body.as_bytes())
        .and_then(|v| UnifiedRequest::validate(route.endpoint_type(), v));
    match result {
        Ok(req) => (200, serde_json::to_string(&req).expect("serialises")),
        Err(e) => (e.status, e.detail.to_string()),
    }
}

fn validate(route: Route, body: Value) -> UnifiedRequest {
    UnifiedRequest::validate(route.endpoint_type(), body).expect("valid request")
}

fn errors(route: Route, body: Value) -> Value {
    let e = UnifiedRequest::validate(route.endpoint_type(), body).expect_err("invalid request");
    assert_eq!(e.status, 422);
    e.detail
}

#[test]
fn matches_mlflow_byte_for_byte() {
    let mut failures = Vec::new();
    for (route, body, status, expected) in MLFLOW_CASES {
        let got = run(*route, body);
        if got != (*status, (*expected).to_owned()) {
            failures.push(format!(
                "{route:?} {body}\n  want {status} {expected}\n  got  {} {}",
                got.0, got.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn message_name_and_unknown_keys_are_forwarded() {
    // DIFFERENCES #12: MLflow drops `name` (and every other unknown message key); we keep them,
    // dropping only nulls, as the rest of the payload.
    let (status, out) = run(
        Route::Chat,
        r#"{"messages":[{"name":"bob","role":"user","content":"hi","x":{"a":null,"b":1},"y":null}]}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        out,
        r#"{"n":1,"messages":[{"role":"user","content":"hi","name":"bob","x":{"b":1}}]}"#
    );
    let UnifiedRequest::Chat(chat) = validate(
        Route::Chat,
        json!({"messages":[{"role":"user","content":"hi","name":"bob"},{"role":"u","name":1}]}),
    ) else {
        panic!("chat expected");
    };
    assert_eq!(chat.messages[0].name(), Some("bob"));
    assert_eq!(chat.messages[0].text(), Some("hi"));
    assert_eq!(chat.messages[1].name(), None);
}

#[test]
fn content_part_extras_are_forwarded() {
    let (_, out) = run(
        Route::Chat,
        r#"{"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"},"z":null}]}]}"#,
    );
    assert_eq!(
        out,
        r#"{"n":1,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}"#
    );
}

#[test]
fn tool_parameters_are_forwarded_intact() {
    // MLflow would send `"a":{"type":"integer","description":"x"}` and `"c":{"type":"object"}`
    // (spec §4.1); DIFFERENCES #12 says the schema goes through as sent.
    let params = json!({
        "type": "object",
        "properties": {
            "a": {"type": "integer", "minimum": 1, "description": "x", "default": null},
            "c": {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}},
            "e": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/x"}]}
        },
        "required": ["a"],
        "additionalProperties": {"type": "string"},
        "$defs": {"x": {"type": "number"}}
    });
    let body = json!({"messages":[{"role":"u"}],"tools":[{"type":"function","function":{"name":"f","parameters":params.clone()}}]});
    let (status, out) = run(Route::Chat, &body.to_string());
    assert_eq!(status, 200);
    let sent: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(sent["tools"][0]["function"]["parameters"], params);
    assert_eq!(
        serde_json::to_string(&sent["tools"][0]["function"]["parameters"]).ok(),
        serde_json::to_string(&params).ok(),
        "key order kept"
    );
}

#[test]
fn tool_parameters_get_type_object_after_properties_when_absent() {
    let (_, out) = run(
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"a":{"type":"string","pattern":"^x"}},"required":["a"]}}}]}"#,
    );
    assert_eq!(
        out,
        r#"{"n":1,"messages":[{"role":"u"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"a":{"type":"string","pattern":"^x"}},"type":"object","required":["a"]}}}]}"#
    );
}

#[test]
fn absurd_numbers_are_clean_422s() {
    let big = errors(
        Route::Chat,
        json!({"messages":[{"role":"u"}],"n":5_000_000_000u64}),
    );
    assert_eq!(
        big,
        json!([{"type":"less_than_equal","loc":["body","n"],"msg":"Input should be less than or equal to 4294967295","input":5_000_000_000u64,"ctx":{"le":4_294_967_295u64}}])
    );
    let d = errors(
        Route::Chat,
        json!({"messages":[{"role":"u"}],"max_tokens":u64::MAX}),
    );
    assert_eq!(d[0]["type"], "less_than_equal");
    let d = errors(
        Route::Chat,
        json!({"messages":[{"role":"u"}],"top_k":"99999999999999999999999999999999999999999999"}),
    );
    assert_eq!(d[0]["type"], "less_than_equal");
    let d = errors(
        Route::Completions,
        json!({"prompt":"p","max_completion_tokens":1e30}),
    );
    assert_eq!(d[0]["type"], "int_parsing_size");
    let long = "9".repeat(5000);
    let d = errors(Route::Chat, json!({"messages":[{"role":"u"}],"n":long}));
    assert_eq!(d[0]["type"], "int_parsing_size");
    let (status, out) = run(Route::Embeddings, r#"{"input":[18446744073709551615]}"#);
    assert_eq!(status, 422);
    assert!(out.contains("int_parsing_size"), "{out}");
    // Up to the bound, values pass through untouched.
    let (status, out) = run(Route::Chat, r#"{"messages":[{"role":"u"}],"n":4294967295}"#);
    assert_eq!(
        (status, out.as_str()),
        (200, r#"{"n":4294967295,"messages":[{"role":"u"}]}"#)
    );
}

#[test]
fn non_object_body_is_refused_by_validate_too() {
    let e = UnifiedRequest::validate(EndpointType::Chat, json!([1])).expect_err("refused");
    assert_eq!(
        e.detail,
        json!([{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[1]}])
    );
}

#[test]
fn stream_and_model_accessors() {
    let chat = validate(
        Route::Chat,
        json!({"messages":[{"role":"u"}],"stream":"true","model":"m"}),
    );
    assert_eq!(chat.endpoint_type(), EndpointType::Chat);
    assert!(chat.is_stream());
    assert_eq!(chat.model().as_deref(), Some("m"));
    assert!(chat.has_model());

    let mut comp = validate(
        Route::Completions,
        json!({"prompt":"p","stream":false,"model":"m"}),
    );
    assert_eq!(comp.endpoint_type(), EndpointType::Completions);
    assert!(!comp.is_stream());
    assert_eq!(comp.take_model().as_deref(), Some("m"));
    assert_eq!(comp.model(), None);
    assert!(!comp.has_model());
    assert_eq!(
        serde_json::to_string(&comp).ok().as_deref(),
        Some(r#"{"n":1,"stream":false,"prompt":"p"}"#)
    );

    // Embeddings never stream; `stream` and `model` are plain extra keys.
    let mut emb = validate(
        Route::Embeddings,
        json!({"input":"x","stream":true,"model":"e"}),
    );
    assert_eq!(emb.endpoint_type(), EndpointType::Embeddings);
    assert!(!emb.is_stream());
    assert_eq!(emb.model().as_deref(), Some("e"));
    assert_eq!(emb.take_model().as_deref(), Some("e"));
    assert_eq!(
        serde_json::to_string(&emb).ok().as_deref(),
        Some(r#"{"input":"x","stream":true}"#)
    );

    // A non-string embeddings `model` is not validated, but it still counts as present (MLflow's
    // invocation paths refuse any non-null `model`), and taking it removes it.
    let mut odd = validate(Route::Embeddings, json!({"input":"x","model":1}));
    assert_eq!(odd.model(), None);
    assert!(odd.has_model());
    assert_eq!(odd.take_model(), None);
    assert!(!odd.has_model());
    let null_model = validate(Route::Embeddings, json!({"input":"x","model":null}));
    assert!(!null_model.has_model());
}

#[test]
fn typed_fields_are_reachable() {
    let UnifiedRequest::Chat(chat) = validate(
        Route::Chat,
        json!({"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"r","tool_call_id":"c"}],"temperature":1,"tool_choice":{"type":"function","function":{"name":"f"}}}),
    ) else {
        panic!("chat expected");
    };
    assert_eq!(chat.common.temperature, Some(1.0));
    assert_eq!(chat.common.n, 1);
    let calls = chat.messages[0].tool_calls.as_deref().unwrap_or_default();
    assert_eq!(calls[0].kind, "function");
    assert_eq!(calls[0].function.name.as_deref(), Some("f"));
    assert_eq!(chat.messages[1].tool_call_id.as_deref(), Some("c"));
    assert!(matches!(
        chat.tool_choice,
        Some(ToolChoice::Named(NamedToolChoice { ref function, .. })) if function.name == "f"
    ));
    let UnifiedRequest::Embeddings(emb) =
        validate(Route::Embeddings, json!({"input":[1.0, true, "3"]}))
    else {
        panic!("embeddings expected");
    };
    assert_eq!(emb.input, EmbeddingsInput::Tokens(vec![1, 1, 3]));
}

#[test]
fn openapi_schemas_build() {
    use utoipa::PartialSchema;
    for schema in [
        ChatRequest::schema(),
        CompletionsRequest::schema(),
        EmbeddingsRequest::schema(),
        ChatResponse::schema(),
        ChatChunk::schema(),
        CompletionsResponse::schema(),
        CompletionsChunk::schema(),
        EmbeddingsResponse::schema(),
    ] {
        let text = serde_json::to_string(&schema).expect("schema serialises");
        assert!(text.len() > 2);
    }
}

#[test]
fn unknown_keys_stay_text_and_count_only_when_a_provider_builds_them() {
    let body = bytes::Bytes::from_static(
        br#"{"messages":[{"role":"user","content":"hi"}],"x":[0, 0,0],"y":{"a":null,"b":1},"z":null}"#,
    );
    let object = super::parse_request_body(Some("application/json"), &body, 10).unwrap();
    let request = UnifiedRequest::from_body(EndpointType::Chat, object).unwrap();
    // The array is forwarded as sent; the object is rebuilt without its null; `z` is dropped.
    let text = serde_json::to_string(&request).unwrap();
    assert!(text.ends_with(r#""x":[0, 0,0],"y":{"b":1}}"#), "{text}");
    // 8 of the 10 values were built (the object, the messages, `y`), so a provider that would
    // build `x` and `y` too (6 more) is refused.
    assert_eq!(request.check_tree_room().unwrap_err().status, 413);
    let object = super::parse_request_body(Some("application/json"), &body, 9).unwrap();
    assert_eq!(
        UnifiedRequest::from_body(EndpointType::Chat, object)
            .unwrap()
            .check_tree_room()
            .unwrap_err()
            .status,
        413
    );
    let object = super::parse_request_body(Some("application/json"), &body, 7).unwrap();
    assert_eq!(
        UnifiedRequest::from_body(EndpointType::Chat, object)
            .unwrap_err()
            .status,
        413
    );
}
