//! Holding a process id before its process exists, so that what is sent to it meanwhile waits
//! instead of being dropped.
//!
//! A master that has just won an election still has to read its registry before its `master`
//! process can run; every agent learns of the election at the same moment and re-registers at
//! once. Without a reservation that first wave would be dropped (`dropped/unknown_process`) and
//! come back only after each agent's backoff. With one, [`Node::reserve`] takes the id, messages,
//! HTTP requests and exit notices for it are queued (up to [`MAX_HELD`]), and
//! [`Reservation::spawn_ref`] starts the process with that queue in front of anything sent later.
//!
//! ```
//! # async fn demo(node: libactor::Node) -> Result<(), libactor::SpawnError> {
//! # struct Master;
//! # impl libactor::Process for Master {}
//! let reservation = node.reserve("master")?;
//! // … recover state; messages for master@ wait …
//! let master = reservation.spawn_ref(Master)?;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::http::{HttpRequest, HttpResponse};
use crate::mailbox::Mailbox;
use crate::message::Delivery;
use crate::{Node, Process, ProcessRef, SpawnError, Upid};

/// Most events a reservation holds; later ones are refused (counted as
/// `libactor/dropped/unknown_process`, as they would be without the reservation).
pub const MAX_HELD: usize = 1 << 17;

/// An id taken on a node for a process not started yet. Dropping it unstarted frees the id and
/// drops what it held.
pub struct Reservation {
    node: Node,
    pid: Upid,
    held: Arc<HeldMailbox>,
    spawned: bool,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("pid", &self.pid)
            .field("held", &self.held())
            .finish()
    }
}

/// What waits for the process.
enum Event {
    Message(Delivery),
    Exited(Upid),
    Http(HttpRequest, oneshot::Sender<HttpResponse>),
}

enum State {
    /// No process yet: events wait here in arrival order.
    Holding {
        events: VecDeque<Event>,
        terminate: bool,
    },
    /// The process runs: a sender that found this mailbox in the table just before it was
    /// replaced still reaches the process, after everything held.
    Forwarding(Arc<dyn Mailbox>),
    /// The reservation was dropped unstarted.
    Closed,
}

/// The mailbox the node's table holds for a reserved id.
pub(crate) struct HeldMailbox {
    state: Mutex<State>,
}

impl HeldMailbox {
    pub(crate) fn new() -> HeldMailbox {
        HeldMailbox {
            state: Mutex::new(State::Holding {
                events: VecDeque::new(),
                terminate: false,
            }),
        }
    }

    /// Queues `event`, or hands it to `forward` once the process runs; gives it back if the
    /// reservation is full or gone (by value: the caller takes its parts back at once).
    #[allow(clippy::result_large_err)]
    fn hold(&self, event: Event, forward: impl FnOnce(&dyn Mailbox, Event)) -> Result<(), Event> {
        let mut state = self.state.lock();
        match &mut *state {
            State::Holding { events, .. } if events.len() < MAX_HELD => {
                events.push_back(event);
                Ok(())
            }
            State::Holding { .. } | State::Closed => Err(event),
            State::Forwarding(mailbox) => {
                forward(mailbox.as_ref(), event);
                Ok(())
            }
        }
    }

    fn len(&self) -> usize {
        match &*self.state.lock() {
            State::Holding { events, .. } => events.len(),
            _ => 0,
        }
    }
}

/// Hands one event to a live mailbox.
fn pass(mailbox: &dyn Mailbox, event: Event) {
    match event {
        // A process that stopped at once drops what was sent to it, as it would have anyway.
        Event::Message(d) => drop(mailbox.deliver(d)),
        Event::Exited(pid) => mailbox.exited(pid),
        Event::Http(req, reply) => mailbox.http(req, reply),
    }
}

impl Mailbox for HeldMailbox {
    fn deliver(&self, delivery: Delivery) -> Result<(), Delivery> {
        self.hold(Event::Message(delivery), pass)
            .map_err(|e| match e {
                Event::Message(d) => d,
                _ => unreachable!("hold gives back the event it was given"),
            })
    }

    fn exited(&self, pid: Upid) {
        let _ = self.hold(Event::Exited(pid), pass);
    }

    fn http(&self, req: HttpRequest, reply: oneshot::Sender<HttpResponse>) {
        if let Err(Event::Http(_, reply)) = self.hold(Event::Http(req, reply), pass) {
            let _ = reply.send(HttpResponse::text(503, "process not started\n"));
        }
    }

    fn terminate(&self) {
        let mut state = self.state.lock();
        match &mut *state {
            State::Holding { terminate, .. } => *terminate = true,
            State::Forwarding(mailbox) => mailbox.terminate(),
            State::Closed => {}
        }
    }

    fn depth(&self) -> u64 {
        self.len() as u64
    }

    fn messages_handled(&self) -> u64 {
        0
    }
}

impl Node {
    /// Takes `id` for a process to be started later with [`Reservation::spawn_ref`]; until
    /// then what is sent to it waits (see the module documentation).
    pub fn reserve(&self, id: &str) -> Result<Reservation, SpawnError> {
        let held = Arc::new(HeldMailbox::new());
        let pid = self.insert_slot(id, held.clone())?;
        Ok(Reservation {
            node: self.clone(),
            pid,
            held,
            spawned: false,
        })
    }
}

impl Reservation {
    /// The address the process will have.
    pub fn pid(&self) -> &Upid {
        &self.pid
    }

    /// Events waiting for the process.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Starts `process` under the reserved id; it receives what was held first, in arrival order.
    pub fn spawn_ref<P: Process>(self, process: P) -> Result<ProcessRef<P>, SpawnError> {
        self.spawn_ref_on(process, false)
    }

    /// [`Reservation::spawn_ref`], on a dedicated arbiter when `dedicated` (see
    /// [`Node::spawn_ref_dedicated`]).
    pub(crate) fn spawn_ref_on<P: Process>(
        mut self,
        process: P,
        dedicated: bool,
    ) -> Result<ProcessRef<P>, SpawnError> {
        let handle = self.node.start_cell(&self.pid, process, dedicated);
        let live: Arc<dyn Mailbox> = Arc::new(handle.clone());
        {
            // Replayed under the lock: a sender racing the hand-over waits, then is forwarded
            // behind the replay, so nothing overtakes what was held.
            let mut state = self.held.state.lock();
            let State::Holding { events, terminate } =
                std::mem::replace(&mut *state, State::Forwarding(live.clone()))
            else {
                unreachable!("only the reservation leaves the holding state");
            };
            for event in events {
                pass(live.as_ref(), event);
            }
            if terminate {
                live.terminate();
            }
        }
        self.node.replace_mailbox(&self.pid, live);
        self.spawned = true;
        Ok(ProcessRef {
            pid: self.pid.clone(),
            handle,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.spawned {
            *self.held.state.lock() = State::Closed;
            self.node.inner.process_terminated(&self.pid);
        }
    }
}
