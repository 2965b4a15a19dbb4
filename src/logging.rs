//! Log output: text or JSON lines on stderr, filtered by the settings' level or `RUST_LOG`.
//! Text lines escape control characters in every field value, so upstream text can neither start
//! a forged log line nor send escape sequences to a terminal.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;
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
        // JSON strings already escape every control character.
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.fmt_fields(EscapedFields).try_init(),
    };
    guard
}

/// Text-log fields in tracing-subscriber's default layout (`message` bare, then `name=value`,
/// space-separated), with every control character in a value written as an escape (`\n`,
/// `\r`, `\t`, `\u{1b}`, ...). Upstream error text reaches log messages, and a raw newline in
/// it would forge a whole log line (an access line with another status, say); a raw ESC would
/// drive the terminal of whoever tails the log. The default formatter only escapes ANSI in the
/// `message`, and not newlines.
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.finish()
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Metadata of records from the `log` crate, already shown as the event's target.
        if name.starts_with("log.") {
            return;
        }
        let mut out = Escaping(&mut self.writer);
        self.result = (|| {
            if !self.first {
                out.0.write_char(' ')?;
            }
            if name != "message" {
                out.0.write_str(name.strip_prefix("r#").unwrap_or(name))?;
                out.0.write_char('=')?;
            }
            out.write_fmt(value)
        })();
        self.first = false;
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            // Quoted, as the default formatter writes string fields.
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for EscapingVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

/// Writes through to `0`, escaping control characters (C0, DEL and C1) on the way.
struct Escaping<'a, 'writer>(&'a mut Writer<'writer>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let mut chars = rest[at..].chars();
            if let Some(control) = chars.next() {
                write!(self.0, "{}", control.escape_debug())?;
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text_log(ansi: bool, log: impl FnOnce()) -> String {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(ansi)
            .without_time()
            .fmt_fields(EscapedFields)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = capture.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn control_characters_in_every_value_are_escaped() {
        let hostile = "boom\n2026-01-01T00:00:00Z INFO switchyard::access: status=200 fake\r\x1b[31mred\x07\u{9b}";
        for ansi in [false, true] {
            let out = text_log(ansi, || {
                let _span = tracing::info_span!("request", id = %hostile).entered();
                tracing::warn!(display = %hostile, debug = ?hostile, text = hostile, "failed: {hostile}");
            });
            assert_eq!(out.matches('\n').count(), 1, "one line: {out:?}");
            assert!(out.ends_with('\n'), "{out:?}");
            let line = out.trim_end_matches('\n');
            assert!(
                !line.chars().any(|c| c.is_control() && c != '\x1b'),
                "{line:?}"
            );
            if !ansi {
                assert!(!line.contains('\x1b'), "{line:?}");
            }
            // Each of the four values and the span field, escaped.
            assert_eq!(line.matches("boom\\n2026-01-01").count(), 5, "{line:?}");
            assert!(line.contains("\\u{1b}[31mred\\u{7}\\u{9b}"), "{line:?}");
        }
    }

    #[test]
    fn plain_values_keep_the_default_layout() {
        let out = text_log(false, || {
            tracing::info!(status = 200, path = %"/v1/chat", kind = "x", "request");
        });
        assert!(
            out.ends_with("request status=200 path=/v1/chat kind=\"x\"\n"),
            "{out:?}"
        );
    }
}
