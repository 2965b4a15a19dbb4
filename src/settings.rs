//! Server settings (listen address, workers, timeouts, limits, logging), layered with the `config`
//! crate: built-in defaults, then an optional settings file, then `SWITCHYARD_*` environment
//! variables (nested keys with `__`, e.g. `SWITCHYARD_UPSTREAM__TOTAL_TIMEOUT_SECS=60`), then the
//! CLI flags. The endpoint file is separate and keeps MLflow's format.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::client_key::HeaderTrust;
use switchyard_actors::limits::MemoryBounds;
use switchyard_actors::provider::UpstreamSettings;
use switchyard_actors::watcher::WatchSettings;

/// Where the CLI looks for the settings file when `--settings` is not given.
pub const SETTINGS_FILE_ENV: &str = "SWITCHYARD_SETTINGS";

/// actix-server refuses more worker threads than this (it panics), so settings do first.
pub const MAX_WORKERS: usize = 512;

/// Descriptors a client connection can cost at once: its socket and the upstream connection of
/// its request (the hang-up watch in `client_socket` borrows the socket, it opens none).
pub const DESCRIPTORS_PER_CONNECTION: u64 = 2;

/// Descriptors kept out of the connection cap for the process itself: standard streams, the
/// listener, the config watcher's inotify, log files, Redis, and a margin. An idle gateway
/// holds 17 plus 4 per worker.
pub const RESERVED_DESCRIPTORS: u64 = 32;

/// Descriptors each worker holds whatever its load: its runtime's event queues and wakers.
pub const DESCRIPTORS_PER_WORKER: u64 = 4;
/// `max_json_nodes` by default: 100,000 values is ~5x a heavy agent request (500 messages with
/// tool calls and 100 tool schemas is ~20,000), and bounds one body's tree to roughly 10 MB
/// (~100 bytes a value) whatever its size. OpenAI-size embedding token arrays (300k ids) are read
/// straight into their type and do not count.
pub const DEFAULT_MAX_JSON_NODES: usize = 100_000;

/// MLflow's variable for the provider call timeout; we use it as the default total timeout.
pub const ROUTE_TIMEOUT_ENV: &str = "MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// actix-web worker threads; each gets its own provider actors and connection pools.
    pub workers: usize,
    /// Largest request body accepted (bytes); larger gets 413.
    pub body_limit_bytes: usize,
    /// Most JSON values (objects, arrays, scalars) one request body may have built into a tree;
    /// more gets 413 before any is built. Unknown top-level keys and an embeddings `input` of an
    /// exact shape (strings, token ids) are not built, so do not count.
    pub max_json_nodes: usize,
    /// How long an idle client connection is kept open (seconds).
    pub keep_alive_secs: u64,
    /// Time a client has to send its request head (milliseconds); slow clients get 408.
    pub client_request_timeout_ms: u64,
    /// Time a client has to send its whole request body, from the handler's first read
    /// (milliseconds). A deadline for the body, not a gap between reads, so one byte every
    /// few seconds is cut too; the answer is 408 and the connection is closed.
    pub client_body_timeout_ms: u64,
    /// The body timeout while open connections fill 90% of the connection cap (milliseconds;
    /// the smaller of the two applies): slow clients then give up their slots quickly, so a
    /// flood of them cannot keep new requests waiting for a whole `client_body_timeout_ms`.
    pub client_body_timeout_busy_ms: u64,
    /// How long a client may accept no byte of a pending response (milliseconds; Nginx's
    /// `send_timeout`) before its connection is closed and the upstream request behind it is
    /// released.
    pub client_send_timeout_ms: u64,
    /// On SIGTERM, how long in-flight requests and streams may run before the process exits.
    pub shutdown_grace_secs: u64,
    /// Most simultaneous client connections per worker. 0 (the default) derives it from the
    /// open-file limit ([`Settings::connection_cap`]); a value above what that limit allows is
    /// refused at startup, since past it `accept` fails and new clients are never served.
    pub max_connections_per_worker: usize,
    /// Pending-connection queue of the listening socket (the OS caps it at `somaxconn`); the
    /// standard library's 128 overflows under connection bursts.
    pub listen_backlog: i32,
    /// While a provider stream is silent, send an SSE comment this often (0 disables). It is how
    /// a departed client is noticed (a closed socket only fails on write), so keep it short.
    pub stream_heartbeat_ms: u64,
    pub log: LogSettings,
    pub upstream: UpstreamConfig,
    pub watch: WatchConfig,
    pub rate_limits: RateLimitSettings,
}

/// MLflow's variable naming the rate-limit storage; the default for `rate_limits.storage`.
pub const LIMITS_STORAGE_ENV: &str = "MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `memory://` (exact across this process's workers) or `redis://HOST:PORT/DB` (shared by
    /// every process pointing at it). Defaults to `MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI`.
    pub storage: String,
    /// Who a request counts against: `ip`, or `header:NAME` (falls back to the IP without it).
    pub key: String,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed (e.g. Nginx on 127.0.0.1).
    pub trusted_proxies: Vec<String>,
    /// When Redis cannot answer: let requests through (true) or refuse them with 429.
    pub fail_open: bool,
    /// How long a Redis round trip may take before it counts as unavailable.
    pub redis_timeout_ms: u64,
    /// Whose `header:NAME` key is believed: `trusted_proxies` (only requests from
    /// `trusted_proxies`; others count against their IP) or `any` (every caller picks its key).
    pub trust_key_header_from: String,
    /// In-memory storage: hits between two sweeps of windows that have ended.
    pub sweep_every_hits: u64,
    /// In-memory storage: most windows (one per endpoint and client) kept at once. When full,
    /// ended windows go first, then those not refusing anyone; a new client is never refused.
    pub max_windows: usize,
}

impl RateLimitSettings {
    pub fn memory_bounds(&self) -> MemoryBounds {
        MemoryBounds {
            sweep_every: self.sweep_every_hits,
            max_windows: self.max_windows,
        }
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            storage: std::env::var(LIMITS_STORAGE_ENV).unwrap_or_else(|_| "memory://".to_owned()),
            key: "ip".to_owned(),
            trusted_proxies: Vec::new(),
            fail_open: true,
            redis_timeout_ms: 100,
            trust_key_header_from: "trusted_proxies".to_owned(),
            sweep_every_hits: MemoryBounds::default().sweep_every,
            max_windows: MemoryBounds::default().max_windows,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `switchyard=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    pub connect_timeout_ms: u64,
    pub first_byte_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    /// Defaults to `MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`, else 300 s, as MLflow does.
    pub total_timeout_secs: u64,
    pub max_response_bytes: usize,
    pub stream_buffer_chunks: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    pub debounce_ms: u64,
    pub poll_interval_ms: u64,
    /// While the config file is being written in place (modified and not yet closed by its
    /// writer), reloads wait for the close this long at most; a writer pausing longer with the
    /// file open can be read half-written (the reload then logs the endpoints it removes).
    pub open_write_wait_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 5000,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            body_limit_bytes: 16 * 1024 * 1024,
            max_json_nodes: DEFAULT_MAX_JSON_NODES,
            keep_alive_secs: 75,
            client_request_timeout_ms: 10_000,
            client_body_timeout_ms: 60_000,
            client_body_timeout_busy_ms: 2_000,
            client_send_timeout_ms: 60_000,
            shutdown_grace_secs: 30,
            max_connections_per_worker: 0,
            listen_backlog: 4096,
            stream_heartbeat_ms: 300,
            log: LogSettings::default(),
            upstream: UpstreamConfig::default(),
            watch: WatchConfig::default(),
            rate_limits: RateLimitSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        let total = std::env::var(ROUTE_TIMEOUT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(300);
        Self {
            connect_timeout_ms: 10_000,
            first_byte_timeout_secs: total,
            idle_timeout_secs: 120,
            total_timeout_secs: total,
            max_response_bytes: 64 * 1024 * 1024,
            stream_buffer_chunks: 64,
        }
    }
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            debounce_ms: 150,
            poll_interval_ms: 1_000,
            open_write_wait_ms: 5_000,
        }
    }
}

impl Settings {
    /// Defaults, then `file` (TOML or YAML by extension) if given, then `SWITCHYARD_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, config::ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        // SWITCHYARD_SETTINGS names the settings file itself; it is not a setting.
        let variables: config::Map<String, String> = std::env::vars()
            .filter(|(name, _)| name != SETTINGS_FILE_ENV)
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("SWITCHYARD")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("rate_limits.trusted_proxies")
                .source(Some(variables)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// Refuses values the server cannot run with; also run after the CLI flags are applied.
    pub fn check(&self) -> Result<(), config::ConfigError> {
        let fail = |msg: &str| Err(config::ConfigError::Message(msg.to_owned()));
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(config::ConfigError::Message(format!(
                "workers must be between 1 and {MAX_WORKERS}, not {}",
                self.workers
            )));
        }
        if self.client_body_timeout_ms == 0 {
            return fail("client_body_timeout_ms must be at least 1");
        }
        if self.client_body_timeout_busy_ms == 0 {
            return fail("client_body_timeout_busy_ms must be at least 1");
        }
        if self.client_send_timeout_ms == 0 {
            return fail("client_send_timeout_ms must be at least 1");
        }
        if self.body_limit_bytes == 0 {
            return fail("body_limit_bytes must be at least 1");
        }
        if self.max_json_nodes == 0 {
            return fail("max_json_nodes must be at least 1");
        }
        if self.upstream.stream_buffer_chunks == 0 {
            return fail("upstream.stream_buffer_chunks must be at least 1");
        }
        if self.upstream.total_timeout_secs == 0 {
            return fail("upstream.total_timeout_secs must be at least 1");
        }
        if self.rate_limits.sweep_every_hits == 0 {
            return fail("rate_limits.sweep_every_hits must be at least 1");
        }
        if self.rate_limits.max_windows == 0 {
            return fail("rate_limits.max_windows must be at least 1");
        }
        if let Err(message) = HeaderTrust::parse(&self.rate_limits.trust_key_header_from) {
            return fail(&message);
        }
        Ok(())
    }

    /// Client connections per worker that `open_files` descriptors can carry: what is left after
    /// [`RESERVED_DESCRIPTORS`] and a few per worker, divided by [`DESCRIPTORS_PER_CONNECTION`]
    /// and by the workers. The configured cap when set and within that; an error saying which
    /// limit to change when it is above it, or when the limit leaves no room at all.
    pub fn connection_cap(&self, open_files: u64) -> Result<usize, String> {
        let workers = self.workers.max(1) as u64;
        let reserved = RESERVED_DESCRIPTORS + DESCRIPTORS_PER_WORKER * workers;
        let per_worker = open_files.saturating_sub(reserved) / DESCRIPTORS_PER_CONNECTION / workers;
        let per_worker = usize::try_from(per_worker).unwrap_or(usize::MAX);
        if per_worker == 0 {
            return Err(format!(
                "the open-file limit ({open_files}) leaves no room for client connections with \
                 {workers} workers (it needs more than {reserved}); raise it (ulimit -n, \
                 LimitNOFILE) or use fewer workers"
            ));
        }
        match self.max_connections_per_worker {
            0 => Ok(per_worker),
            wanted if wanted <= per_worker => Ok(wanted),
            wanted => Err(format!(
                "max_connections_per_worker = {wanted} is more than the open-file limit \
                 ({open_files}) can carry with {workers} workers ({per_worker} each: \
                 {DESCRIPTORS_PER_CONNECTION} descriptors per connection, {reserved} kept for the \
                 rest); lower it, set it to 0 to derive it, or raise the limit (ulimit -n, \
                 LimitNOFILE)"
            )),
        }
    }

    pub fn upstream(&self) -> UpstreamSettings {
        let u = &self.upstream;
        UpstreamSettings {
            connect_timeout: Duration::from_millis(u.connect_timeout_ms),
            first_byte_timeout: Duration::from_secs(u.first_byte_timeout_secs),
            idle_timeout: Duration::from_secs(u.idle_timeout_secs),
            total_timeout: Duration::from_secs(u.total_timeout_secs),
            max_response_bytes: u.max_response_bytes,
            stream_buffer: u.stream_buffer_chunks,
        }
    }

    pub fn watch(&self) -> WatchSettings {
        WatchSettings {
            debounce: Duration::from_millis(self.watch.debounce_ms),
            poll_interval: Duration::from_millis(self.watch.poll_interval_ms.max(50)),
            open_write_wait: Duration::from_millis(self.watch.open_write_wait_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Settings::default();
        assert!(s.check().is_ok());
        assert_eq!(s.port, 5000);
        assert_eq!(s.host, "127.0.0.1");
    }

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "port = 6001\n[upstream]\ntotal_timeout_secs = 7\n").unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.port, 6001);
        assert_eq!(s.upstream.total_timeout_secs, 7);
        std::fs::write(&path, "prot = 6001\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn rate_limit_bounds_and_header_trust_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        for (text, named) in [
            (
                "[rate_limits]\ntrust_key_header_from = \"everyone\"\n",
                "trust_key_header_from",
            ),
            ("[rate_limits]\nmax_windows = 0\n", "max_windows"),
            ("[rate_limits]\nsweep_every_hits = 0\n", "sweep_every_hits"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Settings::load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
        }
        std::fs::write(&path, "[rate_limits]\ntrust_key_header_from = \"any\"\n").unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.rate_limits.trust_key_header_from, "any");
        assert_eq!(s.rate_limits.memory_bounds(), MemoryBounds::default());
    }

    #[test]
    fn an_absurd_worker_count_is_refused_not_a_panic() {
        for workers in [0, MAX_WORKERS + 1, 1000] {
            let settings = Settings {
                workers,
                ..Settings::default()
            };
            let err = settings.check().unwrap_err().to_string();
            assert!(err.contains("workers must be between 1 and 512"), "{err}");
        }
    }

    #[test]
    fn the_connection_cap_stays_below_the_open_file_limit() {
        let settings = Settings {
            workers: 2,
            ..Settings::default()
        };
        // (20000 - 32 - 2 * 4) / 2 / 2
        assert_eq!(settings.connection_cap(20_000), Ok(4_990));
        assert_eq!(settings.connection_cap(256), Ok(54));
        let err = settings.connection_cap(40).unwrap_err();
        assert!(err.contains("leaves no room"), "{err}");
        let explicit = Settings {
            max_connections_per_worker: 100,
            ..settings.clone()
        };
        assert_eq!(explicit.connection_cap(20_000), Ok(100));
        let err = explicit.connection_cap(256).unwrap_err();
        assert!(err.contains("max_connections_per_worker = 100"), "{err}");
        assert!(err.contains("open-file limit (256)"), "{err}");
    }

    #[test]
    fn the_bundled_settings_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/settings.toml");
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.port, 5000);
    }
}
