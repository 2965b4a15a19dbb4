//! The Registry actor: owns the current validated config, validates every change the watcher
//! reports, diffs it against the running one and broadcasts it to every worker's dispatcher.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use arc_swap::ArcSwap;

use crate::config::{self, GatewayConfig, LoadOptions};
use crate::dispatch::Dispatcher;
use crate::messages::{ConfigChanged, RegisterWorker, RoutesUpdated};

/// The published config with its generation; readable without a message by anyone holding it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub generation: u64,
    pub config: Arc<GatewayConfig>,
}

/// Reload counters, shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    /// Unix seconds of the last accepted config (0 until the first reload).
    pub last_success_unix: AtomicU64,
}

pub struct Registry {
    current: Arc<ArcSwap<Snapshot>>,
    workers: Vec<Addr<Dispatcher>>,
    stats: Arc<ReloadStats>,
}

impl Registry {
    /// `initial` is the config validated at startup (generation 1).
    pub fn new(initial: GatewayConfig) -> Self {
        let snapshot = Snapshot {
            generation: 1,
            config: Arc::new(initial),
        };
        Self {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            workers: Vec::new(),
            stats: Arc::new(ReloadStats::default()),
        }
    }

    /// The live snapshot, for workers that must build their first table synchronously.
    pub fn current(&self) -> Arc<ArcSwap<Snapshot>> {
        self.current.clone()
    }

    pub fn stats(&self) -> Arc<ReloadStats> {
        self.stats.clone()
    }

    fn publish(&mut self, config: GatewayConfig) {
        let previous = self.current.load_full();
        let diff = ConfigDiff::between(&previous.config, &config);
        if diff.is_empty() {
            tracing::info!("configuration reloaded, no endpoint or route changed");
            return;
        }
        let snapshot = Snapshot {
            generation: previous.generation + 1,
            config: Arc::new(config),
        };
        if diff.removed.is_empty() {
            tracing::info!(
                generation = snapshot.generation,
                added = ?diff.added,
                changed = ?diff.changed,
                "configuration updated"
            );
        } else {
            // Removals are where a half-written file shows (a prefix of the file is often valid
            // YAML), so they are loud. The watcher waits for an in-place writer to close the
            // file, up to `watch.open_write_wait_ms`; a writer that closes it between halves, or
            // keeps it open longer, can still be read half-written.
            tracing::warn!(
                generation = snapshot.generation,
                added = ?diff.added,
                removed = ?diff.removed,
                changed = ?diff.changed,
                "configuration updated, removing endpoints or routes {:?}; if that was not \
                 intended, the file may have been read while being written (check the editor \
                 saves atomically) and the next save restores them",
                diff.removed
            );
        }
        let update = RoutesUpdated {
            generation: snapshot.generation,
            config: snapshot.config.clone(),
        };
        self.current.store(Arc::new(snapshot));
        self.workers.retain(|worker| worker.connected());
        for worker in &self.workers {
            worker.do_send(update.clone());
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<RegisterWorker> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RegisterWorker, _: &mut Self::Context) {
        // The worker built its first table from the snapshot it read; send the current one in case
        // a reload landed in between (the dispatcher ignores a generation it already has).
        let snapshot = self.current.load_full();
        msg.dispatcher.do_send(RoutesUpdated {
            generation: snapshot.generation,
            config: snapshot.config.clone(),
        });
        self.workers.push(msg.dispatcher);
    }
}

impl Handler<ConfigChanged> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ConfigChanged, _: &mut Self::Context) {
        match config::load_str(&msg.text, &LoadOptions::from_process()) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    tracing::warn!("config: {warning}");
                }
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                self.stats.last_success_unix.store(now, Ordering::Relaxed);
                self.publish(loaded.config);
            }
            Err(errors) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    forced = msg.forced,
                    "invalid configuration, keeping the previous one:\n{errors}"
                );
            }
        }
    }
}

/// Which endpoint and route names a reload added, removed or changed (for the log line).
#[derive(Debug, Default, PartialEq)]
pub struct ConfigDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl ConfigDiff {
    pub fn between(old: &GatewayConfig, new: &GatewayConfig) -> Self {
        let mut diff = Self::default();
        for endpoint in &new.endpoints {
            match old.endpoint(&endpoint.name) {
                None => diff.added.push(endpoint.name.clone()),
                Some(previous) if previous != endpoint => diff.changed.push(endpoint.name.clone()),
                Some(_) => {}
            }
        }
        for route in &new.routes {
            match old.route(&route.name) {
                None => diff.added.push(route.name.clone()),
                Some(previous) if previous != route => diff.changed.push(route.name.clone()),
                Some(_) => {}
            }
        }
        for endpoint in &old.endpoints {
            if new.endpoint(&endpoint.name).is_none() {
                diff.removed.push(endpoint.name.clone());
            }
        }
        for route in &old.routes {
            if new.route(&route.name).is_none() {
                diff.removed.push(route.name.clone());
            }
        }
        // Order matters to clients listing endpoints, so a pure reorder is a change too.
        let names = |c: &GatewayConfig| {
            c.endpoints
                .iter()
                .map(|e| e.name.clone())
                .collect::<Vec<_>>()
        };
        if diff.added.is_empty()
            && diff.removed.is_empty()
            && diff.changed.is_empty()
            && names(old) != names(new)
        {
            diff.changed.push("(endpoint order)".to_owned());
        }
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}
