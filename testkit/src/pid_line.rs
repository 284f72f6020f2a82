//! The start-up handshake every Keel daemon and test node follows: its first stdout line is
//! `<word> <pid>` (`master master@127.0.0.1:40123`, `READY echo@…`), printed once it listens.
//! One parser for it, so that tests, fixtures and benchmarks agree on what "started" means.

use std::time::Duration;

use tokio::io::{AsyncBufRead, Lines};

/// Why a child's first line did not name its pid.
#[derive(Debug, thiserror::Error)]
pub enum PidLineError {
    /// Nothing within the time allowed.
    #[error("no first line within {0:?}")]
    Timeout(Duration),
    /// Its stdout closed first (the child exited).
    #[error("the child exited before printing its pid")]
    Closed,
    /// Reading its stdout failed.
    #[error("reading the child's stdout: {0}")]
    Io(#[from] std::io::Error),
    /// The line is not `<word> <pid>` with the expected word.
    #[error("expected a first line `{expected} <pid>`, got {line:?}")]
    Unexpected {
        /// The word the caller expected (or `<word>` for any).
        expected: String,
        /// What arrived.
        line: String,
    },
}

/// Reads the next line of `lines` (within `limit`) as `<word> <pid>` and returns the pid's
/// text; `word` is checked when given.
pub async fn read_pid_line<R>(
    lines: &mut Lines<R>,
    word: Option<&str>,
    limit: Duration,
) -> Result<String, PidLineError>
where
    R: AsyncBufRead + Unpin,
{
    let line = tokio::time::timeout(limit, lines.next_line())
        .await
        .map_err(|_| PidLineError::Timeout(limit))??
        .ok_or(PidLineError::Closed)?;
    parse_pid_line(&line, word).map(str::to_owned)
}

/// The pid in `line` (`<word> <pid>`), checking `word` when given.
pub fn parse_pid_line<'a>(line: &'a str, word: Option<&str>) -> Result<&'a str, PidLineError> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(w), Some(pid), None) if word.is_none_or(|expected| expected == w) => Ok(pid),
        _ => Err(PidLineError::Unexpected {
            expected: word.unwrap_or("<word>").to_owned(),
            line: line.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    #[test]
    fn takes_the_pid_after_the_expected_word() {
        assert_eq!(
            parse_pid_line("master master@127.0.0.1:5050", Some("master")).unwrap(),
            "master@127.0.0.1:5050"
        );
        assert_eq!(
            parse_pid_line("READY echo@127.0.0.1:1", None).unwrap(),
            "echo@127.0.0.1:1"
        );
    }

    #[test]
    fn refuses_another_word_or_shape() {
        assert!(parse_pid_line("agent slave(1)@127.0.0.1:1", Some("master")).is_err());
        assert!(parse_pid_line("master", None).is_err());
        assert!(parse_pid_line("master a b", None).is_err());
    }

    #[tokio::test]
    async fn a_closed_stdout_is_not_a_pid() {
        let mut lines = tokio::io::BufReader::new(&b""[..]).lines();
        let err = read_pid_line(&mut lines, None, Duration::from_secs(1)).await;
        assert!(matches!(err, Err(PidLineError::Closed)), "{err:?}");
    }
}
