//! `zk://host:port[,host:port…]/path`: where a ZooKeeper ensemble is and the znode under which
//! Keel keeps its election and registry (Mesos's `--zk` flag).

use std::fmt;
use std::str::FromStr;

use crate::CoordinationError;

/// A parsed `zk://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkUrl {
    /// `host:port,host:port`, as the client connects to it.
    pub servers: String,
    /// The base znode, absolute, without a trailing slash (e.g. `/keel`).
    pub path: String,
}

impl ZkUrl {
    /// `{path}/{child}`.
    pub fn child(&self, child: &str) -> String {
        format!("{}/{child}", self.path)
    }

    /// `{path}-{suffix}`: a znode beside the election's, not in it (`/keel` → `/keel-registry`;
    /// the root `/` → `/keel-registry`). Mesos clients read every child of the election path
    /// but `log_replicas` as a master, so nothing else may live there.
    pub fn sibling(&self, suffix: &str) -> String {
        if self.path == "/" || self.path.is_empty() {
            format!("/keel-{suffix}")
        } else {
            format!("{}-{suffix}", self.path)
        }
    }
}

impl FromStr for ZkUrl {
    type Err = CoordinationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| CoordinationError::BadUrl(format!("{s:?}: {why}"));
        let rest = s
            .strip_prefix("zk://")
            .ok_or_else(|| bad("expected zk://host:port[,host:port…]/path"))?;
        let (servers, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no znode path after the servers"))?;
        if servers.is_empty() {
            return Err(bad("no servers"));
        }
        for server in servers.split(',') {
            let (host, port) = server
                .rsplit_once(':')
                .ok_or_else(|| bad("each server needs host:port"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad("each server needs host:port"));
            }
        }
        let path = format!("/{}", path.trim_end_matches('/'));
        if path == "/" || path.contains("//") {
            return Err(bad("the znode path must name a node, e.g. /keel"));
        }
        Ok(ZkUrl {
            servers: servers.to_owned(),
            path,
        })
    }
}

impl fmt::Display for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zk://{}{}", self.servers, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_servers_and_path() {
        let url: ZkUrl = "zk://127.0.0.1:2181,127.0.0.2:2182/keel/prod/"
            .parse()
            .unwrap();
        assert_eq!(url.servers, "127.0.0.1:2181,127.0.0.2:2182");
        assert_eq!(url.path, "/keel/prod");
        assert_eq!(url.child("json.info_"), "/keel/prod/json.info_");
        assert_eq!(
            url.to_string(),
            "zk://127.0.0.1:2181,127.0.0.2:2182/keel/prod"
        );
    }

    #[test]
    fn refuses_what_is_not_a_zk_url() {
        for bad in [
            "127.0.0.1:2181/keel",
            "zk://127.0.0.1:2181",
            "zk:///keel",
            "zk://127.0.0.1/keel",
            "zk://127.0.0.1:99999/keel",
            "zk://127.0.0.1:2181/",
            "zk://127.0.0.1:2181/a//b",
        ] {
            assert!(bad.parse::<ZkUrl>().is_err(), "{bad}");
        }
    }
}
