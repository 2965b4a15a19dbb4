//! Rate limits: MLflow's `limit: {calls, renewal_period}` per endpoint, enforced exactly across
//! all workers (in-process counters) or across processes (Redis), one counter per endpoint and
//! client key whichever path reaches the endpoint.

pub mod memory;
pub mod redis;
pub mod window;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::config::{Limit, RateWindow, TokenLimit};
pub use memory::MemoryBounds;
pub use window::Decision;

/// Counters the metrics endpoint reads.
#[derive(Debug, Default)]
pub struct LimiterStats {
    /// Requests refused with 429.
    pub limited: AtomicU64,
    /// Storage failures (Redis unreachable or slow); each one was let through or refused per
    /// the fail-open setting.
    pub storage_errors: AtomicU64,
}

/// How long to wait before trying to reach Redis again after a failure.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

enum Storage {
    Memory(memory::MemoryStore),
    Redis(RedisBackend),
}

struct RedisBackend {
    url: String,
    timeout: Duration,
    store: OnceCell<redis::RedisStore>,
    last_failure: Mutex<Option<Instant>>,
}

pub struct RateLimiter {
    storage: Storage,
    fail_open: bool,
    epoch: Instant,
    pub stats: LimiterStats,
}

impl RateLimiter {
    pub fn memory() -> Self {
        Self::memory_with(MemoryBounds::default())
    }

    /// In-process counters with the given sweep interval and cap.
    pub fn memory_with(bounds: MemoryBounds) -> Self {
        Self {
            storage: Storage::Memory(memory::MemoryStore::with_bounds(bounds)),
            fail_open: true,
            epoch: Instant::now(),
            stats: LimiterStats::default(),
        }
    }

    /// Redis at `url`; connects on first use and reconnects by itself. When Redis cannot answer
    /// within `timeout`, requests are let through (`fail_open`) or refused with 429.
    pub fn redis(url: impl Into<String>, timeout: Duration, fail_open: bool) -> Self {
        Self {
            storage: Storage::Redis(RedisBackend {
                url: url.into(),
                timeout,
                store: OnceCell::new(),
                last_failure: Mutex::new(None),
            }),
            fail_open,
            epoch: Instant::now(),
            stats: LimiterStats::default(),
        }
    }

    /// The storage named by a URI: `memory://` (bounded by `bounds`) or `redis://...` /
    /// `rediss://...` (Redis expires its own keys).
    pub fn from_uri(
        uri: &str,
        timeout: Duration,
        fail_open: bool,
        bounds: MemoryBounds,
    ) -> Result<Self, String> {
        if uri.is_empty() || uri.starts_with("memory://") {
            Ok(Self::memory_with(bounds))
        } else if uri.starts_with("redis://")
            || uri.starts_with("rediss://")
            || uri.starts_with("redis+unix://")
        {
            Ok(Self::redis(uri, timeout, fail_open))
        } else {
            Err("rate-limit storage must be memory:// or redis://HOST:PORT[/DB]".to_owned())
        }
    }

    pub fn storage_name(&self) -> &'static str {
        match self.storage {
            Storage::Memory(_) => "memory",
            Storage::Redis(_) => "redis",
        }
    }

    /// Counts one request of `key` against `endpoint`'s `limit`.
    pub async fn check(&self, endpoint: &str, key: &str, limit: &Limit) -> Decision {
        let period_ms = period_ms(limit.window);
        let decision = match &self.storage {
            Storage::Memory(store) => {
                store.hit(endpoint, key, period_ms, limit.calls, self.now_ms())
            }
            Storage::Redis(backend) => {
                match backend.hit(endpoint, key, period_ms, limit.calls).await {
                    Ok(decision) => decision,
                    Err(reason) => {
                        self.stats.storage_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            endpoint,
                            fail_open = self.fail_open,
                            "rate-limit storage unavailable: {reason}"
                        );
                        Decision {
                            allowed: self.fail_open,
                            limit: limit.calls,
                            remaining: limit.calls,
                            reset_after_ms: period_ms,
                        }
                    }
                }
            }
        };
        if !decision.allowed {
            self.stats.limited.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }
}

impl RateLimiter {
    /// May `key` spend more tokens on `endpoint`? Refused once the window's charged tokens reach
    /// the budget (a request's own cost is only known after it, so it is charged afterwards).
    pub async fn check_tokens(&self, endpoint: &str, key: &str, limit: &TokenLimit) -> Decision {
        let period_ms = period_ms(limit.window);
        let used = match &self.storage {
            Storage::Memory(store) => {
                Ok(store.tokens_used(endpoint, key, period_ms, self.now_ms()))
            }
            Storage::Redis(backend) => backend.tokens_used(endpoint, key, period_ms).await,
        };
        let decision = match used {
            Ok((used, reset_after_ms)) => Decision {
                allowed: used < limit.tokens,
                limit: limit.tokens,
                remaining: limit.tokens.saturating_sub(used),
                reset_after_ms,
            },
            Err(reason) => {
                self.stats.storage_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    endpoint,
                    fail_open = self.fail_open,
                    "token-limit storage unavailable: {reason}"
                );
                Decision {
                    allowed: self.fail_open,
                    limit: limit.tokens,
                    remaining: limit.tokens,
                    reset_after_ms: period_ms,
                }
            }
        };
        if !decision.allowed {
            self.stats.limited.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }

    /// Charges the tokens a finished request used.
    pub async fn charge_tokens(&self, endpoint: &str, key: &str, limit: &TokenLimit, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let period_ms = period_ms(limit.window);
        match &self.storage {
            Storage::Memory(store) => store.charge_tokens(
                endpoint,
                key,
                period_ms,
                limit.tokens,
                tokens,
                self.now_ms(),
            ),
            Storage::Redis(backend) => {
                if let Err(reason) = backend
                    .charge_tokens(endpoint, key, period_ms, tokens)
                    .await
                {
                    self.stats.storage_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(endpoint, "token-limit storage unavailable: {reason}");
                }
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

fn period_ms(window: RateWindow) -> u64 {
    window
        .multiples
        .saturating_mul(window.granularity.seconds())
        .saturating_mul(1000)
}

/// MLflow-style text for a refused request under a token budget.
pub fn tokens_exceeded_message(limit: &TokenLimit) -> String {
    format!(
        "Token limit exceeded: {} tokens per {} {}",
        limit.tokens,
        limit.window.multiples,
        limit.window.granularity.as_str()
    )
}

impl RedisBackend {
    async fn tokens_used(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
    ) -> Result<(u64, u64), String> {
        let store = self.store().await?;
        match tokio::time::timeout(self.timeout, store.tokens_used(endpoint, key, period_ms)).await
        {
            Ok(Ok(used)) => Ok(used),
            Ok(Err(error)) => Err(format!("redis error: {:?}", error.kind())),
            Err(_) => Err("redis did not answer in time".to_owned()),
        }
    }

    async fn charge_tokens(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
        tokens: u64,
    ) -> Result<(), String> {
        let store = self.store().await?;
        match tokio::time::timeout(
            self.timeout,
            store.charge_tokens(endpoint, key, period_ms, tokens),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("redis error: {:?}", error.kind())),
            Err(_) => Err("redis did not answer in time".to_owned()),
        }
    }

    async fn hit(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
        limit: u64,
    ) -> Result<Decision, String> {
        let store = self.store().await?;
        match tokio::time::timeout(self.timeout, store.hit(endpoint, key, period_ms, limit)).await {
            Ok(Ok(decision)) => Ok(decision),
            Ok(Err(error)) => Err(format!("redis error: {:?}", error.kind())),
            Err(_) => Err("redis did not answer in time".to_owned()),
        }
    }

    async fn store(&self) -> Result<&redis::RedisStore, String> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        if let Ok(last) = self.last_failure.lock() {
            if last.is_some_and(|at| at.elapsed() < REDIS_RETRY_AFTER) {
                return Err("redis unreachable (retrying shortly)".to_owned());
            }
        }
        let connected = self
            .store
            .get_or_try_init(|| async {
                match tokio::time::timeout(
                    self.timeout * 2,
                    redis::RedisStore::connect(&self.url, self.timeout),
                )
                .await
                {
                    Ok(Ok(store)) => Ok(store),
                    Ok(Err(error)) => Err(format!("cannot connect to redis: {:?}", error.kind())),
                    Err(_) => Err("cannot connect to redis: timed out".to_owned()),
                }
            })
            .await;
        if connected.is_err() {
            if let Ok(mut last) = self.last_failure.lock() {
                *last = Some(Instant::now());
            }
        }
        connected
    }
}

/// MLflow's text for a refused request: `Rate limit exceeded: 5 per 10 minute`.
pub fn exceeded_message(limit: &Limit) -> String {
    format!(
        "Rate limit exceeded: {} per {} {}",
        limit.calls,
        limit.window.multiples,
        limit.window.granularity.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Granularity, RateWindow};

    fn limit(calls: u64, multiples: u64, granularity: Granularity) -> Limit {
        Limit {
            calls,
            renewal_period: String::new(),
            key: None,
            window: RateWindow {
                multiples,
                granularity,
            },
        }
    }

    #[actix_rt::test]
    async fn token_budgets_refuse_once_spent_and_count_per_key() {
        let limiter = RateLimiter::memory();
        let budget = TokenLimit {
            tokens: 10,
            renewal_period: "minute".to_owned(),
            window: RateWindow {
                multiples: 1,
                granularity: Granularity::Minute,
            },
        };
        assert!(limiter.check_tokens("e", "k", &budget).await.allowed);
        limiter.charge_tokens("e", "k", &budget, 9).await;
        let almost = limiter.check_tokens("e", "k", &budget).await;
        assert!(almost.allowed);
        assert_eq!(almost.remaining, 1);
        limiter.charge_tokens("e", "k", &budget, 4).await;
        let spent = limiter.check_tokens("e", "k", &budget).await;
        assert!(!spent.allowed);
        assert_eq!(spent.remaining, 0);
        assert!(limiter.check_tokens("e", "other", &budget).await.allowed);
        assert_eq!(
            tokens_exceeded_message(&budget),
            "Token limit exceeded: 10 tokens per 1 minute"
        );
    }

    #[test]
    fn message_matches_mlflow() {
        assert_eq!(
            exceeded_message(&limit(1, 1, Granularity::Minute)),
            "Rate limit exceeded: 1 per 1 minute"
        );
        assert_eq!(
            exceeded_message(&limit(5, 10, Granularity::Minute)),
            "Rate limit exceeded: 5 per 10 minute"
        );
    }

    #[test]
    fn storage_uris() {
        assert_eq!(
            RateLimiter::from_uri(
                "memory://",
                Duration::from_millis(5),
                true,
                MemoryBounds::default()
            )
            .unwrap()
            .storage_name(),
            "memory"
        );
        assert_eq!(
            RateLimiter::from_uri(
                "redis://127.0.0.1:1/0",
                Duration::from_millis(5),
                true,
                MemoryBounds::default()
            )
            .unwrap()
            .storage_name(),
            "redis"
        );
        assert!(RateLimiter::from_uri(
            "mongodb://x",
            Duration::from_millis(5),
            true,
            MemoryBounds::default()
        )
        .is_err());
    }

    #[actix_rt::test]
    async fn memory_limiter_counts_per_endpoint_and_key() {
        let limiter = RateLimiter::memory();
        let l = limit(2, 1, Granularity::Minute);
        assert!(limiter.check("e", "k", &l).await.allowed);
        assert!(limiter.check("e", "k", &l).await.allowed);
        let third = limiter.check("e", "k", &l).await;
        assert!(!third.allowed);
        assert!(third.retry_after_secs() >= 59);
        assert_eq!(limiter.stats.limited.load(Ordering::Relaxed), 1);
    }

    #[actix_rt::test]
    async fn unreachable_redis_fails_open_and_counts() {
        // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        let limiter = RateLimiter::redis("redis://127.0.0.1:9/0", Duration::from_millis(200), true);
        let l = limit(1, 1, Granularity::Minute);
        assert!(limiter.check("e", "k", &l).await.allowed);
        assert!(limiter.check("e", "k", &l).await.allowed);
        assert_eq!(limiter.stats.storage_errors.load(Ordering::Relaxed), 2);
        let closed = RateLimiter::redis("redis://127.0.0.1:9/0", Duration::from_millis(200), false);
        assert!(!closed.check("e", "k", &l).await.allowed);
    }
}
