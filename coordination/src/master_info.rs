//! The leading master's description as contenders store it in ZooKeeper: JSON in Mesos's
//! shape (`id`, `ip` as a network-order u32, `port`, `pid` = `master@ip:port`, `hostname`,
//! `version`, `address {hostname, ip, port}`), so that tools reading Mesos's `json.info_`
//! znodes read Keel's too.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::CoordinationError;

/// One master's entry in the election.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterInfoJson {
    /// The master's id (unique per start).
    pub id: String,
    /// IPv4 address as Mesos stores it: the octets' network-order bytes read as a
    /// little-endian u32 (127.0.0.1 → 16777343).
    pub ip: u32,
    /// Port of its libactor node.
    pub port: u32,
    /// Its libactor pid, `master@ip:port`.
    pub pid: String,
    /// Host name.
    pub hostname: String,
    /// Keel version.
    pub version: String,
    /// Where to reach it.
    pub address: MasterAddress,
}

/// The `address` object of [`MasterInfoJson`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterAddress {
    /// Host name.
    pub hostname: String,
    /// Dotted IP.
    pub ip: String,
    /// Port.
    pub port: u32,
}

impl MasterInfoJson {
    /// The entry of the master whose process is `pid` (`master@ip:port`).
    pub fn new(id: &str, pid: &libactor::Upid, hostname: &str) -> Self {
        let ip_text = pid.host().to_string();
        let ip = ip_text
            .parse::<Ipv4Addr>()
            .map_or(0, |a| u32::from_le_bytes(a.octets()));
        MasterInfoJson {
            id: id.to_owned(),
            ip,
            port: u32::from(pid.port()),
            pid: pid.to_string(),
            hostname: hostname.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            address: MasterAddress {
                hostname: hostname.to_owned(),
                ip: ip_text,
                port: u32::from(pid.port()),
            },
        }
    }

    /// Parses a znode's data.
    pub fn from_json(data: &[u8]) -> Result<Self, CoordinationError> {
        serde_json::from_slice(data).map_err(|e| CoordinationError::BadMasterInfo(e.to_string()))
    }

    /// The znode's data.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and numbers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The master's libactor pid.
    pub fn upid(&self) -> Result<libactor::Upid, CoordinationError> {
        self.pid
            .parse()
            .map_err(|e: libactor::UpidError| CoordinationError::BadMasterInfo(e.to_string()))
    }

    /// `http://ip:port`, the base of its HTTP endpoints.
    pub fn http_base(&self) -> String {
        format!("http://{}:{}", self.address.ip, self.address.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_shape_round_trips() {
        let pid: libactor::Upid = "master@127.0.0.1:5050".parse().unwrap();
        let info = MasterInfoJson::new("m1", &pid, "box");
        assert_eq!(info.ip, 16777343);
        let json: serde_json::Value = serde_json::from_slice(&info.to_json()).unwrap();
        assert_eq!(json["pid"], "master@127.0.0.1:5050");
        assert_eq!(json["address"]["ip"], "127.0.0.1");
        assert_eq!(json["address"]["port"], 5050);
        let back = MasterInfoJson::from_json(&info.to_json()).unwrap();
        assert_eq!(back, info);
        assert_eq!(back.upid().unwrap(), pid);
        assert_eq!(back.http_base(), "http://127.0.0.1:5050");
        assert!(MasterInfoJson::from_json(b"{not json").is_err());
    }
}
