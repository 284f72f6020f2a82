//! How binaries name the master: `host:port` or a full pid `master@host:port`.

use libactor::{Upid, UpidError};

/// The master's pid from `host:port` (the process is `master`) or `id@host:port`.
pub fn master_pid(text: &str) -> Result<Upid, UpidError> {
    if text.contains('@') {
        text.parse()
    } else {
        format!("master@{text}").parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_and_full_pids_both_work() {
        assert_eq!(
            master_pid("127.0.0.1:5050").unwrap().to_string(),
            "master@127.0.0.1:5050"
        );
        assert_eq!(master_pid("m@127.0.0.1:1").unwrap().id(), "m");
        assert!(master_pid("no-port").is_err());
    }
}
