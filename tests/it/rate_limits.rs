//! Rate limits end to end: exact across workers and across processes (real Redis), one counter
//! per endpoint whichever path reaches it, MLflow's 429 body with Retry-After and X-RateLimit-*
//! headers, the upstream never called over the limit, the window resetting, per-header keys,
//! trusted-proxy client IPs, and Redis failing open then recovering.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::upstream::{Reply, Upstream};
use crate::common::*;
use futures_util::future::join_all;
use serde_json::{json, Value};

fn openai_chat_reply() -> Reply {
    Reply::json(
        200,
        &json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    )
}

fn config(upstream: &Upstream, calls: u64, period: &str) -> String {
    format!(
        r#"endpoints:
  - name: limited
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config:
        openai_api_key: sk-limits
        openai_api_base: {}/v1
    limit:
      calls: {calls}
      renewal_period: {period}
routes:
  - name: via-route
    task_type: llm/v1/chat
    destinations:
      - name: limited
        traffic_percentage: 100
"#,
        upstream.base()
    )
}

fn chat() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

async fn statuses(urls: Vec<(String, Value)>) -> Vec<u16> {
    join_all(urls.iter().map(|(url, body)| post_json(url, body)))
        .await
        .into_iter()
        .map(|r| r.status)
        .collect()
}

#[actix_rt::test]
async fn four_workers_admit_exactly_the_limit_and_429s_never_reach_upstream() {
    let upstream = Upstream::start();
    upstream.set_fallback(openai_chat_reply());
    let gw = Gateway::start_with(&config(&upstream, 7, "minute"), &["--workers", "4"], &[]);
    let url = gw.url("/endpoints/limited/invocations");
    let results = statuses((0..20).map(|_| (url.clone(), chat())).collect()).await;
    assert_eq!(
        results.iter().filter(|s| **s == 200).count(),
        7,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|s| **s == 429).count(),
        13,
        "{results:?}"
    );
    assert_eq!(
        upstream.request_count(),
        7,
        "a refused request reached the upstream"
    );

    let refused = post_json(&url, &chat()).await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.json,
        json!({"error": "Rate limit exceeded: 7 per 1 minute"})
    );
    let header = |name: &str| {
        refused
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("x-ratelimit-limit").as_deref(), Some("7"));
    assert_eq!(header("x-ratelimit-remaining").as_deref(), Some("0"));
    let retry_after: u64 = header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let reset: u64 = header("x-ratelimit-reset").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset >= now && reset <= now + 61, "reset {reset} now {now}");
}

#[actix_rt::test]
async fn one_counter_per_endpoint_whichever_path_reaches_it() {
    let upstream = Upstream::start();
    upstream.set_fallback(openai_chat_reply());
    let gw = Gateway::start(&config(&upstream, 4, "minute"));
    let mut v1 = chat();
    v1["model"] = json!("limited");
    let mut via_route = chat();
    via_route["model"] = json!("via-route");
    let sequence = [
        (gw.url("/endpoints/limited/invocations"), chat()),
        (gw.url("/gateway/limited/invocations"), chat()),
        (gw.url("/v1/chat/completions"), v1.clone()),
        (gw.url("/endpoints/via-route/invocations"), chat()),
    ];
    for (url, body) in &sequence {
        let reply = post_json(url, body).await;
        assert_eq!(reply.status, 200, "{url}: {}", reply.text);
        assert!(reply.headers.contains_key("x-ratelimit-remaining"));
    }
    let over = post_json(&gw.url("/v1/chat/completions"), &via_route).await;
    assert_eq!(over.status, 429);
    assert_eq!(over.json["error"]["type"], "rate_limit_error");
    assert_eq!(
        over.json["error"]["message"],
        "Rate limit exceeded: 4 per 1 minute"
    );
    assert_eq!(upstream.request_count(), 4);
}

#[actix_rt::test]
async fn the_window_resets() {
    let upstream = Upstream::start();
    upstream.set_fallback(openai_chat_reply());
    let gw = Gateway::start(&config(&upstream, 2, "second"));
    let url = gw.url("/endpoints/limited/invocations");
    assert_eq!(post_json(&url, &chat()).await.status, 200);
    assert_eq!(post_json(&url, &chat()).await.status, 200);
    assert_eq!(post_json(&url, &chat()).await.status, 429);
    let reset = eventually(Duration::from_secs(3), || async {
        post_json(&url, &chat()).await.status == 200
    })
    .await;
    assert!(reset, "the window never reset");
}

#[actix_rt::test]
async fn a_named_header_keys_each_team_separately() {
    let upstream = Upstream::start();
    upstream.set_fallback(openai_chat_reply());
    let gw = Gateway::start_with(
        &config(&upstream, 1, "minute"),
        &[],
        &[
            ("SWITCHYARD_RATE_LIMITS__KEY", "header:X-Team"),
            // The header is believed only from a trusted proxy; the test client plays it.
            ("SWITCHYARD_RATE_LIMITS__TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    let url = gw.url("/endpoints/limited/invocations");
    let send = |team: &'static str| {
        let url = url.clone();
        async move {
            client()
                .post(url)
                .insert_header(("x-team", team))
                .send_json(&chat())
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send("search").await, 200);
    assert_eq!(send("search").await, 429);
    assert_eq!(send("ads").await, 200);
}

#[actix_rt::test]
async fn forwarded_client_ips_count_only_from_trusted_proxies() {
    let upstream = Upstream::start();
    upstream.set_fallback(openai_chat_reply());
    let url_for = |gw: &Gateway| gw.url("/endpoints/limited/invocations");
    let send = |url: String, ip: &'static str| async move {
        client()
            .post(url)
            .insert_header(("x-forwarded-for", ip))
            .send_json(&chat())
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let trusted = Gateway::start_with(
        &config(&upstream, 1, "minute"),
        &[],
        &[("SWITCHYARD_RATE_LIMITS__TRUSTED_PROXIES", "127.0.0.1")],
    );
    assert_eq!(send(url_for(&trusted), "203.0.113.1").await, 200);
    assert_eq!(
        send(url_for(&trusted), "203.0.113.2").await,
        200,
        "another client IP behind the proxy"
    );
    assert_eq!(send(url_for(&trusted), "203.0.113.1").await, 429);

    let untrusted = Gateway::start(&config(&upstream, 1, "minute"));
    assert_eq!(send(url_for(&untrusted), "203.0.113.1").await, 200);
    assert_eq!(
        send(url_for(&untrusted), "203.0.113.2").await,
        429,
        "a spoofed header must not buy quota"
    );
}

/// A real `redis-server` on a free loopback port, stopped on drop.
struct RedisServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    fn start_on(port: u16, dir: tempfile::TempDir) -> RedisServer {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (.ci/run installs the Debian package)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, port, dir }
    }

    fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port, tempfile::tempdir().unwrap())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server and returns what is needed to start it again on the same port.
    fn stop(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (port, dir)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_rt::test]
async fn two_gateways_sharing_redis_admit_exactly_the_limit() {
    let redis = RedisServer::start();
    let upstream = Upstream::start();
    upstream.set_fallback(openai_chat_reply());
    let env = [("SWITCHYARD_RATE_LIMITS__STORAGE", redis.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Gateway::start_with(&config(&upstream, 9, "minute"), &[], &env);
    let b = Gateway::start_with(&config(&upstream, 9, "minute"), &[], &env);
    let urls: Vec<(String, Value)> = (0..30)
        .map(|i| {
            let gw = if i % 2 == 0 { &a } else { &b };
            (gw.url("/endpoints/limited/invocations"), chat())
        })
        .collect();
    let results = statuses(urls).await;
    assert_eq!(
        results.iter().filter(|s| **s == 200).count(),
        9,
        "{results:?}"
    );
    assert_eq!(upstream.request_count(), 9);
}

#[actix_rt::test]
async fn redis_outage_fails_open_and_limiting_returns_with_redis() {
    let redis = RedisServer::start();
    let upstream = Upstream::start();
    upstream.set_fallback(openai_chat_reply());
    let url = redis.url();
    let gw = Gateway::start_with(
        &config(&upstream, 2, "minute"),
        &[],
        &[("SWITCHYARD_RATE_LIMITS__STORAGE", &url)],
    );
    let invoke = gw.url("/endpoints/limited/invocations");
    assert_eq!(post_json(&invoke, &chat()).await.status, 200);
    assert_eq!(post_json(&invoke, &chat()).await.status, 200);
    assert_eq!(post_json(&invoke, &chat()).await.status, 429);

    let (port, dir) = redis.stop();
    for _ in 0..5 {
        let reply = post_json(&invoke, &chat()).await;
        assert_eq!(
            reply.status, 200,
            "the gateway must keep serving without Redis: {}",
            reply.text
        );
    }
    assert!(gw.wait_for_log("rate-limit storage unavailable", Duration::from_secs(2)));

    // A fresh Redis (empty counters) on the same port: limiting resumes by itself.
    let _redis = RedisServer::start_on(port, dir);
    let limited_again = eventually(Duration::from_secs(10), || async {
        post_json(&invoke, &chat()).await.status == 429
    })
    .await;
    assert!(
        limited_again,
        "limiting did not come back with Redis; logs:\n{}",
        gw.logs()
    );
}

fn token_budget_config() -> String {
    "endpoints:\n  - name: budget\n    endpoint_type: llm/v1/chat\n    model:\n      provider: mock\n      config: {chunks: 3}\n    token_limit:\n      tokens: 10\n      renewal_period: minute\n".to_owned()
}

/// Mock usage for one user message of three words: 3 prompt + 3 completion tokens.
fn three_words(stream: bool) -> Value {
    json!({"messages": [{"role": "user", "content": "a b c"}], "stream": stream})
}

async fn spend_until_refused(url: &str, stream: bool) -> (usize, crate::common::Reply) {
    for admitted in 0..10 {
        let reply = post_json(url, &three_words(stream)).await;
        if reply.status == 429 {
            return (admitted, reply);
        }
        assert_eq!(reply.status, 200, "{}", reply.text);
        // Charging happens when the response (or stream) has ended, just after the client saw it.
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the token budget never refused a request");
}

#[actix_rt::test]
async fn token_budgets_are_charged_from_reported_usage_streams_included() {
    let gw = Gateway::start(&token_budget_config());
    let url = gw.url("/endpoints/budget/invocations");
    // 6 tokens each: 0 → 6 → 12 used; the third request finds the budget of 10 spent.
    let (admitted, refused) = spend_until_refused(&url, false).await;
    assert_eq!(admitted, 2);
    assert_eq!(
        refused.json,
        json!({"error": "Token limit exceeded: 10 tokens per 1 minute"})
    );
    assert!(refused.headers.contains_key("retry-after"));

    let gw = Gateway::start(&token_budget_config());
    let (admitted, _) = spend_until_refused(&gw.url("/endpoints/budget/invocations"), true).await;
    assert_eq!(
        admitted, 2,
        "streams are charged from their final usage chunk"
    );
    let over = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "budget", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(
        over.status, 429,
        "one budget whichever path reaches the endpoint"
    );
    assert_eq!(over.json["error"]["type"], "rate_limit_error");
}

#[actix_rt::test]
async fn token_budgets_are_shared_through_redis() {
    let redis = RedisServer::start();
    let env = [("SWITCHYARD_RATE_LIMITS__STORAGE", redis.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Gateway::start_with(&token_budget_config(), &[], &env);
    let b = Gateway::start_with(&token_budget_config(), &[], &env);
    let first = post_json(&a.url("/endpoints/budget/invocations"), &three_words(false)).await;
    assert_eq!(first.status, 200);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let second = post_json(&b.url("/endpoints/budget/invocations"), &three_words(true)).await;
    assert_eq!(second.status, 200);
    let refused = eventually(Duration::from_secs(3), || async {
        post_json(&a.url("/endpoints/budget/invocations"), &three_words(false))
            .await
            .status
            == 429
    })
    .await;
    assert!(
        refused,
        "12 tokens spent across two gateways must exhaust a budget of 10"
    );
}
