//! Fixed-window counting as the `limits` library (and so MLflow) does it, pure: a window opens at
//! the first hit and lasts one period; every hit in it counts; a hit is admitted while the count,
//! including itself, is within the limit. The clock is an argument, so tests never sleep.

/// The outcome of one hit, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Milliseconds until the window resets.
    pub reset_after_ms: u64,
}

impl Decision {
    /// Whole seconds until the window resets, rounded up (never 0 while limited).
    pub fn retry_after_secs(&self) -> u64 {
        self.reset_after_ms.div_ceil(1000).max(1)
    }

    /// Built from a store's count after the increment and the window's remaining time.
    pub fn from_count(count: u64, limit: u64, reset_after_ms: u64) -> Self {
        Self {
            allowed: count <= limit,
            limit,
            remaining: limit.saturating_sub(count),
            reset_after_ms,
        }
    }
}

/// One key's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// When the window opened (ms on the caller's clock).
    pub start_ms: u64,
    pub count: u64,
}

impl Window {
    /// Counts one hit at `now_ms` for a `period_ms` window admitting `limit` hits.
    pub fn hit(&mut self, now_ms: u64, period_ms: u64, limit: u64) -> Decision {
        if self.count == 0 || now_ms >= self.start_ms.saturating_add(period_ms) {
            self.start_ms = now_ms;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        let reset_after_ms = self
            .start_ms
            .saturating_add(period_ms)
            .saturating_sub(now_ms);
        Decision::from_count(self.count, limit, reset_after_ms)
    }

    /// What the window holds at `now_ms` and the milliseconds until it resets (0 and a full
    /// period when no window is open). For token budgets: read before a request, charged after.
    pub fn used(&self, now_ms: u64, period_ms: u64) -> (u64, u64) {
        if self.count == 0 || self.expired(now_ms, period_ms) {
            return (0, period_ms);
        }
        (
            self.count,
            self.start_ms
                .saturating_add(period_ms)
                .saturating_sub(now_ms),
        )
    }

    /// Adds `amount` (tokens) at `now_ms`, opening a new window if none is live.
    pub fn add(&mut self, now_ms: u64, period_ms: u64, amount: u64) {
        if self.count == 0 || self.expired(now_ms, period_ms) {
            self.start_ms = now_ms;
            self.count = 0;
        }
        self.count = self.count.saturating_add(amount);
    }

    /// True once the window has ended: the entry can be forgotten.
    pub fn expired(&self, now_ms: u64, period_ms: u64) -> bool {
        now_ms >= self.start_ms.saturating_add(period_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_exactly_the_limit_per_window_then_resets() {
        let mut window = Window::default();
        let period = 60_000;
        for i in 0..3 {
            let d = window.hit(1_000 + i, period, 3);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
        }
        let denied = window.hit(30_000, period, 3);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        assert_eq!(denied.reset_after_ms, 31_000);
        assert_eq!(denied.retry_after_secs(), 31);
        // The window opened at the first hit (1 000 ms), so it ends at 61 000 ms.
        assert!(!window.hit(60_999, period, 3).allowed);
        let fresh = window.hit(61_000, period, 3);
        assert!(fresh.allowed);
        assert_eq!(fresh.remaining, 2);
    }

    #[test]
    fn token_budgets_are_read_then_charged() {
        let mut window = Window::default();
        assert_eq!(window.used(0, 1_000), (0, 1_000));
        window.add(100, 1_000, 7);
        window.add(200, 1_000, 5);
        assert_eq!(window.used(300, 1_000), (12, 800));
        assert_eq!(
            window.used(1_100, 1_000),
            (0, 1_000),
            "the window opened at 100 ms"
        );
        window.add(1_100, 1_000, 3);
        assert_eq!(window.used(1_100, 1_000), (3, 1_000));
    }

    #[test]
    fn zero_calls_admits_nothing() {
        let mut window = Window::default();
        assert!(!window.hit(0, 1_000, 0).allowed);
    }

    #[test]
    fn expiry_follows_the_period() {
        let mut window = Window::default();
        window.hit(500, 1_000, 1);
        assert!(!window.expired(1_499, 1_000));
        assert!(window.expired(1_500, 1_000));
    }
}
