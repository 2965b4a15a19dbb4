//! Switchyard's load test: `cargo bench --bench load [-- FLAGS]`.
//!
//! Self-contained: it starts a mock OpenAI upstream in a child process ([`mock`]), the
//! real gateway binary as a child process ([`process`]), and drives both with an in-process awc
//! load generator recording HDR histograms ([`client`]). Every scenario of issue 7
//! ([`scenarios`]) runs straight against the mock and then through the gateway, so the table
//! shows what the gateway adds on this machine in this run ([`report`]). Traffic stays on
//! 127.0.0.1; every run is bounded in time and request count; nothing here asserts timings.
//!
//! Flags (after `--`):
//!
//! - `--quick`: a short smoke run of every scenario (1 s each, 500 slow streams of 2 s);
//! - `--scenario NAME[,NAME]`: only these (repeatable; a name ending in `*` is a prefix);
//! - `--list`: print the scenarios and exit;
//! - `--workers N`: gateway workers (default 1);
//! - `--pin-gateway CPUS`, `--pin-load CPUS`: `taskset -c` lists for the gateway and for this
//!   process (mock + load generator), e.g. `--pin-gateway 0 --pin-load 1`;
//! - `--duration SECS`: measured seconds per closed-loop run (default 5, quick 1);
//! - `--starts N`: gateway starts timed for "healthy after start" (default 5, quick 2);
//! - `--json PATH`: where the JSON report goes (default `target/load-results.json`);
//! - `--gateway-bin PATH`: measure another build of the gateway (default: this workspace's);
//! - `--gateway-env KEY=VALUE`: an extra environment variable for the gateway only (repeatable),
//!   e.g. `SWITCHYARD_LOG__LEVEL=info` to include request logging, or an `LD_PRELOAD` allocator.

// A benchmark: a failed unwrap ends the run with the reason, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "load/client.rs"]
mod client;
#[path = "load/mock.rs"]
mod mock;
#[path = "load/process.rs"]
mod process;
#[path = "load/report.rs"]
mod report;
#[path = "load/scenarios.rs"]
mod scenarios;

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use client::{Probe, Sample, Target};
use process::{Gateway, GatewayOptions};
use report::{Row, Startup, Via};
use scenarios::{Profile, Scenario};

const USAGE: &str =
    "usage: cargo bench --bench load -- [--quick] [--scenario NAME[,NAME]] [--list] \
[--workers N] [--pin-gateway CPUS] [--pin-load CPUS] [--duration SECS] [--starts N] [--json PATH] \
[--gateway-bin PATH] [--gateway-env KEY=VALUE]";

/// Descriptors the largest scenario needs: the gateway holds a client and an upstream socket
/// per stream (the load generator and the mock one each).
const FD_LIMIT: u64 = 65_536;
/// Descriptors the gateway uses besides its streams (listener, epoll, log, watcher, pipes).
const GATEWAY_BASE_FDS: u64 = 64;
/// Pause between runs, so sockets and timers of one run do not bleed into the next.
const SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct Args {
    quick: bool,
    list: bool,
    scenarios: Vec<String>,
    workers: usize,
    pin_gateway: Option<String>,
    pin_load: Option<String>,
    duration: Option<Duration>,
    starts: Option<usize>,
    json: PathBuf,
    gateway_bin: PathBuf,
    gateway_env: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        list: false,
        scenarios: Vec::new(),
        workers: 1,
        pin_gateway: None,
        pin_load: None,
        duration: None,
        starts: None,
        json: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/load-results.json"
        )),
        gateway_bin: PathBuf::from(env!("CARGO_BIN_EXE_switchyard")),
        gateway_env: Vec::new(),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "--quick" => args.quick = true,
            "--list" => args.list = true,
            "--scenario" => args
                .scenarios
                .extend(value()?.split(',').map(str::to_owned)),
            "--workers" => {
                args.workers = value()?
                    .parse()
                    .map_err(|_| "--workers needs a number".to_owned())?
            }
            "--pin-gateway" => args.pin_gateway = Some(value()?),
            "--pin-load" => args.pin_load = Some(value()?),
            "--duration" => {
                let secs: f64 = value()?
                    .parse()
                    .map_err(|_| "--duration needs seconds".to_owned())?;
                args.duration = Some(Duration::from_secs_f64(secs.clamp(0.1, 600.0)));
            }
            "--starts" => {
                args.starts = Some(
                    value()?
                        .parse::<usize>()
                        .map_err(|_| "--starts needs a number".to_owned())?
                        .clamp(1, 50),
                )
            }
            "--json" => args.json = PathBuf::from(value()?),
            "--gateway-bin" => args.gateway_bin = PathBuf::from(value()?),
            "--gateway-env" => {
                let pair = value()?;
                let (key, val) = pair
                    .split_once('=')
                    .ok_or_else(|| "--gateway-env needs KEY=VALUE".to_owned())?;
                args.gateway_env.push((key.to_owned(), val.to_owned()));
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn selected(scenario: &Scenario, names: &[String]) -> bool {
    names.is_empty()
        || names.iter().any(|name| match name.strip_suffix('*') {
            Some(prefix) => scenario.name.starts_with(prefix),
            None => scenario.name == name,
        })
}

/// CPU readings of the gateway and of the load side (this process and the mock).
struct CpuProbe {
    gateway: Option<u32>,
    mock: u32,
}

impl Probe for CpuProbe {
    fn sample(&self) -> Sample {
        Sample {
            at: Some(Instant::now()),
            gateway_cpu: self.gateway.and_then(process::cpu_time),
            own_cpu: process::cpu_time(std::process::id())
                .zip(process::cpu_time(self.mock))
                .map(|(own, mock)| own + mock),
            machine_cpu: process::machine_cpu_time(),
        }
    }
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some(mock::CHILD_FLAG) {
        mock::child_main();
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let mut profile = Profile::new(args.quick, args.duration);
    // The gateway needs two descriptors per stream; a hard limit this process cannot raise
    // (no CAP_SYS_RESOURCE) caps the slow-stream scenario, and the report says so.
    let fd_limit = process::raise_fd_limit(FD_LIMIT);
    let fit = (fd_limit.saturating_sub(GATEWAY_BASE_FDS) / 2) as usize;
    if profile.slow_streams > fit {
        println!(
            "note: RLIMIT_NOFILE is {fd_limit} and cannot be raised here; the gateway holds two \
             sockets per stream, so the slow-stream scenario runs {fit} streams, not {}",
            profile.slow_streams
        );
        profile.slow_streams = fit;
    }
    let all = scenarios::all(&profile);
    if args.list {
        for scenario in &all {
            println!("{:<20} {}", scenario.name, scenario.about);
        }
        return;
    }
    let chosen: Vec<Scenario> = all
        .into_iter()
        .filter(|s| selected(s, &args.scenarios))
        .collect();
    if chosen.is_empty() {
        eprintln!("no scenario matches {:?} (see --list)", args.scenarios);
        std::process::exit(2);
    }
    if let Err(message) = run(&args, &profile, &chosen, fd_limit) {
        eprintln!("load test failed: {message}");
        std::process::exit(1);
    }
}

fn run(args: &Args, profile: &Profile, chosen: &[Scenario], fd_limit: u64) -> Result<(), String> {
    let pinning = args.pin_gateway.is_some() || args.pin_load.is_some();
    let taskset = pinning && process::taskset_available();
    if pinning && !taskset {
        println!("note: taskset is not installed; running unpinned");
    }
    if let (true, Some(cpus)) = (taskset, &args.pin_load) {
        if !process::pin_self(cpus) {
            println!("note: could not pin the load generator to CPUs {cpus}");
        }
    }
    let mock = mock::MockProcess::spawn().map_err(|e| format!("mock upstream: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = dir.path().join("endpoints.yaml");
    std::fs::write(&config, scenarios::gateway_config(mock.port, profile))
        .map_err(|e| e.to_string())?;
    // With only the load generator pinned, the gateway must not inherit its CPU set.
    let gateway_cpus = match (&args.pin_gateway, taskset) {
        (Some(cpus), true) => Some(cpus.clone()),
        (None, true) => Some(format!("0-{}", process::online_cpus() - 1)),
        _ => None,
    };
    let options = GatewayOptions {
        binary: &args.gateway_bin,
        env: &args.gateway_env,
        config: &config,
        workers: args.workers.max(1),
        cpus: gateway_cpus,
        log_path: dir.path().join("gateway.log"),
    };
    let command_line: Vec<String> = std::env::args().skip(1).collect();
    let load_before = process::load_average();
    println!("Switchyard load test on {}", process::machine());
    println!(
        "gateway: {} worker(s), CPUs {}; mock + load generator: CPUs {}; RLIMIT_NOFILE {fd_limit}",
        options.workers,
        options.cpus.as_deref().unwrap_or("any"),
        args.pin_load.as_deref().unwrap_or("any"),
    );

    // Startup: time to healthy over several starts, then idle memory of the one that stays.
    let starts = args.starts.unwrap_or(if args.quick { 2 } else { 5 });
    let mut startup = Startup {
        healthy_ms: Vec::new(),
        listening_ms: Vec::new(),
        idle_rss_mib: None,
        idle_hwm_mib: None,
    };
    let mut gateway = None;
    for index in 0..starts {
        let started = Gateway::start(&options)?;
        startup
            .healthy_ms
            .push(started.to_healthy.as_secs_f64() * 1e3);
        startup
            .listening_ms
            .push(started.to_listening.as_secs_f64() * 1e3);
        if index + 1 == starts {
            gateway = Some(started);
        } else {
            started.stop();
        }
    }
    let gateway = gateway.expect("at least one start");
    std::thread::sleep(Duration::from_secs(1));
    startup.idle_rss_mib = process::status_kib(gateway.pid, "VmRSS").map(kib_to_mib);
    startup.idle_hwm_mib = process::status_kib(gateway.pid, "VmHWM").map(kib_to_mib);
    println!(
        "startup: healthy after {:.1} ms (median of {starts}; listening line after {:.1} ms); idle RSS {:.1} MiB",
        report::median(&startup.healthy_ms),
        report::median(&startup.listening_ms),
        startup.idle_rss_mib.unwrap_or(f64::NAN),
    );

    let system = actix_rt::System::new();
    let mut gateway = gateway;
    let mut rows = Vec::new();
    for scenario in chosen {
        println!("\n== {}: {}", scenario.name, scenario.about);
        if scenario.fresh_gateway {
            gateway.stop();
            gateway = Gateway::start(&options)?;
            std::thread::sleep(SETTLE);
        }
        let mut runs = Vec::new();
        if let Some(direct) = &scenario.direct {
            runs.push((
                Via::Direct,
                format!("http://127.0.0.1:{}", mock.port),
                direct,
            ));
        }
        runs.push((Via::Gateway, gateway.url(""), &scenario.gateway));
        for (via, base, call) in runs {
            let target = Rc::new(Target {
                url: format!("{base}{}", call.path),
                body: Bytes::from(call.body.clone()),
                stream_events: scenario.stream_events,
            });
            let probe = Rc::new(CpuProbe {
                gateway: Some(gateway.pid),
                mock: mock.pid,
            });
            let rss_reset = process::reset_peak_rss(gateway.pid);
            let outcome = system.block_on(client::run(target, scenario.load, probe));
            let peak = process::status_kib(gateway.pid, "VmHWM")
                .filter(|_| rss_reset && via == Via::Gateway)
                .map(kib_to_mib);
            let row = Row::new(scenario.name, via, &outcome, peak);
            print_row(&row);
            rows.push(row);
            std::thread::sleep(SETTLE);
        }
    }
    let log_lines = gateway.log_lines();
    let log_tail = gateway.log_tail();
    gateway.stop();

    let verdicts = report::verdicts(chosen, &rows, &startup);
    println!("\n{}", report::table(&rows));
    println!("{}", report::verdict_table(&verdicts));
    if log_lines > 0 {
        println!("the gateway logged {log_lines} warning/error line(s); {log_tail}");
    }
    let meta = serde_json::json!({
        "command": format!("cargo bench --bench load -- {}", command_line.iter().filter(|a| *a != "--bench").cloned().collect::<Vec<_>>().join(" ")),
        "machine": process::machine(),
        "gateway_workers": options.workers,
        "gateway_cpus": options.cpus,
        "load_cpus": args.pin_load,
        "quick": args.quick,
        "fd_limit": fd_limit,
        "load_average_before": load_before,
        "load_average_after": process::load_average(),
        "gateway_binary": args.gateway_bin.display().to_string(),
        "gateway_env": args.gateway_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "slow_streams": profile.slow_streams,
        "gateway_log_lines": log_lines,
    });
    let json = report::json(meta, chosen, &rows, &startup, &verdicts);
    if let Some(parent) = args.json.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .map_err(|e| format!("cannot write {}: {e}", args.json.display()))?;
    println!("JSON: {}", args.json.display());
    Ok(())
}

fn print_row(row: &Row) {
    let ttfb = row
        .ttfb
        .map(|t| format!(", TTFB p50 {} µs", t.p50))
        .unwrap_or_default();
    let cpu = row
        .gateway_cpu_us
        .map(|c| format!(", gateway {c:.1} µs CPU/req"))
        .unwrap_or_default();
    let rss = row
        .peak_rss_mib
        .map(|r| format!(", peak RSS {r:.1} MiB"))
        .unwrap_or_default();
    println!(
        "  {:<8} {:>9.0} req/s  p50 {} µs  p99 {} µs  p99.9 {} µs{ttfb}{cpu}{rss}, load core {:.0}%, {} ok, {} errors",
        row.via.label(),
        row.rate,
        row.latency.p50,
        row.latency.p99,
        row.latency.p999,
        row.load_core.unwrap_or(0.0) * 100.0,
        row.ok,
        row.errors,
    );
    for sample in &row.error_samples {
        println!("    error: {sample}");
    }
}
