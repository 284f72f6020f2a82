//! Mesos's text form of a duration (`10secs`, `15mins`, `500ms`): what its flags, its
//! executors' environment (`MESOS_RECOVERY_TIMEOUT`) and libprocess's `/logging/toggle` take.

use std::time::Duration;

/// Reads a Mesos duration: a number and one of `weeks`, `days`, `hrs`, `mins`, `secs`, `ms`,
/// `us`, `ns`. `None` for anything else, a negative number or one too large for a
/// [`Duration`].
pub fn parse_mesos_duration(text: &str) -> Option<Duration> {
    // "mins" ends in "ns": the longer units are tried first.
    let units = [
        ("weeks", 604800.0),
        ("days", 86400.0),
        ("hrs", 3600.0),
        ("mins", 60.0),
        ("secs", 1.0),
        ("ms", 1e-3),
        ("us", 1e-6),
        ("ns", 1e-9),
    ];
    let (number, scale) = units
        .iter()
        .find_map(|(unit, scale)| Some((text.strip_suffix(unit)?, *scale)))?;
    let seconds = number.trim().parse::<f64>().ok()? * scale;
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_durations_read_as_mesos_writes_them() {
        assert_eq!(parse_mesos_duration("2secs"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_mesos_duration("15mins"),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            parse_mesos_duration("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_mesos_duration("1hrs"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_mesos_duration("2"), None);
        assert_eq!(parse_mesos_duration("-1secs"), None);
        assert_eq!(parse_mesos_duration("1e300weeks"), None);
    }
}
