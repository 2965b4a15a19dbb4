//! Graceful shutdown of the real binary. On SIGTERM the gateway stops accepting at once (new
//! connections are refused), lets in-flight requests and streams finish for up to
//! `shutdown_grace_secs`, then exits 0. Idle keep-alive connections do not hold it up.
//!
//! At the end of the grace period the gateway ends what is still running itself: a reply still
//! awaited becomes a 503 with a JSON body, a stream gets a final error event and a properly ended
//! body (never a fake `[DONE]`), and the exit code is 0. actix-web's forced stop comes a second
//! later, once those are written. SIGINT (Ctrl-C) and SIGQUIT are actix's immediate stop: no
//! drain.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// One chat endpoint `slow` on the mock provider streaming `chunks` events `delay_ms` apart.
fn streaming_config(chunks: u32, delay_ms: u64) -> String {
    format!(
        "endpoints:\n{}",
        mock_endpoint(
            "slow",
            "llm/v1/chat",
            &format!("chunks: {chunks}, chunk_delay_ms: {delay_ms}")
        )
    )
}

fn start(chunks: u32, delay_ms: u64, grace_secs: u64) -> Gateway {
    Gateway::start_with(
        &streaming_config(chunks, delay_ms),
        &[],
        &[("SWITCHYARD_SHUTDOWN_GRACE_SECS", &grace_secs.to_string())],
    )
}

/// `w0 w1 ... w{n-1}`: with `n` chunks, the mock sends one word per event.
fn words(n: u32) -> String {
    (0..n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn port(gw: &Gateway) -> u16 {
    gw.base.rsplit(':').next().unwrap().parse().unwrap()
}

/// A streamed response as the client saw it.
struct Streamed {
    /// `data:` payloads with their arrival time (from the request).
    events: Vec<(Duration, String)>,
    /// Set when the body ended in an error.
    error: Option<String>,
}

/// Posts a `/v1` chat stream of `words(chunks)` to `slow` and reads it to its end, calling
/// `at_first_event` once when the first event has arrived.
async fn stream(gw: &Gateway, chunks: u32, at_first_event: impl FnOnce()) -> Streamed {
    let started = Instant::now();
    let mut response = client()
        .post(gw.url("/v1/chat/completions"))
        .send_json(&json!({"model": "slow", "stream": true,
                           "messages": [{"role": "user", "content": words(chunks)}]}))
        .await
        .expect("POST stream");
    assert_eq!(response.status().as_u16(), 200);
    let mut at_first_event = Some(at_first_event);
    let mut buffer: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    let mut error = None;
    while let Some(chunk) = response.next().await {
        match chunk {
            Ok(bytes) => buffer.extend_from_slice(&bytes),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let event = String::from_utf8(buffer.drain(..end + 2).collect()).unwrap();
            if let Some(data) = event.trim_end().strip_prefix("data: ") {
                events.push((started.elapsed(), data.to_owned()));
                if let Some(hook) = at_first_event.take() {
                    hook();
                }
            }
        }
    }
    Streamed { events, error }
}

/// The concatenated `delta.content` of `/v1` chunk events.
fn content(events: &[(Duration, String)]) -> String {
    events
        .iter()
        .filter(|(_, data)| data != "[DONE]")
        .map(|(_, data)| {
            let chunk: Value = serde_json::from_str(data).expect("chunk json");
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

#[actix_rt::test]
async fn sigterm_during_a_stream_lets_it_finish_then_exits_0() {
    const CHUNKS: u32 = 20;
    let mut gw = start(CHUNKS, 100, 30);
    let mut signalled_at = None;
    let streamed = stream(&gw, CHUNKS, || {
        signalled_at = Some(Instant::now());
        gw.signal("TERM");
    })
    .await;
    let signalled_at = signalled_at.expect("no event arrived");
    let drained_for = signalled_at.elapsed();

    // Every chunk, the finish chunk with usage, then [DONE]; no error.
    assert_eq!(streamed.error, None);
    assert_eq!(streamed.events.len(), CHUNKS as usize + 1);
    assert_eq!(streamed.events.last().unwrap().1, "[DONE]");
    let last: Value = serde_json::from_str(&streamed.events[CHUNKS as usize - 1].1).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop", "{last}");
    assert_eq!(last["usage"]["completion_tokens"], CHUNKS, "{last}");
    assert_eq!(content(&streamed.events), words(CHUNKS));
    // The stream really ran on after the signal (19 more chunks, 100 ms apart).
    assert!(
        drained_for >= Duration::from_secs(1),
        "stream ended {drained_for:?} after SIGTERM"
    );

    // Then the process exits 0, well before the grace period.
    let code = gw.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "logs:\n{}", gw.logs());
    let logs = gw.logs();
    assert!(
        logs.contains("SIGTERM received; starting graceful shutdown"),
        "{logs}"
    );
    assert!(logs.contains("finishing 1 connections"), "{logs}");
    // The stream was logged as the complete 200 it was.
    assert!(
        logs.lines().any(|l| l.contains("switchyard::access")
            && l.contains("stream=true")
            && l.contains("status=200")
            && l.contains(&format!("output_tokens={CHUNKS}"))),
        "{logs}"
    );
}

#[actix_rt::test]
async fn new_connections_are_refused_while_draining() {
    let mut gw = start(20, 100, 30);
    let port = port(&gw);
    let mut refused = Vec::new();
    let streamed = {
        let gw_ref = &gw;
        let reading = stream(gw_ref, 20, || gw_ref.signal("TERM"));
        let probing = async {
            // Once the accept loop has stopped, and for as long as the stream drains, every new
            // connection is refused (not queued, not answered).
            assert!(
                eventually(Duration::from_secs(5), || async {
                    gw_ref.logs().contains("accept thread stopped")
                })
                .await,
                "no graceful stop in the logs:\n{}",
                gw_ref.logs()
            );
            for _ in 0..10 {
                refused.push(
                    TcpStream::connect(("127.0.0.1", port))
                        .err()
                        .map(|e| e.kind()),
                );
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let (streamed, ()) = futures_util::future::join(reading, probing).await;
        streamed
    };
    assert_eq!(
        refused,
        vec![Some(ErrorKind::ConnectionRefused); 10],
        "a connection was accepted during the drain"
    );
    // Meanwhile the stream in flight completed.
    assert_eq!(streamed.error, None);
    assert_eq!(streamed.events.last().map(|e| e.1.as_str()), Some("[DONE]"));
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
}

#[actix_rt::test]
async fn sigterm_while_idle_exits_0_promptly_even_with_a_keep_alive_connection_open() {
    // The default grace period (30 s): an idle gateway must not wait for it.
    let mut gw = start(3, 0, 30);
    // An HTTP/1.1 keep-alive connection that has served a request and now sits idle, as
    // Nginx's upstream pool keeps them.
    let mut idle = TcpStream::connect(("127.0.0.1", port(&gw))).expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 512];
    let n = idle.read(&mut head).expect("health reply");
    let reply = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        !reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );

    let signalled = Instant::now();
    gw.signal("TERM");
    let code = gw.wait_exit(Duration::from_secs(5));
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "logs:\n{}", gw.logs());
    assert!(took < Duration::from_secs(3), "idle shutdown took {took:?}");
    // The idle connection was closed, not left half-open.
    assert!(matches!(idle.read(&mut head), Ok(0) | Err(_)));
}

/// The OpenAI-style error object of a request ended by the grace period (as a `/v1` body or as a
/// stream's final event).
fn assert_is_the_shutdown_error(body: &Value) {
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("shutting down")),
        "{body}"
    );
}

#[test]
fn a_stream_longer_than_the_grace_period_ends_with_an_error_event_at_it_and_the_process_exits_0() {
    // 20 chunks 500 ms apart (10 s) against a 2 s grace period. Read from a plain socket, to see
    // exactly how the response ends on the wire.
    const GRACE: Duration = Duration::from_secs(2);
    let mut gw = start(20, 500, GRACE.as_secs());
    let mut socket = TcpStream::connect(("127.0.0.1", port(&gw))).expect("connect");
    let body = json!({"model": "slow", "stream": true,
                      "messages": [{"role": "user", "content": words(20)}]})
    .to_string();
    write!(
        socket,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut wire = Vec::new();
    let mut buffer = [0u8; 8192];
    let mut signalled_at = None;
    let mut ended_at = None;
    loop {
        match socket.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => wire.extend_from_slice(&buffer[..n]),
            Err(e) => panic!(
                "read: {e} after {:?}",
                signalled_at.map(|t: Instant| t.elapsed())
            ),
        }
        if signalled_at.is_none() && wire.windows(6).any(|w| w == b"data: ") {
            signalled_at = Some(Instant::now());
            gw.signal("TERM");
        }
        if ended_at.is_none() && wire.ends_with(b"\r\n0\r\n\r\n") {
            ended_at = signalled_at.map(|t| t.elapsed());
        }
    }
    let ended_after = ended_at.expect("the chunked body was never terminated");
    let text = String::from_utf8_lossy(&wire);

    // Ended at the grace period, mid-stream: a 200 whose last event is the 503 error object and
    // whose chunked body is properly terminated, with neither a finish chunk nor [DONE].
    assert!(
        ended_after >= GRACE - Duration::from_millis(100)
            && ended_after < GRACE + Duration::from_secs(1),
        "stream ended {ended_after:?} after SIGTERM, grace {GRACE:?}"
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("[DONE]") && !text.contains(r#""finish_reason":"stop""#));
    let events: Vec<Value> = text
        .split("data: ")
        .skip(1)
        .map(|event| {
            let json = &event[..event.find("\n\n").expect("event end")];
            serde_json::from_str(json).expect("event json")
        })
        .collect();
    assert!(
        (4..20).contains(&events.len()),
        "{} events: {text}",
        events.len()
    );
    assert_is_the_shutdown_error(events.last().unwrap());
    assert!(events[..events.len() - 1]
        .iter()
        .all(|event| event["choices"][0]["delta"]["content"].is_string()));

    let code = gw.wait_exit(Duration::from_secs(5));
    assert_eq!(code, Some(0), "logs:\n{}", gw.logs());
    let logs = gw.logs();
    assert!(logs.contains("grace period over"), "{logs}");
    // Logged as the stream it was, failed for the shutdown.
    assert!(
        logs.lines().any(|l| l.contains("switchyard::access")
            && l.contains("stream=true")
            && l.contains("unavailable")),
        "{logs}"
    );
}

#[actix_rt::test]
async fn replies_still_awaited_at_the_end_of_the_grace_period_become_503s() {
    // The mock takes 10 s to answer; the grace period is 1 s. One request on each API family.
    const GRACE: Duration = Duration::from_secs(1);
    let config = format!(
        "endpoints:\n{}",
        mock_endpoint("sluggish", "llm/v1/chat", "latency_ms: 10000")
    );
    let mut gw = Gateway::start_with(
        &config,
        &[],
        &[(
            "SWITCHYARD_SHUTDOWN_GRACE_SECS",
            &GRACE.as_secs().to_string(),
        )],
    );
    let messages = json!([{"role": "user", "content": "hi"}]);
    let mlflow = client()
        .post(gw.url("/gateway/sluggish/invocations"))
        .send_json(&json!({ "messages": messages }));
    let openai = client()
        .post(gw.url("/v1/chat/completions"))
        .send_json(&json!({ "model": "sluggish", "messages": messages }));
    let mut signalled_at = None;
    let signal = async {
        // Time for both requests to reach the mock, which then sleeps 10 s; ample on loopback.
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        signalled_at = Some(Instant::now());
        gw.signal("TERM");
    };
    let (mlflow, openai, ()) = futures_util::future::join3(mlflow, openai, signal).await;
    let answered_after = signalled_at.unwrap().elapsed();
    assert!(
        answered_after >= GRACE - Duration::from_millis(100)
            && answered_after < GRACE + Duration::from_secs(1),
        "answered {answered_after:?} after SIGTERM"
    );

    let mut mlflow = mlflow.expect("MLflow-path reply");
    assert_eq!(mlflow.status().as_u16(), 503);
    assert_eq!(
        mlflow.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "a shutdown 503 says when to retry"
    );
    let body: Value = mlflow.json().await.expect("MLflow-path JSON");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("shutting down")),
        "MLflow-path body: {body}"
    );
    let mut openai = openai.expect("/v1 reply");
    assert_eq!(openai.status().as_u16(), 503);
    assert_eq!(
        openai.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert_is_the_shutdown_error(&openai.json().await.expect("/v1 JSON"));

    assert_eq!(
        gw.wait_exit(Duration::from_secs(5)),
        Some(0),
        "{}",
        gw.logs()
    );
}

#[actix_rt::test]
async fn sigint_stops_at_once_without_draining() {
    // Documents actix-web's behaviour for Ctrl-C: no grace period, the stream is cut at once.
    let mut gw = start(20, 200, 30);
    let mut signalled_at = None;
    let streamed = stream(&gw, 20, || {
        signalled_at = Some(Instant::now());
        gw.signal("INT");
    })
    .await;
    let cut_after = signalled_at.unwrap().elapsed();
    assert!(cut_after < Duration::from_millis(1500), "{cut_after:?}");
    assert!(streamed.events.iter().all(|(_, data)| data != "[DONE]"));
    assert_eq!(gw.wait_exit(Duration::from_secs(5)), Some(0));
}

#[actix_rt::test]
async fn a_fallback_route_does_not_try_its_other_destinations_at_the_end_of_the_grace_period() {
    // Both destinations take 10 s; the grace period is 1 s. The 503 that ends the request is the
    // gateway's own, so falling back would only charge the backup's rate limit for nothing.
    let config = format!(
        "endpoints:\n{}{}routes:\n  - name: resilient\n    task_type: llm/v1/chat\n    fallback: true\n    destinations:\n      - name: primary\n        traffic_percentage: 100\n      - name: backup\n        traffic_percentage: 0\n",
        mock_endpoint("primary", "llm/v1/chat", "latency_ms: 10000"),
        mock_endpoint("backup", "llm/v1/chat", "latency_ms: 10000"),
    );
    let mut gw = Gateway::start_with(&config, &[], &[("SWITCHYARD_SHUTDOWN_GRACE_SECS", "1")]);
    let request = client()
        .post(gw.url("/v1/chat/completions"))
        .send_json(&json!({"model": "resilient", "messages": [{"role": "user", "content": "hi"}]}));
    let signal = async {
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        gw.signal("TERM");
    };
    let (response, ()) = futures_util::future::join(request, signal).await;
    let mut response = response.expect("reply");
    assert_eq!(response.status().as_u16(), 503);
    assert_is_the_shutdown_error(&response.json().await.expect("JSON"));
    assert_eq!(gw.wait_exit(Duration::from_secs(5)), Some(0));
    let logs = gw.logs();
    assert!(
        !logs.contains("served by a fallback")
            && logs.matches("grace period over before the reply").count() == 1,
        "{logs}"
    );
}
