//! Criterion micro-benchmarks of the hot pure code on the request path:
//! `cargo bench --bench micro` (add `-- --quick` for a short run, or a filter such as `sse`).
//!
//! - `parse_validate/*`: body bytes to a validated [`UnifiedRequest`] per route type, as the
//!   handlers do (`parse_json_body` then `UnifiedRequest::validate`).
//! - `translate/*`: the OpenAI wire translation both ways: unified request to upstream body,
//!   upstream JSON to the unified response, one stream event to one unified chunk.
//! - `sse/*`: [`SseDecoder`] splitting a 20-event stream at different read sizes, against a naive
//!   `String` splitter that re-scans and re-copies its buffer.
//! - `limiter/*`: the shared in-memory rate limiter (`MemoryStore`, a sharded map) against a
//!   naive `Mutex<HashMap>` of windows, single-threaded and with two threads hitting it.

// A benchmark: a failed unwrap ends the run with the reason, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::Value;
use switchyard_actors::config::{EndpointType, OpenAiApiType, OpenAiConfig, Provider, Secret};
use switchyard_actors::limits::memory::MemoryStore;
use switchyard_actors::limits::window::Window;
use switchyard_actors::providers::openai::{chat_chunk, chat_response, OpenAiWire};
use switchyard_actors::schema::{parse_json_body, UnifiedRequest};
use switchyard_actors::sse::{SseDecoder, SseEvent};

const JSON: Option<&str> = Some("application/json");

const CHAT_SMALL: &str = r#"{"messages":[{"role":"user","content":"hi"}]}"#;

/// A realistic agent turn: system prompt, history, a tool definition, sampling parameters.
const CHAT_TOOLS: &str = r#"{"messages":[{"role":"system","content":"You are a helpful assistant that answers questions about the weather and nothing else. Be concise."},{"role":"user","content":"What is the weather in Paris today?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"{\"temp_c\":18,\"sky\":\"cloudy\"}"},{"role":"user","content":"And tomorrow?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"day":{"type":"string","enum":["today","tomorrow"]}},"required":["city"]}}}],"temperature":0.2,"max_tokens":256,"stop":["\n\n"]}"#;

const COMPLETIONS: &str =
    r#"{"prompt":"Write a haiku about gateways.","max_tokens":64,"temperature":0.7}"#;

const EMBEDDINGS_ONE: &str = r#"{"input":"hello world"}"#;

fn embeddings_batch() -> String {
    let inputs: Vec<String> = (0..16)
        .map(|i| format!("\"document number {i} with a few more words in it\""))
        .collect();
    format!(r#"{{"input":[{}]}}"#, inputs.join(","))
}

fn parse_and_validate(kind: EndpointType, body: &[u8]) -> UnifiedRequest {
    let value = parse_json_body(JSON, body).expect("valid body");
    UnifiedRequest::validate(kind, value).expect("valid request")
}

fn parse_validate(c: &mut Criterion) {
    let batch = embeddings_batch();
    let cases: [(&str, EndpointType, &str); 5] = [
        ("chat_small", EndpointType::Chat, CHAT_SMALL),
        ("chat_tools", EndpointType::Chat, CHAT_TOOLS),
        ("completions", EndpointType::Completions, COMPLETIONS),
        ("embeddings_one", EndpointType::Embeddings, EMBEDDINGS_ONE),
        ("embeddings_16", EndpointType::Embeddings, &batch),
    ];
    let mut group = c.benchmark_group("parse_validate");
    for (name, kind, body) in cases {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| parse_and_validate(kind, black_box(body.as_bytes())))
        });
    }
    group.finish();
}

fn wire() -> OpenAiWire {
    let config = OpenAiConfig {
        api_key: Secret::new("sk-bench"),
        api_type: OpenAiApiType::OpenAi,
        api_base: "http://127.0.0.1:9/v1".to_owned(),
        api_version: None,
        deployment_name: None,
        organization: None,
    };
    OpenAiWire::openai(&config, Some("gpt-4o-mini".to_owned()), Provider::OpenAi)
}

const CHAT_RESPONSE: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! I am the mock upstream of the Switchyard load test.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":13,"total_tokens":22,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

const CHAT_CHUNK: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"tok7 "},"finish_reason":null}]}"#;

fn embeddings_response() -> String {
    let values: Vec<String> = (0..1536)
        .map(|i| format!("{:.10}", ((i * 7919) % 1000) as f64 / 12_500.0 - 0.04))
        .collect();
    format!(
        r#"{{"object":"list","data":[{{"object":"embedding","embedding":[{}],"index":0}}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":2,"total_tokens":2}}}}"#,
        values.join(",")
    )
}

fn translate(c: &mut Criterion) {
    let wire = wire();
    let mut group = c.benchmark_group("translate");

    // Unified request -> upstream HTTP request (URL, headers, serialised body).
    for (name, kind, body) in [
        ("request_chat_small", EndpointType::Chat, CHAT_SMALL),
        ("request_chat_tools", EndpointType::Chat, CHAT_TOOLS),
        (
            "request_embeddings",
            EndpointType::Embeddings,
            EMBEDDINGS_ONE,
        ),
    ] {
        let request = parse_and_validate(kind, body.as_bytes());
        group.bench_function(name, |b| {
            b.iter(|| wire.request(black_box(&request)).expect("translates"))
        });
    }

    // Upstream body bytes -> unified response bytes, as the provider actor does it.
    let embeddings = embeddings_response();
    for (name, kind, body) in [
        ("response_chat", EndpointType::Chat, CHAT_RESPONSE),
        (
            "response_embeddings_1536",
            EndpointType::Embeddings,
            &embeddings,
        ),
    ] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                wire.response_from_text(kind, black_box(body.as_bytes()))
                    .expect("translates")
            })
        });
    }
    // The typed step alone (no parsing, no serialising).
    let value: Value = serde_json::from_str(CHAT_RESPONSE).unwrap();
    group.throughput(Throughput::Elements(1));
    group.bench_function("chat_response_typed_only", |b| {
        b.iter(|| chat_response(black_box(value.clone()), "openai").expect("translates"))
    });

    // One stream event: the provider path (parse + typed + serialise) and the typed step alone.
    let event = SseEvent {
        event: None,
        data: CHAT_CHUNK.to_owned(),
    };
    group.bench_function("stream_event_chat", |b| {
        b.iter(|| {
            wire.stream_event(EndpointType::Chat, black_box(&event))
                .expect("translates")
        })
    });
    let chunk: Value = serde_json::from_str(CHAT_CHUNK).unwrap();
    group.bench_function("chat_chunk_typed_only", |b| {
        b.iter(|| chat_chunk(black_box(chunk.clone()), "openai").expect("translates"))
    });
    group.finish();
}

/// A 20-event OpenAI chat stream with `[DONE]`, as one byte string.
fn sse_stream() -> Vec<u8> {
    let mut out = String::new();
    for index in 0..20 {
        out.push_str("data: ");
        out.push_str(&CHAT_CHUNK.replace("tok7", &format!("tok{index}")));
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// The naive splitter: append each read to a `String`, look for a blank line from the start,
/// copy the event out and the rest into a fresh buffer. `\n` line endings only.
fn naive_split(reads: &[&[u8]]) -> usize {
    let mut buffer = String::new();
    let mut events = 0;
    for read in reads {
        buffer.push_str(&String::from_utf8_lossy(read));
        while let Some(end) = buffer.find("\n\n") {
            let event = buffer[..end].to_owned();
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|value| value.strip_prefix(' ').unwrap_or(value))
                .collect();
            black_box(data.join("\n"));
            events += 1;
            buffer = buffer[end + 2..].to_owned();
        }
    }
    events
}

fn decoder_split(reads: &[&[u8]]) -> usize {
    let mut decoder = SseDecoder::new();
    let mut events = 0;
    for read in reads {
        events += decoder.push(read).expect("small events").len();
    }
    events + usize::from(decoder.finish().is_some())
}

fn sse(c: &mut Criterion) {
    let stream = sse_stream();
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    for read_size in [16usize, 256, 4096, stream.len()] {
        let reads: Vec<&[u8]> = stream.chunks(read_size).collect();
        assert_eq!(decoder_split(&reads), 21);
        assert_eq!(naive_split(&reads), 21);
        group.bench_with_input(
            BenchmarkId::new("decoder", read_size),
            &reads,
            |b, reads| b.iter(|| decoder_split(black_box(reads))),
        );
        group.bench_with_input(BenchmarkId::new("naive", read_size), &reads, |b, reads| {
            b.iter(|| naive_split(black_box(reads)))
        });
    }
    group.finish();
}

/// The baseline a limiter is usually first written as: one lock around one map.
#[derive(Default)]
struct NaiveLimiter {
    windows: std::sync::Mutex<std::collections::HashMap<(String, String), Window>>,
}

impl NaiveLimiter {
    fn hit(&self, endpoint: &str, key: &str, period_ms: u64, limit: u64, now_ms: u64) -> bool {
        let Ok(mut windows) = self.windows.lock() else {
            return false;
        };
        windows
            .entry((endpoint.to_owned(), key.to_owned()))
            .or_default()
            .hit(now_ms, period_ms, limit)
            .allowed
    }
}

fn limiter(c: &mut Criterion) {
    let mut group = c.benchmark_group("limiter");
    let keys: Vec<String> = (0..1_000)
        .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
        .collect();
    let store = Arc::new(MemoryStore::new());
    let naive = Arc::new(NaiveLimiter::default());
    let mut i = 0usize;
    group.bench_function("sharded_map", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(store.hit("chat", &keys[i], 60_000, u64::MAX, 1).allowed)
        })
    });
    group.bench_function("naive_mutex", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(naive.hit("chat", &keys[i], 60_000, u64::MAX, 1))
        })
    });
    // Two threads: the second hammers the same limiter while the first is measured.
    for (name, contender) in [
        ("sharded_map_contended", true),
        ("naive_mutex_contended", false),
    ] {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let background = {
            let (stop, store, naive, keys) =
                (stop.clone(), store.clone(), naive.clone(), keys.clone());
            std::thread::spawn(move || {
                let mut j = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    j = (j + 7) % keys.len();
                    if contender {
                        black_box(store.hit("chat", &keys[j], 60_000, u64::MAX, 1));
                    } else {
                        black_box(naive.hit("chat", &keys[j], 60_000, u64::MAX, 1));
                    }
                }
            })
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                if contender {
                    black_box(store.hit("chat", &keys[i], 60_000, u64::MAX, 1).allowed)
                } else {
                    black_box(naive.hit("chat", &keys[i], 60_000, u64::MAX, 1))
                }
            })
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = background.join();
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = parse_validate, translate, sse, limiter
}
criterion_main!(benches);
