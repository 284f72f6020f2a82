//! Duration flags, parsed by one type: a number of seconds (`10`, `2.5`, as every
//! `--…-seconds` flag always took) or a number with a unit (`250ms`, `10s`, `2m`, `1h`, `1d`).
//! Each flag states its range where it is declared, with [`between`]; anything outside it,
//! negative, not a number or infinite is refused by the flag parser with the flag's range in
//! the message.
//!
//! ```
//! use keel::duration_flag::Seconds;
//! use std::time::Duration;
//! assert_eq!("2m".parse::<Seconds>().unwrap().0, Duration::from_secs(120));
//! assert_eq!("0.5".parse::<Seconds>().unwrap().0, Duration::from_millis(500));
//! assert!("-1".parse::<Seconds>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration given on the command line (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub Duration);

/// The longest duration any flag takes: ten years, so that no sum overflows a clock.
pub const MAX_FLAG_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Seconds, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let scale = match unit {
            "" | "s" => 1.0,
            "ms" => 0.001,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            other => return Err(format!("unknown unit {other:?} (use ms, s, m, h or d)")),
        };
        let value: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a duration (e.g. 10, 2.5s, 250ms, 2m)"))?;
        let secs = value * scale;
        if !secs.is_finite() || secs < 0.0 || secs > MAX_FLAG_DURATION.as_secs_f64() {
            return Err(format!(
                "{text:?} is not a duration between 0 and ten years"
            ));
        }
        Ok(Seconds(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs_f64();
        if secs.fract() == 0.0 {
            write!(f, "{}s", self.0.as_secs())
        } else {
            write!(f, "{secs}s")
        }
    }
}

impl From<Duration> for Seconds {
    fn from(d: Duration) -> Seconds {
        Seconds(d)
    }
}

/// A flag parser taking durations from `min` to `max` (inclusive), for clap's
/// `value_parser`.
pub fn between(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Seconds, String> + Clone + Send + Sync + 'static {
    move |text| {
        let d: Seconds = text.parse()?;
        if d.0 < min || d.0 > max {
            return Err(format!(
                "{text:?} is not between {} and {}",
                Seconds(min),
                Seconds(max)
            ));
        }
        Ok(d)
    }
}

/// [`between`] for the common case: more than zero (at least a millisecond), at most a day.
pub fn positive_up_to_a_day() -> impl Fn(&str) -> Result<Seconds, String> + Clone + Send + Sync {
    between(Duration::from_millis(1), Duration::from_secs(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_seconds_and_units_parse() {
        for (text, want) in [
            ("10", Duration::from_secs(10)),
            ("2.5", Duration::from_millis(2500)),
            ("250ms", Duration::from_millis(250)),
            ("10s", Duration::from_secs(10)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86_400)),
            (" 3 ", Duration::from_secs(3)),
        ] {
            assert_eq!(text.parse::<Seconds>().unwrap().0, want, "{text}");
        }
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for text in ["", "-1", "NaN", "inf", "1e30", "5 parsecs", "m", "10x"] {
            let err = text.parse::<Seconds>().unwrap_err();
            assert!(!err.is_empty(), "{text}");
        }
    }

    #[test]
    fn ranges_are_checked_and_said() {
        let parse = between(Duration::from_secs(1), Duration::from_secs(600));
        assert_eq!(parse("1").unwrap().0, Duration::from_secs(1));
        assert_eq!(parse("10m").unwrap().0, Duration::from_secs(600));
        assert_eq!(
            parse("0.5").unwrap_err(),
            "\"0.5\" is not between 1s and 600s"
        );
        assert!(parse("11m").is_err());
    }

    #[test]
    fn defaults_print_as_they_parse() {
        for d in [Duration::from_secs(75), Duration::from_millis(2500)] {
            let shown = Seconds(d).to_string();
            assert_eq!(shown.parse::<Seconds>().unwrap().0, d, "{shown}");
        }
    }
}
