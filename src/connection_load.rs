//! How many client connections are open against the connection cap. Near the cap, slow
//! clients are cut sooner: a slowloris attack that fills every slot with connections sending a
//! byte at a time would otherwise keep `/health` and every new request waiting in the listen
//! backlog for a whole body timeout (60 s by default).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The gateway counts as busy from this share of its connection cap (in percent).
const BUSY_FROM_PERCENT: usize = 90;

/// Open client connections of the whole process, against the cap of all its workers.
#[derive(Debug)]
pub struct ConnectionLoad {
    open: AtomicUsize,
    /// Connections from which the gateway counts as busy.
    busy_from: usize,
}

impl ConnectionLoad {
    /// For `workers` workers of `cap_per_worker` connections each.
    pub fn new(cap_per_worker: usize, workers: usize) -> Arc<Self> {
        let cap = cap_per_worker.saturating_mul(workers);
        Arc::new(Self {
            open: AtomicUsize::new(0),
            busy_from: (cap.saturating_mul(BUSY_FROM_PERCENT) / 100).max(1),
        })
    }

    /// Counts a connection as open until the returned guard drops (it lives in the
    /// connection's data, which actix drops when the connection closes).
    pub fn opened(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// True while the open connections fill most of the cap.
    pub fn busy(&self) -> bool {
        self.open.load(Ordering::Relaxed) >= self.busy_from
    }
}

/// One open client connection, counted in its [`ConnectionLoad`] while it lives.
#[derive(Debug)]
pub struct OpenConnection(Arc<ConnectionLoad>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_from_nine_tenths_of_the_cap_until_connections_close() {
        let load = ConnectionLoad::new(10, 2);
        let mut open: Vec<_> = (0..17).map(|_| load.opened()).collect();
        assert!(!load.busy());
        open.push(load.opened());
        assert!(load.busy(), "18 of 20 is busy");
        open.truncate(10);
        assert!(!load.busy(), "closing connections ends it");
    }
}
