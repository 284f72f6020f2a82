//! The registrar (Mesos's `Registrar`): the process that keeps the durable part of the master's
//! state, the [`registry`] of admitted agents and frameworks, in a
//! [`coordination::Store`] — ZooKeeper when masters contend there, a local directory for a
//! single master.
//!
//! The master changes the registry only through [`Registrar::apply`], and answers the agent or
//! framework concerned only once the change is durable. Operations that arrive while a write is
//! out are batched into the next one (a burst of 10,000 registrations costs a few writes, not
//! 10,000), and each write replaces only the shards that changed.
//!
//! Every write names the version it read (compare-and-set). A write that loses that race, or
//! fails at all, means this master can no longer be sure it alone leads: the registrar fails
//! every operation from then on and publishes why ([`Registrar::failure`]); the master stops and
//! `keel-master` exits, as Mesos's master aborts when its registrar fails. (In ZooKeeper the
//! writes also use the leader's own session, so a master whose session expired cannot write.)
//!
//! Metrics under Mesos's names: `registrar/queued_operations` (not yet durable),
//! `registrar/registry_size_bytes`, `registrar/state_fetch_ms` (recovery) and
//! `registrar/state_store_ms` (each write), beside Keel's `registrar/operations`, `…/writes`,
//! `…/shards_written` and `…/failures`.

pub mod registry;

use std::collections::BTreeSet;
use std::sync::Arc;

use coordination::{AnyStore, Store, StoreError};
use libactor::metrics::{Counter, Durations, Gauge, ProcessMetrics};
use libactor::{Context, Process};
use tokio::sync::{oneshot, watch};

use registry::{shard_key, SHARDS};
pub use registry::{Operation, Registry};

/// Why the registrar could not recover or write the registry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistrarError {
    /// The store could not be read at recovery.
    #[error("cannot recover the registry: {0}")]
    Recovery(String),
    /// A stored shard does not decode.
    #[error("registry shard {key} is corrupt: {why}")]
    Corrupt {
        /// The shard's key.
        key: String,
        /// The decoder's complaint.
        why: String,
    },
    /// A write failed or lost a race; the registrar accepts no more operations.
    #[error("the registry can no longer be written: {0}")]
    Failed(String),
    /// The registrar was not created inside a tokio runtime.
    #[error("the registrar needs a tokio runtime for its store")]
    NoRuntime,
}

/// One shard's write: its index and new version, or why it failed.
type ShardWrite = Result<(usize, u64), StoreError>;

/// An operation's answer: `Ok` once the change is durable.
pub type Reply = oneshot::Sender<Result<(), RegistrarError>>;

/// Keel's counters, and Mesos's registrar metrics by their Mesos names.
struct RegistrarMetrics {
    operations: Counter,
    writes: Counter,
    shards_written: Counter,
    failures: Counter,
    /// `registrar/queued_operations`: operations not yet durable.
    queued_operations: Gauge,
    /// `registrar/registry_size_bytes`: the stored registry's size.
    registry_size_bytes: Gauge,
    /// `registrar/state_store_ms`: how long each write took.
    state_store: Durations,
}

/// The registrar process.
pub struct Registrar {
    store: Arc<AnyStore>,
    /// Store operations run here: ZooKeeper's client belongs to the runtime its session was
    /// opened on, not to the actor's arbiter.
    runtime: tokio::runtime::Handle,
    registry: Registry,
    /// Each shard's stored version (`None`: never written).
    versions: Vec<Option<u64>>,
    /// Shards changed since the last write began.
    dirty: BTreeSet<usize>,
    /// Answers owed once the dirty shards are written.
    waiting: Vec<Reply>,
    writing: bool,
    failed: Option<String>,
    failure: watch::Sender<Option<String>>,
    metrics: ProcessMetrics<RegistrarMetrics>,
    /// Operations in the write that is out.
    in_flight: usize,
    /// Each shard's stored size in bytes.
    shard_bytes: Vec<usize>,
    /// How long recovery read the store (Mesos's `registrar/state_fetch_ms`).
    fetched_in: std::time::Duration,
}

impl Registrar {
    /// Reads every shard of the registry from `store`; call inside a tokio runtime.
    pub async fn recover(store: AnyStore) -> Result<Registrar, RegistrarError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RegistrarError::NoRuntime)?;
        let began = std::time::Instant::now();
        let store = Arc::new(store);
        let mut reads = tokio::task::JoinSet::new();
        for index in 0..SHARDS {
            let store = store.clone();
            reads.spawn(async move { (index, store.get(&shard_key(index)).await) });
        }
        let mut registry = Registry::default();
        let mut versions = vec![None; SHARDS];
        let mut shard_bytes = vec![0; SHARDS];
        while let Some(read) = reads.join_next().await {
            let (index, entry) = read.map_err(|e| RegistrarError::Recovery(e.to_string()))?;
            let entry = entry.map_err(|e| RegistrarError::Recovery(e.to_string()))?;
            if let Some(entry) = entry {
                registry
                    .decode_shard(index, &entry.data)
                    .map_err(|e| RegistrarError::Corrupt {
                        key: shard_key(index),
                        why: e.to_string(),
                    })?;
                versions[index] = Some(entry.version);
                shard_bytes[index] = entry.data.len();
            }
        }
        tracing::info!(
            agents = registry.agents().count(),
            frameworks = registry.frameworks().count(),
            "registry recovered"
        );
        Ok(Registrar {
            store,
            runtime,
            registry,
            versions,
            dirty: BTreeSet::new(),
            waiting: Vec::new(),
            writing: false,
            failed: None,
            failure: watch::channel(None).0,
            metrics: ProcessMetrics::default(),
            in_flight: 0,
            shard_bytes,
            fetched_in: began.elapsed(),
        })
    }

    /// The registry as recovered (and as changed since).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Why the registrar failed, once it has (`None` until then).
    pub fn failure(&self) -> watch::Receiver<Option<String>> {
        self.failure.subscribe()
    }

    /// Applies `op` and answers `reply` once it is durable (at once if it changes nothing and
    /// no write is pending).
    pub fn apply(&mut self, ctx: &mut Context<Self>, op: Operation, reply: Reply) {
        if let Some(why) = &self.failed {
            let _ = reply.send(Err(RegistrarError::Failed(why.clone())));
            return;
        }
        self.metrics.inc(|m| &m.operations);
        if let Some(shard) = self.registry.apply(op) {
            self.dirty.insert(shard);
        }
        if self.dirty.is_empty() && !self.writing {
            let _ = reply.send(Ok(()));
            return;
        }
        self.waiting.push(reply);
        self.flush(ctx);
        self.gauge_queue();
    }

    fn gauge_queue(&self) {
        let queued = self.waiting.len() + self.in_flight;
        self.metrics
            .with(|m| m.queued_operations.set(queued as i64));
    }

    /// Starts writing the dirty shards unless a write is out (its completion starts the next).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.failed.is_some() {
            return;
        }
        if self.dirty.is_empty() {
            for reply in self.waiting.drain(..) {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        self.writing = true;
        let writes: Vec<(usize, Vec<u8>, Option<u64>)> = std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|i| (i, self.registry.encode_shard(i), self.versions[i]))
            .collect();
        for (index, data, _) in &writes {
            self.shard_bytes[*index] = data.len();
        }
        let size: usize = self.shard_bytes.iter().sum();
        self.metrics.with(|m| {
            m.writes.inc();
            m.shards_written.add(writes.len() as u64);
            m.registry_size_bytes.set(size as i64);
        });
        let began = ctx.node().clock().now();
        tracing::debug!(shards = writes.len(), "writing the registry");
        let waiters = std::mem::take(&mut self.waiting);
        self.in_flight = waiters.len();
        let store = self.store.clone();
        let task = self.runtime.spawn(async move {
            let mut puts = tokio::task::JoinSet::new();
            for (index, data, expected) in writes {
                let store = store.clone();
                puts.spawn(
                    async move { (index, store.put(&shard_key(index), &data, expected).await) },
                );
            }
            let mut done = Vec::new();
            while let Some(put) = puts.join_next().await {
                let put = put
                    .map_err(|e| StoreError::Backend {
                        action: "write",
                        key: "registry".into(),
                        message: e.to_string(),
                    })
                    .and_then(|(index, put)| put.map(|version| (index, version)));
                done.push(put);
            }
            done
        });
        ctx.defer(task, move |r: &mut Registrar, ctx, done| {
            let took = ctx.node().clock().now().saturating_duration_since(began);
            r.metrics.with(|m| m.state_store.record(took));
            r.written(ctx, done, waiters)
        });
    }

    fn written(
        &mut self,
        ctx: &mut Context<Self>,
        done: Result<Vec<ShardWrite>, tokio::task::JoinError>,
        waiters: Vec<Reply>,
    ) {
        self.writing = false;
        self.in_flight = 0;
        let mut failure = None;
        match done {
            Err(e) => failure = Some(e.to_string()),
            Ok(done) => {
                for put in done {
                    match put {
                        Ok((index, version)) => self.versions[index] = Some(version),
                        Err(StoreError::Conflict { key, .. }) => {
                            failure = Some(format!(
                                "another master wrote {key} meanwhile: this one no longer leads"
                            ))
                        }
                        Err(e) => failure = Some(e.to_string()),
                    }
                }
            }
        }
        match failure {
            Some(why) => {
                tracing::error!(%why, "registrar failed");
                self.metrics.inc(|m| &m.failures);
                self.failed = Some(why.clone());
                self.failure.send_replace(Some(why.clone()));
                for reply in waiters.into_iter().chain(self.waiting.drain(..)) {
                    let _ = reply.send(Err(RegistrarError::Failed(why.clone())));
                }
            }
            None => {
                for reply in waiters {
                    let _ = reply.send(Ok(()));
                }
                self.flush(ctx);
            }
        }
        self.gauge_queue();
    }
}

impl Process for Registrar {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.metrics.set(RegistrarMetrics {
            operations: m.counter("registrar/operations"),
            writes: m.counter("registrar/writes"),
            shards_written: m.counter("registrar/shards_written"),
            failures: m.counter("registrar/failures"),
            queued_operations: m.gauge("registrar/queued_operations"),
            registry_size_bytes: m.gauge("registrar/registry_size_bytes"),
            state_store: m.durations("registrar/state_store_ms"),
        });
        m.durations("registrar/state_fetch_ms")
            .record(self.fetched_in);
        let size: usize = self.shard_bytes.iter().sum();
        self.metrics
            .with(|m| m.registry_size_bytes.set(size as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coordination::FileStore;
    use libactor::Node;
    use protos::v1::{AgentId, AgentInfo};

    fn admit(id: &str) -> Operation {
        Operation::AdmitAgent(AgentInfo {
            id: Some(AgentId { value: id.into() }),
            hostname: "h".into(),
            ..Default::default()
        })
    }

    async fn apply(
        registrar: &libactor::ProcessRef<Registrar>,
        op: Operation,
    ) -> Result<(), RegistrarError> {
        let (tx, rx) = oneshot::channel();
        registrar.dispatch(move |r, ctx| r.apply(ctx, op, tx));
        rx.await.unwrap()
    }

    #[tokio::test]
    async fn writes_survive_recovery_and_a_lost_race_fails_the_registrar() {
        let dir = tempfile::tempdir().unwrap();
        let store = || AnyStore::File(FileStore::open(dir.path()).unwrap());
        let node = Node::builder().single_threaded().start().unwrap();
        let first = node
            .spawn_ref("registrar", Registrar::recover(store()).await.unwrap())
            .unwrap();
        // A burst: every answer comes back Ok, in few writes.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..200 {
            let (reply, answer) = oneshot::channel();
            first.dispatch(move |r, ctx| r.apply(ctx, admit(&format!("S{i}")), reply));
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(answer.await.unwrap()).unwrap() });
        }
        for _ in 0..200 {
            rx.recv().await.unwrap().unwrap();
        }
        let writes = node.metrics().counter("registrar/writes").get();
        assert!(writes < 200, "operations are batched: {writes} writes");

        // A second registrar (a new leader) recovers all 200 and writes on.
        let second = Registrar::recover(store()).await.unwrap();
        assert_eq!(second.registry().agents().count(), 200);
        let failure = second.failure();
        let second = node.spawn_ref("registrar2", second).unwrap();
        apply(&second, admit("S-new")).await.unwrap();

        // The first registrar's versions are stale: its next write to that shard loses.
        let stale = apply(&first, admit("S-new2")).await;
        let stale = match stale {
            Ok(()) => apply(&first, admit("S-new")).await,
            other => other,
        };
        assert!(matches!(stale, Err(RegistrarError::Failed(_))), "{stale:?}");
        assert!(matches!(
            apply(&first, admit("S-any")).await,
            Err(RegistrarError::Failed(_))
        ));
        assert!(
            failure.borrow().is_none(),
            "the new leader's registrar is fine"
        );
        node.shutdown().await;
    }
}
