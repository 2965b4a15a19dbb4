//! In-process counters shared by every worker of the process: one fixed window per
//! (endpoint, client key), in a sharded concurrent map so workers rarely contend. Exact across
//! workers: each hit increments under its shard's lock, so N workers admit exactly the limit.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use super::window::{Decision, Window};

/// Expired windows are swept after this many hits, bounding memory under many distinct clients.
const SWEEP_EVERY: u64 = 10_000;

#[derive(Default)]
pub struct MemoryStore {
    windows: DashMap<(String, String), Window>,
    /// Token budgets, separate from call counts (an endpoint may have both).
    tokens: DashMap<(String, String), Window>,
    hits: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn hit(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
        limit: u64,
        now_ms: u64,
    ) -> Decision {
        if self.hits.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.windows
                .retain(|_, window| !window.expired(now_ms, period_ms.max(1)));
        }
        let mut window = self
            .windows
            .entry((endpoint.to_owned(), key.to_owned()))
            .or_default();
        window.hit(now_ms, period_ms, limit)
    }

    /// Tokens `key` used on `endpoint` in the live window, and ms until it resets.
    pub fn tokens_used(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
        now_ms: u64,
    ) -> (u64, u64) {
        self.tokens
            .get(&(endpoint.to_owned(), key.to_owned()))
            .map_or((0, period_ms), |window| window.used(now_ms, period_ms))
    }

    pub fn charge_tokens(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
        amount: u64,
        now_ms: u64,
    ) {
        self.tokens
            .entry((endpoint.to_owned(), key.to_owned()))
            .or_default()
            .add(now_ms, period_ms, amount);
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_together_admit_exactly_the_limit() {
        let store = Arc::new(MemoryStore::new());
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                let admitted = admitted.clone();
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        if store.hit("e", "ip", 60_000, 1_234, 10).allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 1_234);
    }

    #[test]
    fn keys_and_endpoints_count_separately() {
        let store = MemoryStore::new();
        assert!(store.hit("a", "1.1.1.1", 1_000, 1, 0).allowed);
        assert!(!store.hit("a", "1.1.1.1", 1_000, 1, 0).allowed);
        assert!(store.hit("a", "2.2.2.2", 1_000, 1, 0).allowed);
        assert!(store.hit("b", "1.1.1.1", 1_000, 1, 0).allowed);
    }
}
