//! The production deployment of `docker/`, tested with the real servers (Debian's packages, as
//! `.ci/run` installs them) on 127.0.0.1 free ports in temporary directories:
//!
//! - Nginx runs the shipped `docker/nginx.conf` itself: the test configuration is generated from
//!   that file by substituting only addresses, ports and paths (each substitution must match, so
//!   the file cannot drift away from what is tested). Basic auth, SSE passing event by event,
//!   client addresses reaching the rate limiter through the trusted-proxy headers, request ids,
//!   and the optional TLS listener of `docker/tls.d/tls.conf.example`.
//! - Prometheus runs the shipped `docker/prometheus.yml` (targets and interval substituted) and
//!   its HTTP API must report the gateway up and the request counter equal to what was sent.
//! - The image's health probe (`docker/healthcheck.sh`) runs against a live gateway.
//!
//! Every server is killed when its guard drops; every wait is bounded.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::upstream::{Reply, Upstream};
use crate::common::*;
use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{json, Value};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read_repo_file(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// The path of an installed program, or a failure that says how to install it.
fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not installed: these tests run the real server \
                 (apt-get install {package}; .ci/run installs it)"
            )
        })
}

/// A port that was free on 127.0.0.1 a moment ago (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn gateway_port(gw: &Gateway) -> u16 {
    gw.base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {}", gw.base))
}

/// Replaces each `from` in `text` (which must contain it: the shipped file is what is tested).
fn substitute(file: &str, text: &str, replacements: &[(&str, String)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "{file} no longer contains `{from}`; tests/deploy.rs adapts the shipped file by \
             substitution, update both together"
        );
        text = text.replace(from, to);
    }
    text
}

fn wait_for_port(port: u16, timeout: Duration, alive: &mut dyn FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Err(why) = alive() {
            panic!("{why}");
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Sends SIGTERM, waits up to 5 s, then SIGKILL (Nginx's workers leave with a terminated master,
/// not with a killed one).
fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// An htpasswd line made as docker/README.md says (`openssl passwd -apr1`).
fn htpasswd_line(user: &str, password: &str) -> String {
    let openssl = require("openssl", "openssl");
    let output = Command::new(openssl)
        .args(["passwd", "-apr1", password])
        .output()
        .expect("run openssl passwd");
    assert!(output.status.success(), "{}", output_text(&output));
    let hash = String::from_utf8(output.stdout).unwrap();
    assert!(hash.starts_with("$apr1$"), "{hash}");
    format!("{user}:{}\n", hash.trim())
}

// ------------------------------------------------------------------------------------------------
// Nginx with the shipped docker/nginx.conf

struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    tls_port: Option<u16>,
}

impl Nginx {
    /// Nginx on a free port in front of the gateway listening on `upstream_port`, with an
    /// htpasswd holding [`USER`]; with `tls`, the shipped TLS example enabled on a second port
    /// with a fresh self-signed certificate for 127.0.0.1.
    fn start(upstream_port: u16, tls: bool) -> Nginx {
        let nginx = require("nginx", "nginx");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for sub in ["etc/tls.d", "etc/certs", "logs", "cache"] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        let port = free_port();
        let root_str = root.to_str().expect("utf-8 temp path");
        // Run as the current user. When that is root, Nginx hands its workers to `user`, who
        // must read the private temporary directory: root itself then. Otherwise `user` would
        // only draw a warning, so it goes.
        // SAFETY: geteuid has no preconditions and cannot fail.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let conf = substitute(
            "docker/nginx.conf",
            &read_repo_file("docker/nginx.conf"),
            &[
                ("user nginx;", user.to_owned()),
                (
                    "server switchyard:5000;",
                    format!("server 127.0.0.1:{upstream_port};"),
                ),
                ("listen 8080;", format!("listen 127.0.0.1:{port};")),
                ("/etc/nginx/", format!("{root_str}/etc/")),
                ("/var/log/nginx/", format!("{root_str}/logs/")),
                ("/var/cache/nginx/", format!("{root_str}/cache/")),
                ("/run/nginx.pid", format!("{root_str}/nginx.pid")),
            ],
        );
        // Nothing of the system's Nginx setup may remain in the tested file (comments aside).
        let directives: String = conf
            .lines()
            .map(|line| line.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for system in ["/etc/nginx", "/var/", "/run/", "switchyard:5000", "8080"] {
            assert!(
                !directives.contains(system),
                "docker/nginx.conf has `{system}` where tests/deploy.rs does not rewrite it"
            );
        }
        std::fs::write(root.join("nginx.conf"), conf).expect("write nginx.conf");
        std::fs::write(root.join("etc/htpasswd"), htpasswd_line(USER, PASSWORD))
            .expect("write htpasswd");

        let tls_port = tls.then(|| {
            make_certificate(&root.join("etc/certs"));
            let port = free_port();
            let tls_conf = substitute(
                "docker/tls.d/tls.conf.example",
                &read_repo_file("docker/tls.d/tls.conf.example"),
                &[
                    ("listen 8443 ssl;", format!("listen 127.0.0.1:{port} ssl;")),
                    ("/etc/nginx/certs/", format!("{root_str}/etc/certs/")),
                ],
            );
            std::fs::write(root.join("etc/tls.d/tls.conf"), tls_conf).expect("write tls.conf");
            port
        });

        let args = |extra: &[&str]| {
            let mut command = Command::new(&nginx);
            command
                .arg("-p")
                .arg(root)
                .arg("-c")
                .arg(root.join("nginx.conf"))
                .arg("-e")
                .arg(root.join("logs/error.log"))
                .args(["-g", "daemon off;"])
                .args(extra);
            command
        };
        let check = args(&["-t"]).output().expect("run nginx -t");
        assert!(
            check.status.success(),
            "nginx -t rejects docker/nginx.conf (adapted):\n{}",
            output_text(&check)
        );
        let mut child = args(&[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let error_log = root.join("logs/error.log");
        let mut alive = || match child.try_wait() {
            Ok(Some(status)) => Err(format!(
                "nginx exited ({status}) at start; error.log:\n{}",
                std::fs::read_to_string(&error_log).unwrap_or_default()
            )),
            _ => Ok(()),
        };
        wait_for_port(port, Duration::from_secs(10), &mut alive);
        if let Some(tls_port) = tls_port {
            wait_for_port(tls_port, Duration::from_secs(10), &mut alive);
        }
        Nginx {
            child,
            dir,
            port,
            tls_port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A self-signed certificate for 127.0.0.1 as `tls.crt` / `tls.key` (the names the TLS example
/// expects).
fn make_certificate(dir: &Path) {
    let openssl = require("openssl", "openssl");
    let output = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt"))
        .output()
        .expect("run openssl req");
    assert!(output.status.success(), "{}", output_text(&output));
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn get_as(url: &str, auth: Option<(&str, &str)>) -> Answer {
    let mut request = client().get(url);
    if let Some((user, password)) = auth {
        request = request.insert_header(("authorization", basic(user, password)));
    }
    let mut response = request.send().await.expect("GET through nginx");
    let body = response.body().await.expect("body");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: String::from_utf8_lossy(&body).into_owned(),
    }
}

struct Answer {
    status: u16,
    headers: awc::http::header::HeaderMap,
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

fn mock_config(extra: &str) -> String {
    format!(
        "endpoints:\n{}{extra}",
        mock_endpoint("chat", "llm/v1/chat", "")
    )
}

fn chat_body(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

#[actix_rt::test]
async fn nginx_requires_basic_auth_and_forwards_with_request_ids() {
    let gw = Gateway::start(&mock_config(""));
    let nginx = Nginx::start(gateway_port(&gw), false);

    let anonymous = get_as(&nginx.url("/health"), None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(
        anonymous.header("www-authenticate").as_deref(),
        Some(r#"Basic realm="Switchyard""#)
    );
    let wrong = get_as(&nginx.url("/health"), Some((USER, "wrong"))).await;
    assert_eq!(wrong.status, 401);
    let stranger = get_as(&nginx.url("/health"), Some(("mallory", PASSWORD))).await;
    assert_eq!(stranger.status, 401);

    let health = get_as(&nginx.url("/health"), Some((USER, PASSWORD))).await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.text, r#"{"status":"OK"}"#);

    // A real invocation, with the id Nginx made for it: 32 hex digits, echoed by Switchyard and
    // on both access lines.
    let response = client()
        .post(nginx.url("/endpoints/chat/invocations"))
        .insert_header(("authorization", basic(USER, PASSWORD)))
        .send_json(&chat_body("through nginx"))
        .await
        .expect("POST through nginx");
    assert_eq!(response.status().as_u16(), 200);
    let id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id through nginx")
        .to_str()
        .unwrap()
        .to_owned();
    let mut response = response;
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["choices"][0]["message"]["content"], "through nginx",
        "{body}"
    );
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "not Nginx's $request_id: {id}"
    );
    // The client's own id wins when it sends one.
    let mut own = client()
        .post(nginx.url("/endpoints/chat/invocations"))
        .insert_header(("authorization", basic(USER, PASSWORD)))
        .insert_header(("x-request-id", "deploy-test-42"))
        .send_json(&chat_body("mine"))
        .await
        .expect("POST");
    assert_eq!(own.status().as_u16(), 200);
    assert_eq!(own.headers().get("x-request-id").unwrap(), "deploy-test-42");
    let _ = own.body().await;
    for needle in [
        format!("request_id={id}"),
        "request_id=deploy-test-42".into(),
    ] {
        assert!(
            gw.wait_for_log(&needle, Duration::from_secs(5)),
            "gateway access log lacks {needle}:\n{}",
            gw.logs()
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !nginx.access_log().contains(&needle) && Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            nginx.access_log().contains(&needle),
            "nginx access log lacks {needle}:\n{}",
            nginx.access_log()
        );
    }
    // The Basic credentials are not passed on, nor logged by the gateway.
    assert!(!gw.logs().contains(&basic(USER, PASSWORD)[6..]));

    // Nginx's own probe needs no password; metrics are not exposed through Nginx.
    let probe = get_as(&nginx.url("/nginx-health"), None).await;
    assert_eq!((probe.status, probe.text.as_str()), (200, "ok\n"));
    let metrics = get_as(&nginx.url("/metrics"), Some((USER, PASSWORD))).await;
    assert_eq!(metrics.status, 404);
    assert_eq!(get(&gw.url("/metrics")).await.status, 200);
}

fn upstream_chunk(content: &str) -> Value {
    json!({
        "id": "chatcmpl-d1", "object": "chat.completion.chunk", "created": 1700000100,
        "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": content},
        "logprobs": null, "finish_reason": null}], "usage": null
    })
}

/// Reads an SSE body to its end: each `data:` payload with its arrival time since `started`;
/// `at_first` runs once, when the first event has arrived.
async fn read_events<S>(
    response: &mut awc::ClientResponse<S>,
    started: Instant,
    mut at_first: impl FnMut(),
) -> Vec<(Duration, String)>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut buffer: Vec<u8> = Vec::new();
    let mut arrivals: Vec<(Duration, String)> = Vec::new();
    while let Some(chunk) = response.next().await {
        buffer.extend_from_slice(&chunk.expect("stream chunk"));
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let event = String::from_utf8(buffer.drain(..end + 2).collect()).unwrap();
            if let Some(data) = event.trim_end().strip_prefix("data: ") {
                if arrivals.is_empty() {
                    at_first();
                }
                arrivals.push((started.elapsed(), data.to_owned()));
            }
        }
    }
    arrivals
}

/// How many of the gaps between consecutive events are at least `gap / 2` (events that arrive
/// one by one, not in a batch).
fn spread(arrivals: &[(Duration, String)], gap: Duration) -> usize {
    arrivals
        .windows(2)
        .filter(|pair| pair[1].0 - pair[0].0 >= gap / 2)
        .count()
}

#[actix_rt::test]
async fn a_stream_through_nginx_reaches_the_client_event_by_event() {
    const EVENTS: usize = 10;
    const GAP: Duration = Duration::from_millis(200);
    let upstream = Upstream::start();
    let words: Vec<String> = (0..EVENTS).map(|i| format!("w{i} ")).collect();
    let events: Vec<Value> = words.iter().map(|w| upstream_chunk(w)).collect();
    upstream.push(Reply::sse_events(&events).gaps(GAP));
    let gw = Gateway::start(&format!(
        "endpoints:\n  - name: streamer\n    endpoint_type: llm/v1/chat\n    model:\n      \
         provider: openai\n      name: gpt-4o-mini\n      config:\n        openai_api_key: sk-deploy\n        \
         openai_api_base: {}/v1\n",
        upstream.base()
    ));
    let nginx = Nginx::start(gateway_port(&gw), false);

    let started = Instant::now();
    let mut response = client()
        .post(nginx.url("/v1/chat/completions"))
        .insert_header(("authorization", basic(USER, PASSWORD)))
        .send_json(&json!({"model": "streamer", "stream": true,
                           "messages": [{"role": "user", "content": "count"}]}))
        .await
        .expect("POST through nginx");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );

    let mut upstream_finished_at_first_event = None;
    let arrivals = read_events(&mut response, started, || {
        upstream_finished_at_first_event = Some(upstream.finished())
    })
    .await;
    let total = started.elapsed();
    assert_eq!(arrivals.len(), EVENTS + 1, "{arrivals:?}");
    assert_eq!(arrivals.last().unwrap().1, "[DONE]");
    let text: String = arrivals[..EVENTS]
        .iter()
        .map(|(_, data)| {
            let chunk: Value = serde_json::from_str(data).expect("chunk json");
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(text, words.concat());

    // The first event arrived while the upstream was still writing, long before the end ...
    assert_eq!(
        upstream_finished_at_first_event,
        Some(0),
        "the first event reached the client only after the upstream had finished"
    );
    let first = arrivals[0].0;
    assert!(
        first < Duration::from_millis(1500) && total >= GAP * (EVENTS as u32 - 1),
        "first event at {first:?} of {total:?}"
    );
    // ... and the others one by one, about GAP apart, not in a batch at the end.
    // (At least half the gaps: a busy machine may delay a read so that two events share it; a
    // buffering proxy delivers them all at once.)
    let one_by_one = spread(&arrivals[..EVENTS], GAP);
    assert!(
        one_by_one >= (EVENTS - 1) / 2,
        "events arrived in batches: {:?}",
        arrivals.iter().map(|(at, _)| *at).collect::<Vec<_>>()
    );
    assert_eq!(upstream.finished(), 1);
}

#[actix_rt::test]
async fn nginx_alone_streams_unbuffered_and_reuses_upstream_connections() {
    // Nginx straight in front of a plain SSE server that does not send X-Accel-Buffering (as
    // Switchyard does): the configuration alone must pass events through unbuffered, speak
    // HTTP/1.1 keep-alive to the upstream, and send the forwarding headers.
    const GAP: Duration = Duration::from_millis(200);
    let upstream = Upstream::start();
    let events: Vec<Value> = (0..6).map(|i| upstream_chunk(&format!("e{i}"))).collect();
    upstream.push(Reply::sse_events(&events).gaps(GAP));
    upstream.set_fallback(Reply::json(200, &json!({"status": "OK"})));
    let nginx = Nginx::start(upstream.port(), false);

    // One client connection throughout, so every request is served by the same Nginx worker.
    let client = client();
    let started = Instant::now();
    let mut response = client
        .get(nginx.url("/sse"))
        .insert_header(("authorization", basic(USER, PASSWORD)))
        .send()
        .await
        .expect("GET through nginx");
    assert_eq!(response.status().as_u16(), 200);
    let arrivals = read_events(&mut response, started, || ()).await;
    assert_eq!(arrivals.len(), 7, "{arrivals:?}");
    assert!(
        spread(&arrivals[..6], GAP) >= 3,
        "Nginx buffered the stream: {:?}",
        arrivals.iter().map(|(at, _)| *at).collect::<Vec<_>>()
    );
    for _ in 0..3 {
        let mut reply = client
            .get(nginx.url("/health"))
            .insert_header(("authorization", basic(USER, PASSWORD)))
            .insert_header(("x-forwarded-for", "192.0.2.1"))
            .send()
            .await
            .expect("GET through nginx");
        assert_eq!(reply.status().as_u16(), 200);
        let _ = reply.body().await;
    }

    let requests = upstream.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(
        upstream.connections(),
        1,
        "Nginx did not keep its upstream connection alive"
    );
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(
            request.header("authorization"),
            None,
            "credentials passed on"
        );
        assert_eq!(request.header("x-real-ip"), Some("127.0.0.1"));
        let forwarded = if i == 0 {
            "127.0.0.1"
        } else {
            "192.0.2.1, 127.0.0.1"
        };
        assert_eq!(request.header("x-forwarded-for"), Some(forwarded));
        assert_eq!(request.header("x-forwarded-proto"), Some("http"));
        assert_eq!(request.header("connection"), None);
        let id = request.header("x-request-id").expect("x-request-id");
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }
}

/// One raw HTTP/1.1 request through Nginx from the local address `source` (any 127.x address:
/// the whole loopback range is local), with `extra` header lines; returns the status.
async fn status_from(source: &str, nginx_port: u16, path: &str, extra: &[(&str, &str)]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    socket
        .bind(source)
        .unwrap_or_else(|e| panic!("cannot bind the client to {source}: {e}"));
    let mut stream = socket
        .connect(([127, 0, 0, 1], nginx_port).into())
        .await
        .expect("connect to nginx");
    let body = chat_body("limited").to_string();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        basic(USER, PASSWORD),
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    actix_rt::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .expect("reply within 10 s")
        .expect("read");
    let reply = String::from_utf8_lossy(&reply);
    reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply}"))
}

#[actix_rt::test]
async fn client_addresses_reach_the_rate_limiter_through_nginx() {
    // One call per minute per client on `limited`. Every client here is on this machine, so each
    // binds its own loopback address (127.0.0.2, .3, ...): Nginx sees distinct $remote_addr
    // values exactly as it would see distinct hosts, and the gateway only ever sees Nginx
    // (127.0.0.1), which it trusts.
    let config = mock_config(&format!(
        "{}    limit:\n      calls: 1\n      renewal_period: minute\n",
        mock_endpoint("limited", "llm/v1/chat", "")
    ));
    let path = "/endpoints/limited/invocations";
    let gw = Gateway::start_with(
        &config,
        &[],
        &[("SWITCHYARD_RATE_LIMITS__TRUSTED_PROXIES", "127.0.0.1")],
    );
    let nginx = Nginx::start(gateway_port(&gw), false);
    let port = nginx.port;

    assert_eq!(status_from("127.0.0.2", port, path, &[]).await, 200);
    assert_eq!(status_from("127.0.0.2", port, path, &[]).await, 429);
    // Another client has its own quota.
    assert_eq!(status_from("127.0.0.3", port, path, &[]).await, 200);
    // Writing an address into the headers does not buy a fresh quota: Nginx appends the real
    // peer to X-Forwarded-For and overwrites X-Real-IP, and the gateway reads right to left.
    for spoof in [
        ("X-Forwarded-For", "198.51.100.7"),
        ("X-Forwarded-For", "198.51.100.8, 198.51.100.9"),
        ("X-Real-IP", "198.51.100.10"),
    ] {
        assert_eq!(
            status_from("127.0.0.3", port, path, &[spoof]).await,
            429,
            "{spoof:?} escaped the limit"
        );
    }
    // A proxy in front of Nginx that is itself trusted (127.0.0.1 here): the client it names
    // counts, each with its own quota.
    let via = |ip| [("X-Forwarded-For", ip)];
    assert_eq!(
        status_from("127.0.0.1", port, path, &via("203.0.113.5")).await,
        200
    );
    assert_eq!(
        status_from("127.0.0.1", port, path, &via("203.0.113.5")).await,
        429
    );
    assert_eq!(
        status_from("127.0.0.1", port, path, &via("203.0.113.6")).await,
        200
    );
    drop(nginx);
    drop(gw);

    // Control: the same Nginx in front of a gateway that trusts no proxy. Every request then
    // comes from Nginx, and all clients share one quota.
    let gw = Gateway::start(&config);
    let nginx = Nginx::start(gateway_port(&gw), false);
    assert_eq!(status_from("127.0.0.2", nginx.port, path, &[]).await, 200);
    assert_eq!(status_from("127.0.0.3", nginx.port, path, &[]).await, 429);
}

#[actix_rt::test]
async fn the_tls_example_serves_https_with_the_same_auth() {
    let curl = require("curl", "curl");
    let gw = Gateway::start(&mock_config(""));
    let nginx = Nginx::start(gateway_port(&gw), true);
    let tls_port = nginx.tls_port.unwrap();
    let ca = nginx.dir.path().join("etc/certs/tls.crt");
    let fetch = |auth: Option<String>| {
        let mut command = Command::new(&curl);
        command
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .args(["-w", "\n%{http_code}"]);
        if let Some(auth) = &auth {
            command.args(["-u", auth]);
        }
        let output = command
            .arg(format!("https://127.0.0.1:{tls_port}/health"))
            .output()
            .expect("run curl");
        assert!(output.status.success(), "curl: {}", output_text(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(fetch(None).rsplit('\n').next(), Some("401"));
    assert_eq!(
        fetch(Some(format!("{USER}:{PASSWORD}"))),
        "{\"status\":\"OK\"}\n200"
    );
    // Plain HTTP keeps working next to it.
    let plain = get_as(&nginx.url("/health"), Some((USER, PASSWORD))).await;
    assert_eq!(plain.status, 200);
}

// ------------------------------------------------------------------------------------------------
// Prometheus with the shipped docker/prometheus.yml

struct Prometheus {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Prometheus {
    /// Prometheus scraping the gateway on `gateway_port` (and itself) every second.
    fn start(gateway_port: u16) -> Prometheus {
        let prometheus = require("prometheus", "prometheus");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = substitute(
            "docker/prometheus.yml",
            &read_repo_file("docker/prometheus.yml"),
            &[
                ("scrape_interval: 15s", "scrape_interval: 1s".into()),
                ("evaluation_interval: 15s", "evaluation_interval: 1s".into()),
                (
                    r#"targets: ["switchyard:5000"]"#,
                    format!(r#"targets: ["127.0.0.1:{gateway_port}"]"#),
                ),
                (
                    r#"targets: ["localhost:9090"]"#,
                    format!(r#"targets: ["127.0.0.1:{port}"]"#),
                ),
            ],
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let mut child = Command::new(prometheus)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let log_path = dir.path().join("prometheus.log");
        let mut alive = || match child.try_wait() {
            Ok(Some(status)) => Err(format!(
                "prometheus exited ({status}) at start:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )),
            _ => Ok(()),
        };
        wait_for_port(port, Duration::from_secs(20), &mut alive);
        Prometheus {
            child,
            _dir: dir,
            port,
        }
    }

    /// The value of an instant query that returns one sample, if it returns exactly one.
    async fn query_one(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let url = format!(
            "http://127.0.0.1:{}/api/v1/query?query={encoded}",
            self.port
        );
        let reply = get(&url).await;
        if reply.status != 200 || reply.json["status"] != "success" {
            return None;
        }
        match reply.json["data"]["result"].as_array()?.as_slice() {
            [sample] => sample["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

#[actix_rt::test]
async fn prometheus_scrapes_the_gateway_and_counts_every_request() {
    let gw = Gateway::start(&format!(
        "endpoints:\n{}{}",
        mock_endpoint("chat", "llm/v1/chat", "chunks: 3"),
        mock_endpoint("completions", "llm/v1/completions", "")
    ));
    let prometheus = Prometheus::start(gateway_port(&gw));

    // 7 requests: 4 chat, 2 streamed chat, 1 completion.
    for i in 0..4 {
        let reply = post_json(
            &gw.url("/endpoints/chat/invocations"),
            &chat_body(&format!("n{i}")),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    for _ in 0..2 {
        let mut body = chat_body("a b c");
        body["stream"] = json!(true);
        let reply = post_json(&gw.url("/endpoints/chat/invocations"), &body).await;
        assert_eq!(reply.status, 200);
        assert_eq!(sse_data(&reply.text).len(), 3, "{}", reply.text);
    }
    let reply = post_json(
        &gw.url("/endpoints/completions/invocations"),
        &json!({"prompt": "hello"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    const SENT: f64 = 7.0;

    // (up, sum of the counter, chat 2xx, Prometheus's own up): the shipped self-scrape job too.
    let expected = (Some(1.0), Some(SENT), Some(6.0), Some(1.0));
    let mut last = (None, None, None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while last != expected && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        last = (
            prometheus.query_one(r#"up{job="switchyard"}"#).await,
            prometheus
                .query_one(r#"sum(switchyard_requests_total{job="switchyard"})"#)
                .await,
            prometheus
                .query_one(
                    r#"sum(switchyard_requests_total{job="switchyard",endpoint="chat",status="2xx"})"#,
                )
                .await,
            prometheus.query_one(r#"up{job="prometheus"}"#).await,
        );
    }
    assert_eq!(
        last,
        expected,
        "prometheus reported (up, requests, chat 2xx, self up) = {last:?}; targets: {}",
        get(&format!(
            "http://127.0.0.1:{}/api/v1/targets",
            prometheus.port
        ))
        .await
        .text
    );
}

// ------------------------------------------------------------------------------------------------
// The image's files

/// Runs docker/healthcheck.sh (the image's HEALTHCHECK) against `port`.
fn healthcheck(port: u16) -> Output {
    let bash = require("bash", "bash");
    Command::new(bash)
        .arg(repo_file("docker/healthcheck.sh"))
        .env("SWITCHYARD_PORT", port.to_string())
        .output()
        .expect("run healthcheck.sh")
}

#[actix_rt::test]
async fn the_image_health_probe_passes_only_on_a_healthy_gateway() {
    let gw = Gateway::start(&mock_config(""));
    let ok = healthcheck(gateway_port(&gw));
    assert!(ok.status.success(), "{}", output_text(&ok));

    let closed = healthcheck(crate::common::upstream::closed_port());
    assert!(!closed.status.success());

    let sick = Upstream::start();
    sick.set_fallback(Reply::json(503, &json!({"detail": "down"})));
    let unhealthy = healthcheck(sick.port());
    assert!(!unhealthy.status.success());
    assert!(
        output_text(&unhealthy).contains("unhealthy: HTTP/1.1 503"),
        "{}",
        output_text(&unhealthy)
    );
    assert_eq!(sick.only_request().path, "/health");
}

#[test]
fn the_docker_files_agree_with_each_other() {
    let dockerfile = read_repo_file("docker/Dockerfile");
    let compose = read_repo_file("docker/compose.yaml");
    // Every file the image copies exists.
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        let source = line.split_whitespace().rev().nth(1).unwrap();
        if !line.contains("--from=") && source != "." {
            assert!(
                repo_file(source).exists(),
                "Dockerfile copies missing {source}"
            );
        }
    }
    assert!(dockerfile
        .contains("COPY --chmod=0755 docker/healthcheck.sh /usr/local/bin/switchyard-healthcheck"));
    assert!(dockerfile.contains(r#"CMD ["/usr/local/bin/switchyard-healthcheck"]"#));
    // The runtime stage runs as a non-root user.
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the runtime stage");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    // The files compose mounts exist (htpasswd and certs are made by the operator).
    for shipped in ["./nginx.conf", "./prometheus.yml", "./tls.d", "../config"] {
        assert!(
            compose.contains(&format!("source: {shipped}\n")),
            "{shipped}"
        );
        assert!(
            repo_file(&format!("docker/{shipped}")).exists(),
            "{shipped}"
        );
    }
    // The proxy Switchyard trusts is Nginx's fixed address.
    let trusted = compose
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("SWITCHYARD_RATE_LIMITS__TRUSTED_PROXIES: ")
        })
        .expect("trusted proxies in compose.yaml");
    let nginx = compose.split("\n  nginx:\n").nth(1).expect("nginx service");
    assert!(
        nginx.contains(&format!("ipv4_address: {trusted}\n")),
        "Switchyard trusts {trusted}, which is not Nginx's address"
    );
    // Docker must wait out the drain before it kills.
    assert!(compose.contains("stop_grace_period: 40s"));
    assert!(compose.contains(r#"SWITCHYARD_SHUTDOWN_GRACE_SECS: "30""#));
    // The shipped prometheus.yml is valid for promtool.
    let promtool = require("promtool", "prometheus");
    let check = Command::new(promtool)
        .args(["check", "config"])
        .arg(repo_file("docker/prometheus.yml"))
        .output()
        .expect("run promtool");
    assert!(check.status.success(), "{}", output_text(&check));
}
