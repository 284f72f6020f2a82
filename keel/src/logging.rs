//! Tracing setup shared by the binaries: `RUST_LOG` if set, else the binary's default level,
//! to stderr (stdout is for the command's output).

use tracing_subscriber::EnvFilter;

/// Installs a stderr subscriber at `default` level (e.g. `"info"`, `"warn"`).
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
