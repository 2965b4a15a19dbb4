//! The ConfigWatcher actor: notices edits to the endpoint file and hands new content to the
//! registry.
//!
//! It watches the file's *directory* (not the file) with notify, because editors save by writing a
//! temporary file and renaming it over the original, and Kubernetes swaps a `..data` symlink: both
//! replace the inode a file watch would be attached to. Events are debounced, then the file is read
//! (following symlinks) and its SHA-256 compared with the last content seen, so bursts of events
//! and touches without a change cost nothing. A slow poll backs notify up for the cases it cannot
//! see, such as the directory itself being removed and recreated.
//!
//! A half-written file must never go live, because a prefix of a config is often valid YAML
//! with endpoints missing. So content is applied only once it is known to be whole and stable:
//! - An in-place write (the file modified, not replaced) holds reloads until its writer closes
//!   the file (inotify's close-after-write), however long the writer pauses in between, up to
//!   `open_write_wait`; past that the file is read as it stands.
//! - A check after notify's quiet period applies what it reads: no event for the file during the
//!   debounce window means its content did not change during it.
//! - The poll, which sees no events, applies a new content only when two reads at least one
//!   debounce window apart give the same size and hash.
//!
//! Only events naming the config file, a `..`-prefixed entry (the Kubernetes `..data` swap) or
//! the directory itself are acted on. Everything else in the directory, such as a log file the
//! gateway itself writes there, is dropped in notify's thread, so it cannot feed back.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::prelude::*;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use crate::messages::{ConfigChanged, FileChange, FileSystemEvent, ForceReload};
use crate::registry::Registry;

/// Timing of the watcher; from the server settings.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// Quiet time after the last event before the file is read.
    pub debounce: Duration,
    /// Interval of the fallback content check.
    pub poll_interval: Duration,
    /// Longest wait for the writer of an in-place save to close the file.
    pub open_write_wait: Duration,
}

/// A burst of events postpones a check by at most this many debounce periods.
const MAX_POSTPONE_FACTOR: u32 = 4;

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(150),
            poll_interval: Duration::from_secs(1),
            open_write_wait: Duration::from_secs(5),
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
    /// Since when the file has been written in place without its writer closing it.
    writing_since: Option<Instant>,
    /// A new content the poll read (size, hash, when), applied if the next read matches.
    candidate: Option<(usize, [u8; 32], Instant)>,
    /// The poll's confirmation read, scheduled one debounce window after a new content.
    confirming: Option<SpawnHandle>,
}

/// Why the file is being read: what is known about its stability differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// notify went quiet for a debounce window after an event.
    Settled,
    /// The fallback poll (or its confirmation read).
    Poll,
    /// SIGHUP: the operator asked; apply what is there.
    Forced,
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
            writing_since: None,
            candidate: None,
            confirming: None,
        }
    }

    /// The config's file name, for telling its events from those of its neighbours.
    fn file_name(&self) -> OsString {
        self.path
            .file_name()
            .map(OsString::from)
            .unwrap_or_default()
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
        let file_name = self.file_name();
        let watched = dir.clone();
        let made = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Filtered here, on notify's thread: an unrelated file (a log next to the config)
            // costs neither a message nor a read, and nothing is logged per event.
            if let Ok(event) = event {
                if let Some(change) = classify(&event, &file_name, &watched) {
                    addr.do_send(FileSystemEvent { change });
                }
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

    fn check(&mut self, trigger: Trigger, ctx: &mut Context<Self>) {
        if trigger == Trigger::Poll && self.pending.is_some() {
            return; // notify saw events and will check once they settle
        }
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
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
                self.candidate = None;
                return;
            }
        };
        self.missing = false;
        let digest = hash(&bytes);
        if trigger != Trigger::Forced {
            if self.last_hash == Some(digest) {
                self.candidate = None;
                return;
            }
            if let Some(since) = self.writing_since {
                if since.elapsed() < self.settings.open_write_wait {
                    return; // its writer's close brings the next check
                }
                tracing::warn!(
                    path = %self.path.display(),
                    waited_ms = since.elapsed().as_millis() as u64,
                    "config file still open for writing; reading it as it stands"
                );
                self.writing_since = None;
            }
            if trigger == Trigger::Poll && !self.confirmed(bytes.len(), digest, ctx) {
                return;
            }
        }
        self.candidate = None;
        self.last_hash = Some(digest);
        match String::from_utf8(bytes) {
            Ok(text) => self.registry.do_send(ConfigChanged {
                text,
                forced: trigger == Trigger::Forced,
            }),
            Err(_) => tracing::warn!(
                path = %self.path.display(),
                "config file is not valid UTF-8, keeping the previous configuration"
            ),
        }
    }

    /// For the poll: true when the previous read, at least one debounce window ago, saw the same
    /// size and hash; otherwise remembers this content and schedules the read that confirms it.
    fn confirmed(&mut self, size: usize, digest: [u8; 32], ctx: &mut Context<Self>) -> bool {
        let debounce = self.settings.debounce;
        if let Some((seen_size, seen_digest, seen_at)) = self.candidate {
            if seen_size == size && seen_digest == digest && seen_at.elapsed() >= debounce {
                return true;
            }
            if seen_size == size && seen_digest == digest {
                return false; // the confirmation read is already scheduled
            }
        }
        self.candidate = Some((size, digest, Instant::now()));
        if let Some(handle) = self.confirming.take() {
            ctx.cancel_future(handle);
        }
        self.confirming = Some(ctx.run_later(debounce, |watcher, ctx| {
            watcher.confirming = None;
            watcher.check(Trigger::Poll, ctx);
        }));
        false
    }
}

/// Which of notify's events concern the config, and how. `None` for the rest: other files, and
/// opens and reads (the watcher's own reads among them, which would otherwise wake it forever).
fn classify(event: &notify::Event, file_name: &OsString, dir: &Path) -> Option<FileChange> {
    if event.need_rescan() || event.paths.is_empty() {
        return Some(FileChange::Replaced);
    }
    let is_config = |path: &PathBuf| path.file_name() == Some(file_name.as_os_str());
    let relevant = event.paths.iter().any(|path| {
        is_config(path)
            || path.as_path() == dir
            || path
                .file_name()
                .is_some_and(|name| name.as_encoded_bytes().starts_with(b".."))
    });
    if !relevant {
        return None;
    }
    let on_config = event.paths.iter().any(is_config);
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) if on_config => {
            Some(FileChange::Closed)
        }
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) if on_config => {
            Some(FileChange::Written)
        }
        EventKind::Modify(ModifyKind::Metadata(_)) if on_config => Some(FileChange::Touched),
        _ => Some(FileChange::Replaced),
    }
}

impl Actor for ConfigWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.arm(ctx);
        ctx.run_interval(self.settings.poll_interval, |watcher, ctx| {
            watcher.arm(ctx);
            watcher.check(Trigger::Poll, ctx);
        });
    }
}

impl Handler<FileSystemEvent> for ConfigWatcher {
    type Result = ();

    fn handle(&mut self, event: FileSystemEvent, ctx: &mut Self::Context) {
        match event.change {
            FileChange::Written => {
                self.writing_since.get_or_insert_with(Instant::now);
            }
            // Closed after writing, or replaced by another inode: no write is open on it now.
            FileChange::Closed | FileChange::Replaced => self.writing_since = None,
            FileChange::Touched => {}
        }
        self.candidate = None;
        // Each event restarts the quiet period, but a burst may postpone the check by at most
        // `MAX_POSTPONE_FACTOR` debounce periods, so a config replaced over and over still
        // reloads. A burst of in-place writes is held by `writing_since`, not by this.
        let now = Instant::now();
        let started = *self.burst_started.get_or_insert(now);
        let cap = self.settings.debounce * MAX_POSTPONE_FACTOR;
        if self.pending.is_some() && now.duration_since(started) >= cap {
            return; // the pending check fires within one debounce period
        }
        if let Some(handle) = self.pending.take() {
            ctx.cancel_future(handle);
        }
        self.pending = Some(ctx.run_later(self.settings.debounce, |watcher, ctx| {
            watcher.pending = None;
            watcher.burst_started = None;
            watcher.check(Trigger::Settled, ctx);
        }));
    }
}

impl Handler<ForceReload> for ConfigWatcher {
    type Result = ();

    fn handle(&mut self, _: ForceReload, ctx: &mut Self::Context) {
        tracing::info!(path = %self.path.display(), "reload requested");
        self.check(Trigger::Forced, ctx);
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, MetadataKind, RenameMode};
    use notify::Event;

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    fn classify_in_conf(kind: EventKind, path: &str) -> Option<FileChange> {
        classify(
            &event(kind, path),
            &OsString::from("gateway.yaml"),
            Path::new("/conf"),
        )
    }

    #[test]
    fn events_for_other_files_and_reads_are_dropped() {
        let written = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        assert_eq!(classify_in_conf(written, "/conf/gateway.log"), None);
        assert_eq!(classify_in_conf(written, "/conf/gateway.yaml.tmp"), None);
        // The watcher's own reads of the config: open, close without writing.
        let opened = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert_eq!(classify_in_conf(opened, "/conf/gateway.yaml"), None);
        assert_eq!(classify_in_conf(read, "/conf/gateway.yaml"), None);
    }

    #[test]
    fn in_place_writes_are_told_from_replacements() {
        let written = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let touched = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
        let config = "/conf/gateway.yaml";
        assert_eq!(classify_in_conf(written, config), Some(FileChange::Written));
        assert_eq!(classify_in_conf(closed, config), Some(FileChange::Closed));
        assert_eq!(
            classify_in_conf(renamed, config),
            Some(FileChange::Replaced)
        );
        assert_eq!(classify_in_conf(touched, config), Some(FileChange::Touched));
        // Kubernetes swaps `..data`; a removed directory reports itself; a rescan names nothing.
        let created = EventKind::Create(CreateKind::Any);
        assert_eq!(
            classify_in_conf(renamed, "/conf/..data"),
            Some(FileChange::Replaced)
        );
        assert_eq!(
            classify_in_conf(created, "/conf/..data_tmp"),
            Some(FileChange::Replaced)
        );
        assert_eq!(
            classify_in_conf(EventKind::Remove(notify::event::RemoveKind::Any), "/conf"),
            Some(FileChange::Replaced)
        );
        assert_eq!(
            classify(
                &Event::new(EventKind::Any),
                &OsString::from("gateway.yaml"),
                Path::new("/conf")
            ),
            Some(FileChange::Replaced)
        );
    }
}
