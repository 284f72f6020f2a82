//! The process's logging verbosity, as Mesos operators change it (`SET_LOGGING_LEVEL`,
//! `GET_LOGGING_LEVEL`): a level for a while, then back to 0. Level 0 is the logging the
//! process was started with; what a higher level means is up to the process (Keel's binaries:
//! 1 adds debug events, 2 and more trace events).
//!
//! Logging belongs to the process, not to a node, so the level does too. The binary says how
//! to apply a level ([`install`]); in a process that installed nothing (a library user, a
//! test) the level stays 0 and a change is refused.
//!
//! ```
//! use std::time::Duration;
//! use libactor::log_level::{self, LogLevelError};
//!
//! // Nothing installed in this process: the level is 0 and cannot change.
//! assert_eq!(log_level::level(), 0);
//! let refused = log_level::set_for(1, Duration::from_secs(60));
//! assert!(matches!(refused, Err(LogLevelError::NotInstalled)));
//! ```

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Applies a level to the process's logging.
pub type Apply = Box<dyn Fn(u32) -> Result<(), String> + Send + Sync>;

/// The longest a level may be set for (Mesos bounds it by nothing; a forgotten trace level
/// would fill a disk).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a level was not set.
#[derive(Debug, thiserror::Error)]
pub enum LogLevelError {
    /// The process installed no way to change its logging.
    #[error("this process's logging level cannot be changed")]
    NotInstalled,
    /// The duration is zero or over [`MAX_DURATION`].
    #[error("the duration must be positive and at most {MAX_DURATION:?}, not {0:?}")]
    Duration(Duration),
    /// Applying the level failed.
    #[error("cannot apply the logging level: {0}")]
    Apply(String),
}

impl LogLevelError {
    /// The HTTP status an operator API answers this with.
    pub fn http_status(&self) -> u16 {
        match self {
            LogLevelError::NotInstalled => 501,
            LogLevelError::Duration(_) => 400,
            LogLevelError::Apply(_) => 500,
        }
    }
}

struct Control {
    apply: Apply,
    /// The level set now, and which setting it is (a later one outlives an earlier one's
    /// expiry).
    state: Mutex<(u32, u64)>,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

/// Installs how this process applies a level; false if one was installed already (the first
/// stays).
pub fn install(apply: Apply) -> bool {
    CONTROL
        .set(Control {
            apply,
            state: Mutex::new((0, 0)),
        })
        .is_ok()
}

/// The level set now (0 when none is, or nothing is installed).
pub fn level() -> u32 {
    CONTROL.get().map_or(0, |c| c.state().0)
}

impl Control {
    fn state(&self) -> std::sync::MutexGuard<'_, (u32, u64)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sets `level` for `duration`, then 0 again, unless another level was set meanwhile (whose
/// own duration then counts). Must be called within a Tokio runtime (the return to 0 is a
/// task on it).
pub fn set_for(level: u32, duration: Duration) -> Result<(), LogLevelError> {
    let control = CONTROL.get().ok_or(LogLevelError::NotInstalled)?;
    if duration.is_zero() || duration > MAX_DURATION {
        return Err(LogLevelError::Duration(duration));
    }
    let setting = {
        let mut state = control.state();
        (control.apply)(level).map_err(LogLevelError::Apply)?;
        state.0 = level;
        state.1 += 1;
        state.1
    };
    tracing::info!(level, ?duration, "logging level set");
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        let mut state = control.state();
        if state.1 == setting {
            match (control.apply)(0) {
                Ok(()) => state.0 = 0,
                Err(e) => tracing::warn!(error = %e, "cannot restore the logging level"),
            }
        }
    });
    Ok(())
}

/// [`set_for`] as a v1 operator call gives it: a duration in nanoseconds (not positive: refused).
pub fn set_for_nanoseconds(level: u32, nanoseconds: i64) -> Result<(), LogLevelError> {
    let duration = u64::try_from(nanoseconds).map_or(Duration::ZERO, Duration::from_nanos);
    set_for(level, duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// One test installs: the control is the process's.
    #[tokio::test(start_paused = true)]
    async fn a_level_lasts_its_duration_and_a_later_one_outlives_it() {
        let applied = Arc::new(Mutex::new(Vec::new()));
        let seen = applied.clone();
        assert!(install(Box::new(move |level| {
            seen.lock().unwrap().push(level);
            Ok(())
        })));
        assert!(!install(Box::new(|_| Ok(()))), "the first installed stays");
        assert!(matches!(
            set_for(1, Duration::ZERO),
            Err(LogLevelError::Duration(_))
        ));
        assert!(matches!(
            set_for(1, MAX_DURATION * 2),
            Err(LogLevelError::Duration(_))
        ));

        set_for(1, Duration::from_secs(10)).unwrap();
        assert_eq!(level(), 1);
        tokio::time::sleep(Duration::from_secs(5)).await;
        // A second setting before the first expires: the first's expiry leaves it alone.
        set_for(2, Duration::from_secs(10)).unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(level(), 2);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(level(), 0);
        assert_eq!(*applied.lock().unwrap(), vec![1, 2, 0]);
    }
}
