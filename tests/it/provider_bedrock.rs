//! `bedrock` / `amazon-bedrock` end to end: the real binary in front of scripted mock upstreams
//! speaking Bedrock's wire formats — Converse JSON, ConverseStream in AWS's binary event-stream
//! framing, InvokeModel per model family — and STS's AssumeRole XML. Every SigV4 signature the
//! mock receives is recomputed here from the recorded request with the test's own SHA-256/HMAC
//! (`provider_bedrock/aws.rs`), so the gateway's signer is checked by code that shares nothing
//! with it. Pins paths, headers and exact bodies, the translated answers, MLflow's 501s, 422s and
//! region 400, upstream errors, and that no credential reaches a response or a log line.

mod aws;
mod role;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::upstream::{Recorded, Reply as Script, Upstream};
use crate::common::*;
use aws::{event, event_message, verify_sigv4, Expect};
use serde_json::{json, Value};

const ACCESS_KEY: &str = "AKIDSTATICEXAMPLE";
const SECRET: &str = "sk-canary-secret-4b1d7e90";
const SESSION: &str = "sk-canary-session-2f8a6c13";
const BEARER: &str = "sk-canary-bearer-9e3a5d71";
const ENV_KEY: &str = "AKIDENVEXAMPLE";
const ENV_SECRET: &str = "sk-canary-env-secret-61c0b2af";
const ENV_TOKEN: &str = "sk-canary-env-token-0d94e7b3";
const ROLE_KEY: &str = "ASIAROLEEXAMPLE";
const ROLE_SECRET: &str = "sk-canary-role-secret-7a2e4f18";
const ROLE_TOKEN: &str = "sk-canary-role-token-c5b83d26";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/gateway-bedrock";
const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const SONNET: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const EVENTSTREAM: &str = "application/vnd.amazon.eventstream";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/bedrock/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/bedrock/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn endpoint(
    name: &str,
    kind: &str,
    provider: &str,
    model: &str,
    aws: &str,
    up: &Upstream,
) -> String {
    format!(
        "  - name: {name}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: {provider}\n      name: \"{model}\"\n      config:\n        aws_endpoint_url: {}\n        aws_config:\n{aws}",
        up.base()
    )
}

fn static_keys(token: bool) -> String {
    let mut aws = format!(
        "          aws_region: us-east-1\n          aws_access_key_id: {ACCESS_KEY}\n          aws_secret_access_key: {SECRET}\n"
    );
    if token {
        aws.push_str(&format!("          aws_session_token: {SESSION}\n"));
    }
    aws
}

fn bearer(region: Option<&str>) -> String {
    let mut aws = format!("          aws_bearer_token: {BEARER}\n");
    if let Some(region) = region {
        aws.push_str(&format!("          aws_region: {region}\n"));
    }
    aws
}

fn config(up: &Upstream) -> String {
    let keys = static_keys(true);
    let plain = static_keys(false);
    [
        endpoint("chat-keys", "chat", "bedrock", HAIKU, &keys, up),
        endpoint("stream-keys", "chat", "bedrock", SONNET, &keys, up),
        endpoint(
            "chat-bearer",
            "chat",
            "amazon-bedrock",
            HAIKU,
            &bearer(Some("us-west-2")),
            up,
        ),
        endpoint(
            "chat-bearer-noregion",
            "chat",
            "bedrock",
            HAIKU,
            &bearer(None),
            up,
        ),
        endpoint(
            "titan",
            "completions",
            "bedrock",
            "amazon.titan-text-express-v1",
            &plain,
            up,
        ),
        endpoint(
            "ai21",
            "completions",
            "bedrock",
            "ai21.j2-ultra-v1",
            &plain,
            up,
        ),
        endpoint(
            "claude-bearer",
            "completions",
            "bedrock",
            "anthropic.claude-v2:1",
            &bearer(Some("us-east-1")),
            up,
        ),
        endpoint(
            "llama",
            "completions",
            "bedrock",
            "meta.llama3-8b-instruct-v1:0",
            &plain,
            up,
        ),
        endpoint(
            "embed",
            "embeddings",
            "bedrock",
            "amazon.titan-embed-text-v2:0",
            &plain,
            up,
        ),
        endpoint(
            "embed-bearer",
            "embeddings",
            "bedrock",
            "amazon.titan-embed-text-v2:0",
            &bearer(Some("us-east-1")),
            up,
        ),
        endpoint(
            "chat-env",
            "chat",
            "bedrock",
            HAIKU,
            "          aws_region: eu-west-1\n",
            up,
        ),
    ]
    .into_iter()
    .fold("endpoints:\n".to_owned(), |mut yaml, e| {
        yaml.push_str(&e);
        yaml
    })
}

/// The base gateway: environment credentials for `chat-env`, nothing else from the machine.
fn start(up: &Upstream) -> Gateway {
    Gateway::start_with(
        &config(up),
        &[],
        &[
            ("AWS_ACCESS_KEY_ID", ENV_KEY),
            ("AWS_SECRET_ACCESS_KEY", ENV_SECRET),
            ("AWS_SESSION_TOKEN", ENV_TOKEN),
            ("AWS_REGION", ""),
            ("AWS_DEFAULT_REGION", ""),
        ],
    )
}

fn static_expect(token: bool) -> Expect<'static> {
    Expect {
        access_key_id: ACCESS_KEY,
        secret: SECRET,
        token: token.then_some(SESSION),
        region: "us-east-1",
        service: "bedrock",
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `created` is the gateway's clock: checked to be now, then pinned for comparison.
fn pin_created(mut body: Value) -> Value {
    let created = body["created"].as_i64().expect("created is an integer");
    assert!(
        (now() as i64 - created).abs() < 120,
        "created {created} is not now"
    );
    body["created"] = json!(1_700_000_000);
    body
}

fn assert_clean(gw: &Gateway, texts: &[&str]) {
    for text in texts {
        assert!(!text.contains("canary"), "a credential leaked: {text}");
    }
    for line in gw.logs().lines() {
        assert!(
            !line.contains("canary"),
            "a credential leaked into a log line: {line}"
        );
    }
}

async fn invoke(gw: &Gateway, name: &str, body: Value) -> Reply {
    post_json(&gw.url(&format!("/endpoints/{name}/invocations")), &body).await
}

fn assert_json_post(r: &Recorded, path: &str) {
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
        ("POST", path, None)
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[actix_rt::test]
async fn converse_chat_is_signed_with_static_keys_and_a_session_token() {
    let up = Upstream::start();
    let gw = start(&up);
    let case = fixture("converse/chat_tools.json");
    up.push(Script::json(200, &case["wire_response"]));
    let reply = invoke(&gw, "chat-keys", case["request"].clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(pin_created(reply.json.clone()), case["expected"]);
    let r = up.only_request();
    assert_json_post(&r, case["path"].as_str().unwrap());
    assert_eq!(r.text(), case["wire_request"].to_string());
    assert_eq!(r.header("host"), Some(up.host_port().as_str()));
    verify_sigv4(&r, &static_expect(true));
    // The checker is not vacuous: another secret fails it.
    let wrong = Expect {
        secret: "sk-canary-wrong",
        ..static_expect(true)
    };
    let check = std::panic::AssertUnwindSafe(|| verify_sigv4(&r, &wrong));
    assert!(std::panic::catch_unwind(check).is_err());
    assert_eq!(
        r.header("authorization")
            .unwrap()
            .split("SignedHeaders=")
            .nth(1)
            .unwrap()
            .split(',')
            .next(),
        Some("host;x-amz-date;x-amz-security-token")
    );
    // The OpenAI-compatible path reaches the same translation.
    up.push(Script::json(200, &case["wire_response"]));
    let mut v1 = case["request"].clone();
    v1["model"] = json!("chat-keys");
    let openai = post_json(&gw.url("/v1/chat/completions"), &v1).await;
    assert_eq!(openai.status, 200, "{}", openai.text);
    assert_eq!(pin_created(openai.json.clone()), case["expected"]);
    verify_sigv4(&up.only_request(), &static_expect(true));
    assert_clean(&gw, &[&reply.text, &openai.text]);
}

#[actix_rt::test]
async fn converse_stream_decodes_binary_event_stream_frames() {
    let up = Upstream::start();
    let gw = start(&up);
    for (name, parts) in [("text", 1), ("text", 37), ("tool_use", 5)] {
        let bytes = fixture_bytes(&format!("converse_stream/{name}.eventstream"));
        let expected = fixture(&format!("converse_stream/{name}.expected.json"));
        // Odd read boundaries: the frames are cut across writes.
        let size = bytes.len().div_ceil(parts);
        let pieces: Vec<Vec<u8>> = bytes.chunks(size).map(<[u8]>::to_vec).collect();
        up.push(Script::chunked(200, EVENTSTREAM, pieces));
        let reply = invoke(
            &gw,
            "stream-keys",
            json!({"messages": [{"role": "user", "content": "hi"}], "stream": true, "max_tokens": 50}),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(reply
            .headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let chunks: Vec<Value> = sse_data(&reply.text)
            .iter()
            .map(|d| pin_created(serde_json::from_str(d).unwrap()))
            .collect();
        assert_eq!(Value::Array(chunks), expected["chunks"], "{name}/{parts}");
        let r = up.only_request();
        assert_json_post(
            &r,
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream",
        );
        assert_eq!(
            r.text(),
            r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":50}}"#
        );
        verify_sigv4(&r, &static_expect(true));
        assert_clean(&gw, &[&reply.text]);
    }
    // On /v1 the same stream ends with [DONE].
    up.push(Script::chunked(
        200,
        EVENTSTREAM,
        vec![fixture_bytes("converse_stream/text.eventstream")],
    ));
    let reply = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "stream-keys", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
    )
    .await;
    let data = sse_data(&reply.text);
    assert_eq!(data.len(), 5, "{}", reply.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[actix_rt::test]
async fn stream_exceptions_and_cut_streams_end_with_an_error_event() {
    let up = Upstream::start();
    let gw = start(&up);
    let hello = event(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"Hello"}}"#,
    );
    let throttled = event_message(
        &[
            (":exception-type", "throttlingException"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        r#"{"message":"Too many tokens, please wait before trying again."}"#,
    );
    let mut corrupt = event("messageStop", r#"{"stopReason":"end_turn"}"#);
    corrupt[30] ^= 0xff;
    let cases = [
        (vec![hello.clone(), throttled], "Amazon Bedrock returned throttlingException while streaming: Too many tokens, please wait before trying again."),
        (vec![fixture_bytes("converse_stream/truncated.eventstream")], "The provider's stream ended before it was complete."),
        (vec![hello.clone(), corrupt], "The provider's event stream is malformed: message checksum mismatch."),
        (vec![hello.clone(), hello[..20].to_vec()], "The provider's event stream is malformed: the stream ended in the middle of a message."),
    ];
    for (parts, message) in cases {
        up.push(Script::chunked(200, EVENTSTREAM, parts));
        let reply = invoke(
            &gw,
            "stream-keys",
            json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
        )
        .await;
        assert_eq!(reply.status, 200);
        let events: Vec<Value> = sse_data(&reply.text)
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let last = events.last().unwrap();
        assert_eq!(last["error"]["message"], json!(message), "{}", reply.text);
        assert_eq!(events[0]["choices"][0]["delta"]["content"], json!("Hello"));
        assert!(
            !reply.text.contains("finish_reason\":\"stop"),
            "invented a finish: {}",
            reply.text
        );
        up.take_requests();
    }
}

#[actix_rt::test]
async fn bearer_token_auth_follows_mlflow() {
    let up = Upstream::start();
    let gw = start(&up);
    let answer = json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hi!"}]}}, "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}});
    up.push(Script::json(200, &answer));
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    let reply = invoke(&gw, "chat-bearer", chat.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        pin_created(reply.json.clone()),
        json!({"id": null, "object": "chat.completion", "created": 1_700_000_000, "model": HAIKU,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!", "tool_calls": null, "refusal": null}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, "provider": "amazon-bedrock"})
    );
    let r = up.only_request();
    // MLflow's bearer path: the model id as is, `Authorization: Bearer`, no SigV4.
    assert_json_post(&r, &format!("/model/{HAIKU}/converse"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {BEARER}").as_str())
    );
    assert_eq!(r.header("x-amz-date"), None);
    assert_eq!(
        r.text(),
        r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#
    );

    let mut stream = chat.clone();
    stream["stream"] = json!(true);
    let refusals = [
        ("chat-bearer", stream, 501, json!("Streaming is not yet supported for Bedrock API key (bearer token) auth. Use a non-streaming chat request instead.")),
        ("embed-bearer", json!({"input": "x"}), 501, json!("Embeddings are not supported for Bedrock API key (bearer token) auth. Use access_keys or default_chain auth mode for embeddings.")),
        ("chat-bearer-noregion", chat, 400, json!("aws_region_name is required for Bedrock API key authentication. The API key can only be used in the AWS Region it was generated in.")),
    ];
    for (name, body, status, detail) in refusals {
        let reply = invoke(&gw, name, body).await;
        assert_eq!(
            (reply.status, &reply.json),
            (status, &json!({"detail": detail})),
            "{name}"
        );
    }
    assert_eq!(
        up.request_count(),
        0,
        "refusals are decided before anything is sent"
    );
    assert_clean(&gw, &[&reply.text]);
}

#[actix_rt::test]
async fn invoke_model_completions_per_family() {
    let up = Upstream::start();
    let gw = start(&up);
    for (endpoint, name, signed) in [
        ("titan", "invoke/titan_text.json", true),
        ("ai21", "invoke/ai21.json", true),
        // MLflow 3.17 ignores the bearer token for completions (a bug); we send it.
        ("claude-bearer", "invoke/anthropic.json", false),
    ] {
        let case = fixture(name);
        up.push(Script::json(200, &case["wire_response"]));
        let reply = invoke(&gw, endpoint, case["request"].clone()).await;
        assert_eq!(reply.status, 200, "{endpoint}: {}", reply.text);
        assert_eq!(
            pin_created(reply.json.clone()),
            case["expected"],
            "{endpoint}"
        );
        let r = up.only_request();
        // SigV4 sends the model id percent-encoded (as boto3), the bearer path as is (as MLflow).
        let path = case["path"].as_str().unwrap();
        let path = if signed {
            path.to_owned()
        } else {
            path.replace("%3A", ":")
        };
        assert_json_post(&r, &path);
        assert_eq!(r.header("accept"), Some("application/json"));
        assert_eq!(r.text(), case["wire_request"].to_string(), "{endpoint}");
        if signed {
            verify_sigv4(&r, &static_expect(false));
        } else {
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {BEARER}").as_str())
            );
        }
        assert_clean(&gw, &[&reply.text]);
    }
    let refusals = [
        ("llama", json!({"prompt": "x"}), 422, "Unknown Amazon Bedrock model type None"),
        ("titan", json!({"prompt": "x", "n": 2}), 422, "'n' must be '1' for AWS Titan models. Received value: '2'."),
        ("titan", json!({"prompt": "x", "stream": true}), 501, "The completions streaming route is not implemented for Amazon Bedrock models."),
        ("claude-bearer", json!({"prompt": "x", "top_p": 0.3}), 422, "Cannot set both 'temperature' and 'top_p' parameters. Please use only the temperature parameter for your query."),
    ];
    for (name, body, status, detail) in refusals {
        let reply = invoke(&gw, name, body).await;
        assert_eq!(
            (reply.status, &reply.json),
            (status, &json!({"detail": detail})),
            "{name}"
        );
    }
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn embeddings_make_one_signed_call_per_input() {
    let up = Upstream::start();
    let gw = start(&up);
    let case = fixture("invoke/titan_embeddings.json");
    for answer in case["wire_responses"].as_array().unwrap() {
        up.push(Script::json(200, answer));
    }
    let reply = invoke(&gw, "embed", case["request"].clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json, case["expected"]);
    let requests = up.take_requests();
    assert_eq!(requests.len(), 2);
    for (r, body) in requests
        .iter()
        .zip(case["wire_requests"].as_array().unwrap())
    {
        assert_json_post(r, case["path"].as_str().unwrap());
        assert_eq!(r.text(), body.to_string());
        verify_sigv4(r, &static_expect(false));
    }
    assert_clean(&gw, &[&reply.text]);
}

#[actix_rt::test]
async fn upstream_errors_pass_through_with_bedrocks_body() {
    let up = Upstream::start();
    let gw = start(&up);
    for name in [
        "converse/error_validation.json",
        "converse/error_access_denied.json",
        "converse/error_throttling.json",
    ] {
        let case = fixture(name);
        let status = case["status"].as_u64().unwrap() as u16;
        let mut script = Script::json(status, &case["body"]);
        for (header, value) in case["headers"].as_object().unwrap() {
            script = script.header(header, value.as_str().unwrap());
        }
        up.push(script);
        let reply = invoke(
            &gw,
            "chat-keys",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(
            (reply.status, &reply.json),
            (status, &json!({"detail": case["body"]})),
            "{name}"
        );
        // Also before the first byte of a stream.
        up.push(Script::json(status, &case["body"]).header("x-amzn-errortype", "x"));
        let reply = invoke(
            &gw,
            "stream-keys",
            json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
        )
        .await;
        assert_eq!(
            (reply.status, &reply.json),
            (status, &json!({"detail": case["body"]})),
            "{name} (stream)"
        );
        up.take_requests();
    }
}

#[actix_rt::test]
async fn base_shape_signs_with_the_environments_credentials() {
    let up = Upstream::start();
    let gw = start(&up);
    up.push(Script::json(
        200,
        &json!({"output": {"message": {"content": [{"text": "ok"}]}}, "stopReason": "end_turn"}),
    ));
    let reply = invoke(
        &gw,
        "chat-env",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["usage"],
        json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null})
    );
    verify_sigv4(
        &up.only_request(),
        &Expect {
            access_key_id: ENV_KEY,
            secret: ENV_SECRET,
            token: Some(ENV_TOKEN),
            region: "eu-west-1",
            service: "bedrock",
        },
    );
    assert_clean(&gw, &[&reply.text]);
}
