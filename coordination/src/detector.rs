//! Finding and following the leading master (Mesos's `ZooKeeperMasterDetector`): agents,
//! scheduler drivers and `keelctl` watch the election's children, read the lowest contender's
//! [`MasterInfoJson`] and hear of every change. Watches fire once, so each wait re-arms one;
//! a lost session is replaced by a new one (the detector owns no znodes).

use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

use crate::session;
use crate::{CoordinationError, MasterInfoJson, ZkUrl};

/// Longest wait between attempts to reach ZooKeeper.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// A running detector. Dropping it stops following.
#[derive(Debug)]
pub struct Detector {
    leader: watch::Receiver<Option<MasterInfoJson>>,
    task: tokio::task::JoinHandle<()>,
}

impl Detector {
    /// Starts following the leader elected at `url`. Must run inside a tokio runtime.
    pub fn start(url: ZkUrl, session_timeout: Duration) -> Detector {
        let (tx, leader) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut retry = Duration::from_millis(100);
            loop {
                match follow(&url, session_timeout, &tx).await {
                    Ok(()) => retry = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(zk = %url, error = %e, "leader detection interrupted; retrying");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(MAX_RETRY);
                    }
                }
            }
        });
        Detector { leader, task }
    }

    /// The current leader (none while no master leads), and every change after.
    pub fn leader(&self) -> watch::Receiver<Option<MasterInfoJson>> {
        self.leader.clone()
    }

    /// Waits up to `timeout` for a leader.
    pub async fn wait_for_leader(
        &self,
        timeout: Duration,
    ) -> Result<MasterInfoJson, CoordinationError> {
        let mut rx = self.leader.clone();
        let found = tokio::time::timeout(timeout, rx.wait_for(Option::is_some))
            .await
            .map_err(|_| CoordinationError::NoLeader(timeout))?
            .map_err(|_| CoordinationError::NoLeader(timeout))?;
        found.clone().ok_or(CoordinationError::NoLeader(timeout))
    }
}

impl Drop for Detector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Follows the leader over one session; returns when the session is gone.
async fn follow(
    url: &ZkUrl,
    session_timeout: Duration,
    tx: &watch::Sender<Option<MasterInfoJson>>,
) -> Result<(), CoordinationError> {
    let client = session::connect(url, session_timeout).await?;
    let mut states = client.state_watcher();
    loop {
        let (children, watcher) = match client.list_and_watch_children(&url.path).await {
            Ok(found) => found,
            Err(zk::Error::NoNode) => {
                // No master ever contended here: wait for the path to appear.
                tx.send_if_modified(|l| l.take().is_some());
                match client.check_and_watch_stat(&url.path).await {
                    // Created between the listing and the watch: list again.
                    Ok((Some(_), _)) => continue,
                    Ok((None, watcher)) => (Vec::new(), watcher),
                    Err(e) => return Err(CoordinationError::zk("watch", &url.path, e)),
                }
            }
            Err(e) => return Err(CoordinationError::zk("list", &url.path, e)),
        };
        let leader = leader_of(&client, url, session::contenders(children)).await?;
        tx.send_if_modified(|current| {
            if *current == leader {
                return false;
            }
            match &leader {
                Some(l) => tracing::info!(leader = %l.pid, "detected a new leading master"),
                None => tracing::warn!("no leading master"),
            }
            *current = leader;
            true
        });
        let mut changed = std::pin::pin!(watcher.changed());
        loop {
            tokio::select! {
                _ = &mut changed => break,
                state = states.changed() => match state {
                    zk::SessionState::SyncConnected
                    | zk::SessionState::ConnectedReadOnly
                    | zk::SessionState::Disconnected => {}
                    other => {
                        return Err(CoordinationError::Lost(format!("ZooKeeper session {other:?}")))
                    }
                },
            }
        }
    }
}

/// The lowest contender whose data reads; one that vanished meanwhile is skipped.
async fn leader_of(
    client: &zk::Client,
    url: &ZkUrl,
    contenders: Vec<String>,
) -> Result<Option<MasterInfoJson>, CoordinationError> {
    for name in contenders {
        let path = url.child(&name);
        match client.get_data(&path).await {
            Ok((data, _)) => match MasterInfoJson::from_json(&data) {
                Ok(info) => return Ok(Some(info)),
                Err(e) => {
                    tracing::warn!(znode = %path, error = %e, "leader's entry does not parse");
                    return Ok(None);
                }
            },
            Err(zk::Error::NoNode) => continue,
            Err(e) => return Err(CoordinationError::zk("read", &path, e)),
        }
    }
    Ok(None)
}
