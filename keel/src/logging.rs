//! Tracing setup shared by the binaries: `RUST_LOG` if set, else the binary's default level,
//! to stderr (stdout is for the command's output); warnings and errors also go to the
//! process's [`LogTail`], which Autopilot's collection service gathers.

use autopilot::log_tail::LogTail;
use tracing_subscriber::layer::{Layer as _, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs a stderr subscriber at `default` level (e.g. `"info"`, `"warn"`).
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::registry()
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
}
