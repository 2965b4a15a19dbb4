//! The load generator: awc on one actix system thread, closed loop (N workers, each sending its
//! next request when the previous one is answered) or open loop (requests started on a fixed
//! schedule whatever the answers do). Latencies and times to first byte go into HDR histograms
//! in microseconds. Every run is bounded in time and in request count.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use hdrhistogram::Histogram;

/// Largest body the client reads (the embeddings answer is about 20 KB).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Error messages kept per run, to show what went wrong.
const ERROR_SAMPLES: usize = 5;
/// Histogram range: 1 µs to 10 minutes, three significant digits.
const HISTOGRAM_MAX_US: u64 = 600_000_000;

/// One request, sent as is by every worker.
pub struct Target {
    pub url: String,
    pub body: Bytes,
    /// For streams, the `data:` events a complete answer carries (content events + `[DONE]`).
    pub stream_events: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `concurrency` workers; each stops after `per_worker` requests when set.
    Closed {
        concurrency: usize,
        per_worker: Option<u64>,
    },
    /// `rate` requests per second; requests beyond `max_in_flight` outstanding count as errors.
    Open { rate: f64, max_in_flight: usize },
}

#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub mode: Mode,
    /// Sent but not recorded (connections open, caches warm).
    pub warmup: Duration,
    /// Requests started within this window after the warm-up are recorded.
    pub duration: Duration,
    /// Closed loop: workers start spread over this long, so connects come in waves.
    pub ramp: Duration,
    /// Hard cap on requests in the run, warm-up included.
    pub max_requests: u64,
    /// Per request, whole body or stream included.
    pub request_timeout: Duration,
}

/// CPU readings taken at the edges of the measured window.
pub trait Probe {
    fn sample(&self) -> Sample;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub at: Option<Instant>,
    /// The gateway's CPU time, when a gateway is involved.
    pub gateway_cpu: Option<Duration>,
    /// This process's CPU time (mock + load generator).
    pub own_cpu: Option<Duration>,
    /// Busy CPU time of the whole machine (every process), to see what else was running.
    pub machine_cpu: Option<Duration>,
}

pub struct Outcome {
    /// Successful requests started in the measured window.
    pub ok: u64,
    /// Successful requests that finished inside the measured window (the steady-state rate is
    /// this over the window's length; long streams that all end after it have none).
    pub completed_in_window: u64,
    /// The measured window's planned length.
    pub duration: Duration,
    /// Workers stop after a fixed count (the slow-stream scenario): no steady-state rate.
    pub counted: bool,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// From the start of the measured window to the last recorded completion.
    pub window: Duration,
    pub latency: Histogram<u64>,
    /// Streams only: time to the first body byte.
    pub ttfb: Histogram<u64>,
    pub max_in_flight: usize,
    pub cpu_start: Sample,
    pub cpu_end: Sample,
}

struct Stats {
    measure_start: Instant,
    end: Instant,
    completed_in_window: u64,
    started: u64,
    in_flight: usize,
    max_in_flight: usize,
    ok: u64,
    errors: u64,
    error_samples: Vec<String>,
    last_completion: Option<Instant>,
    latency: Histogram<u64>,
    ttfb: Histogram<u64>,
}

impl Stats {
    fn new(measure_start: Instant, end: Instant) -> Self {
        let histogram = || Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("histogram");
        Self {
            measure_start,
            end,
            completed_in_window: 0,
            started: 0,
            in_flight: 0,
            max_in_flight: 0,
            ok: 0,
            errors: 0,
            error_samples: Vec::new(),
            last_completion: None,
            latency: histogram(),
            ttfb: histogram(),
        }
    }

    fn begin(&mut self) {
        self.started += 1;
        self.in_flight += 1;
        self.max_in_flight = self.max_in_flight.max(self.in_flight);
    }

    /// A finished request; `recorded` when it started inside the measured window.
    fn finish(&mut self, result: Result<Timing, String>, recorded: bool) {
        self.in_flight -= 1;
        let now = Instant::now();
        if result.is_ok() && now >= self.measure_start && now < self.end {
            self.completed_in_window += 1;
        }
        if !recorded {
            return;
        }
        self.last_completion = Some(now);
        match result {
            Ok(timing) => {
                self.ok += 1;
                self.latency.saturating_record(micros(timing.total));
                if let Some(first) = timing.first_byte {
                    self.ttfb.saturating_record(micros(first));
                }
            }
            Err(message) => self.error(message),
        }
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.push(message);
        }
    }
}

fn micros(duration: Duration) -> u64 {
    duration.as_micros().clamp(1, u128::from(HISTOGRAM_MAX_US)) as u64
}

struct Timing {
    first_byte: Option<Duration>,
    total: Duration,
}

/// A pooled client without a connection cap (awc's default of 100 would queue requests).
fn client(load: &Load) -> awc::Client {
    let connector = awc::Connector::new()
        .limit(0)
        .timeout(Duration::from_secs(30))
        .conn_keep_alive(Duration::from_secs(120))
        .conn_lifetime(Duration::from_secs(3600));
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .timeout(load.request_timeout)
        .finish()
}

/// Runs one load against one target; must be called inside an actix system.
pub async fn run(target: Rc<Target>, load: Load, probe: Rc<dyn Probe>) -> Outcome {
    let client = Rc::new(client(&load));
    let measure_start = Instant::now() + load.warmup;
    let end = measure_start + load.duration;
    let stats = Rc::new(RefCell::new(Stats::new(measure_start, end)));
    let cpu_start = Rc::new(RefCell::new(Sample::default()));
    {
        let probe = probe.clone();
        let cpu_start = cpu_start.clone();
        actix_rt::spawn(async move {
            actix_rt::time::sleep_until(measure_start.into()).await;
            *cpu_start.borrow_mut() = probe.sample();
        });
    }
    match load.mode {
        Mode::Closed {
            concurrency,
            per_worker,
        } => {
            let mut workers = Vec::with_capacity(concurrency);
            for index in 0..concurrency {
                let delay = load.ramp.mul_f64(index as f64 / concurrency.max(1) as f64);
                workers.push(actix_rt::spawn(worker(
                    Worker {
                        client: client.clone(),
                        target: target.clone(),
                        stats: stats.clone(),
                        measure_start,
                        end,
                        per_worker,
                        load,
                    },
                    delay,
                )));
            }
            for worker in workers {
                let _ = worker.await;
            }
        }
        Mode::Open {
            rate,
            max_in_flight,
        } => {
            open_loop(
                &client,
                &target,
                &stats,
                &load,
                rate,
                max_in_flight,
                measure_start,
                end,
            )
            .await;
        }
    }
    let cpu_end = probe.sample();
    let cpu_start = *cpu_start.borrow();
    let stats = Rc::try_unwrap(stats)
        .ok()
        .expect("every request finished")
        .into_inner();
    Outcome {
        ok: stats.ok,
        completed_in_window: stats.completed_in_window,
        duration: load.duration,
        counted: matches!(
            load.mode,
            Mode::Closed {
                per_worker: Some(_),
                ..
            }
        ),
        errors: stats.errors,
        error_samples: stats.error_samples,
        window: stats
            .last_completion
            .map(|last| last.saturating_duration_since(measure_start))
            .unwrap_or(load.duration),
        latency: stats.latency,
        ttfb: stats.ttfb,
        max_in_flight: stats.max_in_flight,
        cpu_start,
        cpu_end,
    }
}

struct Worker {
    client: Rc<awc::Client>,
    target: Rc<Target>,
    stats: Rc<RefCell<Stats>>,
    measure_start: Instant,
    end: Instant,
    per_worker: Option<u64>,
    load: Load,
}

async fn worker(worker: Worker, delay: Duration) {
    actix_rt::time::sleep(delay).await;
    let mut sent = 0u64;
    loop {
        let started = Instant::now();
        if started >= worker.end
            || worker.per_worker.is_some_and(|limit| sent >= limit)
            || worker.stats.borrow().started >= worker.load.max_requests
        {
            return;
        }
        sent += 1;
        worker.stats.borrow_mut().begin();
        let result = timed(&worker.client, &worker.target, worker.load.request_timeout).await;
        worker
            .stats
            .borrow_mut()
            .finish(result, started >= worker.measure_start);
    }
}

/// Starts requests on schedule, in batches each time the timer fires (tokio's timer has 1 ms
/// granularity, so at 5,000 req/s about five leave together). Latency counts from the moment a
/// request is actually sent.
#[allow(clippy::too_many_arguments)]
async fn open_loop(
    client: &Rc<awc::Client>,
    target: &Rc<Target>,
    stats: &Rc<RefCell<Stats>>,
    load: &Load,
    rate: f64,
    max_in_flight: usize,
    measure_start: Instant,
    end: Instant,
) {
    let start = Instant::now();
    let total = ((rate * (end - start).as_secs_f64()) as u64).min(load.max_requests);
    let mut sent = 0u64;
    let mut pending = Vec::new();
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
        while sent < due {
            sent += 1;
            let now = Instant::now();
            let recorded = now >= measure_start;
            let mut guard = stats.borrow_mut();
            if guard.in_flight >= max_in_flight {
                if recorded {
                    guard.error(format!("more than {max_in_flight} requests outstanding"));
                }
                continue;
            }
            guard.begin();
            drop(guard);
            let (client, target, stats) = (client.clone(), target.clone(), stats.clone());
            let timeout = load.request_timeout;
            pending.push(actix_rt::spawn(async move {
                let result = timed(&client, &target, timeout).await;
                stats.borrow_mut().finish(result, recorded);
            }));
        }
        pending.retain(|handle: &actix_rt::task::JoinHandle<()>| !handle.is_finished());
        let next = start + Duration::from_secs_f64(sent as f64 / rate);
        actix_rt::time::sleep_until(next.into()).await;
    }
    for handle in pending {
        let _ = handle.await;
    }
}

async fn timed(client: &awc::Client, target: &Target, limit: Duration) -> Result<Timing, String> {
    let started = Instant::now();
    match actix_rt::time::timeout(limit, exchange(client, target, started)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no complete answer within {limit:?}")),
    }
}

async fn exchange(
    client: &awc::Client,
    target: &Target,
    started: Instant,
) -> Result<Timing, String> {
    let mut response = client
        .post(&target.url)
        .insert_header(("content-type", "application/json"))
        .send_body(target.body.clone())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response
            .body()
            .limit(MAX_BODY_BYTES)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        return Err(format!("status {status}: {}", truncate(&text, 200)));
    }
    let Some(expected) = target.stream_events else {
        let body = response
            .body()
            .limit(MAX_BODY_BYTES)
            .await
            .map_err(|e| format!("body: {e}"))?;
        if body.is_empty() {
            return Err("empty body".to_owned());
        }
        return Ok(Timing {
            first_byte: None,
            total: started.elapsed(),
        });
    };
    let mut events = EventCounter::default();
    let mut first_byte = None;
    while let Some(chunk) = response.next().await {
        let chunk = chunk.map_err(|e| format!("stream: {e}"))?;
        if first_byte.is_none() && !chunk.is_empty() {
            first_byte = Some(started.elapsed());
        }
        events.push(&chunk);
    }
    if events.events != expected || !events.ends_with_done() {
        return Err(format!(
            "incomplete stream: {} events (expected {expected}), ends with {:?}",
            events.events,
            String::from_utf8_lossy(&events.tail)
        ));
    }
    Ok(Timing {
        first_byte,
        total: started.elapsed(),
    })
}

fn truncate(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

/// Counts SSE `data:` events across arbitrary read boundaries (comments such as keep-alives
/// are not events) and keeps the last bytes to check the stream ended with `data: [DONE]`.
struct EventCounter {
    events: u32,
    /// How much of `data:` the current line has matched; `None` once the line cannot match.
    matched: Option<usize>,
    tail: Vec<u8>,
}

impl Default for EventCounter {
    fn default() -> Self {
        Self {
            events: 0,
            matched: Some(0),
            tail: Vec::new(),
        }
    }
}

const DONE: &[u8] = b"data: [DONE]\n\n";
const DATA: &[u8] = b"data:";

impl EventCounter {
    fn push(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                self.matched = Some(0);
                continue;
            }
            self.matched = match self.matched {
                Some(n) if DATA[n] == byte => {
                    if n + 1 == DATA.len() {
                        self.events += 1;
                        None
                    } else {
                        Some(n + 1)
                    }
                }
                _ => None,
            };
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > DONE.len() {
            self.tail.drain(..self.tail.len() - DONE.len());
        }
    }

    fn ends_with_done(&self) -> bool {
        self.tail == DONE
    }
}
