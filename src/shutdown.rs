//! The end of the SIGTERM grace period, as a signal every in-flight request can watch.
//!
//! On SIGTERM actix-web stops accepting and lets running requests finish; past its shutdown
//! timeout it drops whatever is left, and a client then sees a connection closed mid-response with
//! no word why. So the gateway keeps its own clock: when `shutdown_grace_secs` have passed since
//! the SIGTERM, a reply still awaited becomes a 503 and a stream still open ends with an error
//! event and a properly closed body. actix's own timeout is set a little later
//! ([`FINAL_WRITE_MARGIN`]) so those last bytes get out before it closes the sockets.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// How long after the grace period actix may still run, to write the final 503s and error events.
pub const FINAL_WRITE_MARGIN: Duration = Duration::from_secs(1);

/// A handle on the end of the grace period; cheap to clone, one per worker.
#[derive(Clone, Debug)]
pub struct GraceEnd {
    ended: watch::Receiver<bool>,
}

impl GraceEnd {
    /// Starts watching for SIGTERM; the grace period ends `grace` after it arrives. Must be called
    /// inside the actix system (it spawns the watcher on the current arbiter).
    pub fn after_sigterm(grace: Duration) -> Self {
        let (end, ended) = watch::channel(false);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut terms) => {
                    actix_rt::spawn(async move {
                        if terms.recv().await.is_some() {
                            tokio::time::sleep(grace).await;
                            tracing::info!(
                                grace_secs = grace.as_secs(),
                                "grace period over; ending the requests still in flight"
                            );
                            end.send_replace(true);
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot watch for SIGTERM; requests left at the end of the grace period will be cut");
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (end, grace);
        Self { ended }
    }

    /// Whether the grace period is already over.
    pub fn is_over(&self) -> bool {
        *self.ended.borrow()
    }

    /// Resolves when the grace period is over; never, if it cannot end any more.
    pub fn reached(&self) -> impl Future<Output = ()> + 'static {
        let mut ended = self.ended.clone();
        async move {
            if ended.wait_for(|ended| *ended).await.is_err() {
                // The sender is gone without ending the grace period: it never will.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn a_grace_period_that_can_no_longer_end_never_resolves() {
        let (end, ended) = watch::channel(false);
        drop(end);
        let grace = GraceEnd { ended };
        let waited = tokio::time::timeout(Duration::from_millis(50), grace.reached()).await;
        assert!(waited.is_err());
    }

    #[actix_rt::test]
    async fn every_clone_sees_the_end() {
        let (end, ended) = watch::channel(false);
        let grace = GraceEnd { ended };
        let waiters: Vec<_> = (0..3).map(|_| grace.clone().reached()).collect();
        end.send_replace(true);
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(1), waiter)
                .await
                .expect("a waiter missed the end of the grace period");
        }
        // A waiter created after the end resolves at once.
        tokio::time::timeout(Duration::from_millis(50), grace.reached())
            .await
            .expect("a late waiter missed it");
    }
}
