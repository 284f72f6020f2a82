//! The Omega simulator's validation harness (`keel-bench omega-validation`) on a small light
//! workload: the simulator and a real master with emulated agents get the same jobs, and both
//! place every job that had time to be placed, without a conflict (one scheduler cannot
//! conflict with itself) and never sooner than a decision takes.

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_bench::omega_validation::{real, simulated, Validation};
use keel_sim::simulation::{Conflicts, DecisionTime};
use keel_sim::workload::JobShape;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_and_the_real_master_agree_on_a_light_workload() {
    let v = Validation {
        machines: 4,
        machine_cpus: 4.0,
        machine_mem: 8.0,
        batch: JobShape {
            interarrival: 0.5,
            tasks: 3.0,
            duration: 1.0,
            cpus: 0.5,
            mem: 1.0,
        },
        horizon: 6.0,
        decision: DecisionTime {
            per_job: 0.02,
            per_task: 0.002,
        },
        max_attempts: 1000,
        seed: 3,
    };
    let jobs = v.jobs();
    // Jobs with two seconds or more to go at the horizon: placed on either side.
    let early = jobs.iter().filter(|j| j.arrival < v.horizon - 2.0).count();
    assert!(early >= 3, "the seed's workload is too small: {jobs:?}");
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(LocalClusterConfig::new(0, dir.path()))
        .await
        .unwrap();
    let sim = simulated(&v, 1, Conflicts::Fine);
    let real = real(cluster.master_pid(), &v, 1, Conflicts::Fine)
        .await
        .expect("the real run");
    let fastest = v.decision.per_job + v.decision.per_task;
    for (side, r) in [("simulator", &sim), ("real master", &real)] {
        assert_eq!(r.jobs, jobs.len(), "{side}: {r:?}");
        assert_eq!(
            r.scheduled + r.abandoned + r.unscheduled,
            r.jobs,
            "{side}: {r:?}"
        );
        assert!(r.scheduled >= early, "{side}: {r:?}");
        assert_eq!(r.abandoned, 0, "{side}: {r:?}");
        assert_eq!(r.conflicted, 0, "{side}: {r:?}");
        assert!(r.transactions >= r.scheduled as u64, "{side}: {r:?}");
        assert!(r.mean_wait >= fastest, "{side}: {r:?}");
        assert!(r.busyness > 0.0, "{side}: {r:?}");
    }
    cluster.shutdown().await;
}
