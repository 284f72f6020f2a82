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
//!       └── session expired ───────┴── session expired / disconnected too long / our znode deleted ──▶ Lost
//! ```
//!
//! `Lost` is final. A leader keeps leading through a connection break shorter than
//! [`LEADER_DISCONNECT_FRACTION`] of the session timeout (a ZooKeeper restart, a network blip):
//! ZooKeeper cannot have expired its session sooner, because the client hears from the server
//! every third of the timeout, so no other master can have been elected meanwhile. A break
//! longer than that, or the session's expiry, ends the candidacy (Mesos's master exits).

use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

use crate::session::{self, ELECTION_PREFIX};
use crate::{CoordinationError, MasterInfoJson, ZkUrl};

/// How much of the session timeout a leader may stay disconnected and still lead: the server
/// last heard from it at most a third of the timeout before the break, so it expires the session
/// no sooner than two thirds of the timeout after it.
pub const LEADER_DISCONNECT_FRACTION: f64 = 2.0 / 3.0;

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
        let grace = session_timeout.mul_f64(LEADER_DISCONNECT_FRACTION);
        let task = tokio::spawn(async move {
            let why = run(&client, &base, &name, &tx, grace).await;
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

/// Runs the candidacy until it is lost; returns why. A leader disconnected for `grace` loses.
async fn run(
    client: &zk::Client,
    base: &str,
    name: &str,
    tx: &watch::Sender<Candidacy>,
    grace: Duration,
) -> String {
    let mut states = client.state_watcher();
    let mine = format!("{base}/{name}");
    // Requests that failed in a row while connected (a connection that broke under them).
    let mut failures = 0;
    loop {
        // A request on an expired session may never be answered: look before asking.
        match states.peek_state() {
            zk::SessionState::SyncConnected
            | zk::SessionState::ConnectedReadOnly
            | zk::SessionState::Disconnected => {}
            terminal => return format!("ZooKeeper session {terminal:?}"),
        }
        let leading_now = *tx.borrow() == Candidacy::Leading;
        let children = match client.list_children(base).await {
            Ok(children) => session::contenders(children),
            Err(e) => {
                failures += 1;
                let what = format!("cannot list {base}: {e}");
                match ride_out(&mut states, &e, leading_now, grace, failures).await {
                    Ok(()) => continue,
                    Err(why) => return format!("{what}; {why}"),
                }
            }
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
            Err(e) => {
                failures += 1;
                let what = format!("cannot watch {watched}: {e}");
                match ride_out(&mut states, &e, leading_now, grace, failures).await {
                    Ok(()) => continue,
                    Err(why) => return format!("{what}; {why}"),
                }
            }
        };
        failures = 0;
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
                        tracing::warn!(?grace, "disconnected from ZooKeeper while leading; leading on until the session could have expired");
                        if let Err(why) = reconnect_within(&mut states, grace).await {
                            return why;
                        }
                        tracing::info!("reconnected to ZooKeeper; still leading");
                        // The watch may have fired while away: look again.
                        break;
                    }
                    zk::SessionState::Disconnected => {}
                    other => return format!("ZooKeeper session {other:?}"),
                },
            }
        }
    }
}

/// Waits up to `grace` for the session to connect again; an error says why it did not.
async fn reconnect_within(states: &mut zk::StateWatcher, grace: Duration) -> Result<(), String> {
    let reconnected = async {
        loop {
            match states.changed().await {
                zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                    return Ok(())
                }
                zk::SessionState::Disconnected => {}
                other => return Err(format!("ZooKeeper session {other:?}")),
            }
        }
    };
    tokio::time::timeout(grace, reconnected)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "disconnected from ZooKeeper for {grace:?} while leading: the session may have expired"
            ))
        })
}

/// Requests that may fail in a row on a connected session before the candidacy gives up.
const MAX_FAILURES_CONNECTED: u32 = 5;

/// A request failed with `error`: rides out a connection break (a leader for at most `grace`,
/// a contender for as long as its session lives) so that the caller can try again; an error
/// says why the candidacy is over.
async fn ride_out(
    states: &mut zk::StateWatcher,
    error: &zk::Error,
    leading: bool,
    grace: Duration,
    failures: u32,
) -> Result<(), String> {
    if matches!(error, zk::Error::SessionExpired) {
        return Err("the session expired".into());
    }
    match states.state() {
        zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
            if failures > MAX_FAILURES_CONNECTED {
                Err(format!("{failures} requests failed in a row"))
            } else {
                Ok(())
            }
        }
        zk::SessionState::Disconnected if leading => reconnect_within(states, grace).await,
        zk::SessionState::Disconnected => loop {
            match states.changed().await {
                zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                    return Ok(())
                }
                zk::SessionState::Disconnected => {}
                other => return Err(format!("ZooKeeper session {other:?}")),
            }
        },
        other => Err(format!("ZooKeeper session {other:?}")),
    }
}
