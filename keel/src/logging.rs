//! Tracing setup shared by the binaries: `RUST_LOG` if set, else the binary's default level,
//! to stderr (stdout is for the command's output); warnings and errors also go to the
//! process's [`LogTail`], which Autopilot's collection service gathers. Operators raise the
//! stderr level for a while with the v1 operator API's `SET_LOGGING_LEVEL`
//! ([`libactor::log_level`]): level 1 adds debug events, 2 and more trace events, to what the
//! process logs; 0 is what it was started with.

use autopilot::log_tail::LogTail;
use tracing_subscriber::layer::{Layer as _, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter};

/// Installs a stderr subscriber at `default` level (e.g. `"info"`, `"warn"`), and the
/// process's logging level control.
pub fn init(default: &str) {
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|d| EnvFilter::try_new(d).is_ok())
        .unwrap_or_else(|| default.to_owned());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&directives));
    let installed = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        // Filtered here too, so that debug events stay as cheap as the stderr filter makes them.
        .with(
            LogTail::global()
                .layer()
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        )
        .try_init();
    if installed.is_ok() {
        libactor::log_level::install(Box::new(move |level| {
            handle
                .reload(EnvFilter::new(at_level(&directives, level)))
                .map_err(|e| e.to_string())
        }));
    }
}

/// `directives` at operator level `level`: as given at 0; above, the default level becomes
/// debug (1) or trace (2 and more), and only the directives naming a target stay.
fn at_level(directives: &str, level: u32) -> String {
    let default = match level {
        0 => return directives.to_owned(),
        1 => "debug",
        _ => "trace",
    };
    directives
        .split(',')
        .filter(|d| d.contains('='))
        .chain(std::iter::once(default))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_raises_the_default_and_keeps_the_targets() {
        let given = "warn,libactor::transport=error";
        assert_eq!(at_level(given, 0), given);
        assert_eq!(at_level(given, 1), "libactor::transport=error,debug");
        assert_eq!(at_level(given, 3), "libactor::transport=error,trace");
        assert_eq!(at_level("info", 2), "trace");
    }
}
