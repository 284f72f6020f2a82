//! Where the API process's large reads are built: `/master/state` and the other classic state
//! endpoints, and the operator API's `GET_STATE`, `GET_TASKS`, `GET_FRAMEWORKS`,
//! `GET_EXECUTORS`, `GET_AGENTS` and `GET_ROLES`. A state of 400,000 tasks takes hundreds of
//! milliseconds to write; built on the API process's thread it would hold up the scheduler API
//! and the feed for that long, and compete with the master for the CPU at the same priority.
//!
//! So the view is shared behind a lock: the API process applies the master's changes under
//! the write lock, and a thread of its own — at a lower priority ([`NICENESS`]), so that under
//! contention the master and the scheduler API go first — builds each read under the read
//! lock. The API process never waits for the lock: while a read is being built it leaves the
//! master's changes queued and applies them once the build is done. A read is handed to the
//! thread only after every change the master made before the request was applied, so each
//! read still sees all of them.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::Arc;

use authentication::acls::Acls;
use libactor::{Context, HttpResponse, ProcessRef};
use parking_lot::RwLock;
use tokio::sync::oneshot;

use super::state_json::{MasterSide, StateSource};
use super::view::ClusterView;
use super::ApiGateway;

/// The API process's view, shared with the state thread.
pub type SharedView = Arc<RwLock<ClusterView>>;

/// How much lower than the master's the state thread's priority is (a nice increment).
pub const NICENESS: i32 = 10;

/// Builds one answer from what its reader may see.
pub type Build = Box<dyn FnOnce(&StateSource<'_>) -> HttpResponse + Send>;

/// One read to build.
pub struct StateJob {
    /// What only the master knows (empty for the operator API's reads).
    pub side: MasterSide,
    /// The reader's proven principal.
    pub principal: Option<String>,
    /// The master's flags.
    pub flags: Arc<Vec<(String, String)>>,
    /// Role weights set by operators.
    pub weights: std::collections::BTreeMap<String, f64>,
    /// When this master started leading.
    pub start_time: f64,
    /// What to build.
    pub build: Build,
    /// Where the answer goes.
    pub reply: oneshot::Sender<HttpResponse>,
}

/// The state thread, as the API process holds it: a queue of reads.
#[derive(Debug)]
pub struct StateThread {
    jobs: mpsc::Sender<StateJob>,
}

impl StateThread {
    /// Starts the thread over `view`, reading with `acls`; it tells `gateway` after each
    /// read (so that the gateway applies the changes it held back). The thread ends when the
    /// returned handle is dropped.
    pub fn spawn(
        view: SharedView,
        acls: Acls,
        gateway: ProcessRef<ApiGateway>,
    ) -> std::io::Result<StateThread> {
        let (jobs, queue) = mpsc::channel::<StateJob>();
        std::thread::Builder::new()
            .name("keel-state".into())
            .spawn(move || run(&queue, &view, &acls, &gateway))?;
        Ok(StateThread { jobs })
    }

    /// Queues `job`; if the thread has ended, answers it with 503 at once.
    pub fn submit(&self, job: StateJob) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            let _ = job
                .reply
                .send(HttpResponse::text(503, "the state thread has stopped\n"));
        }
    }
}

fn run(
    queue: &mpsc::Receiver<StateJob>,
    view: &RwLock<ClusterView>,
    acls: &Acls,
    gateway: &ProcessRef<ApiGateway>,
) {
    lower_priority();
    while let Ok(job) = queue.recv() {
        let _span = tracing::debug_span!("state_read").entered();
        let response = {
            let view = view.read();
            let source = StateSource {
                view: &view,
                side: &job.side,
                acls,
                principal: job.principal.as_deref(),
                flags: &job.flags,
                start_time: job.start_time,
                weights: &job.weights,
            };
            let build = job.build;
            std::panic::catch_unwind(AssertUnwindSafe(|| build(&source))).unwrap_or_else(|_| {
                tracing::error!("building a state read panicked");
                HttpResponse::text(500, "building the answer failed\n")
            })
        };
        let _ = job.reply.send(response);
        if !gateway.dispatch(|g, ctx| g.state_read_done(ctx)) {
            return;
        }
    }
}

/// Lowers this thread's priority by [`NICENESS`] (Linux sets it per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id.
        let result = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, now + NICENESS)
        };
        if result != 0 {
            tracing::debug!("could not lower the state thread's priority");
        }
    }
}

/// Work that must wait until the view has every change the master made before it.
pub(super) type Deferred = Box<dyn FnOnce(&mut ApiGateway, &mut Context<ApiGateway>) + Send>;

impl ApiGateway {
    /// Runs `f` once the view holds every change queued so far: now, or after the read
    /// being built.
    pub(super) fn when_drained(&mut self, ctx: &mut Context<Self>, f: Deferred) {
        if self.waiting.is_empty() && self.drain_feed(ctx) {
            f(self, ctx);
        } else {
            self.waiting.push(f);
        }
    }

    /// Applies the changes held back, and then runs what waited for them.
    pub(crate) fn drain_and_release(&mut self, ctx: &mut Context<Self>) {
        if !self.drain_feed(ctx) {
            return;
        }
        for f in std::mem::take(&mut self.waiting) {
            f(self, ctx);
        }
    }

    /// The state thread finished a read.
    pub(super) fn state_read_done(&mut self, ctx: &mut Context<Self>) {
        self.drain_and_release(ctx);
    }

    /// Answers `principal`'s read with `build`, on the state thread, once the view holds
    /// every change the master made so far.
    pub(crate) fn read_view(
        &mut self,
        ctx: &mut Context<Self>,
        principal: Option<String>,
        side: MasterSide,
        build: Build,
    ) -> oneshot::Receiver<HttpResponse> {
        let (reply, answer) = oneshot::channel();
        let job = StateJob {
            side,
            principal,
            flags: self.operator.flags_shared(),
            weights: self.operator.weights().clone(),
            start_time: self.operator.start_time(),
            build,
            reply,
        };
        self.when_drained(
            ctx,
            Box::new(move |g, _| match &g.state {
                Some(thread) => thread.submit(job),
                None => {
                    let _ = job
                        .reply
                        .send(HttpResponse::text(503, "the state thread did not start\n"));
                }
            }),
        );
        answer
    }
}

#[cfg(test)]
mod tests {
    use libactor::Node;
    use protos::v1::FrameworkInfo;

    use super::*;
    use crate::api::{ApiAuthentication, MasterCell};
    use crate::master::{FeedItem, FeedQueue};

    fn framework_added(id: &str) -> FeedItem {
        FeedItem::FrameworkChanged {
            id: id.to_owned(),
            info: FrameworkInfo::default(),
            active: true,
            added: true,
            at: 0.0,
        }
    }

    fn count_frameworks() -> Build {
        Box::new(|s: &StateSource<'_>| {
            HttpResponse::text(200, s.view.frameworks().count().to_string())
        })
    }

    #[tokio::test]
    // The test holds the view's lock across awaits on purpose: it stands for a build on the
    // state thread while the gateway (on its own thread) goes on.
    #[allow(clippy::await_holding_lock)]
    async fn a_read_asked_while_another_is_built_waits_for_the_changes_held_back() {
        let node = Node::builder().single_threaded().start().unwrap();
        let feed = Arc::new(FeedQueue::default());
        let gateway = ApiGateway::spawn(
            &node,
            MasterCell::default(),
            feed.clone(),
            "master-1",
            ApiAuthentication::default(),
        )
        .unwrap();
        let view = gateway.call(|g, _| g.operator.view.clone()).await.unwrap();
        feed.push(framework_added("f1"));

        // A build in progress holds the view: the gateway cannot apply the next change, so
        // a read asked now must not be built before it can.
        let building = view.read();
        feed.push(framework_added("f2"));
        let mut answer = gateway
            .call(|g, ctx| g.read_view(ctx, None, MasterSide::default(), count_frameworks()))
            .await
            .unwrap();
        gateway
            .call(|g, ctx| g.drain_and_release(ctx))
            .await
            .unwrap();
        assert!(
            answer.try_recv().is_err(),
            "no answer while the change before it is held back"
        );
        assert!(
            building.framework("f2").is_none(),
            "nothing applied under the build"
        );

        drop(building);
        gateway.dispatch(|g, ctx| g.drain_and_release(ctx));
        let body = answer.await.expect("answered once the build ends").body;
        assert_eq!(&body[..], b"2", "the read saw both changes made before it");
        node.shutdown().await;
    }
}
