//! Log output: text or JSON lines on stderr, filtered by the settings' level or `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// Keeps the log writer thread alive; logs written before it drops are flushed.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// Lines the writer thread's queue holds before a worker waits for it. The queue is allocated
/// and initialised whole at start, so tracing-appender's default (128,000 lines, 4 MiB) would be
/// a quarter of an idle gateway's memory; 8,192 lines still absorb a burst of access lines much
/// longer than one `write(2)` takes.
const LOG_QUEUE_LINES: usize = 8192;

/// notify logs every inotify event at trace. With the log written into the config's directory,
/// each such line is itself an event: a loop that never ends. So its trace lines are dropped
/// unless the filter names notify explicitly.
fn cap_notify(filter: EnvFilter, settings: &LogSettings) -> EnvFilter {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| settings.level.clone());
    if spec.contains("notify") {
        return filter;
    }
    match "notify=debug".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// Installs the subscriber. Lines are handed to a writer thread, so a worker never blocks on a
/// `write(2)` to stderr per request; the writer applies backpressure rather than dropping lines.
pub fn init(settings: &LogSettings) -> LogGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .lossy(false)
        .finish(std::io::stderr());
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = cap_notify(filter, settings);
    // Colours only on a terminal: log files and collectors must get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests embedding the server) is harmless; ignore its error.
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}
