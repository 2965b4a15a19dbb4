//! Server settings (listen address, workers, timeouts, limits, logging), layered with the `config`
//! crate: built-in defaults, then an optional settings file, then `SWITCHYARD_*` environment
//! variables (nested keys with `__`, e.g. `SWITCHYARD_UPSTREAM__TOTAL_TIMEOUT_SECS=60`), then the
//! CLI flags. The endpoint file is separate and keeps MLflow's format.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use switchyard_actors::provider::UpstreamSettings;
use switchyard_actors::watcher::WatchSettings;

/// Where the CLI looks for the settings file when `--settings` is not given.
pub const SETTINGS_FILE_ENV: &str = "SWITCHYARD_SETTINGS";

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
    /// On SIGTERM, how long in-flight requests and streams may run before the process exits.
    pub shutdown_grace_secs: u64,
    /// Most simultaneous connections per worker.
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
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            storage: std::env::var(LIMITS_STORAGE_ENV).unwrap_or_else(|_| "memory://".to_owned()),
            key: "ip".to_owned(),
            trusted_proxies: Vec::new(),
            fail_open: true,
            redis_timeout_ms: 100,
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
            shutdown_grace_secs: 30,
            max_connections_per_worker: 25_000,
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

    fn check(&self) -> Result<(), config::ConfigError> {
        let fail = |msg: &str| Err(config::ConfigError::Message(msg.to_owned()));
        if self.workers == 0 {
            return fail("workers must be at least 1");
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
        Ok(())
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
    fn the_bundled_settings_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/settings.toml");
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.port, 5000);
    }
}
