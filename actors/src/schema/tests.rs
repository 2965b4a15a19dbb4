//! End-to-end schema tests: body bytes through parsing and validation to the upstream JSON or the
//! 422 error list, compared byte for byte with what MLflow 3.17.2 produces.

use serde_json::{json, Value};

use super::*;
use crate::config::EndpointType;

#[derive(Debug, Clone, Copy)]
enum Route {
    Chat,
    Completions,
    Embeddings,
}

impl Route {
    fn endpoint_type(self) -> EndpointType {
        match self {
            Route::Chat => EndpointType::Chat,
            Route::Completions => EndpointType::Completions,
            Route::Embeddings => EndpointType::Embeddings,
        }
    }
}

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
    assert_eq!(chat.model(), Some("m"));
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
    assert_eq!(emb.model(), Some("e"));
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

// Generated from MLflow 3.17.2: each body was posted to FastAPI routes typed with MLflow's
// `chat`/`completions`/`embeddings` RequestPayload, and the 200 body is
// `jsonable_encoder(payload, exclude_none=True)` (what the OpenAI provider sends upstream).
const MLFLOW_CASES: &[(Route, &str, u16, &str)] = &[
    (
        Route::Chat,
        r#"{"messages":[{"role":"user","content":"hi"}]}"#,
        200,
        r#"{"n":1,"messages":[{"role":"user","content":"hi"}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"user","content":"hi"}],"temperature":1,"foo":1}"#,
        200,
        r#"{"n":1,"temperature":1.0,"messages":[{"role":"user","content":"hi"}],"foo":1}"#,
    ),
    (
        Route::Chat,
        r#"{"tool_choice":"auto","tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false},"strict":true}}],"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"http://x/y.png","detail":"low"}},{"type":"input_audio","input_audio":{"data":"AAA","format":"wav"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"r","tool_call_id":"c1"}],"temperature":0.3,"n":2,"zz":1,"aa":{"b":null,"c":[null]},"stop":["x"],"max_tokens":10,"max_completion_tokens":20,"stream":false,"stream_options":{"include_usage":true,"x":null},"top_p":0.5,"presence_penalty":0,"frequency_penalty":-1,"top_k":5,"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","x":null},"extra":1,"extra2":null}},"seed":null}"#,
        200,
        r#"{"n":2,"stop":["x"],"max_tokens":10,"max_completion_tokens":20,"stream":false,"stream_options":{"include_usage":true},"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"},"strict":true,"extra":1}},"temperature":0.3,"top_p":0.5,"presence_penalty":0.0,"frequency_penalty":-1.0,"top_k":5,"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"http://x/y.png","detail":"low"}},{"type":"input_audio","input_audio":{"data":"AAA","format":"wav"}}]},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"r","tool_call_id":"c1"}],"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"properties":{"a":{"type":"string"}},"type":"object","required":["a"],"additionalProperties":false},"strict":true}}],"tool_choice":"auto","zz":1,"aa":{"c":[null]}}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"a","tool_calls":[{"id":"c1","function":{"arguments":"{}"},"thought_signature":"s"}]}]}"#,
        200,
        r#"{"n":1,"messages":[{"role":"a","tool_calls":[{"id":"c1","type":"function","function":{"arguments":"{}"},"thought_signature":"s"}]}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"a","tool_calls":[]}],"tools":[]}"#,
        200,
        r#"{"n":1,"messages":[{"role":"a","tool_calls":[]}],"tools":[]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[]}]}"#,
        200,
        r#"{"n":1,"messages":[{"role":"u","content":[]}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"reasoning"}]}]}"#,
        200,
        r#"{"n":1,"messages":[{"role":"u","content":[{"type":"reasoning","summary":[]}]}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"reasoning","summary":[{"type":"summary_text","text":"t"}],"id":"r1","enc":{"a":null}}]}]}"#,
        200,
        r#"{"n":1,"messages":[{"role":"u","content":[{"type":"reasoning","summary":[{"type":"summary_text","text":"t"}],"id":"r1","enc":{}}]}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"text":"hi","type":"text"},{"image_url":{"detail":null,"url":"x"},"type":"image_url"}]}]}"#,
        200,
        r#"{"n":1,"messages":[{"role":"u","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"n":"2","stream":"yes","temperature":"1","top_p":true,"max_tokens":7.0}"#,
        200,
        r#"{"n":2,"max_tokens":7,"stream":true,"temperature":1.0,"top_p":1.0,"messages":[{"role":"u"}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"response_format":{"type":"json_schema"}}"#,
        200,
        r#"{"n":1,"response_format":{"type":"json_schema"},"messages":[{"role":"u"}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"response_format":{"type":"text","json_schema":{"strict":false,"schema":{},"name":"a"}}}"#,
        200,
        r#"{"n":1,"response_format":{"type":"text","json_schema":{"name":"a","schema":{},"strict":false}},"messages":[{"role":"u"}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tool_choice":{"type":"function","function":{"name":"f","x":1},"y":2}}"#,
        200,
        r#"{"n":1,"messages":[{"role":"u"}],"tool_choice":{"type":"function","function":{"name":"f"}}}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tool_choice":"none","tools":null,"stop":null,"model":null}"#,
        200,
        r#"{"n":1,"messages":[{"role":"u"}],"tool_choice":"none"}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"function"}]}"#,
        200,
        r#"{"n":1,"messages":[{"role":"u"}],"tools":[{"type":"function"}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"uc_function","uc_function":{"name":"f","x":1,"y":null}}]}"#,
        200,
        r#"{"n":1,"messages":[{"role":"u"}],"tools":[{"type":"uc_function","uc_function":{"name":"f","x":1}}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"model":"m","stream":true}"#,
        200,
        r#"{"n":1,"stream":true,"model":"m","messages":[{"role":"u"}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"stream":"OFF","stream_options":{}}"#,
        200,
        r#"{"n":1,"stream":false,"stream_options":{},"messages":[{"role":"u"}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[]}"#,
        422,
        r#"[{"type":"too_short","loc":["body","messages"],"msg":"List should have at least 1 item after validation, not 0","input":[],"ctx":{"field_type":"List","min_length":1,"actual_length":0}}]"#,
    ),
    (
        Route::Chat,
        r#"{}"#,
        422,
        r#"[{"type":"missing","loc":["body","messages"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":"x"}"#,
        422,
        r#"[{"type":"list_type","loc":["body","messages"],"msg":"Input should be a valid list","input":"x"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":null}"#,
        422,
        r#"[{"type":"list_type","loc":["body","messages"],"msg":"Input should be a valid list","input":null}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[1]}"#,
        422,
        r#"[{"type":"model_attributes_type","loc":["body","messages",0],"msg":"Input should be a valid dictionary or object to extract fields from","input":1}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{}]}"#,
        422,
        r#"[{"type":"missing","loc":["body","messages",0,"role"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[],"n":0,"top_k":0,"tools":1}"#,
        422,
        r#"[{"type":"greater_than_equal","loc":["body","n"],"msg":"Input should be greater than or equal to 1","input":0,"ctx":{"ge":1}},{"type":"greater_than_equal","loc":["body","top_k"],"msg":"Input should be greater than or equal to 1","input":0,"ctx":{"ge":1}},{"type":"too_short","loc":["body","messages"],"msg":"List should have at least 1 item after validation, not 0","input":[],"ctx":{"field_type":"List","min_length":1,"actual_length":0}},{"type":"list_type","loc":["body","tools"],"msg":"Input should be a valid list","input":1}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":1,"content":1,"tool_calls":"x","refusal":1,"tool_call_id":1}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"role"],"msg":"Input should be a valid string","input":1},{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":1},{"type":"list_type","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]"],"msg":"Input should be a valid list","input":1},{"type":"list_type","loc":["body","messages",0,"tool_calls"],"msg":"Input should be a valid list","input":"x"},{"type":"string_type","loc":["body","messages",0,"refusal"],"msg":"Input should be a valid string","input":1},{"type":"string_type","loc":["body","messages",0,"tool_call_id"],"msg":"Input should be a valid string","input":1}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"n":0}"#,
        422,
        r#"[{"type":"greater_than_equal","loc":["body","n"],"msg":"Input should be greater than or equal to 1","input":0,"ctx":{"ge":1}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"n":2.5}"#,
        422,
        r#"[{"type":"int_from_float","loc":["body","n"],"msg":"Input should be a valid integer, got a number with a fractional part","input":2.5}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"n":null}"#,
        422,
        r#"[{"type":"int_type","loc":["body","n"],"msg":"Input should be a valid integer","input":null}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"n":"abc"}"#,
        422,
        r#"[{"type":"int_parsing","loc":["body","n"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"abc"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"n":[]}"#,
        422,
        r#"[{"type":"int_type","loc":["body","n"],"msg":"Input should be a valid integer","input":[]}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"n":false}"#,
        422,
        r#"[{"type":"greater_than_equal","loc":["body","n"],"msg":"Input should be greater than or equal to 1","input":false,"ctx":{"ge":1}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"n":-0.0}"#,
        422,
        r#"[{"type":"greater_than_equal","loc":["body","n"],"msg":"Input should be greater than or equal to 1","input":-0.0,"ctx":{"ge":1}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"max_tokens":0,"max_completion_tokens":-1,"top_k":0}"#,
        422,
        r#"[{"type":"greater_than_equal","loc":["body","max_tokens"],"msg":"Input should be greater than or equal to 1","input":0,"ctx":{"ge":1}},{"type":"greater_than_equal","loc":["body","max_completion_tokens"],"msg":"Input should be greater than or equal to 1","input":-1,"ctx":{"ge":1}},{"type":"greater_than_equal","loc":["body","top_k"],"msg":"Input should be greater than or equal to 1","input":0,"ctx":{"ge":1}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"temperature":-0.1,"top_p":1.5,"presence_penalty":-3,"frequency_penalty":2.5}"#,
        422,
        r#"[{"type":"greater_than_equal","loc":["body","temperature"],"msg":"Input should be greater than or equal to 0","input":-0.1,"ctx":{"ge":0.0}},{"type":"less_than_equal","loc":["body","top_p"],"msg":"Input should be less than or equal to 1","input":1.5,"ctx":{"le":1.0}},{"type":"greater_than_equal","loc":["body","presence_penalty"],"msg":"Input should be greater than or equal to -2","input":-3,"ctx":{"ge":-2.0}},{"type":"less_than_equal","loc":["body","frequency_penalty"],"msg":"Input should be less than or equal to 2","input":2.5,"ctx":{"le":2.0}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"temperature":3}"#,
        422,
        r#"[{"type":"less_than_equal","loc":["body","temperature"],"msg":"Input should be less than or equal to 2","input":3,"ctx":{"le":2.0}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"temperature":"1","top_p":"abc","presence_penalty":true,"frequency_penalty":[1]}"#,
        422,
        r#"[{"type":"float_parsing","loc":["body","top_p"],"msg":"Input should be a valid number, unable to parse string as a number","input":"abc"},{"type":"float_type","loc":["body","frequency_penalty"],"msg":"Input should be a valid number","input":[1]}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"temperature":"inf"}"#,
        422,
        r#"[{"type":"less_than_equal","loc":["body","temperature"],"msg":"Input should be less than or equal to 2","input":"inf","ctx":{"le":2.0}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"temperature":"nan"}"#,
        422,
        r#"[{"type":"less_than_equal","loc":["body","temperature"],"msg":"Input should be less than or equal to 2","input":"nan","ctx":{"le":2.0}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"temperature":"-Infinity"}"#,
        422,
        r#"[{"type":"greater_than_equal","loc":["body","temperature"],"msg":"Input should be greater than or equal to 0","input":"-Infinity","ctx":{"ge":0.0}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"temperature":"0x1"}"#,
        422,
        r#"[{"type":"float_parsing","loc":["body","temperature"],"msg":"Input should be a valid number, unable to parse string as a number","input":"0x1"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"temperature":null,"top_p":null}"#,
        200,
        r#"{"n":1,"messages":[{"role":"u"}]}"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"stream":"maybe"}"#,
        422,
        r#"[{"type":"bool_parsing","loc":["body","stream"],"msg":"Input should be a valid boolean, unable to interpret input","input":"maybe"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"stream":2}"#,
        422,
        r#"[{"type":"bool_parsing","loc":["body","stream"],"msg":"Input should be a valid boolean, unable to interpret input","input":2}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"stream":0.5}"#,
        422,
        r#"[{"type":"bool_type","loc":["body","stream"],"msg":"Input should be a valid boolean","input":0.5}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"stream_options":[1]}"#,
        422,
        r#"[{"type":"dict_type","loc":["body","stream_options"],"msg":"Input should be a valid dictionary","input":[1]}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"stop":"x"}"#,
        422,
        r#"[{"type":"list_type","loc":["body","stop"],"msg":"Input should be a valid list","input":"x"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"stop":[]}"#,
        422,
        r#"[{"type":"too_short","loc":["body","stop"],"msg":"List should have at least 1 item after validation, not 0","input":[],"ctx":{"field_type":"List","min_length":1,"actual_length":0}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"stop":[1,"a",null]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","stop",0],"msg":"Input should be a valid string","input":1},{"type":"string_type","loc":["body","stop",2],"msg":"Input should be a valid string","input":null}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"model":1}"#,
        422,
        r#"[{"type":"string_type","loc":["body","model"],"msg":"Input should be a valid string","input":1}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"bogus"}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":"bogus"}]},{"type":"union_tag_invalid","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0],"msg":"Input tag 'bogus' found using 'type' does not match any of the expected tags: 'text', 'image_url', 'input_audio', 'reasoning'","input":{"type":"bogus"},"ctx":{"discriminator":"'type'","tag":"bogus","expected_tags":"'text', 'image_url', 'input_audio', 'reasoning'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"text":"x"}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"text":"x"}]},{"type":"union_tag_not_found","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0],"msg":"Unable to extract tag using discriminator 'type'","input":{"text":"x"},"ctx":{"discriminator":"'type'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":["x"]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":["x"]},{"type":"model_attributes_type","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0],"msg":"Input should be a valid dictionary or object to extract fields from","input":"x"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"text"}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":"text"}]},{"type":"missing","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0,"text","text"],"msg":"Field required","input":{"type":"text"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"text","text":1}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":"text","text":1}]},{"type":"string_type","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0,"text","text"],"msg":"Input should be a valid string","input":1}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"image_url","image_url":{"url":"u","detail":"x"}}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":"image_url","image_url":{"url":"u","detail":"x"}}]},{"type":"literal_error","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0,"image_url","image_url","detail"],"msg":"Input should be 'auto', 'low' or 'high'","input":"x","ctx":{"expected":"'auto', 'low' or 'high'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"image_url","image_url":"u"}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":"image_url","image_url":"u"}]},{"type":"model_attributes_type","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0,"image_url","image_url"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"u"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"image_url","image_url":{}}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":"image_url","image_url":{}}]},{"type":"missing","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0,"image_url","image_url","url"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"input_audio","input_audio":{"data":"d","format":"ogg"}}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":"input_audio","input_audio":{"data":"d","format":"ogg"}}]},{"type":"literal_error","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0,"input_audio","input_audio","format"],"msg":"Input should be 'wav' or 'mp3'","input":"ogg","ctx":{"expected":"'wav' or 'mp3'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"input_audio","input_audio":{"data":1}}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":"input_audio","input_audio":{"data":1}}]},{"type":"string_type","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0,"input_audio","input_audio","data"],"msg":"Input should be a valid string","input":1},{"type":"missing","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0,"input_audio","input_audio","format"],"msg":"Field required","input":{"data":1}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"reasoning","summary":[{"type":"x","text":1}]}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":"reasoning","summary":[{"type":"x","text":1}]}]},{"type":"literal_error","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0,"reasoning","summary",0,"type"],"msg":"Input should be 'summary_text'","input":"x","ctx":{"expected":"'summary_text'"}},{"type":"string_type","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0,"reasoning","summary",0,"text"],"msg":"Input should be a valid string","input":1}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":"text","text":"a"},{"type":"reasoning","summary":null}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":"text","text":"a"},{"type":"reasoning","summary":null}]},{"type":"list_type","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",1,"reasoning","summary"],"msg":"Input should be a valid list","input":null}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":{"type":"text","text":"x"}}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":{"type":"text","text":"x"}},{"type":"list_type","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]"],"msg":"Input should be a valid list","input":{"type":"text","text":"x"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":1}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":1}]},{"type":"union_tag_invalid","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0],"msg":"Input tag '1' found using 'type' does not match any of the expected tags: 'text', 'image_url', 'input_audio', 'reasoning'","input":{"type":1},"ctx":{"discriminator":"'type'","tag":"1","expected_tags":"'text', 'image_url', 'input_audio', 'reasoning'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":null}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":null}]},{"type":"union_tag_invalid","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0],"msg":"Input tag 'None' found using 'type' does not match any of the expected tags: 'text', 'image_url', 'input_audio', 'reasoning'","input":{"type":null},"ctx":{"discriminator":"'type'","tag":"None","expected_tags":"'text', 'image_url', 'input_audio', 'reasoning'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":true}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":true}]},{"type":"union_tag_invalid","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0],"msg":"Input tag 'True' found using 'type' does not match any of the expected tags: 'text', 'image_url', 'input_audio', 'reasoning'","input":{"type":true},"ctx":{"discriminator":"'type'","tag":"True","expected_tags":"'text', 'image_url', 'input_audio', 'reasoning'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":[1]}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":[1]}]},{"type":"union_tag_invalid","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0],"msg":"Input tag '[1]' found using 'type' does not match any of the expected tags: 'text', 'image_url', 'input_audio', 'reasoning'","input":{"type":[1]},"ctx":{"discriminator":"'type'","tag":"[1]","expected_tags":"'text', 'image_url', 'input_audio', 'reasoning'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u","content":[{"type":{"a":1}}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"content","str"],"msg":"Input should be a valid string","input":[{"type":{"a":1}}]},{"type":"union_tag_invalid","loc":["body","messages",0,"content","list[tagged-union[TextContentPart,ImageContentPart,AudioContentPart,ReasoningContentPart]]",0],"msg":"Input tag '{'a': 1}' found using 'type' does not match any of the expected tags: 'text', 'image_url', 'input_audio', 'reasoning'","input":{"type":{"a":1}},"ctx":{"discriminator":"'type'","tag":"{'a': 1}","expected_tags":"'text', 'image_url', 'input_audio', 'reasoning'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"a","tool_calls":[{"id":"c1","type":null,"function":{}}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"tool_calls",0,"type"],"msg":"Input should be a valid string","input":null}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"a","tool_calls":[{}]}]}"#,
        422,
        r#"[{"type":"missing","loc":["body","messages",0,"tool_calls",0,"id"],"msg":"Field required","input":{}},{"type":"missing","loc":["body","messages",0,"tool_calls",0,"function"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"a","tool_calls":[1, {"id":1,"type":1,"function":"x","thought_signature":1}]}]}"#,
        422,
        r#"[{"type":"model_attributes_type","loc":["body","messages",0,"tool_calls",0],"msg":"Input should be a valid dictionary or object to extract fields from","input":1},{"type":"string_type","loc":["body","messages",0,"tool_calls",1,"id"],"msg":"Input should be a valid string","input":1},{"type":"string_type","loc":["body","messages",0,"tool_calls",1,"type"],"msg":"Input should be a valid string","input":1},{"type":"model_attributes_type","loc":["body","messages",0,"tool_calls",1,"function"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"x"},{"type":"string_type","loc":["body","messages",0,"tool_calls",1,"thought_signature"],"msg":"Input should be a valid string","input":1}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"a","tool_calls":[{"id":"c","function":{"name":1,"arguments":2}}]}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","messages",0,"tool_calls",0,"function","name"],"msg":"Input should be a valid string","input":1},{"type":"string_type","loc":["body","messages",0,"tool_calls",0,"function","arguments"],"msg":"Input should be a valid string","input":2}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"response_format":{"type":"json_schema","json_schema":{}}}"#,
        422,
        r#"[{"type":"missing","loc":["body","response_format","json_schema","name"],"msg":"Field required","input":{}},{"type":"missing","loc":["body","response_format","json_schema","schema"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"response_format":{"type":"json_schema","json_schema":{"name":1,"schema":[],"strict":"x"}}}"#,
        422,
        r#"[{"type":"string_type","loc":["body","response_format","json_schema","name"],"msg":"Input should be a valid string","input":1},{"type":"dict_type","loc":["body","response_format","json_schema","schema"],"msg":"Input should be a valid dictionary","input":[]},{"type":"bool_parsing","loc":["body","response_format","json_schema","strict"],"msg":"Input should be a valid boolean, unable to interpret input","input":"x"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{},"strict":null}}}"#,
        422,
        r#"[{"type":"bool_type","loc":["body","response_format","json_schema","strict"],"msg":"Input should be a valid boolean","input":null}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"response_format":{"type":"json_schema","json_schema":"x"}}"#,
        422,
        r#"[{"type":"model_attributes_type","loc":["body","response_format","json_schema"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"x"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"response_format":{"type":"xml","extra":1}}"#,
        422,
        r#"[{"type":"literal_error","loc":["body","response_format","type"],"msg":"Input should be 'text', 'json_object' or 'json_schema'","input":"xml","ctx":{"expected":"'text', 'json_object' or 'json_schema'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"response_format":{"type":null}}"#,
        422,
        r#"[{"type":"literal_error","loc":["body","response_format","type"],"msg":"Input should be 'text', 'json_object' or 'json_schema'","input":null,"ctx":{"expected":"'text', 'json_object' or 'json_schema'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"response_format":"json_object"}"#,
        422,
        r#"[{"type":"model_attributes_type","loc":["body","response_format"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"json_object"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"response_format":{}}"#,
        422,
        r#"[{"type":"missing","loc":["body","response_format","type"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tool_choice":"bogus"}"#,
        422,
        r#"[{"type":"literal_error","loc":["body","tool_choice","literal['none','auto','required']"],"msg":"Input should be 'none', 'auto' or 'required'","input":"bogus","ctx":{"expected":"'none', 'auto' or 'required'"}},{"type":"model_attributes_type","loc":["body","tool_choice","ToolChoice"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"bogus"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tool_choice":{"type":"x","function":{}}}"#,
        422,
        r#"[{"type":"literal_error","loc":["body","tool_choice","literal['none','auto','required']"],"msg":"Input should be 'none', 'auto' or 'required'","input":{"type":"x","function":{}},"ctx":{"expected":"'none', 'auto' or 'required'"}},{"type":"literal_error","loc":["body","tool_choice","ToolChoice","type"],"msg":"Input should be 'function'","input":"x","ctx":{"expected":"'function'"}},{"type":"missing","loc":["body","tool_choice","ToolChoice","function","name"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tool_choice":{}}"#,
        422,
        r#"[{"type":"literal_error","loc":["body","tool_choice","literal['none','auto','required']"],"msg":"Input should be 'none', 'auto' or 'required'","input":{},"ctx":{"expected":"'none', 'auto' or 'required'"}},{"type":"missing","loc":["body","tool_choice","ToolChoice","type"],"msg":"Field required","input":{}},{"type":"missing","loc":["body","tool_choice","ToolChoice","function"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tool_choice":1}"#,
        422,
        r#"[{"type":"literal_error","loc":["body","tool_choice","literal['none','auto','required']"],"msg":"Input should be 'none', 'auto' or 'required'","input":1,"ctx":{"expected":"'none', 'auto' or 'required'"}},{"type":"model_attributes_type","loc":["body","tool_choice","ToolChoice"],"msg":"Input should be a valid dictionary or object to extract fields from","input":1}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tool_choice":{"type":"function","function":"f"}}"#,
        422,
        r#"[{"type":"literal_error","loc":["body","tool_choice","literal['none','auto','required']"],"msg":"Input should be 'none', 'auto' or 'required'","input":{"type":"function","function":"f"},"ctx":{"expected":"'none', 'auto' or 'required'"}},{"type":"model_attributes_type","loc":["body","tool_choice","ToolChoice","function"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"f"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":"x"}"#,
        422,
        r#"[{"type":"list_type","loc":["body","tools"],"msg":"Input should be a valid list","input":"x"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[1]}"#,
        422,
        r#"[{"type":"model_attributes_type","loc":["body","tools",0],"msg":"Input should be a valid dictionary or object to extract fields from","input":1}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{}]}"#,
        422,
        r#"[{"type":"missing","loc":["body","tools",0,"type"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"x","function":{}}]}"#,
        422,
        r#"[{"type":"literal_error","loc":["body","tools",0,"type"],"msg":"Input should be 'function' or 'uc_function'","input":"x","ctx":{"expected":"'function' or 'uc_function'"}},{"type":"missing","loc":["body","tools",0,"function","name"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"uc_function","uc_function":{}}]}"#,
        422,
        r#"[{"type":"missing","loc":["body","tools",0,"uc_function","name"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"uc_function","uc_function":"x","function":null}]}"#,
        422,
        r#"[{"type":"model_attributes_type","loc":["body","tools",0,"uc_function"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"x"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#,
        422,
        r#"[{"type":"missing","loc":["body","tools",0,"function","parameters","properties"],"msg":"Field required","input":{"type":"object"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"array","properties":{}}}}]}"#,
        422,
        r#"[{"type":"literal_error","loc":["body","tools",0,"function","parameters","type"],"msg":"Input should be 'object'","input":"array","ctx":{"expected":"'object'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":[]}}}]}"#,
        422,
        r#"[{"type":"dict_type","loc":["body","tools",0,"function","parameters","properties"],"msg":"Input should be a valid dictionary","input":[]}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{},"type":null}}}]}"#,
        422,
        r#"[{"type":"literal_error","loc":["body","tools",0,"function","parameters","type"],"msg":"Input should be 'object'","input":null,"ctx":{"expected":"'object'"}}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"function","function":{"name":1,"description":2,"strict":"x","parameters":"p"}}]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","tools",0,"function","name"],"msg":"Input should be a valid string","input":1},{"type":"string_type","loc":["body","tools",0,"function","description"],"msg":"Input should be a valid string","input":2},{"type":"model_attributes_type","loc":["body","tools",0,"function","parameters"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"p"},{"type":"bool_parsing","loc":["body","tools",0,"function","strict"],"msg":"Input should be a valid boolean, unable to interpret input","input":"x"}]"#,
    ),
    (
        Route::Chat,
        r#"{"messages":[{"role":"u"}],"tools":[{"type":"function","function":{}}]}"#,
        422,
        r#"[{"type":"missing","loc":["body","tools",0,"function","name"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Completions,
        r#"{"prompt":"hi"}"#,
        200,
        r#"{"n":1,"prompt":"hi"}"#,
    ),
    (
        Route::Completions,
        r#"{"prompt":"hi","model":"m","temperature":0,"stop":["x"],"foo":{"a":null},"stream":true,"messages":[1]}"#,
        200,
        r#"{"n":1,"stop":["x"],"stream":true,"model":"m","temperature":0.0,"prompt":"hi","foo":{},"messages":[1]}"#,
    ),
    (
        Route::Completions,
        r#"{"n":0,"prompt":1,"model":1,"top_k":0}"#,
        422,
        r#"[{"type":"greater_than_equal","loc":["body","n"],"msg":"Input should be greater than or equal to 1","input":0,"ctx":{"ge":1}},{"type":"string_type","loc":["body","model"],"msg":"Input should be a valid string","input":1},{"type":"greater_than_equal","loc":["body","top_k"],"msg":"Input should be greater than or equal to 1","input":0,"ctx":{"ge":1}},{"type":"string_type","loc":["body","prompt"],"msg":"Input should be a valid string","input":1}]"#,
    ),
    (
        Route::Completions,
        r#"{"prompt":["a"]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","prompt"],"msg":"Input should be a valid string","input":["a"]}]"#,
    ),
    (
        Route::Completions,
        r#"{}"#,
        422,
        r#"[{"type":"missing","loc":["body","prompt"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Completions,
        r#"{"prompt":null}"#,
        422,
        r#"[{"type":"string_type","loc":["body","prompt"],"msg":"Input should be a valid string","input":null}]"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":"x","foo":null,"stream":true,"n":"x","model":1}"#,
        200,
        r#"{"input":"x","stream":true,"n":"x","model":1}"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":["a","b"],"encoding_format":"base64","dimensions":8}"#,
        200,
        r#"{"input":["a","b"],"encoding_format":"base64","dimensions":8}"#,
    ),
    (Route::Embeddings, r#"{"input":[]}"#, 200, r#"{"input":[]}"#),
    (
        Route::Embeddings,
        r#"{"input":[1,2]}"#,
        200,
        r#"{"input":[1,2]}"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":[1.0,2]}"#,
        200,
        r#"{"input":[1,2]}"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":[[1,2],[3]]}"#,
        200,
        r#"{"input":[[1,2],[3]]}"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":[[]]}"#,
        200,
        r#"{"input":[[]]}"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":[true]}"#,
        200,
        r#"{"input":[1]}"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":["1","2"]}"#,
        200,
        r#"{"input":["1","2"]}"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":[1,"2"]}"#,
        200,
        r#"{"input":[1,2]}"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":[[1],["2"]]}"#,
        200,
        r#"{"input":[[1],[2]]}"#,
    ),
    (
        Route::Embeddings,
        r#"{}"#,
        422,
        r#"[{"type":"missing","loc":["body","input"],"msg":"Field required","input":{}}]"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":1}"#,
        422,
        r#"[{"type":"string_type","loc":["body","input","str"],"msg":"Input should be a valid string","input":1},{"type":"list_type","loc":["body","input","list[str]"],"msg":"Input should be a valid list","input":1},{"type":"list_type","loc":["body","input","list[int]"],"msg":"Input should be a valid list","input":1},{"type":"list_type","loc":["body","input","list[list[int]]"],"msg":"Input should be a valid list","input":1}]"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":null}"#,
        422,
        r#"[{"type":"string_type","loc":["body","input","str"],"msg":"Input should be a valid string","input":null},{"type":"list_type","loc":["body","input","list[str]"],"msg":"Input should be a valid list","input":null},{"type":"list_type","loc":["body","input","list[int]"],"msg":"Input should be a valid list","input":null},{"type":"list_type","loc":["body","input","list[list[int]]"],"msg":"Input should be a valid list","input":null}]"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":{"a":1}}"#,
        422,
        r#"[{"type":"string_type","loc":["body","input","str"],"msg":"Input should be a valid string","input":{"a":1}},{"type":"list_type","loc":["body","input","list[str]"],"msg":"Input should be a valid list","input":{"a":1}},{"type":"list_type","loc":["body","input","list[int]"],"msg":"Input should be a valid list","input":{"a":1}},{"type":"list_type","loc":["body","input","list[list[int]]"],"msg":"Input should be a valid list","input":{"a":1}}]"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":["a",1]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","input","str"],"msg":"Input should be a valid string","input":["a",1]},{"type":"string_type","loc":["body","input","list[str]",1],"msg":"Input should be a valid string","input":1},{"type":"int_parsing","loc":["body","input","list[int]",0],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"a"},{"type":"list_type","loc":["body","input","list[list[int]]",0],"msg":"Input should be a valid list","input":"a"},{"type":"list_type","loc":["body","input","list[list[int]]",1],"msg":"Input should be a valid list","input":1}]"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":[[1.5]]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","input","str"],"msg":"Input should be a valid string","input":[[1.5]]},{"type":"string_type","loc":["body","input","list[str]",0],"msg":"Input should be a valid string","input":[1.5]},{"type":"int_type","loc":["body","input","list[int]",0],"msg":"Input should be a valid integer","input":[1.5]},{"type":"int_from_float","loc":["body","input","list[list[int]]",0,0],"msg":"Input should be a valid integer, got a number with a fractional part","input":1.5}]"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":[["a"]]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","input","str"],"msg":"Input should be a valid string","input":[["a"]]},{"type":"string_type","loc":["body","input","list[str]",0],"msg":"Input should be a valid string","input":["a"]},{"type":"int_type","loc":["body","input","list[int]",0],"msg":"Input should be a valid integer","input":["a"]},{"type":"int_parsing","loc":["body","input","list[list[int]]",0,0],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"a"}]"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":[null]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","input","str"],"msg":"Input should be a valid string","input":[null]},{"type":"string_type","loc":["body","input","list[str]",0],"msg":"Input should be a valid string","input":null},{"type":"int_type","loc":["body","input","list[int]",0],"msg":"Input should be a valid integer","input":null},{"type":"list_type","loc":["body","input","list[list[int]]",0],"msg":"Input should be a valid list","input":null}]"#,
    ),
    (
        Route::Embeddings,
        r#"{"input":[1.5, "a"]}"#,
        422,
        r#"[{"type":"string_type","loc":["body","input","str"],"msg":"Input should be a valid string","input":[1.5,"a"]},{"type":"string_type","loc":["body","input","list[str]",0],"msg":"Input should be a valid string","input":1.5},{"type":"int_from_float","loc":["body","input","list[int]",0],"msg":"Input should be a valid integer, got a number with a fractional part","input":1.5},{"type":"int_parsing","loc":["body","input","list[int]",1],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"a"},{"type":"list_type","loc":["body","input","list[list[int]]",0],"msg":"Input should be a valid list","input":1.5},{"type":"list_type","loc":["body","input","list[list[int]]",1],"msg":"Input should be a valid list","input":"a"}]"#,
    ),
];
