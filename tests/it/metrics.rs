//! `/metrics` after a known sequence of requests (success, 422, 429, upstream 500, stream): exact
//! counter values, no secret or client address in any label; request ids taken or generated and
//! echoed; one access-log line per request.

use std::time::Duration;

use crate::common::upstream::{Reply, Upstream};
use crate::common::*;
use serde_json::json;

const CANARY: &str = "sk-canary-metrics-51f0";

fn ok_reply() -> Reply {
    Reply::json(
        200,
        &json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}),
    )
}

/// The value of the sample whose line starts with `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
}

#[actix_rt::test]
async fn counters_match_a_known_sequence_and_labels_stay_clean() {
    let upstream = Upstream::start();
    let yaml = format!(
        r#"endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: m
      config:
        openai_api_key: {CANARY}
        openai_api_base: {}/v1
    limit:
      calls: 3
      renewal_period: minute
  - name: streamer
    endpoint_type: llm/v1/chat
    model:
      provider: mock
      config: {{chunks: 4}}
"#,
        upstream.base()
    );
    let gw = Gateway::start(&yaml);
    let chat = gw.url("/endpoints/chat/invocations");
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});

    upstream.push(ok_reply());
    assert_eq!(post_json(&chat, &body).await.status, 200); // success: 11 in, 7 out
    assert_eq!(post_json(&chat, &json!({"messages": []})).await.status, 422); // no quota used
    upstream.push(Reply::json(500, &json!({"error": {"message": "boom"}})));
    assert_eq!(post_json(&chat, &body).await.status, 500); // upstream error
    upstream.push(ok_reply());
    assert_eq!(post_json(&chat, &body).await.status, 200);
    assert_eq!(post_json(&chat, &body).await.status, 429); // 4th counted call: limited
    let stream = post_json(
        &gw.url("/v1/chat/completions"),
        &json!({"model": "streamer", "stream": true, "messages": [{"role": "user", "content": "a b c d"}]}),
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        post_json(&gw.url("/endpoints/nope/invocations"), &body)
            .await
            .status,
        404
    );

    // The stream's record is finished when its body ends, a moment after the client saw it.
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let metrics = get(&gw.url("/metrics")).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text;
    let labels = r#"endpoint="chat",provider="openai",route_type="llm/v1/chat""#;
    let series = |name: &str, extra: &str| format!("{name}{{{labels}{extra}}}");
    assert_eq!(
        sample(
            &text,
            &series("switchyard_requests_total", r#",status="2xx""#)
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &series("switchyard_requests_total", r#",status="5xx""#)
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &series("switchyard_requests_total", r#",status="4xx""#)
        ),
        Some(1.0),
        "the 429"
    );
    assert_eq!(
        sample(
            &text,
            r#"switchyard_requests_total{endpoint="chat",provider="",route_type="",status="4xx"}"#
        ),
        Some(1.0),
        "the 422 (before any endpoint served it)"
    );
    assert_eq!(
        sample(
            &text,
            r#"switchyard_requests_total{endpoint="",provider="",route_type="",status="4xx"}"#
        ),
        Some(1.0),
        "the unknown name is never a label"
    );
    assert_eq!(
        sample(
            &text,
            r#"switchyard_tokens_total{direction="input",endpoint="chat",provider="openai",route_type="llm/v1/chat"}"#
        ),
        Some(22.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"switchyard_tokens_total{direction="output",endpoint="chat",provider="openai",route_type="llm/v1/chat"}"#
        ),
        Some(14.0)
    );
    assert_eq!(
        sample(&text, r#"switchyard_rate_limited_total{endpoint="chat"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"switchyard_upstream_errors_total{endpoint="chat",kind="upstream_status",provider="openai"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"switchyard_requests_total{endpoint="streamer",provider="mock",route_type="llm/v1/chat",status="2xx"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"switchyard_time_to_first_token_seconds_count{endpoint="streamer",provider="mock",route_type="llm/v1/chat"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"switchyard_request_duration_seconds_count{endpoint="chat",provider="openai",route_type="llm/v1/chat"}"#
        ),
        Some(4.0)
    );
    assert!(text.contains("switchyard_request_duration_seconds_bucket{endpoint=\"chat\",provider=\"openai\",route_type=\"llm/v1/chat\",le=\"300\"}"));
    assert_eq!(sample(&text, "switchyard_in_flight_requests"), Some(0.0));
    assert!(sample(&text, "process_resident_memory_bytes").unwrap_or(0.0) > 0.0);
    assert!(sample(&text, "process_open_fds").unwrap_or(0.0) > 0.0);
    assert!(!text.contains(CANARY), "a secret reached /metrics");
    assert!(!text.contains("127.0.0.1"), "an address reached /metrics");
    assert!(!gw.logs().contains(CANARY), "a secret reached the logs");
}

#[actix_rt::test]
async fn reloads_are_counted_by_result() {
    let gw = Gateway::start(&format!(
        "endpoints:\n{}",
        mock_endpoint("a", "llm/v1/chat", "")
    ));
    gw.save_config(&format!(
        "endpoints:\n{}",
        mock_endpoint("b", "llm/v1/chat", "")
    ));
    assert!(
        eventually(Duration::from_secs(2), || async {
            get(&gw.url("/api/2.0/endpoints/b")).await.status == 200
        })
        .await
    );
    gw.save_config("endpoints: [");
    assert!(gw.wait_for_log("invalid configuration", Duration::from_secs(3)));
    let text = get(&gw.url("/metrics")).await.text;
    assert_eq!(
        sample(
            &text,
            r#"switchyard_config_reloads_total{result="success"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"switchyard_config_reloads_total{result="failure"}"#
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            "switchyard_config_last_reload_success_timestamp_seconds"
        )
        .unwrap()
            > 1.7e9
    );
}

#[actix_rt::test]
async fn request_ids_are_echoed_or_generated_and_logged_once() {
    let gw = Gateway::start(&format!(
        "endpoints:\n{}",
        mock_endpoint("a", "llm/v1/chat", "")
    ));
    let url = gw.url("/endpoints/a/invocations");
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let response = client()
        .post(&url)
        .insert_header(("x-request-id", "nginx-req-42"))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("x-request-id").unwrap(),
        "nginx-req-42"
    );
    let response = client().post(&url).send_json(&body).await.unwrap();
    let generated = response
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 32);
    let response = client()
        .post(&url)
        .insert_header(("x-request-id", "bad id\twith tab"))
        .send_json(&body)
        .await
        .unwrap();
    assert_ne!(
        response.headers().get("x-request-id").unwrap(),
        "bad id\twith tab"
    );

    // Log lines are written by a background thread: wait for both requests' lines.
    assert!(gw.wait_for_log("nginx-req-42", Duration::from_secs(2)));
    assert!(gw.wait_for_log(&generated, Duration::from_secs(2)));
    let logs = gw.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("switchyard::access") && l.contains("nginx-req-42"))
        .collect();
    assert_eq!(lines.len(), 1, "{logs}");
    for field in [
        "endpoint=\"a\"",
        "status=200",
        "duration_ms=",
        "input_tokens=",
        "provider=\"mock\"",
    ] {
        assert!(
            lines[0].contains(field),
            "missing {field:?} in {:?}",
            lines[0]
        );
    }
    assert!(logs.contains(&generated));
}

#[actix_rt::test]
async fn json_logs_are_one_object_per_line() {
    let gw = Gateway::start_with(
        &format!("endpoints:\n{}", mock_endpoint("a", "llm/v1/chat", "")),
        &[],
        &[("SWITCHYARD_LOG__FORMAT", "json")],
    );
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        post_json(&gw.url("/endpoints/a/invocations"), &body)
            .await
            .status,
        200
    );
    assert!(gw.wait_for_log("switchyard::access", Duration::from_secs(2)));
    let logs = gw.logs();
    let access: serde_json::Value = logs
        .lines()
        .filter(|l| l.contains("switchyard::access"))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .next()
        .unwrap();
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["fields"]["endpoint"], "a");
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}
