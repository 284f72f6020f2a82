//! The daemons' stdout lines (`master <pid>`, `leading …`, `slave <pid>`), which scripts and
//! tests read. A daemon outlives whoever reads them: once its stdout is closed (a supervisor or
//! a benchmark that stopped reading) a line is dropped, where `println!` would panic on the
//! broken pipe and take the daemon down.

/// Writes one line to stdout, ignoring a closed stdout.
#[macro_export]
macro_rules! announce {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}
