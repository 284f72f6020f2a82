//! Links: who is told when a process terminates (libprocess's `link` and `ExitedEvent`).
//!
//! - A local link is exact: the linker hears `exited` when the linkee terminates, at once if it
//!   is already gone.
//! - A remote link sends a `LinkRequest` to the linkee's node, which answers with an
//!   `ExitedNotice` when the linkee terminates (or at once if it does not exist): unlike
//!   libprocess, a remote process ending while its node stays up is reported too.
//! - When the connection to a node breaks, every local process linked to a process there hears
//!   `exited` for it.
//!
//! Each (linker, linkee) pair hears `exited` at most once; after it, the link is gone.

use std::collections::{BTreeMap, BTreeSet};

use protos::libactor::{ExitedNotice, LinkRequest, UnlinkRequest};

use crate::mailbox::ExitCause;
use crate::message::names_equal;
use crate::node::NodeInner;
use crate::Upid;

/// Who watches whom. Ordered maps: linkers hear of an exit in the same order in every run,
/// which a simulation's replay needs.
#[derive(Debug, Default)]
pub(crate) struct LinkTable {
    /// Local process id → processes (local or remote) to tell when it terminates.
    watchers: BTreeMap<String, BTreeSet<Upid>>,
    /// Remote node address → remote process → local processes linked to it.
    remote: BTreeMap<String, BTreeMap<Upid, BTreeSet<Upid>>>,
}

impl NodeInner {
    /// `linker` (a local process) links to `linkee`.
    pub(crate) fn link(&self, linker: &Upid, linkee: &Upid) {
        if linkee.address() == self.address {
            self.watch(linker, linkee);
        } else {
            self.links
                .lock()
                .remote
                .entry(linkee.address().to_owned())
                .or_default()
                .entry(linkee.clone())
                .or_default()
                .insert(linker.clone());
            let request = LinkRequest {
                linker: linker.to_string(),
                linkee: linkee.to_string(),
            };
            self.send_control(linker, linkee, request);
        }
    }

    /// Removes the link from `linker` to `linkee`.
    pub(crate) fn unlink(&self, linker: &Upid, linkee: &Upid) {
        let mut links = self.links.lock();
        if linkee.address() == self.address {
            if let Some(set) = links.watchers.get_mut(linkee.id()) {
                set.remove(linker);
            }
            return;
        }
        if let Some(by_pid) = links.remote.get_mut(linkee.address()) {
            if let Some(set) = by_pid.get_mut(linkee) {
                set.remove(linker);
                if set.is_empty() {
                    by_pid.remove(linkee);
                }
            }
        }
        drop(links);
        let request = UnlinkRequest {
            linker: linker.to_string(),
            linkee: linkee.to_string(),
        };
        self.send_control(linker, linkee, request);
    }

    /// Records that `linker` (local or remote) watches the local process `linkee`, or tells it at
    /// once that `linkee` is gone.
    fn watch(&self, linker: &Upid, linkee: &Upid) {
        let mut links = self.links.lock();
        // Checked under the links lock: `links_on_terminated` takes the watchers under the same
        // lock after the process left the table, so no link can fall between the two.
        let alive = self
            .processes
            .get(linkee.id())
            .is_some_and(|slot| &slot.pid == linkee);
        if alive {
            links
                .watchers
                .entry(linkee.id().to_owned())
                .or_default()
                .insert(linker.clone());
        } else {
            drop(links);
            self.tell_exited(linker, linkee);
        }
    }

    /// Tells `linker` that `pid` has terminated: locally through its mailbox, remotely with an
    /// `ExitedNotice`.
    fn tell_exited(&self, linker: &Upid, pid: &Upid) {
        self.tell_exited_because(linker, pid, ExitCause::Terminated);
    }

    fn tell_exited_because(&self, linker: &Upid, pid: &Upid, cause: ExitCause) {
        if linker.address() == self.address {
            if let Some(slot) = self.processes.get(linker.id()) {
                slot.mailbox.exited_because(pid.clone(), cause);
            }
        } else {
            let notice = ExitedNotice {
                linker: linker.to_string(),
                pid: pid.to_string(),
            };
            self.send_control(pid, linker, notice);
        }
    }

    /// A local process terminated: tell its watchers and forget the links it made.
    pub(crate) fn links_on_terminated(&self, pid: &Upid) {
        let watchers = {
            let mut links = self.links.lock();
            for set in links.watchers.values_mut() {
                set.remove(pid);
            }
            for by_pid in links.remote.values_mut() {
                for set in by_pid.values_mut() {
                    set.remove(pid);
                }
            }
            links.watchers.remove(pid.id()).unwrap_or_default()
        };
        for linker in watchers {
            self.tell_exited(&linker, pid);
        }
    }

    /// The connection to `address` broke: every remote link there fires.
    pub(crate) fn links_on_connection_broken(&self, address: &str) {
        let broken = self.links.lock().remote.remove(address).unwrap_or_default();
        for (pid, linkers) in broken {
            for linker in linkers {
                self.tell_exited_because(&linker, &pid, ExitCause::Unreachable);
            }
        }
    }

    /// Handles a link protocol message from the node at `peer` (the sender's node, as its
    /// connection proved it). Returns false if `name` is not one.
    ///
    /// Who may send which: a node links and unlinks only its own processes, and announces the
    /// exit only of its own processes. Anything else is dropped and counted, so no node can end
    /// a link to a process elsewhere by claiming it exited.
    pub(crate) fn handle_control(&self, name: &str, body: bytes::Bytes, peer: &str) -> bool {
        use prost::Message;
        let parse = |text: &str| Upid::parse(text).ok();
        let foreign = |pid: &Upid, what: &str| {
            if pid.address() == peer {
                return false;
            }
            self.m.dropped_unauthenticated_sender.inc();
            tracing::warn!(%pid, peer, what, "dropped a link message about a process on another node than its sender");
            true
        };
        if names_equal::<LinkRequest>(name) {
            if let Some((linker, linkee)) = LinkRequest::decode(body)
                .ok()
                .and_then(|r| Some((parse(&r.linker)?, parse(&r.linkee)?)))
            {
                if foreign(&linker, "link") {
                    return true;
                }
                self.watch(&linker, &linkee);
            } else {
                self.m.invalid_envelopes.inc();
            }
        } else if names_equal::<UnlinkRequest>(name) {
            if let Some((linker, linkee)) = UnlinkRequest::decode(body)
                .ok()
                .and_then(|r| Some((parse(&r.linker)?, parse(&r.linkee)?)))
            {
                if foreign(&linker, "unlink") {
                    return true;
                }
                if let Some(set) = self.links.lock().watchers.get_mut(linkee.id()) {
                    set.remove(&linker);
                }
            } else {
                self.m.invalid_envelopes.inc();
            }
        } else if names_equal::<ExitedNotice>(name) {
            if let Some((linker, pid)) = ExitedNotice::decode(body)
                .ok()
                .and_then(|r| Some((parse(&r.linker)?, parse(&r.pid)?)))
            {
                if foreign(&pid, "exited") {
                    return true;
                }
                let was_linked = {
                    let mut links = self.links.lock();
                    let by_pid = links.remote.get_mut(pid.address());
                    let removed = by_pid
                        .and_then(|by_pid| by_pid.get_mut(&pid))
                        .is_some_and(|set| set.remove(&linker));
                    if let Some(by_pid) = links.remote.get_mut(pid.address()) {
                        by_pid.retain(|_, set| !set.is_empty());
                    }
                    removed
                };
                if was_linked {
                    self.tell_exited(&linker, &pid);
                }
            } else {
                self.m.invalid_envelopes.inc();
            }
        } else {
            return false;
        }
        true
    }
}
