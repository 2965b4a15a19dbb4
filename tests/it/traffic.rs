//! Traffic control end to end against counting mock upstreams: the weighted split within a
//! statistical tolerance, 0% never chosen, fallback across a route's destinations, retries with
//! their call counts, and a circuit breaker that opens, answers 503 at once, probes and closes.

use std::time::Duration;

use crate::common::upstream::{End, Reply, Upstream};
use crate::common::*;
use serde_json::{json, Value};

fn ok_reply(content: &str) -> Reply {
    Reply::json(
        200,
        &json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    )
}

fn failing(status: u16) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"message": format!("upstream says {status}")}}),
    )
}

fn endpoint(name: &str, upstream: &Upstream, extra: &str) -> String {
    format!(
        "  - name: {name}\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n      name: m\n      config:\n        openai_api_key: sk-traffic\n        openai_api_base: {}/v1\n{extra}",
        upstream.base()
    )
}

fn chat() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

#[actix_rt::test]
async fn weighted_split_over_a_thousand_requests_and_zero_percent_never_chosen() {
    let (a, b, c) = (Upstream::start(), Upstream::start(), Upstream::start());
    for (upstream, name) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        upstream.set_fallback(ok_reply(name));
    }
    let yaml = format!(
        "endpoints:\n{}{}{}routes:\n  - name: split\n    task_type: llm/v1/chat\n    destinations:\n      - name: a\n        traffic_percentage: 80\n      - name: b\n        traffic_percentage: 20\n      - name: c\n        traffic_percentage: 0\n",
        endpoint("a", &a, ""),
        endpoint("b", &b, ""),
        endpoint("c", &c, "")
    );
    let gw = Gateway::start(&yaml);
    let url = gw.url("/endpoints/split/invocations");
    let body = chat();
    for _ in 0..50 {
        let batch = (0..20).map(|_| post_json(&url, &body));
        for reply in futures_util::future::join_all(batch).await {
            assert_eq!(reply.status, 200);
        }
    }
    let (to_a, to_b) = (a.request_count(), b.request_count());
    assert_eq!(to_a + to_b, 1000);
    // Binomial(1000, 0.8): sd ≈ 12.6; ±60 is beyond 4.7 sd, so this never flakes in practice.
    assert!((740..=860).contains(&to_a), "a got {to_a} of 1000");
    assert_eq!(c.request_count(), 0, "a 0% destination was chosen");
}

#[actix_rt::test]
async fn fallback_tries_the_next_destination_only_for_retryable_failures() {
    let (primary, backup) = (Upstream::start(), Upstream::start());
    backup.set_fallback(ok_reply("from backup"));
    let yaml = format!(
        "endpoints:\n{}{}routes:\n  - name: resilient\n    task_type: llm/v1/chat\n    fallback: true\n    destinations:\n      - name: primary\n        traffic_percentage: 100\n      - name: backup\n        traffic_percentage: 0\n",
        endpoint("primary", &primary, ""),
        endpoint("backup", &backup, "")
    );
    let gw = Gateway::start(&yaml);
    let url = gw.url("/endpoints/resilient/invocations");

    primary.push(failing(503));
    let reply = post_json(&url, &chat()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["choices"][0]["message"]["content"],
        "from backup"
    );
    assert_eq!((primary.request_count(), backup.request_count()), (1, 1));

    // A client error would fail the same way everywhere: no fallback.
    primary.push(failing(400));
    let reply = post_json(&url, &chat()).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json, json!({"detail": "upstream says 400"}));
    assert_eq!((primary.request_count(), backup.request_count()), (2, 1));

    // Connection refused on the primary is retryable too.
    drop(primary);
    let reply = post_json(&url, &chat()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(backup.request_count(), 2);
}

#[actix_rt::test]
async fn retries_are_bounded_and_only_for_retryable_failures() {
    let upstream = Upstream::start();
    let yaml = format!(
        "endpoints:\n{}",
        endpoint(
            "retrying",
            &upstream,
            "    retries:\n      attempts: 3\n      backoff_ms: 10\n      max_backoff_ms: 50\n"
        )
    );
    let gw = Gateway::start(&yaml);
    let url = gw.url("/endpoints/retrying/invocations");

    upstream.push(failing(503));
    upstream.push(failing(429).header("retry-after", "0"));
    upstream.push(ok_reply("third time"));
    let reply = post_json(&url, &chat()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(upstream.take_requests().len(), 3);

    upstream.set_fallback(failing(500));
    let reply = post_json(&url, &chat()).await;
    assert_eq!(reply.status, 500);
    assert_eq!(
        upstream.take_requests().len(),
        3,
        "attempts are capped at 3"
    );

    upstream.push(failing(401));
    let reply = post_json(&url, &chat()).await;
    assert_eq!(reply.status, 401);
    assert_eq!(upstream.take_requests().len(), 1, "a 401 is never retried");

    // A Retry-After beyond max_backoff_ms ends the retries rather than stalling the client.
    upstream.push(failing(429).header("retry-after", "30"));
    let reply = post_json(&url, &chat()).await;
    assert_eq!(reply.status, 429);
    assert_eq!(upstream.take_requests().len(), 1);
}

#[actix_rt::test]
async fn the_breaker_opens_answers_at_once_probes_and_closes() {
    let upstream = Upstream::start();
    upstream.set_fallback(failing(502));
    let yaml = format!(
        "endpoints:\n{}",
        endpoint(
            "fragile",
            &upstream,
            "    circuit_breaker:\n      failure_threshold: 2\n      open_ms: 400\n"
        )
    );
    let gw = Gateway::start(&yaml);
    let url = gw.url("/endpoints/fragile/invocations");
    assert_eq!(post_json(&url, &chat()).await.status, 502);
    assert_eq!(post_json(&url, &chat()).await.status, 502);
    assert_eq!(upstream.request_count(), 2);

    let open = post_json(&url, &chat()).await;
    assert_eq!(open.status, 503, "{}", open.text);
    assert!(open.json["detail"]
        .as_str()
        .unwrap()
        .contains("circuit open"));
    assert!(open.headers.contains_key("retry-after"));
    assert_eq!(
        upstream.request_count(),
        2,
        "an open circuit must not call the provider"
    );

    upstream.set_fallback(ok_reply("recovered"));
    let closed = eventually(Duration::from_secs(3), || async {
        post_json(&url, &chat()).await.status == 200
    })
    .await;
    assert!(closed, "the breaker never let a probe through");
    for _ in 0..5 {
        assert_eq!(post_json(&url, &chat()).await.status, 200);
    }
}

#[actix_rt::test]
async fn a_stream_that_already_started_is_never_retried() {
    let upstream = Upstream::start();
    let chunk = json!({"id": "s", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": "par"}, "finish_reason": null}]});
    upstream.push(Reply::sse(vec![format!("data: {chunk}\n\n").into_bytes()]).end(End::Close));
    let yaml = format!(
        "endpoints:\n{}",
        endpoint(
            "streamy",
            &upstream,
            "    retries:\n      attempts: 3\n      backoff_ms: 1\n"
        )
    );
    let gw = Gateway::start(&yaml);
    let mut body = chat();
    body["stream"] = json!(true);
    let reply = post_json(&gw.url("/endpoints/streamy/invocations"), &body).await;
    assert_eq!(reply.status, 200);
    let events = sse_data(&reply.text);
    assert!(
        events.last().unwrap().contains("\"error\""),
        "{}",
        reply.text
    );
    assert_eq!(upstream.request_count(), 1);
}

#[actix_rt::test]
async fn a_half_open_probe_answered_with_a_client_error_does_not_wedge_the_breaker() {
    let upstream = Upstream::start();
    let yaml = format!(
        "endpoints:\n{}",
        endpoint(
            "fragile",
            &upstream,
            "    circuit_breaker:\n      failure_threshold: 2\n      open_ms: 300\n"
        )
    );
    let gw = Gateway::start(&yaml);
    let url = gw.url("/endpoints/fragile/invocations");
    upstream.push(failing(500));
    upstream.push(failing(500));
    assert_eq!(post_json(&url, &chat()).await.status, 500);
    assert_eq!(post_json(&url, &chat()).await.status, 500);
    assert_eq!(post_json(&url, &chat()).await.status, 503, "open");
    actix_rt::time::sleep(Duration::from_millis(400)).await;
    upstream.push(failing(400));
    assert_eq!(
        post_json(&url, &chat()).await.status,
        400,
        "the half-open probe"
    );
    upstream.set_fallback(ok_reply("fine"));
    let reply = post_json(&url, &chat()).await;
    assert_eq!(
        reply.status, 200,
        "the circuit stayed wedged: {}",
        reply.text
    );
    assert_eq!(upstream.request_count(), 4);
}
