//! Turning outcomes into rows, the stdout table, the target verdicts and the JSON file.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::Outcome;
use crate::scenarios::{Check, Scenario};

/// Which way the traffic went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Gateway,
    Direct,
}

impl Via {
    pub fn label(self) -> &'static str {
        match self {
            Via::Gateway => "gateway",
            Via::Direct => "direct",
        }
    }
}

/// Percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Row {
    pub scenario: &'static str,
    pub via: Via,
    pub ok: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub rate: f64,
    pub latency: Percentiles,
    pub ttfb: Option<Percentiles>,
    /// Gateway CPU time per successful request, µs.
    pub gateway_cpu_us: Option<f64>,
    /// Gateway CPU use over the window, as a share of one core.
    pub gateway_core: Option<f64>,
    /// This process's (mock + load generator) CPU use over the window, as a share of one core.
    pub load_core: Option<f64>,
    /// Everything else the machine ran meanwhile (other builds, the kernel's softirqs counted
    /// outside our processes), as a share of one core.
    pub other_cores: Option<f64>,
    /// Gateway VmHWM over the run, MiB.
    pub peak_rss_mib: Option<f64>,
    pub max_in_flight: usize,
    pub window: Duration,
}

fn percentiles(histogram: &hdrhistogram::Histogram<u64>) -> Percentiles {
    Percentiles {
        p50: histogram.value_at_quantile(0.50),
        p99: histogram.value_at_quantile(0.99),
        p999: histogram.value_at_quantile(0.999),
        max: histogram.max(),
    }
}

impl Row {
    pub fn new(
        scenario: &'static str,
        via: Via,
        outcome: &Outcome,
        peak_rss_mib: Option<f64>,
    ) -> Row {
        let window = outcome.window.max(Duration::from_millis(1));
        let elapsed = match (outcome.cpu_start.at, outcome.cpu_end.at) {
            (Some(start), Some(end)) => end.saturating_duration_since(start),
            _ => window,
        }
        .max(Duration::from_millis(1));
        let delta = |start: Option<Duration>, end: Option<Duration>| {
            Some(end?.saturating_sub(start?).as_secs_f64())
        };
        let gateway_cpu = delta(outcome.cpu_start.gateway_cpu, outcome.cpu_end.gateway_cpu);
        let own_cpu = delta(outcome.cpu_start.own_cpu, outcome.cpu_end.own_cpu);
        let machine_cpu = delta(outcome.cpu_start.machine_cpu, outcome.cpu_end.machine_cpu);
        // Closed and open loops: finished-in-window over the window, free of the tail of
        // requests still running when it closes. Long streams that all end later: ok / span.
        let rate = if outcome.completed_in_window > 0 && !outcome.counted {
            outcome.completed_in_window as f64 / outcome.duration.as_secs_f64()
        } else {
            outcome.ok as f64 / window.as_secs_f64()
        };
        Row {
            scenario,
            via,
            ok: outcome.ok,
            errors: outcome.errors,
            error_samples: outcome.error_samples.clone(),
            rate,
            latency: percentiles(&outcome.latency),
            ttfb: (!outcome.ttfb.is_empty()).then(|| percentiles(&outcome.ttfb)),
            gateway_cpu_us: gateway_cpu
                .filter(|_| via == Via::Gateway && outcome.ok > 0)
                .map(|cpu| cpu * 1e6 / outcome.ok as f64),
            gateway_core: gateway_cpu
                .filter(|_| via == Via::Gateway)
                .map(|cpu| cpu / elapsed.as_secs_f64()),
            load_core: own_cpu.map(|cpu| cpu / elapsed.as_secs_f64()),
            other_cores: machine_cpu.map(|machine| {
                let ours = gateway_cpu.unwrap_or(0.0) + own_cpu.unwrap_or(0.0);
                ((machine - ours) / elapsed.as_secs_f64()).max(0.0)
            }),
            peak_rss_mib,
            max_in_flight: outcome.max_in_flight,
            window,
        }
    }
}

/// What `streams-10k` and the idle measurement need beyond the rows.
pub struct Startup {
    /// Time to the first healthy answer, one per start, ms.
    pub healthy_ms: Vec<f64>,
    pub listening_ms: Vec<f64>,
    pub idle_rss_mib: Option<f64>,
    pub idle_hwm_mib: Option<f64>,
}

fn us(value: u64) -> String {
    if value < 10_000 {
        format!("{value} µs")
    } else {
        format!("{:.1} ms", value as f64 / 1000.0)
    }
}

fn signed_us(value: i64) -> String {
    if value.unsigned_abs() < 10_000 {
        format!("{value:+} µs")
    } else {
        format!("{:+.1} ms", value as f64 / 1000.0)
    }
}

fn added(gateway: u64, direct: u64) -> i64 {
    gateway as i64 - direct as i64
}

fn opt(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map(format).unwrap_or_else(|| "–".to_owned())
}

/// The results as a Markdown table, one row per run.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | via | ok | errors | req/s | p50 | p99 | p99.9 | TTFB p50 / p99 | added p50 / p99 | gw CPU/req | gw core | load core | other | gw peak RSS |\n");
    out.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for row in rows {
        let direct = direct_of(rows, row);
        let added_text = match (row.via, direct) {
            (Via::Gateway, Some(direct)) => {
                let (gateway, base) = match (row.ttfb, direct.ttfb) {
                    (Some(g), Some(d)) => (g, d),
                    _ => (row.latency, direct.latency),
                };
                format!(
                    "{} / {}",
                    signed_us(added(gateway.p50, base.p50)),
                    signed_us(added(gateway.p99, base.p99))
                )
            }
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.via.label(),
            row.ok,
            row.errors,
            row.rate,
            us(row.latency.p50),
            us(row.latency.p99),
            us(row.latency.p999),
            row.ttfb
                .map(|t| format!("{} / {}", us(t.p50), us(t.p99)))
                .unwrap_or_else(|| "–".to_owned()),
            added_text,
            opt(row.gateway_cpu_us, |v| format!("{v:.1} µs")),
            opt(row.gateway_core, |v| format!("{:.0}%", v * 100.0)),
            opt(row.load_core, |v| format!("{:.0}%", v * 100.0)),
            opt(row.other_cores, |v| format!("{:.0}%", v * 100.0)),
            opt(row.peak_rss_mib, |v| format!("{v:.1} MiB")),
        );
    }
    out
}

fn direct_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    rows.iter()
        .find(|other| other.scenario == row.scenario && other.via == Via::Direct)
}

/// One target's verdict.
pub struct Verdict {
    pub scenario: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

pub fn verdicts(scenarios: &[Scenario], rows: &[Row], startup: &Startup) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for scenario in scenarios {
        let Some(gateway) = rows
            .iter()
            .find(|row| row.scenario == scenario.name && row.via == Via::Gateway)
        else {
            continue;
        };
        let direct = direct_of(rows, gateway);
        for check in &scenario.checks {
            if let Some(verdict) = judge(scenario, *check, gateway, direct) {
                verdicts.push(verdict);
            }
        }
    }
    let healthy = median(&startup.healthy_ms);
    verdicts.push(Verdict {
        scenario: "idle".to_owned(),
        target: "healthy ≤ 50 ms after start".to_owned(),
        measured: format!("{healthy:.1} ms (median of {})", startup.healthy_ms.len()),
        met: healthy <= 50.0,
    });
    if let Some(rss) = startup.idle_rss_mib {
        verdicts.push(Verdict {
            scenario: "idle".to_owned(),
            target: "RSS ≤ 20 MiB".to_owned(),
            measured: format!("{rss:.1} MiB"),
            met: rss <= 20.0,
        });
    }
    verdicts
}

fn judge(
    scenario: &Scenario,
    check: Check,
    gateway: &Row,
    direct: Option<&Row>,
) -> Option<Verdict> {
    let (target, measured, met) = match check {
        Check::Rate(min) => (
            format!("≥ {min:.0} req/s"),
            format!("{:.0} req/s", gateway.rate),
            gateway.rate >= min,
        ),
        Check::CpuPerRequest(max) => {
            let cpu = gateway.gateway_cpu_us?;
            (
                format!("≤ {max:.0} µs gateway CPU per request"),
                format!("{cpu:.1} µs"),
                cpu <= max,
            )
        }
        Check::P99(max) => (
            format!("p99 ≤ {}", us(max.as_micros() as u64)),
            us(gateway.latency.p99),
            gateway.latency.p99 <= max.as_micros() as u64,
        ),
        Check::NoErrors => (
            "0 errors".to_owned(),
            format!("{} errors", gateway.errors),
            gateway.errors == 0,
        ),
        Check::RateVsDirect(fraction) => {
            let direct = direct?;
            let ratio = gateway.rate / direct.rate.max(f64::MIN_POSITIVE);
            (
                format!("≥ {:.0}% of the direct rate", fraction * 100.0),
                format!(
                    "{:.1}% ({:.0} vs {:.0} req/s)",
                    ratio * 100.0,
                    gateway.rate,
                    direct.rate
                ),
                ratio >= fraction,
            )
        }
        Check::FirstByteAdded(max) => {
            let (g, d) = (gateway.ttfb?, direct?.ttfb?);
            let delta = added(g.p50, d.p50);
            (
                format!(
                    "first byte ≤ {} after direct (p50)",
                    us(max.as_micros() as u64)
                ),
                format!(
                    "{} (p50), {} (p99)",
                    signed_us(delta),
                    signed_us(added(g.p99, d.p99))
                ),
                delta <= max.as_micros() as i64,
            )
        }
        Check::P99Added(max) => {
            let direct = direct?;
            let delta = added(gateway.latency.p99, direct.latency.p99);
            (
                format!("added p99 ≤ {}", us(max.as_micros() as u64)),
                signed_us(delta),
                delta <= max.as_micros() as i64,
            )
        }
        Check::AllComplete => {
            let planned = match scenario.load.mode {
                crate::client::Mode::Closed { concurrency, .. } => concurrency as u64,
                crate::client::Mode::Open { .. } => gateway.ok + gateway.errors,
            };
            (
                format!("all {planned} streams complete"),
                format!(
                    "{} complete, {} errors, {} open at once",
                    gateway.ok, gateway.errors, gateway.max_in_flight
                ),
                gateway.ok == planned && gateway.errors == 0,
            )
        }
        Check::PeakRss(max) => {
            let rss = gateway.peak_rss_mib?;
            (
                format!("peak RSS ≤ {max:.0} MiB"),
                format!("{rss:.1} MiB"),
                rss <= max,
            )
        }
    };
    Some(Verdict {
        scenario: scenario.name.to_owned(),
        target,
        measured,
        met,
    })
}

pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

pub fn verdict_table(verdicts: &[Verdict]) -> String {
    let mut out = String::from("| scenario | target | measured | |\n|---|---|---|---|\n");
    for verdict in verdicts {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            verdict.scenario,
            verdict.target,
            verdict.measured,
            if verdict.met { "met" } else { "**missed**" }
        );
    }
    out
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({"p50": p.p50, "p99": p.p99, "p99_9": p.p999, "max": p.max})
}

pub fn json(
    meta: Value,
    scenarios: &[Scenario],
    rows: &[Row],
    startup: &Startup,
    verdicts: &[Verdict],
) -> Value {
    let runs: Vec<Value> = rows
        .iter()
        .map(|row| {
            let about = scenarios
                .iter()
                .find(|s| s.name == row.scenario)
                .map(|s| s.about.clone());
            json!({
                "scenario": row.scenario,
                "about": about,
                "via": row.via.label(),
                "ok": row.ok,
                "errors": row.errors,
                "error_samples": row.error_samples,
                "requests_per_second": row.rate,
                "window_seconds": row.window.as_secs_f64(),
                "latency_us": percentiles_json(&row.latency),
                "ttfb_us": row.ttfb.as_ref().map(percentiles_json),
                "gateway_cpu_us_per_request": row.gateway_cpu_us,
                "gateway_core_share": row.gateway_core,
                "load_core_share": row.load_core,
                "other_cpu_share": row.other_cores,
                "gateway_peak_rss_mib": row.peak_rss_mib,
                "max_in_flight": row.max_in_flight,
            })
        })
        .collect();
    json!({
        "meta": meta,
        "startup": {
            "healthy_ms": startup.healthy_ms,
            "listening_ms": startup.listening_ms,
            "idle_rss_mib": startup.idle_rss_mib,
            "idle_peak_rss_mib": startup.idle_hwm_mib,
        },
        "runs": runs,
        "targets": verdicts.iter().map(|v| json!({
            "scenario": v.scenario, "target": v.target, "measured": v.measured, "met": v.met,
        })).collect::<Vec<_>>(),
    })
}
