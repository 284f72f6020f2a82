//! Coordination through ZooKeeper: which master leads, how everyone else finds it, and (with
//! the registrar) the little state that must outlive a master.
//!
//! - [`contender`]: a master's candidacy (EPHEMERAL_SEQUENTIAL `json.info_N`, lowest leads);
//! - [`detector`]: follows the leader for agents, scheduler drivers and `keelctl`;
//! - [`master_info`]: the JSON each contender stores (Mesos's shape);
//! - [`store`]: the registrar's versioned store, written by compare-and-set, in ZooKeeper or in
//!   a local directory;
//! - [`zk_url`]: `zk://host:port,…/path`; [`session`]: opening sessions, shared names.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coordination::CoordinationError> {
//! use coordination::{Contender, Detector, MasterInfoJson, ZkUrl, DEFAULT_SESSION_TIMEOUT};
//! let url: ZkUrl = "zk://127.0.0.1:2181/keel".parse()?;
//! let me = MasterInfoJson::new("m1", &"master@127.0.0.1:5050".parse().unwrap(), "box");
//! let contender = Contender::contend(&url, &me, DEFAULT_SESSION_TIMEOUT).await?;
//! contender.elected().await?;
//! let detector = Detector::start(url, DEFAULT_SESSION_TIMEOUT);
//! let leader = detector.wait_for_leader(std::time::Duration::from_secs(5)).await?;
//! assert_eq!(leader.pid, me.pid);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod contender;
pub mod detector;
pub mod master_info;
pub mod session;
pub mod store;
pub mod zk_url;

pub use contender::{Candidacy, Contender};
pub use detector::Detector;
pub use master_info::MasterInfoJson;
pub use session::DEFAULT_SESSION_TIMEOUT;
pub use store::{AnyStore, Entry, Fence, FileStore, MemoryStore, Store, StoreError, ZkStore};
pub use zk_url::ZkUrl;
/// The ZooKeeper client, for its session type and errors.
pub use zookeeper_client;

/// Why coordination failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    /// A `zk://` URL did not parse.
    #[error("bad ZooKeeper URL {0}")]
    BadUrl(String),
    /// No server of the ensemble answered.
    #[error("cannot reach ZooKeeper at {0}")]
    Unreachable(String),
    /// A ZooKeeper operation failed.
    #[error("cannot {action} {path} in ZooKeeper: {source}")]
    ZooKeeper {
        /// What was being done.
        action: &'static str,
        /// On which znode (or servers).
        path: String,
        /// What the client said.
        source: zookeeper_client::Error,
    },
    /// A contender's entry is not the JSON a master writes.
    #[error("bad master entry: {0}")]
    BadMasterInfo(String),
    /// The candidacy ended.
    #[error("leadership lost: {0}")]
    Lost(String),
    /// No master led within the wait.
    #[error("no leading master found within {0:?}")]
    NoLeader(std::time::Duration),
}

impl CoordinationError {
    fn zk(action: &'static str, path: &str, source: zookeeper_client::Error) -> Self {
        CoordinationError::ZooKeeper {
            action,
            path: path.to_owned(),
            source,
        }
    }
}
