//! The scenarios of issue 7, the gateway config they need, and the targets they are held to.

use std::time::Duration;

use crate::client::{Load, Mode};

/// Run lengths: `--quick` is a smoke run of every scenario, the default is the measurement.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    pub warmup: Duration,
    pub duration: Duration,
    /// Content events in a streamed answer.
    pub stream_events: u32,
    /// The many-slow-streams scenario: how many, events each, gap between events.
    pub slow_streams: usize,
    pub slow_events: u32,
    pub slow_gap_ms: u64,
    /// Open-loop rate, requests per second.
    pub open_rate: f64,
}

impl Profile {
    pub fn new(quick: bool, duration: Option<Duration>) -> Self {
        let (warmup, default) = if quick {
            (Duration::from_millis(300), Duration::from_secs(1))
        } else {
            (Duration::from_secs(1), Duration::from_secs(5))
        };
        Self {
            warmup,
            duration: duration.unwrap_or(default),
            stream_events: 20,
            // Full: 10,000 streams of 20 events 500 ms apart (10 s each).
            slow_streams: if quick { 500 } else { 10_000 },
            slow_events: 20,
            slow_gap_ms: if quick { 100 } else { 500 },
            open_rate: 5_000.0,
        }
    }
}

/// A target of the issue, checked against the gateway's row (and the direct row).
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// Gateway requests/s at least this.
    Rate(f64),
    /// Gateway CPU per request at most this many µs.
    CpuPerRequest(f64),
    /// Gateway p99 at most this.
    P99(Duration),
    NoErrors,
    /// Gateway rate at least this fraction of the direct rate.
    RateVsDirect(f64),
    /// Median time to first byte at most this much later than direct.
    FirstByteAdded(Duration),
    /// p99 latency at most this much above direct.
    P99Added(Duration),
    /// Every planned stream completed.
    AllComplete,
    /// Gateway peak RSS at most this many MiB.
    PeakRss(f64),
}

/// One HTTP request: path and body.
#[derive(Clone, Debug)]
pub struct Call {
    pub path: String,
    pub body: String,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub about: String,
    pub gateway: Call,
    /// The same work sent straight to the mock; `None` when there is no upstream.
    pub direct: Option<Call>,
    /// `data:` events a complete stream carries, for stream scenarios.
    pub stream_events: Option<u32>,
    pub load: Load,
    pub checks: Vec<Check>,
    /// Runs against a freshly started gateway: no pooled upstream connections from earlier
    /// scenarios holding descriptors, and a peak RSS that is this scenario's alone.
    pub fresh_gateway: bool,
}

const CHAT: &str = r#""messages":[{"role":"user","content":"hi"}]"#;

fn call(path: impl Into<String>, body: String) -> Call {
    Call {
        path: path.into(),
        body,
    }
}

fn mlflow_chat(endpoint: &str) -> Call {
    call(
        format!("/endpoints/{endpoint}/invocations"),
        format!("{{{CHAT}}}"),
    )
}

fn direct_chat(prefix: &str, stream: bool) -> Call {
    let stream = if stream { r#""stream":true,"# } else { "" };
    call(
        format!("{prefix}/v1/chat/completions"),
        format!(r#"{{"model":"gpt-4o-mini",{stream}{CHAT}}}"#),
    )
}

/// The gateway's endpoint file for a mock listening on `mock_port`.
pub fn gateway_config(mock_port: u16, profile: &Profile) -> String {
    let openai = |name: &str, kind: &str, model: &str, prefix: &str| {
        format!(
            "  - name: {name}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: openai\n      name: {model}\n      config:\n        openai_api_key: sk-bench\n        openai_api_base: \"{}\"\n",
            crate::mock::base_url(mock_port, prefix)
        )
    };
    let mut yaml = String::from("endpoints:\n");
    yaml += &openai("chat", "chat", "gpt-4o-mini", "");
    yaml += &openai("completions", "completions", "gpt-3.5-turbo-instruct", "");
    yaml += &openai("embeddings", "embeddings", "text-embedding-3-small", "");
    yaml += &openai(
        "chat-stream",
        "chat",
        "gpt-4o-mini",
        &format!("/ev{}", profile.stream_events),
    );
    yaml += &openai("chat-50ms", "chat", "gpt-4o-mini", "/lat50");
    yaml += &openai(
        "chat-slow-stream",
        "chat",
        "gpt-4o-mini",
        &slow_prefix(profile),
    );
    yaml += "  - name: builtin\n    endpoint_type: llm/v1/chat\n    model:\n      provider: mock\n      config: {chunks: 20, chunk_delay_ms: 0}\n";
    yaml
}

fn slow_prefix(profile: &Profile) -> String {
    format!("/ev{}/gap{}", profile.slow_events, profile.slow_gap_ms)
}

/// Every scenario, in run order.
pub fn all(profile: &Profile) -> Vec<Scenario> {
    let closed = |concurrency: usize| Load {
        mode: Mode::Closed {
            concurrency,
            per_worker: None,
        },
        warmup: profile.warmup,
        duration: profile.duration,
        // Workers start spread out so that, against a fixed-latency upstream, they do not finish
        // in lockstep bursts that make the count in a window depend on phase.
        ramp: Duration::from_millis(if concurrency > 256 { 500 } else { 100 }),
        max_requests: 10_000_000,
        request_timeout: Duration::from_secs(30),
    };
    let chat_at = |name: &'static str, concurrency: usize, checks: Vec<Check>| Scenario {
        name,
        about: format!("chat, MLflow path, concurrency {concurrency}"),
        gateway: mlflow_chat("chat"),
        direct: Some(direct_chat("", false)),
        stream_events: None,
        load: closed(concurrency),
        checks,
        fresh_gateway: false,
    };
    let mut scenarios = vec![
        chat_at("chat-c1", 1, vec![Check::NoErrors]),
        chat_at("chat-c16", 16, vec![Check::NoErrors]),
        chat_at(
            "chat-c64",
            64,
            vec![
                Check::Rate(12_000.0),
                Check::CpuPerRequest(50.0),
                Check::P99(Duration::from_millis(10)),
                Check::NoErrors,
            ],
        ),
        chat_at("chat-c256", 256, vec![Check::NoErrors]),
        Scenario {
            name: "v1-chat-c64",
            about: "chat, /v1/chat/completions, concurrency 64".to_owned(),
            gateway: call(
                "/v1/chat/completions",
                format!(r#"{{"model":"chat",{CHAT}}}"#),
            ),
            direct: Some(direct_chat("", false)),
            stream_events: None,
            load: closed(64),
            checks: vec![Check::NoErrors],
            fresh_gateway: false,
        },
        Scenario {
            name: "completions-c64",
            about: "completions, MLflow path, concurrency 64".to_owned(),
            gateway: call(
                "/endpoints/completions/invocations",
                r#"{"prompt":"hi"}"#.to_owned(),
            ),
            direct: Some(call(
                "/v1/completions",
                r#"{"model":"gpt-3.5-turbo-instruct","prompt":"hi"}"#.to_owned(),
            )),
            stream_events: None,
            load: closed(64),
            checks: vec![Check::NoErrors],
            fresh_gateway: false,
        },
        Scenario {
            name: "embeddings-c64",
            about: format!(
                "embeddings ({} floats), MLflow path, concurrency 64",
                crate::mock::EMBEDDING_DIMS
            ),
            gateway: call(
                "/endpoints/embeddings/invocations",
                r#"{"input":"hello world"}"#.to_owned(),
            ),
            direct: Some(call(
                "/v1/embeddings",
                r#"{"model":"text-embedding-3-small","input":"hello world"}"#.to_owned(),
            )),
            stream_events: None,
            load: closed(64),
            checks: vec![Check::NoErrors],
            fresh_gateway: false,
        },
        Scenario {
            name: "stream-c1",
            about: format!(
                "streaming chat, {} events, /v1, concurrency 1 (first byte without queueing)",
                profile.stream_events
            ),
            gateway: call(
                "/v1/chat/completions",
                format!(r#"{{"model":"chat-stream","stream":true,{CHAT}}}"#),
            ),
            direct: Some(direct_chat(&format!("/ev{}", profile.stream_events), true)),
            stream_events: Some(profile.stream_events + 1),
            load: closed(1),
            checks: vec![
                Check::FirstByteAdded(Duration::from_millis(1)),
                Check::NoErrors,
            ],
            fresh_gateway: false,
        },
        Scenario {
            name: "stream-c64",
            about: format!(
                "streaming chat, {} events, /v1, concurrency 64",
                profile.stream_events
            ),
            gateway: call(
                "/v1/chat/completions",
                format!(r#"{{"model":"chat-stream","stream":true,{CHAT}}}"#),
            ),
            direct: Some(direct_chat(&format!("/ev{}", profile.stream_events), true)),
            stream_events: Some(profile.stream_events + 1),
            load: closed(64),
            checks: vec![Check::CpuPerRequest(80.0), Check::NoErrors],
            fresh_gateway: false,
        },
        Scenario {
            name: "builtin-mock-c64",
            about: "chat on the built-in mock provider (no upstream), concurrency 64".to_owned(),
            gateway: mlflow_chat("builtin"),
            direct: None,
            stream_events: None,
            load: closed(64),
            checks: vec![Check::NoErrors],
            fresh_gateway: false,
        },
        Scenario {
            name: "upstream-50ms-c64",
            about: "chat, 50 ms upstream, concurrency 64".to_owned(),
            gateway: mlflow_chat("chat-50ms"),
            direct: Some(direct_chat("/lat50", false)),
            stream_events: None,
            load: closed(64),
            checks: vec![Check::RateVsDirect(0.97), Check::NoErrors],
            fresh_gateway: false,
        },
        Scenario {
            name: "upstream-50ms-c1000",
            about: "chat, 50 ms upstream, concurrency 1,000".to_owned(),
            gateway: mlflow_chat("chat-50ms"),
            direct: Some(direct_chat("/lat50", false)),
            stream_events: None,
            load: closed(1000),
            checks: vec![Check::NoErrors],
            fresh_gateway: false,
        },
        Scenario {
            name: "open-5000",
            about: format!("chat, open loop at {} req/s", profile.open_rate),
            gateway: mlflow_chat("chat"),
            direct: Some(direct_chat("", false)),
            stream_events: None,
            load: Load {
                mode: Mode::Open {
                    rate: profile.open_rate,
                    max_in_flight: 5_000,
                },
                ..closed(1)
            },
            checks: vec![Check::P99Added(Duration::from_millis(1)), Check::NoErrors],
            fresh_gateway: false,
        },
    ];
    let ramp = Duration::from_millis(if profile.slow_streams > 1000 {
        2000
    } else {
        200
    });
    let stream_length = Duration::from_millis(profile.slow_gap_ms * u64::from(profile.slow_events));
    scenarios.push(Scenario {
        name: "streams-10k",
        about: format!(
            "{} concurrent streams of {} events {} ms apart ({:.0} s each)",
            profile.slow_streams,
            profile.slow_events,
            profile.slow_gap_ms,
            stream_length.as_secs_f64()
        ),
        gateway: call(
            "/v1/chat/completions",
            format!(r#"{{"model":"chat-slow-stream","stream":true,{CHAT}}}"#),
        ),
        direct: Some(direct_chat(&slow_prefix(profile), true)),
        stream_events: Some(profile.slow_events + 1),
        load: Load {
            mode: Mode::Closed {
                concurrency: profile.slow_streams,
                per_worker: Some(1),
            },
            warmup: Duration::ZERO,
            // Every worker sends exactly one stream; the window only has to outlast the ramp,
            // with room for a load generator that falls behind its schedule.
            duration: ramp + Duration::from_secs(30),
            ramp,
            max_requests: profile.slow_streams as u64,
            request_timeout: stream_length * 3 + Duration::from_secs(10),
        },
        checks: vec![Check::AllComplete, Check::PeakRss(200.0)],
        fresh_gateway: true,
    });
    scenarios
}
