//! Task health checks, run by the agent for the command tasks it executes (Mesos's command
//! executor does the same): a command (`sh -c` in the sandbox, exit 0 is healthy), a TCP
//! connect or an HTTP GET against the task on 127.0.0.1, every `interval`, each bounded by
//! `timeout`, after an initial `delay`. Failures within the `grace_period` of the task's start
//! do not count until it has once been healthy; `consecutive_failures` in a row make it
//! unhealthy for good, and the agent kills it.
//!
//! ```text
//!  unknown ──pass──▶ healthy ──fail──▶ unhealthy (RUNNING, healthy=false) ──fail × N──▶ killed
//!     └──fail (after grace)──▶ unhealthy ◀──pass── (back to healthy)
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use protos::v1::health_check::Type;
use protos::v1::HealthCheck;

/// Mesos's defaults.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(15);
/// Between checks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// One check's bound.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Failures in a row that make a task unhealthy for good.
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 3;
/// Failures that do not count at the start.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// Shortest interval accepted (checks are real work on the agent).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A validated health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheckSpec {
    /// What is checked.
    pub probe: Probe,
    /// Before the first check.
    pub delay: Duration,
    /// Between checks.
    pub interval: Duration,
    /// One check's bound.
    pub timeout: Duration,
    /// Failures in a row before the task is killed.
    pub consecutive_failures: u32,
    /// Failures that do not count at the start.
    pub grace_period: Duration,
}

/// What a check does.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// `sh -c` in the sandbox; exit 0 is healthy.
    Command(String),
    /// A TCP connect to 127.0.0.1:port.
    Tcp(u16),
    /// `GET http://127.0.0.1:port/path`; a status in `statuses` (or 200..=399) is healthy.
    Http {
        /// The port.
        port: u16,
        /// The path.
        path: String,
        /// Healthy statuses; empty: 200..=399.
        statuses: Vec<u16>,
    },
}

fn seconds(value: Option<f64>, default: Duration, name: &str) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(s) if (0.0..1e9).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(format!("{name} {s} is not a number of seconds")),
    }
}

impl HealthCheckSpec {
    /// Validates a task's `HealthCheck`; the error says what is wrong.
    pub fn from_proto(check: &HealthCheck) -> Result<HealthCheckSpec, String> {
        let port = |p: u32| u16::try_from(p).ok().filter(|p| *p > 0);
        let probe = match check.r#type() {
            Type::Command => {
                let value = check.command.as_ref().map(|c| c.value.trim()).unwrap_or("");
                if value.is_empty() {
                    return Err("a COMMAND health check needs command.value".into());
                }
                Probe::Command(value.to_owned())
            }
            Type::Tcp => Probe::Tcp(
                check
                    .tcp
                    .as_ref()
                    .and_then(|t| port(t.port))
                    .ok_or("a TCP health check needs tcp.port (1-65535)")?,
            ),
            Type::Http => {
                let http = check
                    .http
                    .as_ref()
                    .ok_or("an HTTP health check needs http")?;
                let path = if http.path.is_empty() {
                    "/".to_owned()
                } else if http.path.starts_with('/') {
                    http.path.clone()
                } else {
                    format!("/{}", http.path)
                };
                Probe::Http {
                    port: port(http.port)
                        .ok_or("an HTTP health check needs http.port (1-65535)")?,
                    path,
                    statuses: http
                        .statuses
                        .iter()
                        .filter_map(|s| u16::try_from(*s).ok())
                        .collect(),
                }
            }
            Type::Unknown => return Err("health check type is not COMMAND, TCP or HTTP".into()),
        };
        let interval = seconds(check.interval_seconds, DEFAULT_INTERVAL, "interval_seconds")?;
        if interval < MIN_INTERVAL {
            return Err(format!(
                "interval_seconds must be at least {MIN_INTERVAL:?}"
            ));
        }
        Ok(HealthCheckSpec {
            probe,
            delay: seconds(check.delay_seconds, DEFAULT_DELAY, "delay_seconds")?,
            interval,
            timeout: seconds(check.timeout_seconds, DEFAULT_TIMEOUT, "timeout_seconds")?,
            consecutive_failures: check
                .consecutive_failures
                .unwrap_or(DEFAULT_CONSECUTIVE_FAILURES)
                .max(1),
            grace_period: seconds(
                check.grace_period_seconds,
                DEFAULT_GRACE_PERIOD,
                "grace_period_seconds",
            )?,
        })
    }
}

/// Runs one check; `Err` says why the task is not healthy. The timeout is real time: a check
/// is real work against a real process.
pub async fn check(probe: Probe, timeout: Duration, sandbox: PathBuf) -> Result<(), String> {
    match tokio::time::timeout(timeout, run(probe, &sandbox)).await {
        Ok(result) => result,
        Err(_) => Err(format!("health check timed out after {timeout:?}")),
    }
}

async fn run(probe: Probe, sandbox: &Path) -> Result<(), String> {
    match probe {
        Probe::Command(command) => {
            let status = tokio::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&command)
                .current_dir(sandbox)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| format!("health check command did not start: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("health check command {command:?} {status}"))
            }
        }
        Probe::Tcp(port) => tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map(drop)
            .map_err(|e| format!("TCP health check of port {port}: {e}")),
        Probe::Http {
            port,
            path,
            statuses,
        } => {
            let status = http_status(port, &path).await?;
            let ok = if statuses.is_empty() {
                (200..400).contains(&status)
            } else {
                statuses.contains(&status)
            };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "HTTP health check GET :{port}{path} answered {status}"
                ))
            }
        }
    }
}

async fn http_status(port: u16, path: &str) -> Result<u16, String> {
    let address = format!("127.0.0.1:{port}");
    crate::http_get::get(&address, &address, path)
        .await
        .map(|response| response.status().as_u16())
        .map_err(|e| format!("HTTP health check GET :{port}{path}: {e}"))
}

/// Where a task's health stands, and what the agent should do about a check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    /// Last reported health; none before the first report.
    pub healthy: Option<bool>,
    /// Failures in a row.
    pub consecutive_failures: u32,
}

/// What to do after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthAction {
    /// Nothing changed that the framework needs to hear.
    None,
    /// Report TASK_RUNNING with this health.
    Report(bool),
    /// Unhealthy too many times: kill the task.
    Kill,
}

impl HealthState {
    /// A task not checked yet.
    pub fn new() -> HealthState {
        HealthState {
            healthy: None,
            consecutive_failures: 0,
        }
    }

    /// The transition for one check's result, `since_start` after the task started.
    pub fn after(
        &mut self,
        spec: &HealthCheckSpec,
        passed: bool,
        since_start: Duration,
    ) -> HealthAction {
        if passed {
            self.consecutive_failures = 0;
            if self.healthy == Some(true) {
                return HealthAction::None;
            }
            self.healthy = Some(true);
            return HealthAction::Report(true);
        }
        if self.healthy.is_none() && since_start < spec.grace_period {
            return HealthAction::None;
        }
        self.consecutive_failures += 1;
        if self.consecutive_failures >= spec.consecutive_failures {
            self.healthy = Some(false);
            return HealthAction::Kill;
        }
        if self.healthy == Some(false) {
            return HealthAction::None;
        }
        self.healthy = Some(false);
        HealthAction::Report(false)
    }
}

impl Default for HealthState {
    fn default() -> Self {
        HealthState::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(failures: u32, grace: u64) -> HealthCheckSpec {
        HealthCheckSpec {
            probe: Probe::Tcp(1),
            delay: Duration::ZERO,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            consecutive_failures: failures,
            grace_period: Duration::from_secs(grace),
        }
    }

    #[test]
    fn the_state_machine_reports_changes_and_kills_after_the_threshold() {
        let s = spec(3, 10);
        let mut h = HealthState::new();
        let t = Duration::from_secs;
        assert_eq!(
            h.after(&s, false, t(1)),
            HealthAction::None,
            "in the grace period"
        );
        assert_eq!(h.after(&s, true, t(2)), HealthAction::Report(true));
        assert_eq!(h.after(&s, true, t(3)), HealthAction::None);
        assert_eq!(
            h.after(&s, false, t(4)),
            HealthAction::Report(false),
            "counts once healthy"
        );
        assert_eq!(h.after(&s, false, t(5)), HealthAction::None);
        assert_eq!(h.after(&s, false, t(6)), HealthAction::Kill);
        let mut back = HealthState::new();
        assert_eq!(back.after(&s, false, t(11)), HealthAction::Report(false));
        assert_eq!(back.after(&s, true, t(12)), HealthAction::Report(true));
        assert_eq!(back.consecutive_failures, 0);
    }

    #[test]
    fn checks_are_validated_with_reasons() {
        let mut c = HealthCheck {
            r#type: Type::Tcp as i32,
            ..Default::default()
        };
        assert!(HealthCheckSpec::from_proto(&c)
            .unwrap_err()
            .contains("tcp.port"));
        c.tcp = Some(protos::v1::health_check::TcpCheckInfo { port: 8080 });
        c.interval_seconds = Some(0.01);
        assert!(HealthCheckSpec::from_proto(&c)
            .unwrap_err()
            .contains("at least"));
        c.interval_seconds = Some(-1.0);
        assert!(HealthCheckSpec::from_proto(&c).is_err());
        c.interval_seconds = Some(2.0);
        let s = HealthCheckSpec::from_proto(&c).unwrap();
        assert_eq!(s.probe, Probe::Tcp(8080));
        assert_eq!(s.interval, Duration::from_secs(2));
        assert_eq!(s.consecutive_failures, DEFAULT_CONSECUTIVE_FAILURES);
        let unknown = HealthCheck::default();
        assert!(HealthCheckSpec::from_proto(&unknown).is_err());
    }

    #[tokio::test]
    async fn probes_check_real_commands_ports_and_http() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = dir.path().to_owned();
        std::fs::write(sandbox.join("flag"), "").unwrap();
        let t = Duration::from_secs(5);
        assert!(
            check(Probe::Command("test -f flag".into()), t, sandbox.clone())
                .await
                .is_ok()
        );
        let err = check(Probe::Command("test -f nope".into()), t, sandbox.clone())
            .await
            .unwrap_err();
        assert!(err.contains("exit status: 1"), "{err}");
        let slow = check(
            Probe::Command("sleep 5".into()),
            Duration::from_millis(50),
            sandbox.clone(),
        )
        .await
        .unwrap_err();
        assert!(slow.contains("timed out"), "{slow}");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut c, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let status = if String::from_utf8_lossy(&buf[..n]).starts_with("GET /ok ") {
                    "200 OK"
                } else {
                    "503 Unavailable"
                };
                let _ = c
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        assert!(check(Probe::Tcp(port), t, sandbox.clone()).await.is_ok());
        let http = |path: &str, statuses: Vec<u16>| Probe::Http {
            port,
            path: path.into(),
            statuses,
        };
        assert!(check(http("/ok", vec![]), t, sandbox.clone()).await.is_ok());
        let bad = check(http("/down", vec![]), t, sandbox.clone())
            .await
            .unwrap_err();
        assert!(bad.contains("503"), "{bad}");
        assert!(check(http("/down", vec![503]), t, sandbox.clone())
            .await
            .is_ok());
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(check(Probe::Tcp(closed_port), t, sandbox).await.is_err());
    }
}
