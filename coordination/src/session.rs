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
    // The holder's client reconnects with the same session as soon as the takeover cuts it
    // off, and may win it back before this client closes it (the connect then times out):
    // try again, quickly, until one attempt wins the race.
    let mut result = take_over_and_close(url, session.clone()).await;
    for _ in 1..EXPIRE_ATTEMPTS {
        if result.is_ok() {
            break;
        }
        result = take_over_and_close(url, session.clone()).await;
    }
    result
}

/// Attempts at taking a session over to end it.
const EXPIRE_ATTEMPTS: usize = 12;
/// How long one takeover attempt may take.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(2);

async fn take_over_and_close(
    url: &ZkUrl,
    session: zk::SessionInfo,
) -> Result<(), CoordinationError> {
    let mut connector = zk::Client::connector();
    connector
        .session(session)
        .connection_timeout(TAKEOVER_TIMEOUT);
    let resumed = tokio::time::timeout(TAKEOVER_TIMEOUT * 2, connector.connect(&url.servers))
        .await
        .map_err(|_| CoordinationError::Unreachable(url.to_string()))?;
    match resumed {
        // The last client of a session that is not detached closes it when dropped.
        Ok(client) => drop(client),
        // Taking the session over disconnects its holder, which may close it first: gone
        // either way.
        Err(zk::Error::SessionExpired) => {}
        Err(e) => {
            return Err(CoordinationError::zk(
                "resume the session at",
                &url.servers,
                e,
            ))
        }
    }
    Ok(())
}

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
