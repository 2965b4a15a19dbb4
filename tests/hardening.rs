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

// ---- Slow clients, the connection cap and HTTP-level defects (issue 17, defects 3 and 10) ----

/// What a slow-body client sends first: a head declaring 1,000 bytes and the first of them.
const SLOW_BODY_HEAD: &[u8] = b"POST /endpoints/chat/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";

/// `clients` connections that each send [`SLOW_BODY_HEAD`], then one more byte every 200 ms
/// (never a long gap, never the whole body) until an answer arrives, then wait for the close.
/// Returns what each received before the gateway closed it; signals `connected` once all are
/// open. Bounded: gives up after 60 s, returning only the closed ones.
fn trickle_bodies(
    address: &str,
    clients: usize,
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
    while !open.is_empty() && Instant::now() < deadline {
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
    let slow = std::thread::spawn(move || trickle_bodies(&address, CLIENTS, connected));
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
