//! The ZooKeeper stand-in of a simulated cluster with several masters: sessions, the
//! election, and the fence on the registry.
//!
//! It keeps what ZooKeeper keeps for Keel's masters (`coordination::Contender`): one session
//! per master incarnation, ordered as the sequential znodes of the election path are; the
//! lowest live session leads. A session lives while its master reaches the ensemble and for
//! [`SESSION_TIMEOUT`] after the ensemble last heard from it (a crashed or cut-off master's
//! session lingers that long, and so does its leadership). Clients are heard at heartbeats a
//! third of the timeout apart, so a session's silence starts at its last heartbeat, up to a
//! third of the timeout before its master was cut off: the worst case `keel-master`'s rule
//! ([`LEADER_PATIENCE`]) must cover. Each change of leader starts a new **epoch**.
//!
//! The registry's store is fenced by sessions, as [`coordination::ZkStore`]'s operations go
//! through the leader's own session: a master whose session expired, or that cannot reach the
//! ensemble, cannot read or write it. Whoever uses the store while another master's session
//! leads breaks "one master acting per epoch", and [`Ensemble::violations`] says so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coordination::contender::LEADER_DISCONNECT_FRACTION;
use coordination::Fence;
use parking_lot::Mutex;

/// The address the ensemble answers at: what partitions cut masters, agents and frameworks
/// off from.
pub const ZOOKEEPER: &str = "127.0.0.1:2181";

/// How long a silent session lives (`keel-master`'s default `--zk-session-timeout-seconds`).
pub const SESSION_TIMEOUT: Duration = coordination::DEFAULT_SESSION_TIMEOUT;

/// How often a client is heard from (ZooKeeper clients ping at a third of the timeout).
pub const HEARTBEAT: Duration = Duration::from_nanos(SESSION_TIMEOUT.as_nanos() as u64 / 3);

/// How long a leader goes on leading without reaching the ensemble before it exits
/// (`keel-master`'s rule, [`LEADER_DISCONNECT_FRACTION`] of the session timeout): it is gone
/// no later than its session can expire and another master be elected.
pub const LEADER_PATIENCE: Duration =
    Duration::from_nanos((SESSION_TIMEOUT.as_nanos() as f64 * LEADER_DISCONNECT_FRACTION) as u64);

/// The ensemble, shared by the harness and the fences of the masters' stores.
#[derive(Clone)]
pub struct Ensemble {
    state: Arc<Mutex<State>>,
    /// How long a silent leader goes on before it exits ([`LEADER_PATIENCE`] but in tests
    /// that break the rule on purpose).
    patience: Duration,
}

impl Default for Ensemble {
    fn default() -> Self {
        Ensemble::new(LEADER_PATIENCE)
    }
}

#[derive(Default)]
struct State {
    /// Live sessions by id (ids grow, as sequential znodes do).
    sessions: BTreeMap<u64, Session>,
    next_id: u64,
    /// The leading session, as of the last [`Ensemble::elect`].
    leader: Option<u64>,
    epoch: u64,
    violations: Vec<String>,
}

struct Session {
    master: usize,
    opened: Instant,
    /// Since when its master has not reached the ensemble (`None`: it does now).
    cut_since: Option<Instant>,
    /// Since when the ensemble has not heard from it: its last heartbeat before the cut.
    silent_since: Option<Instant>,
}

/// Who leads after an election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    /// The epoch: how many times the leader has changed.
    pub epoch: u64,
    /// The leading master (its index in the cluster).
    pub master: usize,
    /// Its session.
    pub session: u64,
}

impl Ensemble {
    /// An ensemble whose silent leaders exit after `patience`.
    pub fn new(patience: Duration) -> Ensemble {
        Ensemble {
            state: Arc::default(),
            patience,
        }
    }

    /// How long a silent leader goes on leading before it exits.
    pub fn patience(&self) -> Duration {
        self.patience
    }

    /// Opens a session at `now` for master `master` (a new incarnation contending) and
    /// returns its id.
    pub fn open(&self, master: usize, now: Instant) -> u64 {
        let mut state = self.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.sessions.insert(
            id,
            Session {
                master,
                opened: now,
                cut_since: None,
                silent_since: None,
            },
        );
        id
    }

    /// Records at `now` which sessions the ensemble hears from (their master runs and reaches
    /// it); the others are silent from `now` on, if they were not already.
    pub fn hear(&self, now: Instant, heard: &BTreeSet<u64>) {
        for (id, session) in self.state.lock().sessions.iter_mut() {
            if heard.contains(id) {
                session.cut_since = None;
                session.silent_since = None;
            } else if session.cut_since.is_none() {
                let beats = now.duration_since(session.opened).as_nanos() / HEARTBEAT.as_nanos();
                let last_heartbeat = session.opened + HEARTBEAT * beats as u32;
                session.cut_since = Some(now);
                session.silent_since = Some(last_heartbeat);
            }
        }
    }

    /// How long session `id`'s master has been cut off from the ensemble at `now` (as its
    /// client sees it); `None` once the session has expired.
    pub fn cut_for(&self, id: u64, now: Instant) -> Option<Duration> {
        self.state.lock().sessions.get(&id).map(|s| {
            s.cut_since
                .map_or(Duration::ZERO, |t| now.duration_since(t))
        })
    }

    /// Whether session `id` still lives.
    pub fn is_alive(&self, id: u64) -> bool {
        self.state.lock().sessions.contains_key(&id)
    }

    /// Ends every session silent for [`SESSION_TIMEOUT`] at `now`.
    pub fn expire(&self, now: Instant) {
        self.state.lock().sessions.retain(|_, s| {
            s.silent_since
                .is_none_or(|t| now.duration_since(t) < SESSION_TIMEOUT)
        });
    }

    /// The lowest live session leads; a new leader starts a new epoch. `None` while no
    /// session lives.
    pub fn elect(&self) -> Option<Leadership> {
        let mut state = self.state.lock();
        let (&session, first) = state.sessions.iter().next()?;
        let master = first.master;
        if state.leader != Some(session) {
            state.leader = Some(session);
            state.epoch += 1;
        }
        Some(Leadership {
            epoch: state.epoch,
            master,
            session,
        })
    }

    /// The current epoch (0 before the first election).
    pub fn epoch(&self) -> u64 {
        self.state.lock().epoch
    }

    /// When the next silent session expires or a silent leader must give up, after `now`.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let state = self.state.lock();
        state
            .sessions
            .iter()
            .filter_map(|(id, s)| {
                let patience = (state.leader == Some(*id))
                    .then_some(s.cut_since?)
                    .map(|cut| cut + self.patience);
                Some([patience, Some(s.silent_since? + SESSION_TIMEOUT)])
            })
            .flatten()
            .flatten()
            .filter(|at| *at > now)
            .min()
    }

    /// The fence for the store of the master holding session `id`: the store may be used while
    /// the session lives and `reaches()` (the master can reach the ensemble). Using it while
    /// another session leads is recorded as a violation.
    pub fn fence(&self, id: u64, reaches: impl Fn() -> bool + Send + Sync + 'static) -> Fence {
        let state = self.state.clone();
        Arc::new(move || {
            let mut state = state.lock();
            if !state.sessions.contains_key(&id) {
                return Err(format!("session {id} has expired"));
            }
            if !reaches() {
                return Err("the ensemble cannot be reached".to_owned());
            }
            if state.leader != Some(id) {
                let why = format!(
                    "the registry was used through session {id} while session {:?} leads (epoch {})",
                    state.leader, state.epoch
                );
                state.violations.push(why);
            }
            Ok(())
        })
    }

    /// Everything that broke "one master acting per epoch", in the order found.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().violations.clone()
    }

    /// Records a violation the harness found.
    pub fn violation(&self, why: String) {
        self.state.lock().violations.push(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_live_session_leads_and_a_silent_one_lingers_from_its_last_heartbeat() {
        let ensemble = Ensemble::default();
        let start = Instant::now();
        let a = ensemble.open(0, start);
        let b = ensemble.open(1, start);
        assert_eq!(ensemble.elect().map(|l| (l.master, l.epoch)), Some((0, 1)));
        // Master 0 is cut off just before its second heartbeat: the ensemble last heard from
        // it at the first, and it must give up by the time the session can expire.
        let cut = start + HEARTBEAT * 2 - Duration::from_millis(1);
        ensemble.hear(cut, &BTreeSet::from([b]));
        let expiry = start + HEARTBEAT + SESSION_TIMEOUT;
        let give_up = cut + LEADER_PATIENCE;
        assert!(give_up <= expiry, "{give_up:?} > {expiry:?}");
        assert_eq!(ensemble.next_deadline(cut), Some(give_up));
        assert_eq!(ensemble.cut_for(a, give_up), Some(LEADER_PATIENCE));
        assert_eq!(
            ensemble.next_deadline(give_up),
            Some(expiry).filter(|e| *e > give_up)
        );
        ensemble.expire(expiry - Duration::from_millis(1));
        assert!(ensemble.is_alive(a));
        ensemble.expire(expiry);
        assert!(!ensemble.is_alive(a));
        assert_eq!(
            ensemble.elect(),
            Some(Leadership {
                epoch: 2,
                master: 1,
                session: b
            })
        );
        assert_eq!(ensemble.cut_for(b, expiry), Some(Duration::ZERO));
    }

    #[test]
    fn the_fence_refuses_expired_and_cut_off_sessions_and_reports_a_non_leader() {
        let ensemble = Ensemble::default();
        let start = Instant::now();
        let a = ensemble.open(0, start);
        let b = ensemble.open(1, start);
        ensemble.elect();
        assert!(ensemble.fence(a, || true)().is_ok());
        assert!(ensemble.fence(a, || false)().is_err());
        assert!(ensemble.violations().is_empty());
        // A standby that uses the store breaks the rule.
        assert!(ensemble.fence(b, || true)().is_ok());
        assert_eq!(ensemble.violations().len(), 1);
        ensemble.hear(start, &BTreeSet::new());
        ensemble.expire(start + SESSION_TIMEOUT);
        assert!(ensemble.fence(a, || true)().is_err());
    }
}
