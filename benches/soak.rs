//! Switchyard's soak test: `cargo bench --bench soak -- [--minutes N] [--json PATH]`.
//!
//! Runs the release gateway for a bounded time (default 30 minutes) against mock OpenAI
//! upstreams that fail on purpose, with mixed traffic and a config reload every 10 s, and checks
//! that nothing fails except what was injected, that memory stays flat after warm-up, that the
//! gateway's own `/metrics` agree with what the client saw, and that no key leaks.
//!
//! - Upstreams: the load test's mock (`benches/load/mock.rs`, in a child process) answers every
//!   healthy request; a fault proxy ([`faults`]) in front of it breaks the requests the client
//!   marks (500s, 503-once, resets before the reply and mid-stream, stalls past the first-byte
//!   timeout, slow answers).
//! - Gateway: `target/release/switchyard` (`benches/load/process.rs`), `--workers 2` by
//!   default, on an endpoint file with retries, a circuit breaker, a rate limit, streaming,
//!   embeddings and a fallback route ([`config`]), rewritten every 10 s between two variants.
//! - Traffic ([`traffic`]): an open loop at `--rate` requests/s over every invocation path; each
//!   outcome is a success, an injected fault (per cause), an expected 429, or UNEXPECTED.
//! - Every 5 s: the gateway's RSS, open descriptors, threads and CPU time from `/proc`.
//!
//! Exit status: 0 when there was no unexpected failure, memory grew less than
//! `--max-growth-mib` after warm-up, every `/metrics` cross-check held and no canary key was
//! found; 1 otherwise; 2 for a usage error. Everything listens on 127.0.0.1 only.
//!
//! Flags (after `--`): `--minutes N` (fractions allowed), `--rate R` (default 300),
//! `--workers N` (default 2), `--json PATH` (default `target/soak-results.json`),
//! `--max-growth-mib M` (default 8), `--seed S`, `--log-level LEVEL` (gateway log level,
//! default `info` so that every access line is searched for keys), `--gateway-bin PATH`,
//! `--split-pause-ms MS` (default 0: each in-place rewrite is written in two halves this far
//! apart, the file open in between, as a non-atomic save does; any request failing meanwhile
//! counts as unexpected), `--slow-clients N` (default 0: N connections at a time send their body
//! a byte a second, and each must get 408 from a 2 s body timeout; see [`slow`]).

// A benchmark: a failed unwrap ends the run with the reason, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "soak/config.rs"]
mod config;
#[path = "soak/faults.rs"]
mod faults;
#[path = "soak/metrics.rs"]
mod metrics;
#[allow(dead_code)]
#[path = "load/mock.rs"]
mod mock;
#[allow(dead_code)]
#[path = "load/process.rs"]
mod process;
#[path = "soak/slow.rs"]
mod slow;
#[path = "soak/traffic.rs"]
mod traffic;

use std::cell::{Cell, RefCell};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use config::{Canaries, Upstreams, Variant};
use process::{Gateway, GatewayOptions};
use traffic::{Kind, Rng, Tally};

const USAGE: &str = "usage: cargo bench --bench soak -- [--minutes N] [--rate R] [--workers N] \
[--json PATH] [--max-growth-mib M] [--seed S] [--log-level LEVEL] [--gateway-bin PATH] \
[--split-pause-ms MS] [--slow-clients N]";

/// How often the gateway's memory and descriptors are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How often a progress line is printed.
const PROGRESS_EVERY: u64 = 6;
/// Per-request limit (the slowest expected answer is a 4 s first-byte timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests outstanding beyond which the driver skips (and reports) instead of piling up.
const MAX_IN_FLIGHT: usize = 2_000;
/// How long after the last request is sent the driver waits for the rest.
const DRAIN: Duration = Duration::from_secs(40);
/// `chat-breaker` bursts: every `BURST_EVERY` from `BURST_FIRST`, lasting `BURST_LENGTH`.
const BURST_FIRST: f64 = 20.0;
const BURST_EVERY: f64 = 60.0;
const BURST_LENGTH: f64 = 4.0;
/// A reload must be visible (the variant's spare endpoint served) this long after the write.
const RELOAD_VISIBLE_AFTER: Duration = Duration::from_secs(3);
/// Offset of each rewrite from the 10-second marks (see `reload_loop`).
const RELOAD_PHASE: Duration = Duration::from_millis(500);
/// What the fault proxy's 500s become once the gateway has scrubbed the key they echo.
const SCRUBBED_ECHO: &str = "Incorrect API key provided: ***";

struct Args {
    minutes: f64,
    rate: f64,
    workers: usize,
    json: PathBuf,
    max_growth_mib: f64,
    seed: u64,
    log_level: String,
    gateway_bin: PathBuf,
    /// In-place rewrites (variant B) in two halves this far apart, the file open throughout.
    split_pause: Duration,
    /// Slowloris connections kept open at a time (0: none).
    slow_clients: usize,
}

fn parse_args() -> Result<Args, String> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut args = Args {
        minutes: 30.0,
        rate: 300.0,
        workers: 2,
        json: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/soak-results.json"
        )),
        max_growth_mib: 8.0,
        seed,
        log_level: "info".to_owned(),
        gateway_bin: PathBuf::from(env!("CARGO_BIN_EXE_switchyard")),
        split_pause: Duration::ZERO,
        slow_clients: 0,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n > 0.0)
                .ok_or_else(|| format!("{flag} needs a positive number"))
        };
        match flag.as_str() {
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "--minutes" => args.minutes = number(value()?)?.min(24.0 * 60.0),
            "--rate" => args.rate = number(value()?)?.min(5_000.0),
            "--workers" => args.workers = number(value()?)?.clamp(1.0, 64.0) as usize,
            "--json" => args.json = PathBuf::from(value()?),
            "--max-growth-mib" => args.max_growth_mib = number(value()?)?,
            "--seed" => {
                args.seed = value()?
                    .parse()
                    .map_err(|_| "--seed needs an integer".to_owned())?
            }
            "--log-level" => args.log_level = value()?,
            "--gateway-bin" => args.gateway_bin = PathBuf::from(value()?),
            "--split-pause-ms" => {
                args.split_pause =
                    Duration::from_millis(number(value()?)?.clamp(0.0, 5_000.0) as u64)
            }
            "--slow-clients" => {
                args.slow_clients = value()?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= 1_000)
                    .ok_or_else(|| "--slow-clients needs a count from 0 to 1000".to_owned())?
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some(mock::CHILD_FLAG) {
        mock::child_main();
    }
    // `cargo test --benches` runs this binary with no arguments: no half-hour surprise there.
    if std::env::args().len() == 1 {
        println!(
            "the soak test runs with `cargo bench --bench soak -- [--minutes N]`; nothing to do"
        );
        return;
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    match run(&args) {
        Ok(true) => println!("\nSOAK PASSED"),
        Ok(false) => {
            println!("\nSOAK FAILED (see above)");
            std::process::exit(1);
        }
        Err(message) => {
            eprintln!("soak test could not run: {message}");
            std::process::exit(1);
        }
    }
}

/// One `/proc` reading of the gateway.
#[derive(Clone, Copy)]
struct ProcSample {
    at: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    cpu_secs: f64,
    client_in_flight: usize,
}

fn proc_sample(pid: u32, at: f64, client_in_flight: usize) -> Option<ProcSample> {
    Some(ProcSample {
        at,
        rss_kib: process::status_kib(pid, "VmRSS")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64,
        // A plain number field; the helper reads any `Name: value` line.
        threads: process::status_kib(pid, "Threads")?,
        cpu_secs: process::cpu_time(pid)?.as_secs_f64(),
        client_in_flight,
    })
}

/// What the driver collected.
struct Driven {
    tally: Tally,
    samples: Vec<ProcSample>,
    rewrites: u64,
    reload_checks: u64,
    reload_check_failures: Vec<String>,
    skipped: u64,
    sending_secs: f64,
    elapsed_secs: f64,
    metrics_text: String,
    metadata_text: String,
    idle: Option<ProcSample>,
    slow: slow::SlowStats,
}

struct Context {
    start: Instant,
    end: Instant,
    duration: f64,
    rate: f64,
    pid: u32,
    base: String,
    canary: String,
    config_path: PathBuf,
    upstreams: Upstreams,
    keys: Canaries,
    split_pause: Duration,
    port: u16,
    slow_clients: usize,
}

fn run(args: &Args) -> Result<bool, String> {
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/soak"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log_path = dir.join("gateway.log");
    let _ = std::fs::remove_file(&log_path);
    // Its own directory: the gateway watches the config's directory, and a busy sibling (the
    // log) would keep its debounce from ever settling (see benches/SOAK.md).
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir).map_err(|e| format!("{}: {e}", config_dir.display()))?;
    let config_path = config_dir.join("endpoints.yaml");

    let mock = mock::MockProcess::spawn().map_err(|e| format!("mock upstream: {e}"))?;
    let proxy = faults::start(mock.port).map_err(|e| format!("fault proxy: {e}"))?;
    let keys = Canaries::new(&config_dir, args.seed).map_err(|e| format!("key file: {e}"))?;
    let upstreams = Upstreams {
        mock_port: mock.port,
        proxy_port: proxy.port,
    };
    config::write(
        &config_path,
        Variant::A,
        &config::yaml(Variant::A, &upstreams, &keys),
        Duration::ZERO,
    )
    .map_err(|e| format!("config: {e}"))?;
    let mut env = vec![
        ("SWITCHYARD_LOG__LEVEL".to_owned(), args.log_level.clone()),
        (config::KEY_ENV.to_owned(), keys.env.clone()),
        (
            "SWITCHYARD_UPSTREAM__FIRST_BYTE_TIMEOUT_SECS".to_owned(),
            config::FIRST_BYTE_TIMEOUT_SECS.to_string(),
        ),
    ];
    if args.slow_clients > 0 {
        env.push((
            "SWITCHYARD_CLIENT_BODY_TIMEOUT_MS".to_owned(),
            slow::BODY_TIMEOUT.as_millis().to_string(),
        ));
    }
    let options = GatewayOptions {
        binary: &args.gateway_bin,
        config: &config_path,
        workers: args.workers,
        env: &env,
        cpus: None,
        log_path: log_path.clone(),
    };
    let load_before = process::load_average();
    // Taken before the run: other work may commit while it goes on.
    let revision = gateway_revision();
    println!(
        "Switchyard soak test on {}; gateway source {revision}",
        process::machine(),
    );
    println!(
        "{} min at {} req/s, gateway {} worker(s), seed {}, load average {:.2}; files in {}",
        args.minutes,
        args.rate,
        args.workers,
        args.seed,
        load_before.unwrap_or(f64::NAN),
        dir.display()
    );
    let gateway = Gateway::start(&options)?;
    let pid = gateway.pid;
    watchdog(pid, duration + DRAIN + Duration::from_secs(120));
    println!(
        "gateway pid {pid} on port {}, healthy after {:.0} ms; mock pid {} port {}, fault proxy port {}",
        gateway.port,
        gateway.to_healthy.as_secs_f64() * 1e3,
        mock.pid,
        mock.port,
        proxy.port
    );
    let baseline = proc_sample(pid, 0.0, 0);
    let start = Instant::now();
    let context = Rc::new(Context {
        start,
        end: start + duration,
        duration: duration.as_secs_f64(),
        rate: args.rate,
        pid,
        base: gateway.url(""),
        canary: keys.core.clone(),
        config_path: config_path.clone(),
        upstreams,
        keys,
        split_pause: args.split_pause,
        port: gateway.port,
        slow_clients: args.slow_clients,
    });
    let system = actix_rt::System::new();
    let mut driven = system.block_on(drive(context.clone(), args.seed));
    gateway.stop();
    let load_after = process::load_average();

    // Settle the circuit-open answers, then judge everything.
    driven.tally.settle_breaker(config::BREAKER_OPEN);
    let log = scan_log(&log_path, &context.canary);
    let memory = Memory::analyse(&driven.samples, context.duration);
    let checks = cross_checks(&driven, &context, &proxy);
    let canary_hits = canary_hits(&driven, &log, &context.canary);

    print_report(&driven, &memory, &checks, &log, &canary_hits, args);
    let memory_ok = memory.growth_mib <= args.max_growth_mib;
    let checks_ok = checks.iter().all(|c| c.pass);
    let passed = driven.tally.unexpected == 0
        && driven.slow.unexpected == 0
        && memory_ok
        && checks_ok
        && canary_hits.is_empty();
    let report = json_report(JsonInputs {
        args,
        revision: &revision,
        driven: &driven,
        memory: &memory,
        checks: &checks,
        log: &log,
        canary_hits: &canary_hits,
        baseline,
        load_before,
        load_after,
        passed,
        memory_ok,
    });
    if let Some(parent) = args.json.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .map_err(|e| format!("cannot write {}: {e}", args.json.display()))?;
    println!("JSON: {}", args.json.display());
    drop(mock);
    Ok(passed)
}

/// The gateway source the run measured: the commit, `+dirty` when `src/`, `actors/` or
/// `Cargo.lock` have uncommitted changes.
fn gateway_revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    let dirty = git(&["status", "--porcelain", "--", "src", "actors", "Cargo.lock"])
        .is_some_and(|out| !out.is_empty());
    format!("{commit}{}", if dirty { "+dirty" } else { "" })
}

/// Ends the process (and the gateway) if the run overstays its bound, whatever hangs.
fn watchdog(gateway_pid: u32, limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("soak test: still running after {limit:?}; killing the gateway and exiting");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(gateway_pid as libc::pid_t, libc::SIGKILL) };
        std::process::exit(3);
    });
}

fn client() -> awc::Client {
    let connector = awc::Connector::new()
        .limit(0)
        .timeout(Duration::from_secs(10))
        .conn_keep_alive(Duration::from_secs(30));
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .timeout(REQUEST_TIMEOUT)
        .finish()
}

fn secs_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn in_burst(t: f64, duration: f64) -> bool {
    if t < BURST_FIRST {
        return false;
    }
    let phase = (t - BURST_FIRST) % BURST_EVERY;
    let burst_start = t - phase;
    // No burst too close to the end: the circuit must be seen to close again.
    phase < BURST_LENGTH && burst_start + BURST_LENGTH + 10.0 < duration
}

async fn drive(context: Rc<Context>, seed: u64) -> Driven {
    let client = Rc::new(client());
    let tally = Rc::new(RefCell::new(Tally::default()));
    let in_flight = Rc::new(Cell::new(0usize));
    let samples = Rc::new(RefCell::new(Vec::new()));
    let sampler = actix_rt::spawn(sample_loop(
        context.clone(),
        samples.clone(),
        tally.clone(),
        in_flight.clone(),
    ));
    let reloader = actix_rt::spawn(reload_loop(context.clone(), client.clone()));
    let slow_clients = actix_rt::spawn(slow::run(context.port, context.slow_clients, context.end));

    // The open loop: requests leave on schedule whatever the answers do.
    let mut rng = Rng::new(seed);
    let mut sent = 0u64;
    let mut skipped = 0u64;
    let total = (context.rate * context.duration) as u64;
    while sent < total && Instant::now() < context.end {
        let t = secs_since(context.start);
        let due = ((t * context.rate) as u64 + 1).min(total);
        while sent < due {
            sent += 1;
            if in_flight.get() >= MAX_IN_FLIGHT {
                skipped += 1;
                continue;
            }
            let plan = traffic::plan(&mut rng, sent, in_burst(t, context.duration));
            tally.borrow_mut().sent(plan.kind);
            in_flight.set(in_flight.get() + 1);
            let (client, tally, in_flight, context) = (
                client.clone(),
                tally.clone(),
                in_flight.clone(),
                context.clone(),
            );
            actix_rt::spawn(async move {
                let sent_at = secs_since(context.start);
                let result = exchange(&client, &context.base, &plan).await;
                let done_at = secs_since(context.start);
                tally
                    .borrow_mut()
                    .record(&plan, result, sent_at, done_at, &context.canary);
                in_flight.set(in_flight.get() - 1);
            });
        }
        let next = context.start + Duration::from_secs_f64(sent as f64 / context.rate);
        actix_rt::time::sleep_until(next.into()).await;
    }
    let sending_secs = secs_since(context.start);
    let drain_until = Instant::now() + DRAIN;
    while in_flight.get() > 0 && Instant::now() < drain_until {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (rewrites, reload_checks, reload_check_failures) =
        reloader.await.unwrap_or((0, 0, Vec::new()));
    let slow = slow_clients.await.unwrap_or_default();
    sampler.abort();
    let elapsed_secs = secs_since(context.start);
    if in_flight.get() > 0 {
        tally.borrow_mut().unexpected_samples.push(format!(
            "{} requests still unanswered {DRAIN:?} after the last was sent",
            in_flight.get()
        ));
        tally.borrow_mut().unexpected += in_flight.get() as u64;
    }
    // Let the gateway finish its records (a stream's record ends after its last byte).
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    let idle = proc_sample(context.pid, secs_since(context.start), 0);
    let metrics_text = get_text(&client, &format!("{}/metrics", context.base)).await;
    let mut metadata_text = String::new();
    for path in [
        "/api/2.0/endpoints/",
        "/api/3.0/gateway/endpoint/chat",
        "/api/3.0/gateway/endpoint/embed",
        "/api/3.0/gateway/endpoint/fb-primary",
        "/api/3.0/gateway/route/chat-fallback",
        "/api/2.0/gateway/routes/",
    ] {
        metadata_text += &get_text(&client, &format!("{}{path}", context.base)).await;
        metadata_text.push('\n');
    }
    let samples = samples.borrow().clone();
    let tally = std::mem::take(&mut *tally.borrow_mut());
    Driven {
        tally,
        samples,
        rewrites,
        reload_checks,
        reload_check_failures,
        skipped,
        sending_secs,
        elapsed_secs,
        metrics_text,
        metadata_text,
        idle,
        slow,
    }
}

async fn exchange(
    client: &awc::Client,
    base: &str,
    plan: &traffic::Plan,
) -> Result<traffic::Reply, String> {
    let request = async {
        let mut response = client
            .post(format!("{base}{}", plan.path))
            .insert_header(("content-type", "application/json"))
            .send_body(plan.body.clone())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())))
            .collect::<String>();
        let body = response
            .body()
            .limit(4 * 1024 * 1024)
            .await
            .map_err(|e| format!("body (status {status}): {e}"))?;
        Ok(traffic::Reply {
            status,
            content_type,
            headers,
            body,
        })
    };
    match actix_rt::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result,
        Err(_) => Err(format!("no complete answer within {REQUEST_TIMEOUT:?}")),
    }
}

async fn get_text(client: &awc::Client, url: &str) -> String {
    let Ok(mut response) = client.get(url).send().await else {
        return String::new();
    };
    let body = response.body().limit(16 * 1024 * 1024).await;
    body.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

async fn get_status(client: &awc::Client, url: &str) -> u16 {
    match client.get(url).send().await {
        Ok(mut response) => {
            let _ = response.body().await;
            response.status().as_u16()
        }
        Err(_) => 0,
    }
}

async fn sample_loop(
    context: Rc<Context>,
    samples: Rc<RefCell<Vec<ProcSample>>>,
    tally: Rc<RefCell<Tally>>,
    in_flight: Rc<Cell<usize>>,
) {
    let mut index = 0u64;
    let mut last_completed = 0u64;
    loop {
        index += 1;
        let at = context.start + SAMPLE_EVERY.mul_f64(index as f64);
        actix_rt::time::sleep_until(at.into()).await;
        let t = secs_since(context.start);
        let Some(sample) = proc_sample(context.pid, t, in_flight.get()) else {
            continue;
        };
        samples.borrow_mut().push(sample);
        if index.is_multiple_of(PROGRESS_EVERY) {
            let tally = tally.borrow();
            let window = SAMPLE_EVERY.as_secs_f64() * PROGRESS_EVERY as f64;
            let rate = (tally.completed - last_completed) as f64 / window;
            last_completed = tally.completed;
            let injected: u64 =
                tally.injected.values().sum::<u64>() + tally.circuit_open.len() as u64;
            let ok: u64 = tally.ok.values().sum();
            println!(
                "  t={t:>6.0}s {rate:>5.0} req/s  ok {ok}  injected {injected}  429 {}  UNEXPECTED {}  | RSS {:.1} MiB  fds {}  threads {}  in flight {}  load {:.2}",
                tally.rate_limited,
                tally.unexpected,
                sample.rss_kib as f64 / 1024.0,
                sample.fds,
                sample.threads,
                sample.client_in_flight,
                process::load_average().unwrap_or(f64::NAN),
            );
        }
    }
}

/// Rewrites the config every [`config::RELOAD_EVERY`], alternating the variants, and checks each
/// reload became visible. Returns (rewrites, checks, failed checks).
async fn reload_loop(context: Rc<Context>, client: Rc<awc::Client>) -> (u64, u64, Vec<String>) {
    let mut variant = Variant::A;
    let mut rewrites = 0u64;
    let mut checks = 0u64;
    let mut failures = Vec::new();
    loop {
        // Half a second off the whole seconds since the start, away from the gateway's once a
        // second poll: that poll used to read an in-place write half-written (benches/SOAK.md,
        // finding 2, now fixed); `--split-pause-ms` is the deliberate test of that race.
        let at = context.start + config::RELOAD_EVERY * (rewrites as u32 + 1) + RELOAD_PHASE;
        if at >= context.end {
            return (rewrites, checks, failures);
        }
        actix_rt::time::sleep_until(at.into()).await;
        variant = variant.other();
        let text = config::yaml(variant, &context.upstreams, &context.keys);
        let (path, pause) = (context.config_path.clone(), context.split_pause);
        // Off the driver's thread: a split write sleeps between its halves.
        let written =
            actix_rt::task::spawn_blocking(move || config::write(&path, variant, &text, pause))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|result| result);
        if let Err(error) = written {
            failures.push(format!("rewrite {rewrites}: {error}"));
            continue;
        }
        rewrites += 1;
        actix_rt::time::sleep(RELOAD_VISIBLE_AFTER).await;
        checks += 1;
        let url = |name: &str| format!("{}/api/2.0/endpoints/{name}", context.base);
        let now = get_status(&client, &url(variant.spare())).await;
        let gone = get_status(&client, &url(variant.other().spare())).await;
        if now != 200 || gone != 404 {
            failures.push(format!(
                "t={:.0}s variant {variant:?}: {} answered {now} (want 200), {} answered {gone} (want 404) {RELOAD_VISIBLE_AFTER:?} after the write",
                secs_since(context.start),
                variant.spare(),
                variant.other().spare(),
            ));
        }
    }
}

/// RSS over the run after warm-up.
struct Memory {
    warmup_secs: f64,
    samples_after_warmup: usize,
    min_mib: f64,
    max_mib: f64,
    first_mib: f64,
    last_mib: f64,
    /// Mean of the last quarter minus mean of the first quarter of the post-warm-up samples.
    growth_mib: f64,
    slope_mib_per_hour: f64,
    fds_min: u64,
    fds_max: u64,
    threads_min: u64,
    threads_max: u64,
    peak_mib: f64,
}

impl Memory {
    fn warmup(duration: f64) -> f64 {
        (duration * 0.2).clamp(30.0, 300.0).min(duration / 2.0)
    }

    fn analyse(samples: &[ProcSample], duration: f64) -> Memory {
        let warmup_secs = Self::warmup(duration);
        let after: Vec<&ProcSample> = samples.iter().filter(|s| s.at >= warmup_secs).collect();
        let mib = |s: &&ProcSample| s.rss_kib as f64 / 1024.0;
        let values: Vec<f64> = after.iter().map(mib).collect();
        let quarter = (values.len() / 4).max(1);
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let growth = if values.len() >= 2 {
            mean(&values[values.len() - quarter..]) - mean(&values[..quarter])
        } else {
            0.0
        };
        // Least squares over (hours, MiB).
        let slope = {
            let n = after.len() as f64;
            let xs: Vec<f64> = after.iter().map(|s| s.at / 3600.0).collect();
            let (mx, my) = (mean(&xs), mean(&values));
            let sxy: f64 = xs
                .iter()
                .zip(&values)
                .map(|(x, y)| (x - mx) * (y - my))
                .sum();
            let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
            if n >= 2.0 && sxx > 0.0 {
                sxy / sxx
            } else {
                0.0
            }
        };
        let fold = |f: fn(&ProcSample) -> u64| {
            (
                after.iter().map(|s| f(s)).min().unwrap_or(0),
                after.iter().map(|s| f(s)).max().unwrap_or(0),
            )
        };
        let (fds_min, fds_max) = fold(|s| s.fds);
        let (threads_min, threads_max) = fold(|s| s.threads);
        Memory {
            warmup_secs,
            samples_after_warmup: values.len(),
            min_mib: values.iter().copied().fold(f64::INFINITY, f64::min),
            max_mib: values.iter().copied().fold(0.0, f64::max),
            first_mib: values.first().copied().unwrap_or(0.0),
            last_mib: values.last().copied().unwrap_or(0.0),
            growth_mib: growth,
            slope_mib_per_hour: slope,
            fds_min,
            fds_max,
            threads_min,
            threads_max,
            peak_mib: samples
                .iter()
                .map(|s| s.rss_kib as f64 / 1024.0)
                .fold(0.0, f64::max),
        }
    }
}

struct Check {
    name: String,
    expected: String,
    got: String,
    pass: bool,
}

fn check(name: &str, expected: impl ToString, got: impl ToString, pass: bool) -> Check {
    Check {
        name: name.to_owned(),
        expected: expected.to_string(),
        got: got.to_string(),
        pass,
    }
}

fn cross_checks(driven: &Driven, context: &Context, proxy: &faults::FaultProxy) -> Vec<Check> {
    let m = metrics::parse(&driven.metrics_text);
    let tally = &driven.tally;
    let mut checks = Vec::new();
    if m.is_empty() {
        checks.push(check("/metrics scraped", "samples", "nothing", false));
        return checks;
    }
    let count = |name: &str, filter: &[(&str, &str)]| metrics::sum(&m, name, filter) as u64;
    // The slow clients' 408s are requests the gateway answered too (each counted as a 4xx).
    let slow_408s = driven.slow.cut;
    let answered: u64 = tally.status_classes.values().sum::<u64>() + slow_408s;
    checks.push(check(
        "switchyard_requests_total (all) = answers the client got (slow clients' 408s included)",
        answered,
        count("switchyard_requests_total", &[]),
        count("switchyard_requests_total", &[]) == answered,
    ));
    for class in ["2xx", "4xx", "5xx"] {
        let slow = if class == "4xx" { slow_408s } else { 0 };
        let want = tally.status_classes.get(class).copied().unwrap_or(0) + slow;
        let got = count("switchyard_requests_total", &[("status", class)]);
        checks.push(check(
            &format!("switchyard_requests_total{{status=\"{class}\"}}"),
            want,
            got,
            want == got,
        ));
    }
    let limited = count(
        "switchyard_rate_limited_total",
        &[("endpoint", "chat-limited")],
    );
    checks.push(check(
        "switchyard_rate_limited_total{endpoint=\"chat-limited\"} = 429s seen",
        tally.rate_limited,
        limited,
        limited == tally.rate_limited,
    ));
    let retries = count("switchyard_retries_total", &[]);
    checks.push(check(
        "switchyard_retries_total = injected 503-once + 2 x persistent 500 on chat-retry",
        tally.expected_retries,
        retries,
        retries == tally.expected_retries,
    ));
    let fallbacks = count("switchyard_fallbacks_total", &[]);
    checks.push(check(
        "switchyard_fallbacks_total = injected primary failures on chat-fallback",
        tally.expected_fallbacks,
        fallbacks,
        fallbacks == tally.expected_fallbacks,
    ));
    let upstream = count("switchyard_upstream_errors_total", &[]);
    checks.push(check(
        "switchyard_upstream_errors_total = failed upstream attempts injected",
        tally.expected_upstream_failures,
        upstream,
        upstream == tally.expected_upstream_failures,
    ));
    let reloads = count("switchyard_config_reloads_total", &[("result", "success")]);
    checks.push(check(
        "switchyard_config_reloads_total{result=\"success\"} = rewrites",
        driven.rewrites,
        reloads,
        reloads == driven.rewrites,
    ));
    let failed_reloads = count("switchyard_config_reloads_total", &[("result", "failure")]);
    checks.push(check(
        "switchyard_config_reloads_total{result=\"failure\"}",
        0,
        failed_reloads,
        failed_reloads == 0,
    ));
    checks.push(check(
        "each reload visible within 3 s (spare endpoint added and removed)",
        format!("{} of {}", driven.reload_checks, driven.reload_checks),
        format!(
            "{} of {}",
            driven.reload_checks - driven.reload_check_failures.len() as u64,
            driven.reload_checks
        ),
        driven.reload_check_failures.is_empty() && driven.reload_checks + 1 >= driven.rewrites,
    ));
    let in_flight = metrics::sum(&m, "switchyard_in_flight_requests", &[]);
    checks.push(check(
        "switchyard_in_flight_requests after the run",
        0,
        in_flight,
        in_flight == 0.0,
    ));
    let breaker = metrics::sum(
        &m,
        "switchyard_circuit_breaker_state",
        &[("endpoint", "chat-breaker")],
    );
    let breaker_present = metrics::present(
        &m,
        "switchyard_circuit_breaker_state",
        &[("endpoint", "chat-breaker")],
    );
    checks.push(check(
        "switchyard_circuit_breaker_state{endpoint=\"chat-breaker\"} closed at the end",
        0,
        if breaker_present {
            breaker.to_string()
        } else {
            "absent".to_owned()
        },
        breaker == 0.0,
    ));
    // Fixed one-second windows: at most the limit per window the run touched.
    let windows = driven.elapsed_secs.ceil() as u64 + 1;
    let bound = config::LIMIT_PER_SECOND * windows;
    checks.push(check(
        "chat-limited successes <= 20 per second",
        format!("<= {bound}"),
        tally.limited_admitted,
        tally.limited_admitted <= bound,
    ));
    let mut seen: Vec<String> = proxy
        .stats
        .keys
        .lock()
        .expect("keys")
        .iter()
        .cloned()
        .collect();
    seen.sort();
    let mut want: Vec<String> = context.keys.all().iter().map(|k| k.to_string()).collect();
    want.sort();
    checks.push(check(
        "keys the upstream received = the three canaries (literal, $ENV, key file)",
        "3 canaries",
        format!(
            "{} keys, canaries {}",
            seen.len(),
            if seen == want { "all" } else { "NOT all" }
        ),
        seen == want,
    ));
    let mock_failures = proxy.stats.mock_failures.load(Ordering::Relaxed);
    checks.push(check(
        "fault proxy: requests it could not forward to the mock",
        0,
        mock_failures,
        mock_failures == 0,
    ));
    checks.push(check(
        "requests the driver had to skip (client overload)",
        0,
        driven.skipped,
        driven.skipped == 0,
    ));
    checks
}

/// What the gateway's log held.
#[derive(Default)]
struct LogScan {
    lines: u64,
    bytes: u64,
    warn: u64,
    error: u64,
    canary_lines: u64,
    /// Lines with the upstream's echo of the key, scrubbed (`provided: ***`).
    scrubbed_echoes: u64,
    /// Distinct WARN/ERROR messages (timestamps and request ids stripped), with counts.
    messages: Vec<(String, u64)>,
}

fn scan_log(path: &Path, canary: &str) -> LogScan {
    let mut scan = LogScan::default();
    let Ok(file) = std::fs::File::open(path) else {
        return scan;
    };
    let mut messages: std::collections::BTreeMap<String, u64> = Default::default();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let Ok(line) = line else { break };
        scan.lines += 1;
        scan.bytes += line.len() as u64 + 1;
        let text = String::from_utf8_lossy(&line);
        if text.contains(canary) {
            scan.canary_lines += 1;
        }
        if text.contains(SCRUBBED_ECHO) {
            scan.scrubbed_echoes += 1;
        }
        let level = if text.contains(" ERROR ") {
            scan.error += 1;
            "ERROR"
        } else if text.contains(" WARN ") {
            scan.warn += 1;
            "WARN"
        } else {
            continue;
        };
        // Keep what follows the level; digits folded so similar lines group together.
        let rest = text.split_once(level).map_or(&*text, |(_, rest)| rest);
        // Drop the request span (`request{request_id=... route=...}: `): it differs per line.
        let rest = match rest.trim_start().strip_prefix("request{") {
            Some(span) => span.split_once("}: ").map_or(rest, |(_, message)| message),
            None => rest,
        };
        let folded: String = rest
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .take(200)
            .collect();
        if messages.len() < 200 || messages.contains_key(&folded) {
            *messages.entry(format!("{level}{folded}")).or_default() += 1;
        }
    }
    let mut messages: Vec<(String, u64)> = messages.into_iter().collect();
    messages.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    messages.truncate(15);
    scan.messages = messages;
    scan
}

/// Where the canary turned up (must be nowhere). Responses were checked one by one already.
fn canary_hits(driven: &Driven, log: &LogScan, canary: &str) -> Vec<String> {
    let mut hits = Vec::new();
    if log.canary_lines > 0 {
        hits.push(format!("{} gateway log line(s)", log.canary_lines));
    }
    if driven.metrics_text.contains(canary) {
        hits.push("/metrics".to_owned());
    }
    if driven.metadata_text.contains(canary) {
        hits.push("endpoint metadata (/api/...)".to_owned());
    }
    if driven
        .tally
        .unexpected_samples
        .iter()
        .any(|s| s.contains("canary key appears"))
    {
        hits.push("a response (see the unexpected failures)".to_owned());
    }
    hits
}

fn percentile_ms(tally: &Tally, kind: Kind, q: f64) -> Option<f64> {
    tally
        .latency
        .get(&kind)
        .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
}

fn print_report(
    driven: &Driven,
    memory: &Memory,
    checks: &[Check],
    log: &LogScan,
    canary_hits: &[String],
    args: &Args,
) {
    let tally = &driven.tally;
    let ok: u64 = tally.ok.values().sum();
    let injected: u64 = tally.injected.values().sum();
    println!("\n== Requests");
    println!(
        "sent {} over {:.0} s ({:.1} req/s sent, {:.1} req/s answered over {:.0} s incl. drain); answered {}",
        tally.sent,
        driven.sending_secs,
        tally.sent as f64 / driven.sending_secs.max(1e-9),
        tally.completed as f64 / driven.elapsed_secs.max(1e-9),
        driven.elapsed_secs,
        tally.completed
    );
    println!("  success             {ok}");
    for (cause, n) in &tally.ok {
        println!("    {cause:<34} {n}");
    }
    println!("  injected fault      {injected}");
    for (cause, n) in &tally.injected {
        println!("    {cause:<34} {n}");
    }
    println!("  expected 429        {}", tally.rate_limited);
    println!("  UNEXPECTED          {}", tally.unexpected);
    if args.slow_clients > 0 {
        let slow = &driven.slow;
        println!(
            "slow clients ({} at a time, a body byte a second): {} started, {} cut with 408, {} UNEXPECTED",
            args.slow_clients, slow.started, slow.cut, slow.unexpected
        );
        for sample in &slow.samples {
            println!("    {sample}");
        }
    }
    for sample in &tally.unexpected_samples {
        println!("    ! {sample}");
    }
    println!(
        "\n  {:<14} {:>8} {:>8} {:>9} {:>6} {:>10} {:>9} {:>9}",
        "kind", "sent", "ok", "injected", "429", "unexpected", "p50 ms", "p99 ms"
    );
    for (kind, counts) in &tally.by_kind {
        println!(
            "  {:<14} {:>8} {:>8} {:>9} {:>6} {:>10} {:>9.1} {:>9.1}",
            kind.name(),
            counts.sent,
            counts.ok,
            counts.injected,
            counts.rate_limited,
            counts.unexpected,
            percentile_ms(tally, *kind, 0.5).unwrap_or(f64::NAN),
            percentile_ms(tally, *kind, 0.99).unwrap_or(f64::NAN),
        );
    }
    println!("\n== Gateway process (every {} s)", SAMPLE_EVERY.as_secs());
    println!(
        "RSS after {:.0} s warm-up ({} samples): min {:.1} MiB, max {:.1} MiB, first {:.1}, last {:.1}, growth (last quarter - first quarter) {:+.2} MiB (limit {:.1}), slope {:+.2} MiB/hour; peak over the run {:.1} MiB",
        memory.warmup_secs,
        memory.samples_after_warmup,
        memory.min_mib,
        memory.max_mib,
        memory.first_mib,
        memory.last_mib,
        memory.growth_mib,
        args.max_growth_mib,
        memory.slope_mib_per_hour,
        memory.peak_mib,
    );
    println!(
        "open fds after warm-up: {}..{}; threads {}..{}",
        memory.fds_min, memory.fds_max, memory.threads_min, memory.threads_max
    );
    if let Some(idle) = driven.idle {
        println!(
            "after the traffic (idle): RSS {:.1} MiB, {} fds, {} threads; gateway CPU {:.1} s in total ({:.0} µs per request)",
            idle.rss_kib as f64 / 1024.0,
            idle.fds,
            idle.threads,
            idle.cpu_secs,
            idle.cpu_secs * 1e6 / tally.completed.max(1) as f64,
        );
    }
    let line: Vec<String> = driven
        .samples
        .iter()
        .step_by((driven.samples.len() / 12).max(1))
        .map(|s| format!("{:.0}s {:.1}", s.at, s.rss_kib as f64 / 1024.0))
        .collect();
    println!("RSS MiB over time: {}", line.join(", "));
    println!("\n== Cross-checks against /metrics and the upstream");
    for c in checks {
        println!(
            "  [{}] {}: expected {}, got {}",
            if c.pass { "ok" } else { "FAIL" },
            c.name,
            c.expected,
            c.got
        );
    }
    for failure in &driven.reload_check_failures {
        println!("    ! {failure}");
    }
    println!("\n== Canary keys");
    println!(
        "searched: every response body and header, {} gateway log lines ({:.1} MiB), /metrics, endpoint metadata: {}",
        log.lines,
        log.bytes as f64 / 1048576.0,
        if canary_hits.is_empty() {
            format!(
                "absent everywhere (the upstream's echo of the key arrived scrubbed in {} responses and {} log lines)",
                tally.scrubbed_echoes, log.scrubbed_echoes
            )
        } else {
            format!("FOUND in {}", canary_hits.join(", "))
        }
    );
    println!(
        "\n== Gateway log: {} WARN, {} ERROR line(s)",
        log.warn, log.error
    );
    for (message, n) in &log.messages {
        println!("  {n:>7} x {message}");
    }
}

struct JsonInputs<'a> {
    args: &'a Args,
    revision: &'a str,
    driven: &'a Driven,
    memory: &'a Memory,
    checks: &'a [Check],
    log: &'a LogScan,
    canary_hits: &'a [String],
    baseline: Option<ProcSample>,
    load_before: Option<f64>,
    load_after: Option<f64>,
    passed: bool,
    memory_ok: bool,
}

fn json_report(i: JsonInputs<'_>) -> Value {
    let tally = &i.driven.tally;
    let sample = |s: &ProcSample| {
        json!({"t": s.at, "rss_kib": s.rss_kib, "fds": s.fds, "threads": s.threads,
               "cpu_secs": s.cpu_secs, "client_in_flight": s.client_in_flight})
    };
    let kinds: serde_json::Map<String, Value> = tally
        .by_kind
        .iter()
        .map(|(kind, c)| {
            (
                kind.name().to_owned(),
                json!({"sent": c.sent, "ok": c.ok, "injected": c.injected,
                       "rate_limited": c.rate_limited, "unexpected": c.unexpected,
                       "share": kind.share(),
                       "ok_p50_ms": percentile_ms(tally, *kind, 0.5),
                       "ok_p99_ms": percentile_ms(tally, *kind, 0.99)}),
            )
        })
        .collect();
    let command_line: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    json!({
        "passed": i.passed,
        "command": format!("cargo bench --bench soak -- {}", command_line.join(" ")),
        "machine": process::machine(),
        "gateway_revision": i.revision,
        "load_average_before": i.load_before,
        "load_average_after": i.load_after,
        "minutes": i.args.minutes,
        "rate": i.args.rate,
        "workers": i.args.workers,
        "seed": i.args.seed,
        "gateway_log_level": i.args.log_level,
        "requests": {
            "sent": tally.sent,
            "answered": tally.completed,
            "sending_secs": i.driven.sending_secs,
            "elapsed_secs": i.driven.elapsed_secs,
            "answered_per_sec": tally.completed as f64 / i.driven.elapsed_secs.max(1e-9),
            "ok": tally.ok,
            "injected": tally.injected,
            "rate_limited": tally.rate_limited,
            "unexpected": tally.unexpected,
            "unexpected_samples": tally.unexpected_samples,
            "by_kind": kinds,
            "status_classes": tally.status_classes,
            "per_10s": tally.per_slot,
        },
        "slow_clients": {
            "at_a_time": i.args.slow_clients,
            "started": i.driven.slow.started,
            "cut_with_408": i.driven.slow.cut,
            "unexpected": i.driven.slow.unexpected,
            "unexpected_samples": i.driven.slow.samples,
        },
        "memory": {
            "ok": i.memory_ok,
            "max_growth_mib": i.args.max_growth_mib,
            "warmup_secs": i.memory.warmup_secs,
            "min_mib": i.memory.min_mib,
            "max_mib": i.memory.max_mib,
            "growth_mib": i.memory.growth_mib,
            "slope_mib_per_hour": i.memory.slope_mib_per_hour,
            "peak_mib": i.memory.peak_mib,
            "fds_after_warmup": [i.memory.fds_min, i.memory.fds_max],
            "threads_after_warmup": [i.memory.threads_min, i.memory.threads_max],
            "baseline": i.baseline.as_ref().map(sample),
            "idle_after": i.driven.idle.as_ref().map(sample),
            "samples": i.driven.samples.iter().map(sample).collect::<Vec<_>>(),
        },
        "reloads": {
            "rewrites": i.driven.rewrites,
            "visibility_checks": i.driven.reload_checks,
            "visibility_failures": i.driven.reload_check_failures,
        },
        "cross_checks": i.checks.iter().map(|c| json!({
            "name": c.name, "expected": c.expected, "got": c.got, "pass": c.pass
        })).collect::<Vec<_>>(),
        "canary": {
            "found_in": i.canary_hits,
            "scrubbed_echoes_in_responses": tally.scrubbed_echoes,
            "scrubbed_echoes_in_log": i.log.scrubbed_echoes,
            "log_lines_searched": i.log.lines,
        },
        "gateway_log": {
            "lines": i.log.lines,
            "warn": i.log.warn,
            "error": i.log.error,
            "top_messages": i.log.messages.iter().map(|(m, n)| json!({"count": n, "message": m})).collect::<Vec<_>>(),
        },
    })
}
