//! A whole in-process cluster with a test framework registered on it: the starting point of
//! most cluster tests.

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use libactor::Node;
use protos::v1::TaskInfo;

use keel_testkit::recording_scheduler::{framework_info, TestFramework};

pub use keel_testkit::AGENTS_UP;

/// A running cluster, the framework's node and the registered framework.
pub struct ClusterWithFramework {
    /// The cluster.
    pub cluster: LocalCluster,
    /// The node the framework runs on.
    pub node: Node,
    /// The framework, registered.
    pub framework: TestFramework,
}

impl ClusterWithFramework {
    /// Starts `config`, waits for its agents, and registers a framework called `test`.
    pub async fn start(config: LocalClusterConfig) -> ClusterWithFramework {
        let cluster = LocalCluster::start(config).await.expect("cluster starts");
        cluster
            .wait_for_agents(AGENTS_UP)
            .await
            .expect("agents register");
        let node = Node::builder()
            .single_threaded()
            .start()
            .expect("framework node");
        let mut framework =
            TestFramework::start(&node, cluster.master_pid(), framework_info("test"));
        framework.registered().await;
        ClusterWithFramework {
            cluster,
            node,
            framework,
        }
    }

    /// Launches `task` on the first offer that comes (see
    /// [`TestFramework::launch_on_first_offer`]).
    pub async fn launch_on_first_offer(&mut self, task: TaskInfo) {
        self.framework.launch_on_first_offer(task).await;
    }

    /// Stops the framework's node, then the cluster.
    pub async fn shutdown(self) {
        self.node.shutdown().await;
        self.cluster.shutdown().await;
    }
}
