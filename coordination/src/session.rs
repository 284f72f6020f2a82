//! Opening a ZooKeeper session for Keel's coordination, and the parts of ZooKeeper's data
//! model every user here shares: the election's child names and making the base path.

use std::time::Duration;

use zookeeper_client as zk;

use crate::{CoordinationError, ZkUrl};

/// Prefix of every contender's znode (Mesos's): clients pick the lexically smallest child.
pub const ELECTION_PREFIX: &str = "json.info_";

/// Default ZooKeeper session timeout (Mesos's `--zk_session_timeout`, 10 s).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for one connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a session with `url`'s ensemble. Must run inside a tokio runtime that outlives the
/// session: the client's session task is spawned on it.
pub async fn connect(
    url: &ZkUrl,
    session_timeout: Duration,
) -> Result<zk::Client, CoordinationError> {
    let mut connector = zk::Client::connector();
    connector
        .session_timeout(session_timeout)
        .connection_timeout(CONNECT_TIMEOUT);
    tokio::time::timeout(CONNECT_TIMEOUT * 2, connector.connect(&url.servers))
        .await
        .map_err(|_| CoordinationError::Unreachable(url.to_string()))?
        .map_err(|e| CoordinationError::zk("connect to", &url.servers, e))
}

/// Ends `session` at the server now, as its expiry would (its ephemeral znodes go, its
/// holder's next contact finds it expired): connects with the session's id and password,
/// then closes it. Used to fence a master that must no longer lead, and by failover tests.
pub async fn expire(url: &ZkUrl, session: zk::SessionInfo) -> Result<(), CoordinationError> {
    // The holder's client reconnects with the same session as soon as a takeover cuts it off,
    // and may win it back before this client's close reaches the server. So: take it over
    // and close it until the server itself answers that the session has expired.
    let mut last = CoordinationError::Unreachable(url.to_string());
    for _ in 0..EXPIRE_ATTEMPTS {
        let mut connector = zk::Client::connector();
        connector
            .session(session.clone())
            .connection_timeout(TAKEOVER_TIMEOUT);
        match tokio::time::timeout(TAKEOVER_TIMEOUT * 2, connector.connect(&url.servers)).await {
            Err(_) => last = CoordinationError::Unreachable(url.to_string()),
            Ok(Err(zk::Error::SessionExpired)) => return Ok(()),
            // The last client of a session that is not detached closes it when dropped; the
            // next attempt checks that the close took.
            Ok(Ok(client)) => drop(client),
            Ok(Err(e)) => last = CoordinationError::zk("resume the session at", &url.servers, e),
        }
    }
    Err(last)
}

/// Attempts at taking a session over and closing it.
const EXPIRE_ATTEMPTS: usize = 12;
/// How long one takeover attempt may take.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(2);

/// Creates `path` and its parents as persistent znodes if they are missing.
pub async fn ensure_path(client: &zk::Client, path: &str) -> Result<(), CoordinationError> {
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.mkdir(path, &options).await {
        Ok(()) | Err(zk::Error::NodeExists) => Ok(()),
        Err(e) => Err(CoordinationError::zk("create", path, e)),
    }
}

/// The election's children of a listing, smallest (the leader) first. Other children are not
/// contenders and are ignored.
pub fn contenders(mut children: Vec<String>) -> Vec<String> {
    children.retain(|c| c.starts_with(ELECTION_PREFIX));
    children.sort();
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contenders_are_the_prefixed_children_in_order() {
        let children = vec![
            "json.info_0000000012".to_owned(),
            "registry".to_owned(),
            "json.info_0000000003".to_owned(),
        ];
        assert_eq!(
            contenders(children),
            vec!["json.info_0000000003", "json.info_0000000012"]
        );
    }
}
