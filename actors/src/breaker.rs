//! Circuit breakers, one per endpoint, shared by every worker: after `failure_threshold`
//! consecutive retryable failures the circuit opens and requests are answered at once with 503;
//! after `open_ms` one probe request is let through (half-open); its success closes the circuit,
//! its failure opens it again. Plain atomics, and the clock is an argument, so the logic is
//! tested without actors or sleeping.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;

use crate::config::BreakerPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// For the breaker-state gauge: 0 closed, 1 open, 2 half-open.
    pub fn as_number(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    consecutive_failures: AtomicU32,
    /// When the circuit opened, plus one (0 means closed), in ms on the caller's clock.
    opened_at: AtomicU64,
    probe_in_flight: AtomicBool,
}

impl CircuitBreaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            consecutive_failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probe_in_flight: AtomicBool::new(false),
        }
    }

    pub fn state(&self, now_ms: u64) -> BreakerState {
        match self.opened_at.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            opened if now_ms < opened - 1 + self.policy.open_ms => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// May a request go to the provider now? In half-open state only one probe at a time may.
    pub fn allow(&self, now_ms: u64) -> bool {
        match self.state(now_ms) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => self
                .probe_in_flight
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
        }
    }

    pub fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Release);
        self.opened_at.store(0, Ordering::Release);
        self.probe_in_flight.store(false, Ordering::Release);
    }

    /// Frees the half-open probe slot without judging the provider: the probe ended in a way
    /// that says nothing about its health (the client left, or it was a client error). Without
    /// this, a probe that never reports would keep the circuit half-open and refusing forever.
    pub fn release_probe(&self) {
        self.probe_in_flight.store(false, Ordering::Release);
    }

    pub fn record_failure(&self, now_ms: u64) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        let probing = self.probe_in_flight.swap(false, Ordering::AcqRel);
        if probing || failures >= self.policy.failure_threshold {
            self.opened_at.store(now_ms + 1, Ordering::Release);
        }
    }

    /// Milliseconds until a probe may go through (for `Retry-After`).
    pub fn retry_after_ms(&self, now_ms: u64) -> u64 {
        match self.opened_at.load(Ordering::Acquire) {
            0 => 0,
            opened => (opened - 1 + self.policy.open_ms).saturating_sub(now_ms),
        }
    }
}

/// Every endpoint's breaker, shared across workers and reloads (a reload that keeps an
/// endpoint's policy keeps its breaker state).
#[derive(Debug)]
pub struct Breakers {
    map: DashMap<String, Arc<CircuitBreaker>>,
    epoch: Instant,
}

impl Default for Breakers {
    fn default() -> Self {
        Self {
            map: DashMap::new(),
            epoch: Instant::now(),
        }
    }
}

impl Breakers {
    pub fn new() -> Self {
        Self::default()
    }

    /// The process clock the breakers run on.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn get(&self, endpoint: &str, policy: &BreakerPolicy) -> Arc<CircuitBreaker> {
        if let Some(existing) = self.map.get(endpoint) {
            if existing.policy == *policy {
                return existing.clone();
            }
        }
        let breaker = Arc::new(CircuitBreaker::new(*policy));
        self.map.insert(endpoint.to_owned(), breaker.clone());
        breaker
    }

    /// Each endpoint's current state, for the metrics endpoint.
    pub fn states(&self) -> Vec<(String, BreakerState)> {
        let now = self.now_ms();
        self.map
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().state(now)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerPolicy {
            failure_threshold: 3,
            open_ms: 1_000,
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_answers_at_once() {
        let b = breaker();
        b.record_failure(10);
        b.record_failure(20);
        assert_eq!(b.state(20), BreakerState::Closed);
        b.record_success();
        b.record_failure(30);
        b.record_failure(40);
        assert!(b.allow(40), "a success in between resets the count");
        b.record_failure(50);
        assert_eq!(b.state(50), BreakerState::Open);
        assert!(!b.allow(60));
        assert_eq!(b.retry_after_ms(60), 990);
    }

    #[test]
    fn half_open_lets_one_probe_through_then_closes_or_reopens() {
        let b = breaker();
        for t in 0..3 {
            b.record_failure(t);
        }
        assert_eq!(b.state(1_002), BreakerState::HalfOpen);
        assert!(b.allow(1_002), "the probe");
        assert!(!b.allow(1_003), "only one probe at a time");
        b.record_failure(1_010);
        assert_eq!(b.state(1_500), BreakerState::Open, "a failed probe reopens");
        assert!(b.allow(2_010));
        b.record_success();
        assert_eq!(b.state(2_020), BreakerState::Closed);
        assert!(b.allow(2_020) && b.allow(2_021));
    }

    #[test]
    fn a_probe_that_reports_nothing_does_not_wedge_the_circuit() {
        let b = breaker();
        for t in 0..3 {
            b.record_failure(t);
        }
        assert!(b.allow(1_002), "the probe");
        assert!(!b.allow(1_003));
        b.release_probe();
        assert!(b.allow(1_004), "the next request may probe");
    }

    #[test]
    fn registry_keeps_state_while_the_policy_is_unchanged() {
        let breakers = Breakers::new();
        let policy = BreakerPolicy {
            failure_threshold: 1,
            open_ms: 1_000,
        };
        breakers.get("e", &policy).record_failure(breakers.now_ms());
        assert_eq!(
            breakers.get("e", &policy).state(breakers.now_ms()),
            BreakerState::Open
        );
        let changed = BreakerPolicy {
            failure_threshold: 2,
            open_ms: 1_000,
        };
        assert_eq!(
            breakers.get("e", &changed).state(breakers.now_ms()),
            BreakerState::Closed
        );
    }
}
