//! Things breaking on purpose: oversized and garbage upstream replies, clients that leave before
//! the first byte or send too slowly, thousands of idle connections, hostile bodies and paths
//! (nothing reaches the upstream), and a config file that disappears or whose directory is
//! replaced — the last good config keeps serving throughout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::upstream::{Reply, Upstream};
use crate::common::*;
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
    // Many messages are fine as long as the body fits the limits: 40,000 messages (80,000 JSON
    // values, under the default `max_json_nodes` of 100,000) are validated quickly.
    let many: Vec<Value> = (0..40_000).map(|_| json!({"role": "user"})).collect();
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

// ---- Secrets and log hygiene (issue 17, defects 5, 6 and 7) ----

/// The forms of [`CANARY`] an upstream may echo: as is, percent-encoded (it holds only `-`
/// besides letters and digits), and the middle of its base64 in an echoed `Basic` header.
fn canary_forms() -> Vec<String> {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{CANARY}"));
    vec![
        CANARY.to_owned(),
        CANARY.replace('-', "%2D"),
        CANARY.replace('-', "%2d"),
        // Past `user:` (its first 8 characters) and before the last, padded group.
        basic[8..basic.len() - 4].to_owned(),
    ]
}

fn assert_no_canary(what: &str, text: &str) {
    for form in canary_forms() {
        assert!(!text.contains(&form), "{what}: {form:?} leaked in {text}");
    }
}

/// Waits until the gateway has written `count` access lines, so every line of those requests
/// (the WARN about the failure comes before its access line) is in the captured log.
fn wait_for_access_lines(gw: &Gateway, count: usize) -> String {
    let found = (0..300).any(|_| {
        if gw.logs().matches("switchyard::access").count() >= count {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
        false
    });
    assert!(found, "fewer than {count} access lines:\n{}", gw.logs());
    gw.logs()
}

#[actix_rt::test]
async fn an_upstream_that_echoes_the_key_anywhere_never_leaks_it() {
    use base64::Engine;
    let upstream = Upstream::start();
    let gw = Gateway::start(&config(&upstream));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{CANARY}"));
    // The key as an object key, as a percent-encoded query and inside an echoed Basic header;
    // the body is written in two reads split in the middle of the key.
    let error_body = json!({
        CANARY: "is not a valid key",
        "error": {"type": "auth", CANARY: {"url": format!("https://x/?key={}", CANARY.replace('-', "%2D"))}},
        "echo": {"authorization": format!("Basic {basic}")},
    })
    .to_string();
    let split = error_body.find(CANARY).unwrap() + 5;
    let split_reply = |status: u16, text: &str| {
        Reply::chunked(
            status,
            "application/json",
            vec![
                text.as_bytes()[..split].to_vec(),
                text.as_bytes()[split..].to_vec(),
            ],
        )
    };
    // Mid-stream: one good chunk, then an error event keyed by the key, also split across reads.
    let good_chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": null}]});
    let error_event = format!(
        "data: {}\n\n",
        json!({"error": {CANARY: "revoked", "hint": format!("Basic {basic}")}})
    );
    let mid = error_event.find(CANARY).unwrap() + 7;
    let mid_stream = || {
        Reply::sse(vec![
            format!("data: {good_chunk}\n\n").into_bytes(),
            error_event.as_bytes()[..mid].to_vec(),
            error_event.as_bytes()[mid..].to_vec(),
        ])
    };
    let mut requests = 0;
    for (path, body) in [
        ("/endpoints/chat/invocations", chat()),
        (
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}),
        ),
    ] {
        for stream in [false, true] {
            let mut body = body.clone();
            body["stream"] = json!(stream);
            let what = format!("{path} stream={stream}");
            upstream.push(split_reply(401, &error_body));
            let reply = post_json(&gw.url(path), &body).await;
            requests += 1;
            assert_eq!(reply.status, 401, "{what}: {}", reply.text);
            assert!(reply.text.contains("***"), "{what}: {}", reply.text);
            assert_no_canary(&what, &reply.text);
            if stream {
                upstream.push(mid_stream());
                let reply = post_json(&gw.url(path), &body).await;
                requests += 1;
                assert_eq!(reply.status, 200, "{what}");
                assert!(
                    reply.text.contains("***"),
                    "{what} mid-stream: {}",
                    reply.text
                );
                assert_no_canary(&format!("{what} mid-stream"), &reply.text);
            }
        }
    }
    let logs = wait_for_access_lines(&gw, requests);
    assert!(logs.contains("request failed"), "{logs}");
    assert_no_canary("logs", &logs);
}

#[actix_rt::test]
async fn upstream_text_cannot_forge_log_lines_or_send_terminal_escapes() {
    let upstream = Upstream::start();
    let gw = Gateway::start(&config(&upstream));
    let forged = "\n2026-01-01T00:00:00Z INFO switchyard::access: status=200 fake";
    let message = format!("boom{forged}\r\x1b[31mred\x1b[0m");
    upstream.push(Reply::json(500, &json!({"error": {"message": message}})));
    let reply = post_json(&gw.url("/endpoints/chat/invocations"), &chat()).await;
    assert_eq!(reply.status, 500, "{}", reply.text);
    // The client gets the upstream's message as JSON, which escapes it.
    assert_eq!(reply.json["detail"], json!(message));
    let logs = wait_for_access_lines(&gw, 1);
    let warned = logs
        .lines()
        .find(|line| line.contains("request failed"))
        .unwrap_or_else(|| panic!("no failure line in {logs}"));
    assert!(
        warned.contains(
            "boom\\n2026-01-01T00:00:00Z INFO switchyard::access: status=200 fake\\r\\u{1b}[31mred"
        ),
        "{warned}"
    );
    assert!(
        !logs
            .lines()
            .any(|line| line.starts_with("2026-01-01T00:00:00Z")),
        "a forged line: {logs}"
    );
    assert!(!logs.contains('\x1b') && !logs.contains('\r'), "{logs:?}");
}

// ---- Stream replies that are not streams (issue 17, defect 10) ----

#[actix_rt::test]
async fn a_stream_answered_with_a_non_stream_content_type_is_a_502_before_the_first_byte() {
    let upstream = Upstream::start();
    let yaml = format!(
        "{}  - name: co\n    endpoint_type: llm/v1/chat\n    model:\n      provider: cohere\n      name: command\n      config:\n        cohere_api_key: {CANARY}\n        cohere_api_base: {}/v1\n",
        config(&upstream),
        upstream.base()
    );
    let gw = Gateway::start(&yaml);
    let completion = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]});
    let cases = [
        // OpenAI speaks SSE: a whole JSON completion or a proxy's HTML page is not a stream.
        (
            "chat",
            Reply::json(200, &completion),
            "content type 'application/json' instead of 'text/event-stream'",
        ),
        (
            "chat",
            Reply::raw(200, "text/html; charset=utf-8", "<html>gateway</html>"),
            "content type 'text/html; charset=utf-8' instead of 'text/event-stream'",
        ),
        (
            "chat",
            Reply::raw(200, "", "data: {}\n\n"),
            "no content type instead of 'text/event-stream'",
        ),
        // Cohere v1 streams JSON lines: SSE is not its stream.
        (
            "co",
            Reply::sse(vec![b"data: {}\n\n".to_vec()]),
            "content type 'text/event-stream; charset=utf-8' instead of 'application/stream+json'",
        ),
    ];
    for (endpoint, reply, expected) in cases {
        for v1 in [false, true] {
            upstream.push(reply.clone());
            let (path, body) = if v1 {
                (
                    "/v1/chat/completions".to_owned(),
                    json!({"model": endpoint, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
                )
            } else {
                (
                    format!("/endpoints/{endpoint}/invocations"),
                    json!({"stream": true, "messages": [{"role": "user", "content": "x"}]}),
                )
            };
            let reply = post_json(&gw.url(&path), &body).await;
            assert_eq!(reply.status, 502, "{path}: {}", reply.text);
            let content_type = reply
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                content_type.starts_with("application/json"),
                "{path}: {content_type}"
            );
            let message = if v1 {
                assert_eq!(
                    reply.json["error"]["code"], "upstream_content_type",
                    "{}",
                    reply.text
                );
                reply.json["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            } else {
                reply.json["detail"].as_str().unwrap_or_default().to_owned()
            };
            assert!(message.contains(expected), "{path}: {message}");
        }
    }
    // The real stream content types still stream.
    upstream.push(Reply::sse_events(&[
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]}),
    ]));
    let reply = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.text.contains("[DONE]"), "{}", reply.text);
}

// ---------------------------------------------------------------------------------------------
// Config reloads, rate-limit windows and client keys (issue 17, defects 2, 4, 8, 9)
// ---------------------------------------------------------------------------------------------

/// A mock chat endpoint with a `limit:`.
fn limited_mock(name: &str, calls: u64, period: &str) -> String {
    format!(
        "{}    limit: {{calls: {calls}, renewal_period: {period}}}\n",
        mock_endpoint(name, "llm/v1/chat", "")
    )
}

async fn invoke_status(gw: &Gateway, name: &str) -> u16 {
    post_json(&gw.url(&format!("/endpoints/{name}/invocations")), &chat())
        .await
        .status
}

#[actix_rt::test]
async fn a_daily_limit_stays_spent_while_a_per_second_endpoint_triggers_sweeps() {
    // A sweep every 20 hits, so the per-second endpoint's traffic sweeps many times.
    let gw = Gateway::start_with(
        &format!(
            "endpoints:\n{}{}",
            limited_mock("daily", 2, "day"),
            limited_mock("fast", 1_000_000, "second")
        ),
        &[],
        &[("SWITCHYARD_RATE_LIMITS__SWEEP_EVERY_HITS", "20")],
    );
    assert_eq!(invoke_status(&gw, "daily").await, 200);
    assert_eq!(invoke_status(&gw, "daily").await, 200);
    assert_eq!(invoke_status(&gw, "daily").await, 429);
    // The bug dropped every window older than the sweeping endpoint's period (1 s), so the
    // traffic must outlast that: at least 1.5 s and 200 hits (ten sweeps), at most 50,000 hits.
    let exhausted = Instant::now();
    let mut hits = 0;
    while hits < 50_000 && (hits < 200 || exhausted.elapsed() < Duration::from_millis(1_500)) {
        assert_eq!(invoke_status(&gw, "fast").await, 200);
        hits += 1;
    }
    assert!(
        exhausted.elapsed() >= Duration::from_millis(1_500),
        "50,000 hits took under 1.5 s"
    );
    assert_eq!(
        invoke_status(&gw, "daily").await,
        429,
        "a sweep by the per-second endpoint's period refilled the daily quota"
    );
}

/// Ten mock endpoints `e0`..`e9`; `e0`'s model name marks the revision.
fn ten_endpoints(revision: &str) -> (String, String) {
    let mut first = String::from("endpoints:\n");
    first += &mock_endpoint("e0", "llm/v1/chat", "").replace("model-e0", revision);
    for i in 1..7 {
        first += &mock_endpoint(&format!("e{i}"), "llm/v1/chat", "");
    }
    let rest = (7..10)
        .map(|i| mock_endpoint(&format!("e{i}"), "llm/v1/chat", ""))
        .collect();
    (first, rest)
}

#[actix_rt::test]
async fn an_in_place_save_with_a_pause_never_serves_the_half_written_file() {
    let (first, rest) = ten_endpoints("r0");
    let gw = Gateway::start(&format!("{first}{rest}"));
    let e9 = gw.url("/api/2.0/endpoints/e9");
    let e0 = gw.url("/api/2.0/endpoints/e0");
    for (round, pause_ms) in [50u64, 200, 500].into_iter().enumerate() {
        let revision = format!("r{}", round + 1);
        let (first, rest) = ten_endpoints(&revision);
        // In place, as `cat > file` or a non-atomic editor save: truncate, the first seven
        // endpoints (valid YAML on their own), a pause with the file open, the rest, close.
        let path = gw.config_path.clone();
        let writer = std::thread::spawn(move || {
            let mut file = std::fs::File::create(&path).unwrap();
            file.write_all(first.as_bytes()).unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(pause_ms));
            file.write_all(rest.as_bytes()).unwrap();
        });
        // Requests to e9 (in the second half) until the new revision is live; bounded.
        let mut failures = Vec::new();
        let mut requests = 0;
        let mut live = false;
        while requests < 2_000 && !live {
            let reply = get(&e9).await;
            if reply.status != 200 {
                failures.push(reply.status);
            }
            requests += 1;
            live = writer.is_finished() && get(&e0).await.json["model"]["name"] == revision;
        }
        writer.join().unwrap();
        assert!(live, "pause {pause_ms} ms: the full file never went live");
        assert!(
            failures.is_empty(),
            "pause {pause_ms} ms: {} of {requests} requests failed ({:?}); logs:\n{}",
            failures.len(),
            &failures[..failures.len().min(5)],
            gw.logs()
        );
    }
    assert!(!gw.logs().contains("removing endpoints"), "{}", gw.logs());
}

#[actix_rt::test]
async fn a_reload_that_removes_endpoints_is_a_warning_naming_them() {
    let (first, rest) = ten_endpoints("r0");
    let gw = Gateway::start(&format!("{first}{rest}"));
    gw.save_config(&first);
    assert!(
        gw.wait_for_log("removing endpoints or routes", Duration::from_secs(3)),
        "{}",
        gw.logs()
    );
    let warning = gw
        .logs()
        .lines()
        .find(|line| line.contains("removing endpoints or routes"))
        .unwrap_or_default()
        .to_owned();
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("\"e7\", \"e8\", \"e9\""), "{warning}");
}

#[test]
fn trace_logging_into_the_config_directory_does_not_feed_itself() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gateway.yaml");
    std::fs::write(
        &config_path,
        format!("endpoints:\n{}", mock_endpoint("a", "llm/v1/chat", "")),
    )
    .unwrap();
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(BIN)
        .arg("start")
        .arg("--config-path")
        .arg(&config_path)
        .args(["--port", "0", "--workers", "1"])
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let started = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0) > 0;
    let size = || std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    // Startup quiesces: the size holds still over 300 ms (tried at most 20 times).
    let mut quiet = false;
    for _ in 0..20 {
        let before = size();
        std::thread::sleep(Duration::from_millis(300));
        if size() == before {
            quiet = true;
            break;
        }
    }
    // Then, over a few poll intervals, it may grow by a few lines at most, not without bound.
    let settled = size();
    std::thread::sleep(Duration::from_millis(2_500));
    let grown = size() - settled;
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "the gateway did not start: {line}");
    assert!(
        quiet && grown < 4_096,
        "the log kept growing ({} bytes in all, {grown} in the last 2.5 s)",
        size()
    );
}

/// A gateway behind a "proxy" (the test client, 127.0.0.1) with a `limited` endpoint.
fn behind_proxy(calls: u64, envs: &[(&str, &str)]) -> Gateway {
    let mut all = vec![("SWITCHYARD_RATE_LIMITS__TRUSTED_PROXIES", "127.0.0.1")];
    all.extend_from_slice(envs);
    Gateway::start_with(
        &format!("endpoints:\n{}", limited_mock("limited", calls, "minute")),
        &[],
        &all,
    )
}

async fn status_with(gw: &Gateway, headers: &[(&str, String)]) -> u16 {
    let mut request = client().post(gw.url("/endpoints/limited/invocations"));
    for (name, value) in headers {
        request = request.insert_header((*name, value.as_str()));
    }
    request.send_json(&chat()).await.unwrap().status().as_u16()
}

#[actix_rt::test]
async fn garbage_forwarded_for_with_a_rotating_x_real_ip_buys_no_quota() {
    let gw = behind_proxy(10, &[]);
    let mut admitted = 0;
    for i in 0..13 {
        let status = status_with(
            &gw,
            &[
                ("x-forwarded-for", "not-an-ip".to_owned()),
                ("x-real-ip", format!("203.0.113.{i}")),
            ],
        )
        .await;
        admitted += usize::from(status == 200);
    }
    assert_eq!(admitted, 10, "the rotating X-Real-IP was believed");
}

#[actix_rt::test]
async fn a_key_header_counts_only_from_trusted_proxies() {
    // The trusted proxy is elsewhere: the test client's X-Team is not believed.
    let gw = Gateway::start_with(
        &format!("endpoints:\n{}", limited_mock("limited", 3, "minute")),
        &[],
        &[
            ("SWITCHYARD_RATE_LIMITS__KEY", "header:X-Team"),
            ("SWITCHYARD_RATE_LIMITS__TRUSTED_PROXIES", "10.255.0.1"),
        ],
    );
    let mut admitted = 0;
    for i in 0..6 {
        let status = status_with(&gw, &[("x-team", format!("team-{i}"))]).await;
        admitted += usize::from(status == 200);
    }
    assert_eq!(admitted, 3, "a direct client chose its own key");

    // Opting in believes any caller.
    let open = behind_proxy(
        1,
        &[
            ("SWITCHYARD_RATE_LIMITS__KEY", "header:X-Team"),
            ("SWITCHYARD_RATE_LIMITS__TRUST_KEY_HEADER_FROM", "any"),
        ],
    );
    assert_eq!(status_with(&open, &[("x-team", "a".to_owned())]).await, 200);
    assert_eq!(status_with(&open, &[("x-team", "b".to_owned())]).await, 200);
    assert_eq!(status_with(&open, &[("x-team", "a".to_owned())]).await, 429);

    // A header key that could never be believed is a startup error, not a silent per-IP limit.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        format!("endpoints:\n{}", limited_mock("l", 1, "minute")),
    )
    .unwrap();
    let output = std::process::Command::new(BIN)
        .arg("start")
        .arg("--config-path")
        .arg(&path)
        .args(["--port", "0"])
        .env("SWITCHYARD_RATE_LIMITS__KEY", "header:X-Team")
        .env_remove("SWITCHYARD_RATE_LIMITS__TRUSTED_PROXIES")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("trust_key_header_from"), "{stderr}");
}

#[actix_rt::test]
async fn a_flood_of_new_client_keys_neither_frees_a_spent_client_nor_locks_anyone_out() {
    let gw = behind_proxy(3, &[("SWITCHYARD_RATE_LIMITS__MAX_WINDOWS", "50")]);
    let victim = [("x-forwarded-for", "198.51.100.1".to_owned())];
    for _ in 0..3 {
        assert_eq!(status_with(&gw, &victim).await, 200);
    }
    assert_eq!(status_with(&gw, &victim).await, 429);
    // Six times the cap in fresh keys, one request each: each is served (no new client is
    // refused for room), and the spent client, idle meanwhile, is not the one evicted.
    for i in 0..300u32 {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        assert_eq!(
            status_with(&gw, &[("x-forwarded-for", ip.clone())]).await,
            200,
            "new client {ip} refused"
        );
    }
    assert_eq!(
        status_with(&gw, &victim).await,
        429,
        "the flood evicted a spent client's window"
    );
}

// ---- Slow clients, the connection cap and HTTP-level defects (issue 17, defects 3 and 10) ----

/// What a slow-body client sends first: a head declaring 1,000 bytes and the first of them.
const SLOW_BODY_HEAD: &[u8] = b"POST /endpoints/chat/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";

/// `clients` connections that each send [`SLOW_BODY_HEAD`], then one more byte every 200 ms
/// (never a long gap, never the whole body) until an answer arrives, then wait for the close.
/// Returns what each received before the gateway closed it; signals `connected` once all are
/// open. Stops once `enough` were closed (dropping the rest). Bounded: gives up after 60 s,
/// returning only the closed ones.
fn trickle_bodies(
    address: &str,
    clients: usize,
    enough: usize,
    connected: std::sync::mpsc::Sender<()>,
) -> Vec<String> {
    let mut open: Vec<(TcpStream, Vec<u8>)> = (0..clients)
        .map(|_| {
            let mut socket = TcpStream::connect(address).expect("connect");
            socket.write_all(SLOW_BODY_HEAD).expect("head");
            socket.set_nonblocking(true).expect("nonblocking");
            (socket, Vec::new())
        })
        .collect();
    let _ = connected.send(());
    let mut closed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !open.is_empty() && closed.len() < enough && Instant::now() < deadline {
        open.retain_mut(|(socket, received)| {
            if received.is_empty() {
                let _ = socket.write(b" ");
            }
            let mut buffer = [0u8; 4096];
            loop {
                match socket.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => received.extend_from_slice(&buffer[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(_) => break,
                }
            }
            closed.push(String::from_utf8_lossy(received).into_owned());
            false
        });
        // The client's pace, not a wait for the gateway.
        std::thread::sleep(Duration::from_millis(200));
    }
    closed
}

#[actix_rt::test]
async fn slow_body_clients_are_cut_and_health_answers_under_a_low_descriptor_limit() {
    let upstream = Upstream::start();
    // 256 descriptors: 54 connections per worker once the gateway keeps its reserve, fewer
    // than the 300 slow clients, which before the cap ran the gateway out of descriptors.
    let gw = Gateway::start_with_open_files(
        &config(&upstream),
        &[],
        &[("SWITCHYARD_CLIENT_BODY_TIMEOUT_MS", "1000")],
        256,
    );
    assert!(
        gw.wait_for_log("max_connections_per_worker=54", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    const CLIENTS: usize = 300;
    let address = gw.base.trim_start_matches("http://").to_owned();
    let (connected, all_connected) = std::sync::mpsc::channel();
    let slow = std::thread::spawn(move || trickle_bodies(&address, CLIENTS, CLIENTS, connected));
    all_connected
        .recv_timeout(Duration::from_secs(20))
        .expect("the slow clients connected");
    // Every slot is taken now; /health waits in the listen backlog for one to free up, which
    // the body timeout bounds, instead of failing to be accepted at all.
    for _ in 0..3 {
        let reply = get(&gw.url("/health")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let answers = slow.join().expect("slow clients");
    assert_eq!(answers.len(), CLIENTS, "slow clients still held open");
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(
            answer.contains("did not arrive within 1000 ms"),
            "{answer:?}"
        );
    }
    assert_eq!(get(&gw.url("/health")).await.status, 200);
    let logs = gw.logs();
    assert!(!logs.contains("Too many open files"), "{logs}");
    assert!(!logs.contains("Error accepting connection"), "{logs}");
    assert_eq!(upstream.request_count(), 0);
}

#[actix_rt::test]
async fn near_the_connection_cap_slow_bodies_are_cut_soon_so_health_is_served() {
    let upstream = Upstream::start();
    // The default 60 s body timeout: 300 slowloris clients fill the 108 slots, and only the
    // busy timeout (2 s by default, from 90% of the cap) frees them in time for /health, whose
    // client gives up after 30 s.
    let gw = Gateway::start_with_open_files(&config(&upstream), &[], &[], 256);
    const CLIENTS: usize = 300;
    let address = gw.base.trim_start_matches("http://").to_owned();
    let (connected, all_connected) = std::sync::mpsc::channel();
    // Once fewer than 90% of the slots are taken the 60 s timeout applies again, so only the
    // clients cut while the gateway was busy (all but about a cap's worth) are waited for.
    const CUT_WHILE_BUSY: usize = CLIENTS - 108;
    let slow =
        std::thread::spawn(move || trickle_bodies(&address, CLIENTS, CUT_WHILE_BUSY, connected));
    all_connected
        .recv_timeout(Duration::from_secs(20))
        .expect("the slow clients connected");
    let reply = get(&gw.url("/health")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let answers = slow.join().expect("slow clients");
    assert!(
        answers.len() >= CUT_WHILE_BUSY,
        "only {} slow clients cut",
        answers.len()
    );
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(
            answer
                .contains("did not arrive within 2000 ms (the gateway is near its connection cap)"),
            "{answer:?}"
        );
    }
    assert_eq!(upstream.request_count(), 0);
}

/// A connection whose receive window is tiny and never read from: it accepts a few KiB of a
/// reply and then nothing.
fn non_reading_client(address: &str, request: &[u8]) -> TcpStream {
    let address: std::net::SocketAddr = address.parse().expect("address");
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    // Set before connecting, so the window is small from the handshake on (no autotuning).
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&address.into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    stream.write_all(request).expect("request");
    stream
}

fn http_post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[actix_rt::test]
async fn a_client_that_reads_no_reply_is_cut_and_its_upstream_released() {
    let upstream = Upstream::start();
    let gw = Gateway::start_with(
        &config(&upstream),
        &[],
        &[
            ("SWITCHYARD_CLIENT_SEND_TIMEOUT_MS", "1000"),
            ("SWITCHYARD_LOG__LEVEL", "info,actix_http=debug"),
        ],
    );
    let address = gw.base.trim_start_matches("http://").to_owned();
    const CUT: &str = "the client accepted no response bytes within the send timeout";

    // An 8 MiB reply, more than the kernel buffers between the gateway and the client hold.
    let size = 8 << 20;
    upstream.push(Reply::json(
        200,
        &json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "x".repeat(size)}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    ));
    let mut reader = non_reading_client(
        &address,
        &http_post("/endpoints/chat/invocations", &chat().to_string()),
    );
    assert!(
        gw.wait_for_log(CUT, Duration::from_secs(30)),
        "{}",
        gw.logs()
    );
    // What the kernel buffered arrives, then the end: far less than the reply.
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = Vec::new();
    let _ = reader.read_to_end(&mut received);
    assert!(received.starts_with(b"HTTP/1.1 200"));
    assert!(
        received.len() < size,
        "{} bytes arrived: the reply was not cut",
        received.len()
    );

    // A stream nobody reads: once cut, the upstream request behind it is cancelled.
    let chunk = |content: &str| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    };
    let events: Vec<Value> = (0..800).map(|_| chunk(&"y".repeat(16 * 1024))).collect();
    upstream.push(Reply::sse_events(&events).gaps(Duration::from_millis(10)));
    let body =
        json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let _stalled = non_reading_client(
        &address,
        &http_post("/v1/chat/completions", &body.to_string()),
    );
    assert!(
        upstream.wait_aborted(1, Duration::from_secs(30)).await,
        "the upstream stream kept running behind a client that reads nothing; {}",
        gw.logs()
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            gw.logs().matches(CUT).count() == 2
        })
        .await,
        "{}",
        gw.logs()
    );
    assert_eq!(get(&gw.url("/health")).await.status, 200);
}

/// Writes `request` on a new connection and returns everything read until the gateway closes
/// it (or 10 s pass).
fn exchange(address: &str, request: &[u8]) -> String {
    let mut socket = TcpStream::connect(address).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket.write_all(request).expect("request");
    let mut received = Vec::new();
    let _ = socket.read_to_end(&mut received);
    String::from_utf8_lossy(&received).into_owned()
}

fn ok_chat_reply() -> Reply {
    Reply::json(
        200,
        &json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    )
}

#[actix_rt::test]
async fn a_declared_length_over_the_limit_gets_413_before_the_body_and_instead_of_100_continue() {
    let upstream = Upstream::start();
    upstream.set_fallback(ok_chat_reply());
    let gw = Gateway::start_with(
        &config(&upstream),
        &[],
        &[("SWITCHYARD_BODY_LIMIT_BYTES", "1000")],
    );
    let address = gw.base.trim_start_matches("http://").to_owned();
    for (path, expect, shape) in [
        ("/endpoints/chat/invocations", "", "\"detail\""),
        (
            "/endpoints/chat/invocations",
            "Expect: 100-continue\r\n",
            "\"detail\"",
        ),
        (
            "/v1/chat/completions",
            "Expect: 100-continue\r\n",
            "\"payload_too_large\"",
        ),
    ] {
        // No body byte is ever sent: the answer must come from the head alone.
        let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n{expect}\r\n");
        let answer = exchange(&address, head.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "{path} {expect:?}: {answer:?}"
        );
        assert!(!answer.contains("100 Continue"), "{answer:?}");
        assert!(
            answer.contains("larger than the limit of 1000 bytes"),
            "{answer:?}"
        );
        assert!(answer.contains(shape), "{answer:?}");
    }
    // Within the limit, `Expect: 100-continue` still gets its `100 Continue`, then the answer.
    let body = chat().to_string();
    let mut socket = TcpStream::connect(&address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(socket, "POST /endpoints/chat/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", body.len()).unwrap();
    let mut interim = [0u8; 25];
    socket.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    socket.write_all(body.as_bytes()).unwrap();
    let mut rest = String::new();
    let _ = socket.read_to_string(&mut rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest:?}");
    assert_eq!(upstream.request_count(), 1);
}

#[actix_rt::test]
async fn compressed_request_bodies_get_415_and_identity_passes() {
    let upstream = Upstream::start();
    upstream.set_fallback(ok_chat_reply());
    let gw = Gateway::start(&config(&upstream));
    let send = |path: &'static str, encoding: &'static str| {
        let url = gw.url(path);
        async move {
            let body = if path.starts_with("/v1") {
                json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
            } else {
                chat()
            };
            let response = client()
                .post(&url)
                .insert_header(("content-type", "application/json"))
                .insert_header(("content-encoding", encoding))
                .send_body(body.to_string())
                .await
                .expect("POST");
            let status = response.status().as_u16();
            let mut response = response;
            let text = response.body().await.expect("body");
            (status, String::from_utf8_lossy(&text).into_owned())
        }
    };
    for encoding in [
        "gzip",
        "br",
        "deflate",
        "zstd",
        "x-bomb",
        "identity, gzip",
        "GZIP",
    ] {
        let (status, text) = send("/endpoints/chat/invocations", encoding).await;
        assert_eq!(status, 415, "{encoding}: {text}");
        assert!(text.contains("\"detail\""), "{text}");
        assert!(
            text.contains("send the request body uncompressed"),
            "{text}"
        );
        let (status, text) = send("/v1/chat/completions", encoding).await;
        assert_eq!(status, 415, "{encoding}: {text}");
        assert!(text.contains("\"unsupported_encoding\""), "{text}");
    }
    assert_eq!(upstream.request_count(), 0);
    let (status, text) = send("/endpoints/chat/invocations", "identity").await;
    assert_eq!(status, 200, "{text}");
}

#[actix_rt::test]
async fn head_health_answers_200() {
    let gw = Gateway::start(&format!(
        "endpoints:\n{}",
        mock_endpoint("a", "llm/v1/chat", "")
    ));
    let response = client().head(gw.url("/health")).send().await.expect("HEAD");
    assert_eq!(response.status().as_u16(), 200);
    let reply = post_raw(&gw.url("/health"), None, Vec::new()).await;
    assert_eq!(reply.status, 405);
}

#[actix_rt::test]
async fn malformed_client_requests_are_answered_400_and_not_logged_as_errors() {
    let gw = Gateway::start(&format!(
        "endpoints:\n{}{}",
        mock_endpoint("a", "llm/v1/chat", ""),
        mock_endpoint("b", "llm/v1/chat", "")
    ));
    let address = gw.base.trim_start_matches("http://").to_owned();
    let garbage: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /health HTTP/9.9\r\n\r\n",
        b"POST /endpoints/a/invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    for request in garbage {
        let answer = exchange(&address, request);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    }
    // A request after them is logged (at INFO) after anything logged for the garbage.
    let reply = post_json(&gw.url("/endpoints/b/invocations"), &chat()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(gw.wait_for_log("path=/endpoints/b/invocations", Duration::from_secs(5)));
    let logs = gw.logs();
    assert!(!logs.contains("ERROR"), "{logs}");
}

#[test]
fn a_slow_second_request_head_on_a_kept_alive_connection_gets_408() {
    let gw = Gateway::start_with(
        &format!("endpoints:\n{}", mock_endpoint("a", "llm/v1/chat", "")),
        &[],
        &[("SWITCHYARD_CLIENT_REQUEST_TIMEOUT_MS", "500")],
    );
    let address = gw.base.trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(&address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 512];
    let n = socket.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // The next head, a byte at a time: before, only the first request's head had a deadline.
    let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    socket.set_nonblocking(true).unwrap();
    let mut received = Vec::new();
    let mut bytes = head.iter().chain(std::iter::repeat(&b'a'));
    for _ in 0..200 {
        if let Some(byte) = bytes.next() {
            let _ = socket.write(std::slice::from_ref(byte));
        }
        let mut buffer = [0u8; 512];
        match socket.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        // The client's pace (a byte per 50 ms), not a wait for the gateway.
        std::thread::sleep(Duration::from_millis(50));
    }
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 408"), "{received:?}");
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

/// Sends `copies` of the zeros body at once and checks each reached the upstream with `x` as
/// sent and got its answer, and that the gateway's peak RSS rose by at most 3x the bodies.
async fn zeros_bodies_cost_at_most_three_times_their_size(copies: usize) {
    let upstream = Upstream::start();
    upstream.set_fallback(ok_chat_reply());
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
    upstream.set_fallback(ok_chat_reply());
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
