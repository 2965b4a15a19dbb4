//! The ConfigWatcher actor: notices edits to the endpoint file and hands new content to the
//! registry.
//!
//! It watches the file's *directory* (not the file) with notify, because editors save by writing a
//! temporary file and renaming it over the original, and Kubernetes swaps a `..data` symlink: both
//! replace the inode a file watch would be attached to. Events are debounced, then the file is read
//! (following symlinks) and its SHA-256 compared with the last content seen, so bursts of events
//! and touches without a change cost nothing. A slow poll backs notify up for the cases it cannot
//! see, such as the directory itself being removed and recreated.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::prelude::*;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use crate::messages::{ConfigChanged, FileSystemEvent, ForceReload};
use crate::registry::Registry;

/// Timing of the watcher; from the server settings.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// Quiet time after the last event before the file is read.
    pub debounce: Duration,
    /// Interval of the fallback content check.
    pub poll_interval: Duration,
}

/// A burst of events postpones a check by at most this many debounce periods.
const MAX_POSTPONE_FACTOR: u32 = 4;

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(150),
            poll_interval: Duration::from_secs(1),
        }
    }
}

pub struct ConfigWatcher {
    path: PathBuf,
    registry: Addr<Registry>,
    settings: WatchSettings,
    last_hash: Option<[u8; 32]>,
    /// Whether the file was missing at the last check (logged once, not every poll).
    missing: bool,
    pending: Option<SpawnHandle>,
    /// When the current burst of events began (its first event since the last check).
    burst_started: Option<Instant>,
    /// Kept alive for as long as the actor runs; dropping it stops the OS watch.
    notify: Option<RecommendedWatcher>,
    /// Identity of the watched directory, to re-arm notify when the directory is recreated.
    watched_dir: Option<(u64, u64)>,
}

impl ConfigWatcher {
    /// `initial_text` is the content the server started with, so the first event after an
    /// unchanged save does not reload.
    pub fn new(
        path: PathBuf,
        initial_text: &str,
        registry: Addr<Registry>,
        settings: WatchSettings,
    ) -> Self {
        Self {
            path,
            registry,
            settings,
            last_hash: Some(hash(initial_text.as_bytes())),
            missing: false,
            pending: None,
            burst_started: None,
            notify: None,
            watched_dir: None,
        }
    }

    fn directory(&self) -> PathBuf {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// (Re)creates the notify watch when the directory is new or was replaced.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let dir = self.directory();
        let identity = dir_identity(&dir);
        if identity.is_none() || (identity == self.watched_dir && self.notify.is_some()) {
            return;
        }
        let addr = ctx.address();
        let made = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Any event in the directory may concern the file (rename targets, symlink swaps);
            // the content hash decides.
            if event.is_ok() {
                addr.do_send(FileSystemEvent);
            }
        });
        match made {
            Ok(mut watcher) => match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.notify = Some(watcher);
                    self.watched_dir = identity;
                }
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), "cannot watch config directory ({err}); polling only");
                    self.notify = None;
                }
            },
            Err(err) => tracing::warn!("cannot start the file watcher ({err}); polling only"),
        }
    }

    fn check(&mut self, forced: bool) {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                self.missing = false;
                let digest = hash(&bytes);
                if !forced && self.last_hash == Some(digest) {
                    return;
                }
                self.last_hash = Some(digest);
                match String::from_utf8(bytes) {
                    Ok(text) => self.registry.do_send(ConfigChanged { text, forced }),
                    Err(_) => tracing::warn!(
                        path = %self.path.display(),
                        "config file is not valid UTF-8, keeping the previous configuration"
                    ),
                }
            }
            Err(err) => {
                if !self.missing {
                    tracing::warn!(
                        path = %self.path.display(),
                        "config file unreadable ({err}); keeping the previous configuration"
                    );
                }
                self.missing = true;
                // Forget the hash so the same content coming back is treated as new.
                self.last_hash = None;
            }
        }
    }
}

impl Actor for ConfigWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.arm(ctx);
        ctx.run_interval(self.settings.poll_interval, |watcher, ctx| {
            watcher.arm(ctx);
            watcher.check(false);
        });
    }
}

impl Handler<FileSystemEvent> for ConfigWatcher {
    type Result = ();

    fn handle(&mut self, _: FileSystemEvent, ctx: &mut Self::Context) {
        // Each event restarts the quiet period, but a burst may postpone the check by at most
        // `MAX_POSTPONE_FACTOR` debounce periods: events for any file in the directory count (a
        // log written next to the config never goes quiet), and that must not hold back a reload.
        let now = Instant::now();
        let started = *self.burst_started.get_or_insert(now);
        let cap = self.settings.debounce * MAX_POSTPONE_FACTOR;
        if self.pending.is_some() && now.duration_since(started) >= cap {
            return; // the pending check fires within one debounce period
        }
        if let Some(handle) = self.pending.take() {
            ctx.cancel_future(handle);
        }
        self.pending = Some(ctx.run_later(self.settings.debounce, |watcher, _| {
            watcher.pending = None;
            watcher.burst_started = None;
            watcher.check(false);
        }));
    }
}

impl Handler<ForceReload> for ConfigWatcher {
    type Result = ();

    fn handle(&mut self, _: ForceReload, _: &mut Self::Context) {
        tracing::info!(path = %self.path.display(), "reload requested");
        self.check(true);
    }
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(unix)]
fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir).ok().map(|_| (0, 0))
}
