//! Prometheus metrics for `/metrics`. Labels are bounded by construction: endpoint, route type
//! and provider come from the validated config (an unknown name is labelled `""`), status is a
//! class (`2xx`), error kinds are `&'static str` labels. Nothing a client sends, no key, no IP
//! and no message is ever a label.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use switchyard_actors::breaker::Breakers;
use switchyard_actors::limits::LimiterStats;
use switchyard_actors::registry::ReloadStats;

/// Latency buckets (seconds): sub-millisecond gateway work up to MLflow's 300 s provider timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];
/// Buckets for the gateway's own share of a request: it should be well under a millisecond.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// The labels every request metric carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLabels<'a> {
    pub endpoint: &'a str,
    pub route_type: &'a str,
    pub provider: &'a str,
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_duration: HistogramVec,
    overhead: HistogramVec,
    time_to_first_token: HistogramVec,
    tokens: IntCounterVec,
    rate_limited: IntCounterVec,
    upstream_errors: IntCounterVec,
    pub in_flight: IntGauge,
    retries: IntCounterVec,
    fallbacks: IntCounterVec,
    breaker_state: IntGaugeVec,
    reloads: IntCounterVec,
    last_reload: Gauge,
    limiter_storage_errors: IntCounter,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, prometheus::Error> {
    let metric = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let request_labels = ["endpoint", "route_type", "provider"];
        let requests = counter(
            &registry,
            "switchyard_requests_total",
            "Invocation requests by endpoint, route type, provider and status class.",
            &["endpoint", "route_type", "provider", "status"],
        )?;
        let duration = histogram(
            &registry,
            "switchyard_request_duration_seconds",
            "Time from request to the last byte of the response (streams included).",
            &request_labels,
            LATENCY_BUCKETS,
        )?;
        let upstream_duration = histogram(
            &registry,
            "switchyard_upstream_duration_seconds",
            "Time the provider took to answer (to its response head for streams).",
            &request_labels,
            LATENCY_BUCKETS,
        )?;
        let overhead = histogram(
            &registry,
            "switchyard_gateway_overhead_seconds",
            "Time the gateway added to a non-streamed request (total minus provider time).",
            &request_labels,
            OVERHEAD_BUCKETS,
        )?;
        let time_to_first_token = histogram(
            &registry,
            "switchyard_time_to_first_token_seconds",
            "Time from request to the first streamed chunk sent to the client.",
            &request_labels,
            LATENCY_BUCKETS,
        )?;
        let tokens = counter(
            &registry,
            "switchyard_tokens_total",
            "Tokens reported by providers, by direction (input, output).",
            &["endpoint", "route_type", "provider", "direction"],
        )?;
        let rate_limited = counter(
            &registry,
            "switchyard_rate_limited_total",
            "Requests refused with 429 by a rate limit.",
            &["endpoint"],
        )?;
        let upstream_errors = counter(
            &registry,
            "switchyard_upstream_errors_total",
            "Provider failures by kind (status, timeout, connect, protocol, ...), mid-stream ones included.",
            &["endpoint", "provider", "kind"],
        )?;
        let in_flight = IntGauge::new(
            "switchyard_in_flight_requests",
            "Requests being served now (streams included).",
        )?;
        registry.register(Box::new(in_flight.clone()))?;
        let retries = counter(
            &registry,
            "switchyard_retries_total",
            "Provider calls retried.",
            &["endpoint"],
        )?;
        let fallbacks = counter(
            &registry,
            "switchyard_fallbacks_total",
            "Requests a route handed to a later destination after a failure.",
            &["endpoint"],
        )?;
        let breaker_state = IntGaugeVec::new(
            Opts::new(
                "switchyard_circuit_breaker_state",
                "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            ),
            &["endpoint"],
        )?;
        registry.register(Box::new(breaker_state.clone()))?;
        let reloads = counter(
            &registry,
            "switchyard_config_reloads_total",
            "Config reloads by result (success, failure).",
            &["result"],
        )?;
        let last_reload = Gauge::new(
            "switchyard_config_last_reload_success_timestamp_seconds",
            "Unix time of the last config accepted by a reload (0: none since start).",
        )?;
        registry.register(Box::new(last_reload.clone()))?;
        let limiter_storage_errors = IntCounter::new(
            "switchyard_rate_limit_storage_errors_total",
            "Rate-limit storage (Redis) failures; requests then follow the fail-open setting.",
        )?;
        registry.register(Box::new(limiter_storage_errors.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            requests,
            duration,
            upstream_duration,
            overhead,
            time_to_first_token,
            tokens,
            rate_limited,
            upstream_errors,
            in_flight,
            retries,
            fallbacks,
            breaker_state,
            reloads,
            last_reload,
            limiter_storage_errors,
        })
    }

    pub fn request(&self, labels: RequestLabels<'_>, status: u16, seconds: f64) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        if let Ok(c) = self.requests.get_metric_with_label_values(&[
            labels.endpoint,
            labels.route_type,
            labels.provider,
            class,
        ]) {
            c.inc();
        }
        observe(&self.duration, labels, seconds);
    }

    pub fn upstream(&self, labels: RequestLabels<'_>, seconds: f64) {
        observe(&self.upstream_duration, labels, seconds);
    }

    pub fn overhead(&self, labels: RequestLabels<'_>, seconds: f64) {
        observe(&self.overhead, labels, seconds.max(0.0));
    }

    pub fn first_token(&self, labels: RequestLabels<'_>, seconds: f64) {
        observe(&self.time_to_first_token, labels, seconds);
    }

    pub fn tokens(&self, labels: RequestLabels<'_>, input: Option<u64>, output: Option<u64>) {
        for (direction, count) in [("input", input), ("output", output)] {
            if let (Some(count), Ok(c)) = (
                count,
                self.tokens.get_metric_with_label_values(&[
                    labels.endpoint,
                    labels.route_type,
                    labels.provider,
                    direction,
                ]),
            ) {
                c.inc_by(count);
            }
        }
    }

    pub fn rate_limited(&self, endpoint: &str) {
        inc(&self.rate_limited, &[endpoint]);
    }

    pub fn upstream_error(&self, endpoint: &str, provider: &str, kind: &'static str) {
        inc(&self.upstream_errors, &[endpoint, provider, kind]);
    }

    pub fn retry(&self, endpoint: &str) {
        inc(&self.retries, &[endpoint]);
    }

    pub fn fallback(&self, endpoint: &str) {
        inc(&self.fallbacks, &[endpoint]);
    }

    /// The text exposition, after bringing the scraped-at-read-time values up to date.
    pub fn render(
        &self,
        reloads: &ReloadStats,
        breakers: &Breakers,
        limiter: &LimiterStats,
    ) -> String {
        for (result, total) in [
            ("success", reloads.succeeded.load(Ordering::Relaxed)),
            ("failure", reloads.failed.load(Ordering::Relaxed)),
        ] {
            if let Ok(c) = self.reloads.get_metric_with_label_values(&[result]) {
                c.inc_by(total.saturating_sub(c.get()));
            }
        }
        self.last_reload
            .set(reloads.last_success_unix.load(Ordering::Relaxed) as f64);
        let storage_errors = limiter.storage_errors.load(Ordering::Relaxed);
        self.limiter_storage_errors
            .inc_by(storage_errors.saturating_sub(self.limiter_storage_errors.get()));
        for (endpoint, state) in breakers.states() {
            if let Ok(g) = self
                .breaker_state
                .get_metric_with_label_values(&[&endpoint])
            {
                g.set(state.as_number());
            }
        }
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

fn observe(histogram: &HistogramVec, labels: RequestLabels<'_>, seconds: f64) {
    if let Ok(h) = histogram.get_metric_with_label_values(&[
        labels.endpoint,
        labels.route_type,
        labels.provider,
    ]) {
        h.observe(seconds);
    }
}

fn inc(counter: &IntCounterVec, labels: &[&str]) {
    if let Ok(c) = counter.get_metric_with_label_values(labels) {
        c.inc();
    }
}

/// Shared handle for the app.
pub type SharedMetrics = Arc<Metrics>;
