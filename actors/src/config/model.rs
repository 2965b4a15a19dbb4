//! The validated gateway configuration: what the rest of the runtime reads once loading succeeded.
//!
//! Nothing in here is half-validated: every value was checked by `config::load`, defaults are
//! applied and secrets are resolved. Types derive `PartialEq` so the registry can diff two configs.

use std::fmt;
use std::sync::Arc;

use super::providers::{Provider, ProviderConfig};

/// One endpoint file, fully validated. Shared as `Arc<GatewayConfig>` between the registry and workers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GatewayConfig {
    /// `endpoints:` entries (and legacy `routes:` entries that carry a `model`), in file order.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Traffic-split routes (`routes:` entries with `destinations`), in file order.
    pub routes: Vec<Arc<TrafficRoute>>,
}

impl GatewayConfig {
    pub fn endpoint(&self, name: &str) -> Option<&Arc<Endpoint>> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    pub fn route(&self, name: &str) -> Option<&Arc<TrafficRoute>> {
        self.routes.iter().find(|r| r.name == name)
    }
}

/// The three unified APIs an endpoint can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointType {
    Chat,
    Completions,
    Embeddings,
}

impl EndpointType {
    pub const ALL: [EndpointType; 3] = [Self::Completions, Self::Chat, Self::Embeddings];

    /// The wire value used in YAML and in API responses (`llm/v1/chat`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "llm/v1/chat",
            Self::Completions => "llm/v1/completions",
            Self::Embeddings => "llm/v1/embeddings",
        }
    }

    /// Exact, case-sensitive parse, as MLflow does.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }

    /// The word MLflow uses in "The chat route is not implemented for ..." messages.
    pub fn route_word(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }
}

/// A named endpoint: one provider model behind one unified API.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub name: String,
    pub endpoint_type: EndpointType,
    pub model: Model,
    pub limit: Option<Limit>,
    /// Switchyard extension: tokens (input + output, as the provider reports them) per window.
    pub token_limit: Option<TokenLimit>,
    /// Switchyard extension: retry retryable failures before the first byte.
    pub retries: Option<RetryPolicy>,
    /// Switchyard extension: stop calling a failing provider for a while.
    pub circuit_breaker: Option<BreakerPolicy>,
}

/// `token_limit: {tokens, renewal_period}` on an endpoint: a request is refused with 429 once
/// the client's tokens in the current window reach `tokens`; each answer is charged afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLimit {
    pub tokens: u64,
    /// As written (`minute`, `10 minutes`).
    pub renewal_period: String,
    pub window: RateWindow,
}

/// `retries:` on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 means no retry).
    pub attempts: u32,
    /// Base of the exponential backoff, with full jitter.
    pub backoff_ms: u64,
    /// Cap of one backoff (an upstream `Retry-After` above it ends the retries instead).
    pub max_backoff_ms: u64,
}

/// `circuit_breaker:` on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before one probe request is let through.
    pub open_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The provider's model name (`gpt-4o-mini`); MLflow allows it to be absent.
    pub name: Option<String>,
    pub provider: Provider,
    pub config: ProviderConfig,
}

/// `limit:` on an endpoint: `calls` per `renewal_period`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub calls: u64,
    /// As written in the file (`minute`, `10 minutes`); reported back by the metadata API.
    pub renewal_period: String,
    /// Informational only, as in MLflow (reported back, never used for keying).
    pub key: Option<String>,
    pub window: RateWindow,
}

/// A parsed `renewal_period`: `multiples` × `granularity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub multiples: u64,
    pub granularity: Granularity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    /// Length in seconds, as the `limits` library (5.8) counts them: a month is 30 days and a year
    /// is 12 such months (360 days), not 365.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
            Self::Month => 2_592_000,
            Self::Year => 31_104_000,
        }
    }
}

/// A top-level traffic-split route.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficRoute {
    pub name: String,
    pub task_type: EndpointType,
    pub destinations: Vec<Destination>,
    /// Always `TRAFFIC_SPLIT` today (the only value MLflow accepts).
    pub routing_strategy: String,
    /// Switchyard extension: when the chosen destination fails before its first byte with a
    /// retryable error, try the other destinations in file order.
    pub fallback: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub name: String,
    pub traffic_percentage: u32,
}

/// A resolved credential. Its `Debug` and `Display` never print the value, so it cannot end up in a
/// log line or an error message by accident; use [`Secret::expose`] where the value is really needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
