//! Things breaking on purpose: oversized and garbage upstream replies, clients that leave before
//! the first byte or send too slowly, thousands of idle connections, hostile bodies and paths
//! (nothing reaches the upstream), and a config file that disappears or whose directory is
//! replaced — the last good config keeps serving throughout.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::upstream::{Reply, Upstream};
use common::*;
use serde_json::{json, Value};

const CANARY: &str = "sk-canary-hardening-0c7e";

fn config(upstream: &Upstream) -> String {
    format!(
        "endpoints:\n  - name: chat\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n      name: m\n      config:\n        openai_api_key: {CANARY}\n        openai_api_base: {}/v1\n  - name: embed\n    endpoint_type: llm/v1/embeddings\n    model:\n      provider: openai\n      name: e\n      config:\n        openai_api_key: {CANARY}\n        openai_api_base: {}/v1\n",
        upstream.base(),
        upstream.base()
    )
}

fn chat() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

#[actix_rt::test]
async fn an_oversized_upstream_body_is_a_clear_502() {
    let upstream = Upstream::start();
    let gw = Gateway::start_with(
        &config(&upstream),
        &[],
        &[("SWITCHYARD_UPSTREAM__MAX_RESPONSE_BYTES", "4096")],
    );
    let huge = "x".repeat(64 * 1024);
    upstream.push(Reply::json(200, &json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [], "padding": huge})));
    let reply = post_json(&gw.url("/endpoints/chat/invocations"), &chat()).await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert!(reply.json["detail"]
        .as_str()
        .unwrap()
        .contains("larger than 4096 bytes"));
    // Garbage with a JSON content type, and a wrong content type.
    upstream.push(Reply::raw(
        200,
        "application/json",
        b"\x00\xff garbage".to_vec(),
    ));
    let reply = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json["error"]["code"], "upstream_protocol");
    upstream.push(Reply::raw(200, "application/octet-stream", b"{}".to_vec()));
    let reply = post_json(&gw.url("/endpoints/chat/invocations"), &chat()).await;
    assert_eq!(reply.status, 502);
    assert!(!reply.text.contains(CANARY) && !gw.logs().contains(CANARY));
}

#[actix_rt::test]
async fn a_client_that_leaves_before_the_first_byte_frees_the_upstream() {
    let upstream = Upstream::start();
    upstream.push(Reply::json(200, &json!({})).head_delay(Duration::from_secs(10)));
    let gw = Gateway::start(&config(&upstream));
    let url = gw.url("/endpoints/chat/invocations");
    let request = client().post(&url).send_json(&chat());
    // Give up after 300 ms: the client's future (and its connection) is dropped.
    assert!(actix_rt::time::timeout(Duration::from_millis(300), request)
        .await
        .is_err());
    assert!(upstream.wait_requests(1, Duration::from_secs(2)).await);
    assert!(
        upstream.wait_aborted(1, Duration::from_millis(1_500)).await,
        "the upstream request kept running after the client left"
    );
}

#[test]
fn a_slow_client_gets_408_and_the_gateway_keeps_serving() {
    let upstream = Upstream::start();
    let gw = Gateway::start_with(
        &config(&upstream),
        &[],
        &[("SWITCHYARD_CLIENT_REQUEST_TIMEOUT_MS", "500")],
    );
    let address = gw.base.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"POST /endpoints/chat/invocations HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(upstream.request_count(), 0);
}

#[actix_rt::test]
async fn thousands_of_idle_connections_do_not_block_real_requests() {
    let upstream = Upstream::start();
    upstream.set_fallback(Reply::json(
        200,
        &json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    ));
    let gw = Gateway::start(&config(&upstream));
    let address = gw.base.trim_start_matches("http://").to_owned();
    let idle: Vec<TcpStream> = (0..3_000)
        .filter_map(|_| TcpStream::connect(&address).ok())
        .collect();
    assert!(
        idle.len() >= 2_900,
        "only {} idle connections opened",
        idle.len()
    );
    for _ in 0..20 {
        let reply = post_json(&gw.url("/endpoints/chat/invocations"), &chat()).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    drop(idle);
    assert_eq!(get(&gw.url("/health")).await.status, 200);
}

#[actix_rt::test]
async fn hostile_bodies_get_clear_errors_and_never_reach_the_upstream() {
    let upstream = Upstream::start();
    let gw = Gateway::start(&config(&upstream));
    let url = gw.url("/endpoints/chat/invocations");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("deeply nested", Some("application/json"), format!("{{\"messages\": {deep}}}").into_bytes(), 422),
        ("invalid UTF-8", Some("application/json"), b"{\"messages\": \"\xff\xfe\"}".to_vec(), 400),
        ("no content type", None, b"{}".to_vec(), 422),
        ("empty body", Some("application/json"), Vec::new(), 422),
        ("a JSON array", Some("application/json"), b"[1,2]".to_vec(), 422),
        ("wrong types everywhere", Some("application/json"),
         br#"{"messages": "x", "n": "many", "temperature": "hot", "stop": 5, "max_tokens": [], "stream": {}, "tools": 1}"#.to_vec(), 422),
        ("absurd n", Some("application/json"), br#"{"messages": [{"role": "user", "content": "x"}], "n": 1000000000000}"#.to_vec(), 422),
        ("absurd max_tokens", Some("application/json"), br#"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999999999999}"#.to_vec(), 422),
        ("absurd temperature", Some("application/json"), br#"{"messages": [{"role": "user", "content": "x"}], "temperature": 1e308}"#.to_vec(), 422),
        ("NaN-like number", Some("application/json"), br#"{"messages": [{"role": "user", "content": "x"}], "temperature": 1e400}"#.to_vec(), 422),
    ];
    for (what, content_type, body, status) in cases {
        let reply = post_raw(&url, content_type, body).await;
        assert_eq!(reply.status, status, "{what}: {}", reply.text);
        assert!(
            reply.json.get("detail").is_some(),
            "{what}: a JSON body saying what is wrong: {}",
            reply.text
        );
    }
    // Many messages are fine as long as the body fits the limit; 100 000 is validated quickly.
    let many: Vec<Value> = (0..100_000).map(|_| json!({"role": "user"})).collect();
    let reply = post_json(&url, &json!({"messages": many, "temperature": 9})).await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        upstream.request_count(),
        0,
        "a refused body reached the upstream"
    );
}

#[actix_rt::test]
async fn path_tricks_are_plain_404s() {
    let upstream = Upstream::start();
    let gw = Gateway::start(&config(&upstream));
    let long = "a".repeat(8_000);
    let paths = [
        "/endpoints/../endpoints/chat/invocations".to_owned(),
        "/endpoints/..%2Fchat/invocations".to_owned(),
        "/endpoints/chat%2Finvocations/invocations".to_owned(),
        "/endpoints/%2e%2e/invocations".to_owned(),
        format!("/endpoints/{long}/invocations"),
        "/gateway/chat%00/invocations".to_owned(),
    ];
    for path in &paths {
        let reply = post_json(&gw.url(path), &chat()).await;
        assert!(
            reply.status == 404
                || reply.status == 400
                || reply.status == 431
                || reply.status == 414,
            "{path}: {} {}",
            reply.status,
            reply.text
        );
        if reply.status == 404 {
            assert_eq!(reply.json, json!({"detail": "Not Found"}), "{path}");
        }
    }
    let reply = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "../chat", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(upstream.request_count(), 0);
}

#[actix_rt::test]
async fn the_last_good_config_survives_deletion_and_a_replaced_directory() {
    let gw = Gateway::start(&format!(
        "endpoints:\n{}",
        mock_endpoint("a", "llm/v1/chat", "")
    ));
    let status = |name: &'static str| {
        let url = gw.url(&format!("/api/2.0/endpoints/{name}"));
        async move { get(&url).await.status }
    };
    std::fs::remove_file(&gw.config_path).unwrap();
    assert!(
        gw.wait_for_log("unreadable", Duration::from_secs(3)),
        "{}",
        gw.logs()
    );
    assert_eq!(status("a").await, 200);

    std::fs::write(
        &gw.config_path,
        format!("endpoints:\n{}", mock_endpoint("b", "llm/v1/chat", "")),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || async {
            status("b").await == 200
        })
        .await
    );

    // The directory itself is removed and recreated: notify's watch dies with it; the poll
    // re-arms it and the new content is picked up.
    let dir = gw.config_path.parent().unwrap().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap();
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status("b").await, 200);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        &gw.config_path,
        format!("endpoints:\n{}", mock_endpoint("c", "llm/v1/chat", "")),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(4), || async {
            status("c").await == 200
        })
        .await,
        "{}",
        gw.logs()
    );
    // And notify works again after the re-arm.
    gw.save_config(&format!(
        "endpoints:\n{}",
        mock_endpoint("d", "llm/v1/chat", "")
    ));
    assert!(
        eventually(Duration::from_secs(3), || async {
            status("d").await == 200
        })
        .await
    );
}

// ---- JSON bodies: memory per request, the node limit (issue 17, defect 1) ----------------------

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// The x72 body of the issue: one message, then an unknown key holding an array of zeros, just
/// under the default 16 MiB limit. Returns the body and the array's exact text.
fn zeros_body() -> (Vec<u8>, String) {
    let head = r#"{"messages":[{"role":"user","content":"hi"}],"x":"#;
    let zeros = (16 * 1024 * 1024 - head.len() - 8) / 2;
    let mut x = String::with_capacity(zeros * 2 + 2);
    x.push('[');
    for i in 0..zeros {
        x.push_str(if i == 0 { "0" } else { ",0" });
    }
    x.push(']');
    let body = format!("{head}{x}}}").into_bytes();
    assert!(body.len() <= 16 * 1024 * 1024);
    (body, x)
}

fn chat_completion() -> Reply {
    Reply::json(
        200,
        &json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    )
}

/// Sends `copies` of the zeros body at once and checks each reached the upstream with `x` as
/// sent and got its answer, and that the gateway's peak RSS rose by at most 3x the bodies.
async fn zeros_bodies_cost_at_most_three_times_their_size(copies: usize) {
    let upstream = Upstream::start();
    upstream.set_fallback(chat_completion());
    let gw = Gateway::start(&config(&upstream));
    // One small request first, so that what is measured is the body, not first-use set-up.
    let reply = post_json(&gw.url("/endpoints/chat/invocations"), &chat()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    upstream.take_requests();
    let before_kib = status_kib(gw.pid(), "VmRSS");
    let (body, x) = zeros_body();
    let url = gw.url("/endpoints/chat/invocations");
    let replies = futures_util::future::join_all(
        (0..copies).map(|_| post_raw(&url, Some("application/json"), body.clone())),
    )
    .await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["choices"][0]["message"]["content"], "ok");
    }
    let received = upstream.take_requests();
    assert_eq!(received.len(), copies);
    for request in &received {
        let text = request.text();
        // Byte for byte: the array was never rebuilt.
        assert!(text.ends_with(&format!(",\"x\":{x}}}")), "x was changed");
        assert_eq!(
            request.json()["messages"],
            json!([{"role": "user", "content": "hi"}])
        );
    }
    let peak_kib = status_kib(gw.pid(), "VmHWM");
    let rise = peak_kib.saturating_sub(before_kib) * 1024;
    let bound = 3 * (copies * body.len()) as u64;
    eprintln!(
        "{copies} body(s) of {} bytes: peak RSS rose by {} KiB ({:.2}x)",
        body.len(),
        rise >> 10,
        rise as f64 / (copies * body.len()) as f64
    );
    assert!(
        rise <= bound,
        "peak RSS rose by {} MiB for {copies} body(s) of {} MiB (bound {} MiB)",
        rise >> 20,
        body.len() >> 20,
        bound >> 20
    );
}

#[actix_rt::test]
async fn a_16_mib_body_of_unknown_values_costs_at_most_three_times_its_size() {
    zeros_bodies_cost_at_most_three_times_their_size(1).await;
}

#[actix_rt::test]
async fn three_16_mib_bodies_at_once_cost_at_most_three_times_their_size() {
    zeros_bodies_cost_at_most_three_times_their_size(3).await;
}

#[actix_rt::test]
async fn a_body_over_the_node_limit_gets_a_413_naming_the_setting() {
    let upstream = Upstream::start();
    upstream.set_fallback(chat_completion());
    let gw = Gateway::start(&config(&upstream));
    // 50,001 messages of 3 values each: ~150,000 values, over the default 100,000, in 1.5 MB.
    let messages: Vec<Value> = (0..50_001)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    let message =
        "The request body has more JSON values than the limit of 100000 (setting `max_json_nodes`).";
    let reply = post_json(
        &gw.url("/endpoints/chat/invocations"),
        &json!({"messages": messages}),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.json, json!({"detail": message}));
    let reply = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "chat", "messages": messages}),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": "payload_too_large"}})
    );
    // A top-level non-object is counted before it is built for the 422's `input`, too.
    let zeros = format!("[{}0]", "0,".repeat(100_000));
    let reply = post_raw(
        &gw.url("/endpoints/chat/invocations"),
        Some("application/json"),
        zeros.into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(upstream.request_count(), 0);
    // The limit is a setting; an embeddings token array of OpenAI's size does not count.
    let gw = Gateway::start_with(
        &config(&upstream),
        &[],
        &[("SWITCHYARD_MAX_JSON_NODES", "50")],
    );
    let messages: Vec<Value> = (0..20)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    let reply = post_json(
        &gw.url("/endpoints/chat/invocations"),
        &json!({"messages": messages}),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(reply.text.contains("limit of 50 "), "{}", reply.text);
    upstream.push(Reply::json(
        200,
        &json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
                "model": "e", "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    ));
    let tokens: Vec<u32> = (0..300_000).collect();
    let reply = post_json(
        &gw.url("/endpoints/embed/invocations"),
        &json!({"input": tokens}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(upstream.only_request().json()["input"], json!(tokens));
}
