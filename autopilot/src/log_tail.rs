//! The newest warning and error log lines of this OS process, kept in a bounded ring for the
//! collection service (Autopilot, Isard 2007: the cockpit shows machines' recent errors). Installed as a
//! `tracing` layer by the binaries; the watchdog service serves it at `/watchdog/log`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Lines kept.
pub const MAX_LINES: usize = 200;
/// Longest line kept.
const MAX_LINE: usize = 512;

/// The ring of recent WARN and ERROR lines.
#[derive(Debug, Clone, Default)]
pub struct LogTail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl LogTail {
    /// The process's one tail (what [`LogTail::layer`] feeds).
    pub fn global() -> &'static LogTail {
        static TAIL: OnceLock<LogTail> = OnceLock::new();
        TAIL.get_or_init(LogTail::default)
    }

    /// A `tracing` layer feeding this tail.
    pub fn layer(&self) -> TailLayer {
        TailLayer { tail: self.clone() }
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn push(&self, line: String) {
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() == MAX_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }
}

/// Feeds a [`LogTail`] with WARN and ERROR events.
pub struct TailLayer {
    tail: LogTail,
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?} ");
        } else {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for TailLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut fields = Fields(format!("{level} {}: ", event.metadata().target()));
        event.record(&mut fields);
        let mut line = fields.0.trim_end().to_owned();
        if line.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        self.tail.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_warnings_and_errors_only_and_bounds_them() {
        let tail = LogTail::default();
        let subscriber = tracing_subscriber::registry().with(tail.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(disk = "sda", "slow disk");
            for i in 0..MAX_LINES {
                tracing::error!(i, "failed");
            }
        });
        let lines = tail.lines();
        assert_eq!(lines.len(), MAX_LINES);
        assert!(
            lines.iter().all(|l| l.starts_with("ERROR")),
            "the oldest went first"
        );
        assert!(lines[MAX_LINES - 1].contains("failed i=199"), "{lines:?}");
    }
}
