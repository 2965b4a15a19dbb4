//! In-process counters shared by every worker of the process: one fixed window per
//! (endpoint, client key), in a sharded concurrent map so workers rarely contend. Exact across
//! workers: each hit increments under its shard's lock, so N workers admit exactly the limit.
//!
//! Memory is bounded two ways. Every `sweep_every` hits the windows that have ended are dropped,
//! each by its *own* period (a per-second endpoint's traffic must not end a daily window early).
//! And the map holds at most about `max_windows` entries: a new key arriving when it is full
//! first triggers a sweep, then, if that freed too little, eviction down to 90 % of the cap:
//! first of windows whose client still has quota left, least recently hit first, and only then
//! of spent ones, again least recently hit first. So a flood of fresh keys cannot buy a spent
//! client a new quota, a client that keeps knocking keeps its window, and a new client is never
//! refused for lack of room. (An attacker who also spends each of its keys, more of them than
//! the cap, does evict the spent windows of clients that went quiet.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use dashmap::DashMap;

use super::window::{Decision, Window};

/// How often expired windows are swept and how many windows the store may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBounds {
    /// Hits between two sweeps of expired windows.
    pub sweep_every: u64,
    /// Most windows (call counters and token budgets together) kept at once.
    pub max_windows: usize,
}

impl Default for MemoryBounds {
    fn default() -> Self {
        Self {
            sweep_every: 10_000,
            // About 130 bytes each with their keys: some 65 MiB when full.
            max_windows: 500_000,
        }
    }
}

/// Call counts and token budgets share one map (and so one cap); an endpoint may have both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Calls,
    Tokens,
}

type SlotId = (Kind, String, String);

/// One window with what it takes to judge it without the config: its period (so it expires by
/// its own), its limit (so eviction can tell whether its client has quota left) and its last
/// use (eviction goes least recently used first).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    window: Window,
    period_ms: u64,
    limit: u64,
    last_hit_ms: u64,
}

impl Slot {
    fn expired(&self, now_ms: u64) -> bool {
        self.window.count == 0 || self.window.expired(now_ms, self.period_ms)
    }

    /// Live and used up: forgetting it would hand its client a fresh quota.
    fn spent(&self, now_ms: u64) -> bool {
        !self.expired(now_ms) && self.window.count >= self.limit
    }

    fn touch(&mut self, period_ms: u64, limit: u64, now_ms: u64) {
        // The config may have changed the period or limit since the window opened.
        self.period_ms = period_ms;
        self.limit = limit;
        self.last_hit_ms = now_ms;
    }
}

pub struct MemoryStore {
    windows: DashMap<SlotId, Slot>,
    hits: AtomicU64,
    bounds: MemoryBounds,
    /// Held while one thread makes room, so a burst of new keys does not scan the map N times.
    making_room: Mutex<()>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_bounds(MemoryBounds::default())
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_bounds(bounds: MemoryBounds) -> Self {
        Self {
            windows: DashMap::new(),
            hits: AtomicU64::new(0),
            bounds: MemoryBounds {
                sweep_every: bounds.sweep_every.max(1),
                max_windows: bounds.max_windows.max(1),
            },
            making_room: Mutex::new(()),
        }
    }

    pub fn hit(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
        limit: u64,
        now_ms: u64,
    ) -> Decision {
        let every = self.bounds.sweep_every;
        if self.hits.fetch_add(1, Ordering::Relaxed) % every == every - 1 {
            self.sweep(now_ms);
        }
        let id = (Kind::Calls, endpoint.to_owned(), key.to_owned());
        if !self.windows.contains_key(&id) {
            self.make_room(now_ms);
        }
        let mut slot = self.windows.entry(id).or_default();
        slot.touch(period_ms, limit, now_ms);
        slot.window.hit(now_ms, period_ms, limit)
    }

    /// Tokens `key` used on `endpoint` in the live window, and ms until it resets.
    pub fn tokens_used(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
        now_ms: u64,
    ) -> (u64, u64) {
        self.windows
            .get(&(Kind::Tokens, endpoint.to_owned(), key.to_owned()))
            .map_or((0, period_ms), |slot| slot.window.used(now_ms, period_ms))
    }

    /// Adds `amount` tokens to `key`'s window on `endpoint`, whose budget is `budget`.
    pub fn charge_tokens(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
        budget: u64,
        amount: u64,
        now_ms: u64,
    ) {
        let id = (Kind::Tokens, endpoint.to_owned(), key.to_owned());
        if !self.windows.contains_key(&id) {
            self.make_room(now_ms);
        }
        let mut slot = self.windows.entry(id).or_default();
        slot.touch(period_ms, budget, now_ms);
        slot.window.add(now_ms, period_ms, amount);
    }

    /// Drops every window that has ended by its own period.
    pub fn sweep(&self, now_ms: u64) {
        self.windows.retain(|_, slot| !slot.expired(now_ms));
    }

    /// Called before a new window is added: keeps the map under its cap.
    fn make_room(&self, now_ms: u64) {
        let cap = self.bounds.max_windows;
        if self.windows.len() < cap {
            return;
        }
        // Another thread is already at it; one insert past the cap is harmless.
        let Ok(_guard) = self.making_room.try_lock() else {
            return;
        };
        self.sweep(now_ms);
        // Leave headroom, so the next scan is at least a tenth of the cap of new keys away.
        let target = cap - cap / 10;
        let excess = self.windows.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let left = self.evict_least_recent(excess, |slot| !slot.spent(now_ms));
        if left > 0 {
            // Every remaining window is spent: the clients that stopped knocking lose theirs.
            self.evict_least_recent(left, |_| true);
        }
    }

    /// Evicts up to `count` windows matching `eligible`, least recently hit first; returns how
    /// many it could not find.
    fn evict_least_recent(&self, count: usize, eligible: impl Fn(&Slot) -> bool) -> usize {
        let mut last_hits: Vec<u64> = self
            .windows
            .iter()
            .filter(|entry| eligible(entry.value()))
            .map(|entry| entry.value().last_hit_ms)
            .collect();
        if last_hits.is_empty() {
            return count;
        }
        let evicted = count.min(last_hits.len());
        let (_, cutoff, _) = last_hits.select_nth_unstable(evicted - 1);
        let cutoff = *cutoff;
        // Windows last hit in the same millisecond as the cutoff go too: at worst a few more
        // than asked, never a scan per window.
        self.windows
            .retain(|_, slot| !(eligible(slot) && slot.last_hit_ms <= cutoff));
        count - evicted
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

    const SECOND: u64 = 1_000;
    const DAY: u64 = 86_400_000;

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

    #[test]
    fn a_sweep_triggered_by_a_short_window_keeps_a_daily_one() {
        let store = MemoryStore::with_bounds(MemoryBounds {
            sweep_every: 10,
            max_windows: 1_000,
        });
        assert!(store.hit("daily", "k", DAY, 1, 0).allowed);
        assert!(!store.hit("daily", "k", DAY, 1, 1).allowed);
        store.charge_tokens("budget", "k", DAY, 5, 5, 1);
        // Two minutes of per-second traffic: many sweeps, each triggered by a 1 s window.
        for second in 1..120 {
            store.hit("fast", "k", SECOND, 100, second * SECOND);
        }
        let now = 120 * SECOND;
        assert!(!store.hit("daily", "k", DAY, 1, now).allowed);
        assert_eq!(store.tokens_used("budget", "k", DAY, now).0, 5);
        // A day later both have ended and the sweep drops them, token budgets included.
        store.sweep(DAY + 2);
        assert_eq!(store.len(), 0);
        assert!(store.hit("daily", "k", DAY, 1, DAY + 2).allowed);
    }

    #[test]
    fn token_windows_are_swept_by_their_own_period() {
        let store = MemoryStore::new();
        store.charge_tokens("e", "k", SECOND, 10, 3, 0);
        store.charge_tokens("e", "long", DAY, 10, 3, 0);
        store.sweep(SECOND);
        assert_eq!(store.len(), 1);
        assert_eq!(store.tokens_used("e", "long", DAY, SECOND).0, 3);
    }

    #[test]
    fn a_full_store_evicts_windows_with_quota_left_before_spent_ones() {
        let store = MemoryStore::with_bounds(MemoryBounds {
            sweep_every: u64::MAX,
            max_windows: 100,
        });
        // An exhausted client, then a flood of fresh keys (one hit each, under their limit).
        assert!(store.hit("e", "victim", DAY, 1, 0).allowed);
        assert!(!store.hit("e", "victim", DAY, 1, 0).allowed);
        for i in 0..10_000u64 {
            assert!(
                store.hit("e", &format!("flood-{i}"), DAY, 10, i).allowed,
                "a new key was refused for lack of room"
            );
            assert!(store.len() <= 100, "{} windows", store.len());
        }
        assert!(
            !store.hit("e", "victim", DAY, 1, 10_000).allowed,
            "the flood evicted an exhausted client's window"
        );
    }

    #[test]
    fn a_full_store_of_spent_windows_admits_new_keys_and_keeps_the_active_clients() {
        let store = MemoryStore::with_bounds(MemoryBounds {
            sweep_every: u64::MAX,
            max_windows: 10,
        });
        for i in 0..10u64 {
            store.hit("e", &format!("k{i}"), DAY, 1, i);
        }
        // k0 keeps knocking (refused), so k1 is now the least recently used.
        assert!(!store.hit("e", "k0", DAY, 1, 15).allowed);
        assert!(store.hit("e", "new", DAY, 1, 20).allowed);
        assert!(store.len() <= 10);
        assert!(!store.hit("e", "k0", DAY, 1, 21).allowed);
        assert!(!store.hit("e", "k9", DAY, 1, 22).allowed);
        assert!(
            store.hit("e", "k1", DAY, 1, 23).allowed,
            "k1 was the one evicted"
        );
    }

    #[test]
    fn a_full_store_sweeps_expired_windows_first() {
        let store = MemoryStore::with_bounds(MemoryBounds {
            sweep_every: u64::MAX,
            max_windows: 4,
        });
        store.hit("daily", "k", DAY, 1, 0);
        store.hit("daily", "k", DAY, 1, 0);
        for i in 0..3u64 {
            store.hit("fast", &format!("f{i}"), SECOND, 5, 0);
        }
        assert!(store.hit("fast", "new", SECOND, 5, 5 * SECOND).allowed);
        assert_eq!(store.len(), 2, "only the expired ones were dropped");
        assert!(!store.hit("daily", "k", DAY, 1, 5 * SECOND).allowed);
    }
}
