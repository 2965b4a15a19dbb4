//! The Bedrock translation on recorded fixtures (`tests/fixtures/bedrock/`), one test per
//! fixture, plus MLflow's parameter rules, its 501s and the region rules.

use serde_json::{json, Value};

use super::credentials::AwsEnvironment;
use super::{BedrockWire, Plan};
use crate::config::{AwsConfig, BedrockConfig, EndpointType, Provider, Secret};
use crate::error::{ErrorKind, GatewayError};
use crate::framing::{FrameDecoder, Framing};
use crate::schema::UnifiedRequest;
use crate::upstream::{status_error, EventOutcome, UpstreamRequest};

const NOW: i64 = 1_700_000_000;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../tests/fixtures/bedrock/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn static_keys() -> AwsConfig {
    AwsConfig::StaticKeys {
        region: Some("us-east-1".to_owned()),
        access_key_id: "AKIDEXAMPLE".to_owned(),
        secret_access_key: Secret::new("sk-canary-secret"),
        session_token: None,
    }
}

fn bearer(region: Option<&str>) -> AwsConfig {
    AwsConfig::BearerToken {
        region: region.map(str::to_owned),
        bearer_token: Secret::new("sk-canary-bearer"),
    }
}

fn wire_with(aws_config: AwsConfig, model: &str, env: &AwsEnvironment) -> BedrockWire {
    let config = BedrockConfig {
        aws_config,
        endpoint_url: None,
    };
    BedrockWire::new(&config, Some(model.to_owned()), Provider::Bedrock, env)
}

fn wire(aws_config: AwsConfig, model: &str) -> BedrockWire {
    wire_with(aws_config, model, &AwsEnvironment::default())
}

fn request(kind: EndpointType, body: Value) -> UnifiedRequest {
    UnifiedRequest::validate(kind, body).unwrap()
}

fn body(call: &UpstreamRequest) -> Value {
    serde_json::from_slice(&call.body).unwrap()
}

fn path(call: &UpstreamRequest) -> &str {
    let rest = call.url.split_once("://").unwrap().1;
    &rest[rest.find('/').unwrap()..]
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// A chat fixture: the wire request (path and exact body, key order included) and the response.
fn chat_case(name: &str) {
    let case = fixture(name);
    let wire = wire(static_keys(), case["model"].as_str().unwrap());
    let Plan::Chat { call, stream } = wire
        .plan(&request(EndpointType::Chat, case["request"].clone()))
        .unwrap()
    else {
        panic!("expected a chat plan")
    };
    assert!(!stream);
    assert_eq!(
        call.url,
        format!(
            "https://bedrock-runtime.us-east-1.amazonaws.com{}",
            case["path"].as_str().unwrap()
        )
    );
    assert_eq!(
        String::from_utf8(call.body.clone()).unwrap(),
        case["wire_request"].to_string()
    );
    let (out, usage) = wire
        .chat_response(case["wire_response"].clone(), NOW)
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        case["expected"].to_string()
    );
    assert_eq!(
        usage.input_tokens,
        case["expected"]["usage"]["prompt_tokens"].as_u64()
    );
}

#[test]
fn fixture_converse_chat_tools() {
    chat_case("converse/chat_tools.json");
}

#[test]
fn fixture_converse_chat_text() {
    chat_case("converse/chat_text.json");
}

fn completions_case(name: &str) {
    let case = fixture(name);
    let wire = wire(static_keys(), case["model"].as_str().unwrap());
    let Plan::Completions { call, family } = wire
        .plan(&request(EndpointType::Completions, case["request"].clone()))
        .unwrap()
    else {
        panic!("expected a completions plan")
    };
    assert_eq!(path(&call), case["path"]);
    assert_eq!(
        call.headers,
        vec![("accept", "application/json".to_owned())]
    );
    assert_eq!(
        String::from_utf8(call.body.clone()).unwrap(),
        case["wire_request"].to_string()
    );
    let (out, _) = wire
        .completions_response(family, case["wire_response"].clone(), NOW)
        .unwrap();
    assert_eq!(json_of(&out), case["expected"]);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        case["expected"].to_string()
    );
}

#[test]
fn fixture_invoke_titan_text() {
    completions_case("invoke/titan_text.json");
}

#[test]
fn fixture_invoke_ai21() {
    completions_case("invoke/ai21.json");
}

#[test]
fn fixture_invoke_anthropic() {
    completions_case("invoke/anthropic.json");
}

#[test]
fn fixture_invoke_anthropic_defaults() {
    completions_case("invoke/anthropic_defaults.json");
}

#[test]
fn fixture_invoke_cohere() {
    completions_case("invoke/cohere.json");
}

#[test]
fn fixture_invoke_titan_embeddings() {
    let case = fixture("invoke/titan_embeddings.json");
    let wire = wire(static_keys(), case["model"].as_str().unwrap());
    let Plan::Embeddings { calls } = wire
        .plan(&request(EndpointType::Embeddings, case["request"].clone()))
        .unwrap()
    else {
        panic!("expected an embeddings plan")
    };
    let bodies: Vec<Value> = calls.iter().map(body).collect();
    assert_eq!(Value::Array(bodies), case["wire_requests"]);
    assert!(calls.iter().all(|c| path(c) == case["path"]));
    let responses = case["wire_responses"].as_array().unwrap().clone();
    let (out, usage) = wire.embeddings_response(responses).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        case["expected"].to_string()
    );
    assert_eq!(usage.input_tokens, Some(3));
}

/// A ConverseStream fixture: binary body → framing → translator → chunks and the ending.
fn stream_case(name: &str) {
    let dir = format!(
        "{}/../tests/fixtures/bedrock/converse_stream",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(format!("{dir}/{name}.eventstream")).unwrap();
    let expected = fixture(&format!("converse_stream/{name}.expected.json"));
    let wire = wire(static_keys(), expected["model"].as_str().unwrap());
    // Read boundaries must not matter: whole body, then 7-byte reads.
    for piece in [bytes.len(), 7] {
        let mut decoder = FrameDecoder::new(Framing::AwsEventStream);
        let mut events = Vec::new();
        for chunk in bytes.chunks(piece) {
            events.extend(decoder.push(chunk).unwrap());
        }
        events.extend(decoder.finish());
        let mut translator = wire.stream_translator();
        let mut chunks = Vec::new();
        let mut end = None;
        let mut completed = false;
        for event in &events {
            match translator.event(event, NOW) {
                Ok(EventOutcome::Chunk(chunk)) => chunks.push(json_of(&chunk.json)),
                Ok(EventOutcome::Final(chunk)) => {
                    chunks.push(json_of(&chunk.json));
                    completed = true;
                }
                Ok(EventOutcome::Skip) => {}
                Ok(EventOutcome::Done) => {
                    end = Some(json!("done"));
                    break;
                }
                Err(error) => {
                    end = Some(json!({"status": error.status, "detail": error.detail}));
                    break;
                }
            }
        }
        // As `pump_events` ends a body that stopped without a `Final` or `Done` event.
        let end = end.unwrap_or_else(|| {
            if completed {
                json!("done")
            } else {
                let cut = crate::upstream::stream_cut();
                json!({"status": cut.status, "detail": cut.detail})
            }
        });
        assert_eq!(Value::Array(chunks), expected["chunks"], "{name}");
        assert_eq!(end, expected["end"], "{name}");
    }
}

#[test]
fn fixture_stream_text() {
    stream_case("text");
}

#[test]
fn fixture_stream_tool_use() {
    stream_case("tool_use");
}

#[test]
fn fixture_stream_throttled() {
    stream_case("throttled");
}

#[test]
fn fixture_stream_truncated() {
    stream_case("truncated");
}

/// `metadata` is the last ConverseStream event: with usage it is forwarded as the completing
/// chunk, without usage the stream is simply complete.
#[test]
fn metadata_completes_the_stream_with_or_without_usage() {
    let wire = wire(static_keys(), "anthropic.claude-3-haiku-20240307-v1:0");
    let metadata = |data: &str| crate::sse::SseEvent {
        event: Some("metadata".to_owned()),
        data: data.to_owned(),
    };
    let with_usage = wire.stream_translator().event(
        &metadata(r#"{"usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5}}"#),
        NOW,
    );
    match with_usage {
        Ok(EventOutcome::Final(chunk)) => assert_eq!(
            json_of(&chunk.json)["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
        ),
        other => panic!("{other:?}"),
    }
    for data in [r#"{}"#, r#"{"usage":{}}"#, r#"{"metrics":{"latencyMs":9}}"#] {
        let outcome = wire.stream_translator().event(&metadata(data), NOW);
        assert!(
            matches!(outcome, Ok(EventOutcome::Done)),
            "{data}: {outcome:?}"
        );
    }
}

fn error_case(name: &str) -> GatewayError {
    let case = fixture(name);
    let error = status_error(case["status"].as_u64().unwrap() as u16, &case["body"]);
    assert_eq!(error.status as u64, case["status"].as_u64().unwrap());
    assert_eq!(
        error.detail, case["body"],
        "MLflow's detail: the whole body"
    );
    error
}

#[test]
fn fixture_error_validation() {
    assert!(!error_case("converse/error_validation.json").retryable());
}

#[test]
fn fixture_error_access_denied() {
    assert!(!error_case("converse/error_access_denied.json").retryable());
}

#[test]
fn fixture_error_throttling() {
    assert!(error_case("converse/error_throttling.json").retryable());
}

/// Upstream statuses pass through with Bedrock's body as the detail; 429 and 5xx may be retried.
#[test]
fn upstream_status_table() {
    for (status, retryable) in [
        (400, false),
        (403, false),
        (404, false),
        (408, false),
        (424, false),
        (429, true),
        (500, true),
        (503, true),
    ] {
        let body = json!({"message": format!("status {status}")});
        let error = status_error(status, &body);
        assert_eq!(
            (error.status, error.kind, error.retryable()),
            (status, ErrorKind::UpstreamStatus, retryable)
        );
        assert_eq!(error.detail, body);
    }
}

fn plan_error(wire: &BedrockWire, kind: EndpointType, body: Value) -> (u16, Value) {
    let error = wire.plan(&request(kind, body)).unwrap_err();
    (error.status, error.detail)
}

#[test]
fn bearer_rules_follow_mlflow_and_completions_use_the_token() {
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    let wire = wire(
        bearer(Some("us-west-2")),
        "anthropic.claude-3-haiku-20240307-v1:0",
    );
    let Plan::Chat { call, .. } = wire
        .plan(&request(EndpointType::Chat, chat.clone()))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        call.url,
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1:0/converse"
    );
    assert_eq!(
        call.headers,
        vec![("authorization", "Bearer sk-canary-bearer".to_owned())]
    );
    let mut stream = chat.clone();
    stream["stream"] = json!(true);
    assert_eq!(
        plan_error(&wire, EndpointType::Chat, stream),
        (501, json!("Streaming is not yet supported for Bedrock API key (bearer token) auth. Use a non-streaming chat request instead."))
    );
    assert_eq!(
        plan_error(&wire, EndpointType::Embeddings, json!({"input": "x"})),
        (501, json!("Embeddings are not supported for Bedrock API key (bearer token) auth. Use access_keys or default_chain auth mode for embeddings."))
    );
    // Completions honour the bearer token (MLflow 3.17 ignores it, a bug we do not copy).
    let Plan::Completions { call, .. } = wire
        .plan(&request(
            EndpointType::Completions,
            json!({"prompt": "Hello"}),
        ))
        .unwrap()
    else {
        panic!()
    };
    assert!(call
        .headers
        .contains(&("authorization", "Bearer sk-canary-bearer".to_owned())));
    assert!(call
        .url
        .ends_with("/model/anthropic.claude-3-haiku-20240307-v1:0/invoke"));
    // No region: MLflow's 400, after the body's own rules.
    let no_region = super::tests::wire(bearer(None), "anthropic.claude-3-haiku-20240307-v1:0");
    assert_eq!(
        plan_error(&no_region, EndpointType::Chat, chat),
        (400, json!("aws_region_name is required for Bedrock API key authentication. The API key can only be used in the AWS Region it was generated in."))
    );
    let bad_tool = json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]});
    assert_eq!(plan_error(&no_region, EndpointType::Chat, bad_tool).0, 422);
}

#[test]
fn sigv4_modes_take_the_region_and_endpoint_from_the_environment() {
    let env = AwsEnvironment::from_lookup(|name| {
        match name {
            "AWS_REGION" => Some("eu-central-1"),
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME" => Some("http://127.0.0.1:9/base"),
            _ => None,
        }
        .map(str::to_owned)
    });
    let config = AwsConfig::Base { region: None };
    let w = wire_with(config.clone(), "amazon.titan-embed-text-v1", &env);
    assert_eq!(w.region(), Some("eu-central-1"));
    let Plan::Embeddings { calls } = w
        .plan(&request(EndpointType::Embeddings, json!({"input": "x"})))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        calls[0].url,
        "http://127.0.0.1:9/base/model/amazon.titan-embed-text-v1/invoke"
    );
    // Without any region, boto3 cannot build a client: 500.
    let w = wire(config, "amazon.titan-embed-text-v1");
    assert_eq!(
        plan_error(&w, EndpointType::Embeddings, json!({"input": "x"})).0,
        500
    );
}

#[test]
fn chat_rules_give_mlflow_422s() {
    let w = wire(static_keys(), "m.x");
    let call = |calls: Value| json!({"messages": [{"role": "assistant", "content": "", "tool_calls": calls}]});
    assert_eq!(
        plan_error(
            &w,
            EndpointType::Chat,
            call(
                json!([{"id": "c1", "type": "function", "function": {"name": " ", "arguments": "{}"}}])
            )
        ),
        (
            422,
            json!("Invalid assistant tool call: missing function name for tool_call_id=c1.")
        )
    );
    assert_eq!(
        plan_error(&w, EndpointType::Chat, call(json!([{"id": "c2", "type": "function", "function": {"name": "f", "arguments": "  "}}]))),
        (422, json!("Invalid assistant tool call arguments: not valid JSON for tool_call_id=c2, tool_name=f."))
    );
    // Arguments absent: an empty input object; empty text content: no text block.
    let Plan::Chat { call: upstream, .. } = w
        .plan(&request(
            EndpointType::Chat,
            call(json!([{"id": "c3", "type": "function", "function": {"name": "f"}}])),
        ))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        body(&upstream)["messages"],
        json!([{"role": "assistant", "content": [{"toolUse": {"toolUseId": "c3", "name": "f", "input": {}}}]}])
    );
}

#[test]
fn completions_rules_give_mlflow_errors() {
    let completions = |model: &str, body: Value| {
        plan_error(&wire(static_keys(), model), EndpointType::Completions, body)
    };
    for model in ["claude-v2", "meta.llama3-8b-instruct-v1:0"] {
        assert_eq!(
            completions(model, json!({"prompt": "x"})),
            (422, json!("Unknown Amazon Bedrock model type None"))
        );
    }
    assert_eq!(
        completions("amazon.titan-text-lite-v1", json!({"prompt": "x", "n": 2})),
        (
            422,
            json!("'n' must be '1' for AWS Titan models. Received value: '2'.")
        )
    );
    assert_eq!(
        completions(
            "amazon.titan-text-lite-v1",
            json!({"prompt": "x", "top_p": 0})
        ),
        (
            422,
            json!("'top_p' must be greater than 0 for AWS Titan models. Received value: '0.0'.")
        )
    );
    assert_eq!(
        completions("anthropic.claude-v2", json!({"prompt": "x", "top_p": 0.5})),
        (422, json!("Cannot set both 'temperature' and 'top_p' parameters. Please use only the temperature parameter for your query."))
    );
    assert_eq!(
        completions(
            "anthropic.claude-v2",
            json!({"prompt": "x", "max_tokens": 1_000_001})
        ),
        (
            422,
            json!("Invalid value for max_tokens: cannot exceed 1000000.")
        )
    );
    assert_eq!(
        completions("anthropic.claude-v2", json!({"prompt": "x", "n": 3})),
        (
            422,
            json!("'n' must be '1' for the Anthropic provider. Received value: '3'.")
        )
    );
    assert_eq!(
        completions(
            "cohere.command-text-v14",
            json!({"prompt": "x", "num_generations": 2})
        ),
        (
            400,
            json!("Invalid parameter num_generations. Use n instead.")
        )
    );
    assert_eq!(
        completions(
            "amazon.titan-text-lite-v1",
            json!({"prompt": "x", "stream": true})
        ),
        (
            501,
            json!("The completions streaming route is not implemented for Amazon Bedrock models.")
        )
    );
}

#[test]
fn secrets_cover_every_configured_credential() {
    let w = wire(
        AwsConfig::StaticKeys {
            region: None,
            access_key_id: "AKID".to_owned(),
            secret_access_key: Secret::new("sk-canary-secret"),
            session_token: Some(Secret::new("sk-canary-token")),
        },
        "m.x",
    );
    assert_eq!(w.secrets(), ["sk-canary-secret", "sk-canary-token"]);
    let b = wire(bearer(None), "m.x");
    assert_eq!(b.secrets(), ["sk-canary-bearer"]);
    // Debug output (should a wire ever be logged) shows no credential.
    assert!(!format!("{w:?} {b:?}").contains("canary"));
}

/// Per-input `inputTextTokenCount`s are the upstream's numbers: their sum saturates instead of
/// overflowing.
#[test]
fn huge_embeddings_token_counts_saturate() {
    let wire = wire(static_keys(), "amazon.titan-embed-text-v1");
    let body = json!({"embedding": [0.5], "inputTextTokenCount": u64::MAX});
    let (_, usage) = wire.embeddings_response(vec![body.clone(), body]).unwrap();
    assert_eq!(usage.input_tokens, Some(u64::MAX));
}
