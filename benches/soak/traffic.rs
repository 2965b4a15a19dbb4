//! The soak's traffic: what each request is (endpoint, API path, streaming or not, which fault
//! the upstream is told to inject), and how its outcome is classified. Every outcome is one of:
//! a success (possibly one the gateway recovered by a retry or a fallback), an injected fault
//! the client asked for (counted per cause), an expected 429, or an UNEXPECTED failure.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::config::{RETRY_ATTEMPTS, STREAM_EVENTS};
use crate::faults::{self, Fault, CUT_AFTER_EVENTS};

/// The fault proxy's echo of the key once the gateway has scrubbed it.
const SCRUBBED: &[u8] = b"Incorrect API key provided: ***";
/// Unexpected failures kept in full for the report.
const SAMPLES: usize = 25;

/// splitmix64: seeds and cheap randomness without a crate feature.
pub fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = splitmix(self.0);
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The kinds of traffic, with their share of the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `chat`, JSON: upstream 500s, resets, stalls (504), slow answers.
    Chat,
    /// `chat`, streamed: upstream 500s, resets mid-stream, slow answers.
    ChatStream,
    /// `chat-retry` (3 attempts): 503 once (the retry must succeed), persistent 500s.
    ChatRetry,
    /// `embed` (key from `$SOAK_CANARY_KEY`): 500s, resets, slow answers.
    Embed,
    /// `chat-limited` (20 calls/s, sent about twice that): 429s expected.
    Limited,
    /// `chat-fallback` route (`fb-primary` 100 %, `fb-backup` 0 %, fallback on): primary
    /// failures must be served by the backup; both failing gives 500.
    Route,
    /// `chat-slow`: the mock waits 150 ms and spaces stream events 25 ms apart.
    Slow,
    /// `chat-breaker` (opens after 5 failures for 2 s): bursts of 500s every minute.
    Breaker,
}

pub const KINDS: [(Kind, u32); 8] = [
    (Kind::Chat, 18),
    (Kind::ChatStream, 14),
    (Kind::ChatRetry, 10),
    (Kind::Embed, 14),
    (Kind::Limited, 12),
    (Kind::Route, 12),
    (Kind::Slow, 8),
    (Kind::Breaker, 12),
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::ChatStream => "chat-stream",
            Self::ChatRetry => "chat-retry",
            Self::Embed => "embed",
            Self::Limited => "chat-limited",
            Self::Route => "chat-fallback",
            Self::Slow => "chat-slow",
            Self::Breaker => "chat-breaker",
        }
    }

    /// The endpoint or route it calls.
    pub fn target(self) -> &'static str {
        match self {
            Self::Chat | Self::ChatStream => "chat",
            other => other.name(),
        }
    }

    /// Share of all requests, for the rate limiter's expectations.
    pub fn share(self) -> f64 {
        let total: u32 = KINDS.iter().map(|(_, w)| w).sum();
        KINDS
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or(0.0, |(_, w)| f64::from(*w) / f64::from(total))
    }

    /// Faults and their probabilities (`target` is the proxy tag, `*` for every one).
    fn faults(self, stream: bool) -> &'static [(Fault, &'static str, f64)] {
        match (self, stream) {
            (Self::Chat, _) => &[
                (Fault::Status500, "chat", 0.03),
                (Fault::Reset, "chat", 0.01),
                (Fault::Stall, "chat", 0.002),
                (Fault::Slow, "chat", 0.02),
            ],
            (Self::ChatStream, _) => &[
                (Fault::Status500, "chat", 0.02),
                (Fault::Reset, "chat", 0.04),
                (Fault::Slow, "chat", 0.02),
            ],
            (Self::ChatRetry, _) => &[
                (Fault::Status503Once, "retry", 0.06),
                (Fault::Status500, "retry", 0.01),
                (Fault::Slow, "retry", 0.01),
            ],
            (Self::Embed, _) => &[
                (Fault::Status500, "embed", 0.03),
                (Fault::Reset, "embed", 0.01),
                (Fault::Slow, "embed", 0.02),
            ],
            (Self::Route, _) => &[
                (Fault::Status500, "primary", 0.05),
                (Fault::Status500, "*", 0.01),
                (Fault::Reset, "primary", 0.01),
                (Fault::Slow, "primary", 0.01),
            ],
            (Self::Breaker, _) => &[(Fault::Status500, "breaker", 0.01)],
            (Self::Limited | Self::Slow, _) => &[],
        }
    }

    fn streams(self, rng: &mut Rng) -> bool {
        match self {
            Self::Chat | Self::Embed | Self::Breaker => false,
            Self::ChatStream => true,
            Self::Limited => rng.unit() < 0.3,
            Self::ChatRetry | Self::Route | Self::Slow => rng.unit() < 0.5,
        }
    }
}

/// Which of the gateway's invocation paths a request uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `POST /endpoints/{name}/invocations`
    Endpoints,
    /// `POST /gateway/{name}/invocations`
    Gateway,
    /// `POST /v1/chat/completions` or `/v1/embeddings`, `model` naming the endpoint.
    V1,
}

pub struct Plan {
    pub id: u64,
    pub kind: Kind,
    pub api: Api,
    pub stream: bool,
    pub fault: Option<(Fault, &'static str)>,
    pub path: String,
    pub body: Bytes,
}

/// Draws the next request. `breaker_burst`: every `chat-breaker` request fails upstream.
pub fn plan(rng: &mut Rng, id: u64, breaker_burst: bool) -> Plan {
    let total: u32 = KINDS.iter().map(|(_, w)| w).sum();
    let mut pick = (rng.next() % u64::from(total)) as u32;
    let mut kind = Kind::Chat;
    for (candidate, weight) in KINDS {
        if pick < weight {
            kind = candidate;
            break;
        }
        pick -= weight;
    }
    let stream = kind.streams(rng);
    let mut fault = None;
    if kind == Kind::Breaker && breaker_burst {
        fault = Some((Fault::Status500, "breaker"));
    } else {
        let mut draw = rng.unit();
        for &(candidate, target, probability) in kind.faults(stream) {
            if draw < probability {
                fault = Some((candidate, target));
                break;
            }
            draw -= probability;
        }
    }
    let api = match (kind, id % 3) {
        (Kind::Embed, n) if n % 2 == 0 => Api::Endpoints,
        (Kind::Embed, _) => Api::V1,
        (_, 0) => Api::Endpoints,
        (_, 1) => Api::Gateway,
        _ => Api::V1,
    };
    let target = kind.target();
    let marker = fault
        .map(|(fault, tag)| format!(" {}", faults::marker(fault, tag, id)))
        .unwrap_or_default();
    let text = format!("soak request {id}{marker}");
    let mut body = if kind == Kind::Embed {
        json!({ "input": text })
    } else {
        json!({ "messages": [{"role": "user", "content": text}], "max_tokens": 32 })
    };
    if stream {
        body["stream"] = json!(true);
    }
    let path = match api {
        Api::Endpoints => format!("/endpoints/{target}/invocations"),
        Api::Gateway => format!("/gateway/{target}/invocations"),
        Api::V1 => {
            body["model"] = json!(target);
            if kind == Kind::Embed {
                "/v1/embeddings".to_owned()
            } else {
                "/v1/chat/completions".to_owned()
            }
        }
    };
    Plan {
        id,
        kind,
        api,
        stream,
        fault,
        path,
        body: Bytes::from(serde_json::to_vec(&body).expect("JSON body")),
    }
}

/// What came back.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: String,
    pub body: Bytes,
}

#[derive(Debug, PartialEq)]
pub enum Class {
    Ok(&'static str),
    Injected(&'static str),
    RateLimited,
    /// A 503 from `chat-breaker`'s open circuit: judged at the end against the injected
    /// failures around it.
    CircuitOpen,
    Unexpected(String),
}

/// Classifies one answer. `canary` must not appear in it anywhere.
pub fn classify(plan: &Plan, reply: &Reply, canary: &str) -> Class {
    let text = String::from_utf8_lossy(&reply.body);
    if text.contains(canary) || reply.headers.contains(canary) {
        return Class::Unexpected("a canary key appears in the response".to_owned());
    }
    let unexpected = |why: &str| {
        Class::Unexpected(format!(
            "{why}: status {}, body {}",
            reply.status,
            excerpt(&text, 300)
        ))
    };
    if reply.status == 429 {
        return if plan.kind == Kind::Limited && text.contains("Rate limit exceeded") {
            Class::RateLimited
        } else {
            unexpected("429 outside the rate-limited endpoint")
        };
    }
    if reply.status == 503 && plan.kind == Kind::Breaker && text.contains("circuit open") {
        return Class::CircuitOpen;
    }
    let via_fallback = plan.kind == Kind::Route
        && matches!(plan.fault, Some((Fault::Status500, "primary")))
        || plan.kind == Kind::Route
            && !plan.stream
            && matches!(plan.fault, Some((Fault::Reset, "primary")));
    let success_cause = match plan.fault {
        None if plan.kind == Kind::Slow => Some("ok_slow"),
        None => Some("ok"),
        Some((Fault::Slow, _)) => Some("ok_slow"),
        Some((Fault::Status503Once, _)) => Some("ok_after_retry"),
        Some(_) if via_fallback => Some("ok_via_fallback"),
        Some(_) => None,
    };
    if let Some(cause) = success_cause {
        return match check_success(plan, reply, &text) {
            Ok(()) => Class::Ok(cause),
            Err(why) => unexpected(&why),
        };
    }
    let (fault, target) = plan.fault.expect("faulted: no success expected");
    match fault {
        Fault::Status500 => {
            if reply.status != 500 {
                return unexpected("injected upstream 500 not passed through as 500");
            }
            if !text.contains("injected by the soak test") {
                return unexpected("injected 500 without the upstream's message");
            }
            Class::Injected(match (plan.kind, target) {
                (Kind::ChatRetry, _) => "upstream_500_after_all_retries",
                (Kind::Route, _) => "upstream_500_on_every_destination",
                (Kind::Breaker, _) => "upstream_500_breaker",
                _ => "upstream_500",
            })
        }
        Fault::Reset if !plan.stream => {
            if reply.status == 502 {
                Class::Injected("reset_before_reply_502")
            } else {
                unexpected("connection reset before the reply did not give 502")
            }
        }
        Fault::Reset => {
            if reply.status == 502 {
                return Class::Injected("reset_before_first_byte_502");
            }
            if reply.status != 200 {
                return unexpected("stream reset mid-way: not 200 and not 502");
            }
            let events = Events::parse(&text);
            if events.errors == 1
                && !events.done
                && events.chunks >= 1
                && events.chunks <= CUT_AFTER_EVENTS as usize
                && events.last_is_error
            {
                Class::Injected("reset_mid_stream_error_event")
            } else {
                unexpected(&format!(
                    "stream reset mid-way not reported as a final error event ({} chunks, {} errors, done {})",
                    events.chunks, events.errors, events.done
                ))
            }
        }
        Fault::Stall => {
            if reply.status == 504 {
                Class::Injected("stall_first_byte_timeout_504")
            } else {
                unexpected("stalled upstream did not give 504")
            }
        }
        Fault::Slow | Fault::Status503Once => unreachable!("successes above"),
    }
}

fn check_success(plan: &Plan, reply: &Reply, text: &str) -> Result<(), String> {
    if reply.status != 200 {
        return Err("expected success".to_owned());
    }
    if plan.stream {
        if !reply.content_type.starts_with("text/event-stream") {
            return Err(format!("stream with content type {}", reply.content_type));
        }
        let events = Events::parse(text);
        let done_expected = plan.api == Api::V1;
        if events.chunks != STREAM_EVENTS || events.errors != 0 || events.done != done_expected {
            return Err(format!(
                "incomplete stream ({} of {STREAM_EVENTS} chunks, {} errors, [DONE] {})",
                events.chunks, events.errors, events.done
            ));
        }
        return Ok(());
    }
    let value: Value = serde_json::from_str(text).map_err(|_| "body is not JSON".to_owned())?;
    if plan.kind == Kind::Embed {
        let dims = value["data"][0]["embedding"].as_array().map_or(0, Vec::len);
        if dims != crate::mock::EMBEDDING_DIMS {
            return Err(format!("embedding of {dims} floats"));
        }
    } else if value["choices"][0]["message"]["content"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        return Err("chat answer without content".to_owned());
    }
    Ok(())
}

/// What a server-sent event body holds.
#[derive(Debug, Default)]
struct Events {
    /// Events carrying `choices` (content chunks).
    chunks: usize,
    /// Events carrying `error`.
    errors: usize,
    last_is_error: bool,
    /// The last event is `[DONE]`.
    done: bool,
}

impl Events {
    fn parse(text: &str) -> Self {
        let mut events = Self::default();
        for line in text.lines() {
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            events.done = data == "[DONE]";
            events.last_is_error = false;
            if events.done {
                continue;
            }
            match serde_json::from_str::<Value>(data) {
                Ok(value) if value.get("error").is_some() => {
                    events.errors += 1;
                    events.last_is_error = true;
                }
                Ok(value) if value.get("choices").is_some() => events.chunks += 1,
                _ => events.errors += 1,
            }
        }
        events
    }
}

fn excerpt(text: &str, limit: usize) -> String {
    let short: String = text.chars().take(limit).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}

/// Upstream failures the gateway should count (`switchyard_upstream_errors_total`) for an
/// outcome: one per failed upstream attempt.
pub fn upstream_failures(class: &Class) -> u64 {
    match class {
        Class::Ok("ok_after_retry") | Class::Ok("ok_via_fallback") => 1,
        Class::Injected("upstream_500_after_all_retries") => u64::from(RETRY_ATTEMPTS),
        Class::Injected("upstream_500_on_every_destination") => 2,
        Class::Injected(_) => 1,
        _ => 0,
    }
}

/// Retries the gateway should count for an outcome.
pub fn retries(class: &Class) -> u64 {
    match class {
        Class::Ok("ok_after_retry") => 1,
        Class::Injected("upstream_500_after_all_retries") => u64::from(RETRY_ATTEMPTS - 1),
        _ => 0,
    }
}

/// Fallbacks the gateway should count for an outcome.
pub fn fallbacks(class: &Class) -> u64 {
    match class {
        Class::Ok("ok_via_fallback") | Class::Injected("upstream_500_on_every_destination") => 1,
        _ => 0,
    }
}

#[derive(Default, Clone, Copy)]
pub struct KindCounts {
    pub sent: u64,
    pub ok: u64,
    pub injected: u64,
    pub rate_limited: u64,
    pub unexpected: u64,
}

/// Everything the client saw.
#[derive(Default)]
pub struct Tally {
    pub sent: u64,
    pub completed: u64,
    pub ok: BTreeMap<&'static str, u64>,
    pub injected: BTreeMap<&'static str, u64>,
    pub rate_limited: u64,
    pub unexpected: u64,
    pub unexpected_samples: Vec<String>,
    pub by_kind: BTreeMap<Kind, KindCounts>,
    /// Responses by status class (`2xx`), for the `/metrics` cross-check.
    pub status_classes: BTreeMap<String, u64>,
    pub expected_upstream_failures: u64,
    /// Answers carrying the upstream's echo of the key with the key scrubbed.
    pub scrubbed_echoes: u64,
    pub expected_retries: u64,
    pub expected_fallbacks: u64,
    /// Successes on the rate-limited endpoint.
    pub limited_admitted: u64,
    /// `chat-breaker`: when injected failures came back, and the circuit-open answers (sent,
    /// received), in seconds since the start.
    pub breaker_failures: Vec<f64>,
    pub circuit_open: Vec<(f64, f64)>,
    /// Successful-request latency per kind, in microseconds.
    pub latency: BTreeMap<Kind, Histogram<u64>>,
    /// Completions per 10-second slot.
    pub per_slot: Vec<u64>,
}

/// Slack on top of the breaker's open time within which a circuit-open 503 is still explained by
/// an injected failure (the half-open probe's own time, scheduling on a busy machine).
pub const BREAKER_SLACK: Duration = Duration::from_secs(2);

impl Tally {
    pub fn sent(&mut self, kind: Kind) {
        self.sent += 1;
        self.by_kind.entry(kind).or_default().sent += 1;
    }

    /// Records one finished request: `sent_at` and `done_at` in seconds since the start.
    pub fn record(
        &mut self,
        plan: &Plan,
        result: Result<Reply, String>,
        sent_at: f64,
        done_at: f64,
        canary: &str,
    ) {
        self.completed += 1;
        let slot = (done_at / 10.0) as usize;
        if self.per_slot.len() <= slot {
            self.per_slot.resize(slot + 1, 0);
        }
        self.per_slot[slot] += 1;
        let class = match &result {
            Ok(reply) => {
                let class_label = format!("{}xx", reply.status / 100);
                *self.status_classes.entry(class_label).or_default() += 1;
                if reply.body.windows(SCRUBBED.len()).any(|w| w == SCRUBBED) {
                    self.scrubbed_echoes += 1;
                }
                classify(plan, reply, canary)
            }
            Err(error) => Class::Unexpected(format!("client: {error}")),
        };
        self.expected_upstream_failures += upstream_failures(&class);
        self.expected_retries += retries(&class);
        self.expected_fallbacks += fallbacks(&class);
        let counts = self.by_kind.entry(plan.kind).or_default();
        match class {
            Class::Ok(cause) => {
                counts.ok += 1;
                *self.ok.entry(cause).or_default() += 1;
                if plan.kind == Kind::Limited {
                    self.limited_admitted += 1;
                }
                let micros = ((done_at - sent_at) * 1e6).max(1.0) as u64;
                self.latency
                    .entry(plan.kind)
                    .or_insert_with(|| {
                        Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram")
                    })
                    .saturating_record(micros);
            }
            Class::Injected(cause) => {
                counts.injected += 1;
                *self.injected.entry(cause).or_default() += 1;
                if cause == "upstream_500_breaker" {
                    self.breaker_failures.push(done_at);
                }
            }
            Class::RateLimited => {
                counts.rate_limited += 1;
                self.rate_limited += 1;
            }
            Class::CircuitOpen => {
                // Judged in `settle_breaker`; provisionally an injected-fault outcome.
                counts.injected += 1;
                self.circuit_open.push((sent_at, done_at));
            }
            Class::Unexpected(why) => {
                counts.unexpected += 1;
                self.unexpected += 1;
                if self.unexpected_samples.len() < SAMPLES {
                    self.unexpected_samples.push(format!(
                        "t={sent_at:.1}s #{} {} {} {}{}: {why}",
                        plan.id,
                        plan.kind.name(),
                        plan.path,
                        if plan.stream { "stream " } else { "" },
                        plan.fault
                            .map(|(f, t)| format!("fault {}@{t}", f.code()))
                            .unwrap_or_else(|| "no fault".to_owned()),
                    ));
                }
            }
        }
    }

    /// Judges every circuit-open 503: expected when an injected `chat-breaker` failure came back
    /// within the open time (plus slack) before it was sent, or while it was in flight.
    pub fn settle_breaker(&mut self, open: Duration) {
        let window = (open + BREAKER_SLACK).as_secs_f64();
        let mut failures = self.breaker_failures.clone();
        failures.sort_by(f64::total_cmp);
        let mut explained = 0;
        let open_answers = std::mem::take(&mut self.circuit_open);
        for &(sent, done) in &open_answers {
            let start = failures.partition_point(|&at| at < sent - window);
            if failures.get(start).is_some_and(|&at| at <= done + 0.5) {
                explained += 1;
            } else {
                let counts = self.by_kind.entry(Kind::Breaker).or_default();
                counts.injected -= 1;
                counts.unexpected += 1;
                self.unexpected += 1;
                if self.unexpected_samples.len() < SAMPLES {
                    self.unexpected_samples.push(format!(
                        "t={sent:.1}s chat-breaker: 503 circuit open with no injected failure in the {window:.0} s before"
                    ));
                }
            }
        }
        if explained > 0 {
            *self.injected.entry("circuit_open_503").or_default() += explained;
        }
    }
}
