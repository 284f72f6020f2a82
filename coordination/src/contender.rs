//! A master's candidacy for leadership (Mesos's `ZooKeeperMasterContender`).
//!
//! The contender creates an EPHEMERAL_SEQUENTIAL znode `{path}/json.info_N` holding its
//! [`MasterInfoJson`]; the lowest N leads. A contender that does not lead watches only the
//! contender just before it (no herd effect when the leader goes): when that one goes, it
//! lists again. ZooKeeper watches fire once, so every wait re-arms its watch.
//!
//! ```text
//!   Contending ──lowest znode──▶ Leading
//!       │                          │
//!       └── session expired ───────┴── session expired / disconnected / our znode deleted ──▶ Lost
//! ```
//!
//! `Lost` is final. A leader loses leadership the moment its connection to ZooKeeper breaks:
//! it cannot know whether its session (and so its znode) still exists, and another master may
//! already lead, so it must stop serving at once (Mesos's master exits).

use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

use crate::session::{self, ELECTION_PREFIX};
use crate::{CoordinationError, MasterInfoJson, ZkUrl};

/// Where a contender stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidacy {
    /// Waiting behind a lower contender.
    Contending,
    /// This master leads.
    Leading,
    /// The candidacy ended (why); the master must not serve as leader any more.
    Lost(String),
}

/// A running candidacy. Dropping it withdraws (closes the session, deleting the znode).
#[derive(Debug)]
pub struct Contender {
    candidacy: watch::Receiver<Candidacy>,
    znode: String,
    session: zk::SessionInfo,
    /// The session's client, shared with the registrar's store so that a master writes the
    /// registry only while its candidacy's session lives.
    client: zk::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Contender {
    /// Enters the election at `url` with `info`. Resolves once the znode exists; leadership
    /// is then reported through [`Contender::candidacy`].
    pub async fn contend(
        url: &ZkUrl,
        info: &MasterInfoJson,
        session_timeout: Duration,
    ) -> Result<Contender, CoordinationError> {
        let client = session::connect(url, session_timeout).await?;
        session::ensure_path(&client, &url.path).await?;
        let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let prefix = url.child(ELECTION_PREFIX);
        let (_, sequence) = client
            .create(&prefix, &info.to_json(), &options)
            .await
            .map_err(|e| CoordinationError::zk("create", &prefix, e))?;
        let name = format!("{ELECTION_PREFIX}{sequence}");
        let znode = url.child(&name);
        tracing::info!(%znode, pid = %info.pid, "contending for leadership");
        let (tx, candidacy) = watch::channel(Candidacy::Contending);
        let session = client.session().clone();
        let base = url.path.clone();
        let shared = client.clone();
        let task = tokio::spawn(async move {
            let why = run(&client, &base, &name, &tx).await;
            tracing::warn!(reason = %why, "leadership candidacy lost");
            let _ = tx.send(Candidacy::Lost(why));
        });
        Ok(Contender {
            candidacy,
            znode,
            session,
            client: shared,
            task,
        })
    }

    /// Follows the candidacy's changes.
    pub fn candidacy(&self) -> watch::Receiver<Candidacy> {
        self.candidacy.clone()
    }

    /// The contender's znode (`{path}/json.info_N`).
    pub fn znode(&self) -> &str {
        &self.znode
    }

    /// The ZooKeeper session holding the znode (to fence it with [`crate::session::expire`]).
    pub fn session(&self) -> &zk::SessionInfo {
        &self.session
    }

    /// The candidacy's ZooKeeper client (its session ends with the candidacy's).
    pub fn client(&self) -> &zk::Client {
        &self.client
    }

    /// Waits until this contender leads; an error says why it never will.
    pub async fn elected(&self) -> Result<(), CoordinationError> {
        let mut rx = self.candidacy.clone();
        let state = rx
            .wait_for(|c| !matches!(c, Candidacy::Contending))
            .await
            .map_err(|_| CoordinationError::Lost("the contender stopped".into()))?
            .clone();
        match state {
            Candidacy::Leading => Ok(()),
            Candidacy::Lost(why) => Err(CoordinationError::Lost(why)),
            Candidacy::Contending => Err(CoordinationError::Lost("unreachable".into())),
        }
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        // The task owns the client: aborting it drops the client, which closes the session.
        self.task.abort();
    }
}

/// Runs the candidacy until it is lost; returns why.
async fn run(client: &zk::Client, base: &str, name: &str, tx: &watch::Sender<Candidacy>) -> String {
    let mut states = client.state_watcher();
    let mine = format!("{base}/{name}");
    loop {
        let children = match client.list_children(base).await {
            Ok(children) => session::contenders(children),
            Err(e) => return format!("cannot list {base}: {e}"),
        };
        let Some(position) = children.iter().position(|c| c == name) else {
            return format!("{mine} is gone");
        };
        // Lead: watch our own znode; otherwise watch the one just before ours.
        let (watched, leading) = match position {
            0 => (mine.clone(), true),
            n => (format!("{base}/{}", children[n - 1]), false),
        };
        let watcher = match client.check_and_watch_stat(&watched).await {
            Ok((Some(_), watcher)) => watcher,
            // Gone between the listing and the watch: list again.
            Ok((None, _)) if !leading => continue,
            Ok((None, _)) => return format!("{mine} is gone"),
            Err(e) => return format!("cannot watch {watched}: {e}"),
        };
        if leading && *tx.borrow() != Candidacy::Leading {
            tracing::info!(znode = %mine, "elected leader");
            let _ = tx.send(Candidacy::Leading);
        }
        let mut changed = std::pin::pin!(watcher.changed());
        loop {
            tokio::select! {
                event = &mut changed => {
                    if leading && event.event_type == zk::EventType::NodeDeleted {
                        return format!("{mine} was deleted");
                    }
                    break;
                }
                state = states.changed() => match state {
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {}
                    zk::SessionState::Disconnected if leading => {
                        return "disconnected from ZooKeeper while leading".into();
                    }
                    zk::SessionState::Disconnected => {}
                    other => return format!("ZooKeeper session {other:?}"),
                },
            }
        }
    }
}
