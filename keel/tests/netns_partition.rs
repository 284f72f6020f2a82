//! A network partition between an agent and the master, made for real: the master runs in one
//! network namespace, the agent in another, joined by a veth pair with TEST-NET-1 addresses
//! (192.0.2.0/24, only inside the namespaces); `nft` drop rules inside the agent's namespace
//! cut it off. The master marks the agent unreachable and the framework hears TASK_UNREACHABLE;
//! once the rules go, the agent re-registers with its task still running and reconciliation
//! says TASK_RUNNING. The namespaces (and with them the veth pair and the rules) are deleted
//! when the test ends, also when it fails.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables; the README's test command installs it).

use keel_testkit::daemon::Daemon;
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::{
    command_task, framework_info, SchedulerEvent, TestFramework,
};
use libactor::Node;
use protos::v1::framework_info::{capability, Capability};
use protos::v1::task_status::Reason;
use protos::v1::{FrameworkInfo, TaskId, TaskState};
use std::process::Command;

const MASTER_IP: &str = "192.0.2.1";
const AGENT_IP: &str = "192.0.2.2";
const MASTER: &str = "192.0.2.1:5050";

/// Runs `ip ARGS`, panicking with its stderr if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `nft` inside namespace `ns` with `script` on stdin.
fn nft(ns: &str, script: &str) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Network namespaces this test made; deleted on drop (their veth ends and nft rules go with
/// them).
struct Namespaces(Vec<String>);

impl Namespaces {
    fn create(names: &[&str]) -> Namespaces {
        let made = Namespaces(names.iter().map(|n| n.to_string()).collect());
        for name in names {
            ip(&["netns", "add", name]);
        }
        made
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Moves the calling thread into namespace `ns` (threads and processes it starts follow).
fn enter(ns: &str) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("namespace file");
    // SAFETY: setns(2) on a namespace file descriptor we hold open; it changes only this
    // thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

const PARTITION: &str = "table inet keel_partition {
  chain input { type filter hook input priority 0; policy drop; iifname \"lo\" accept; }
  chain output { type filter hook output priority 0; policy drop; oifname \"lo\" accept; }
}
";

#[test]
fn a_partitioned_agent_is_marked_unreachable_and_settles_once_healed() {
    // SAFETY: geteuid(2) has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "network namespaces need root"
    );
    let tag = std::process::id() % 100_000;
    let (m, a) = (format!("keelm{tag}"), format!("keela{tag}"));
    let (veth_m, veth_a) = (format!("km{tag}"), format!("ka{tag}"));
    let _namespaces = Namespaces::create(&[&m, &a]);
    ip(&[
        "link", "add", &veth_m, "type", "veth", "peer", "name", &veth_a,
    ]);
    ip(&["link", "set", &veth_m, "netns", &m]);
    ip(&["link", "set", &veth_a, "netns", &a]);
    for (ns, dev, addr) in [(&m, &veth_m, MASTER_IP), (&a, &veth_a, AGENT_IP)] {
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    // This thread (and the runtime and nodes it starts) lives beside the master.
    enter(&m);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(partition_and_heal(&m, &a));
}

async fn partition_and_heal(m: &str, a: &str) {
    let work = tempfile::tempdir().unwrap();
    let master_bin = env!("CARGO_BIN_EXE_keel-master");
    let slave_bin = env!("CARGO_BIN_EXE_keel-slave");
    let work_dir = work.path().to_str().unwrap();
    let (_master, _) = Daemon::start(
        "ip",
        &[
            "netns",
            "exec",
            m,
            master_bin,
            "--ip",
            MASTER_IP,
            "--port",
            "5050",
            "--agent-ping-timeout-seconds",
            "0.5",
            "--max-agent-ping-timeouts",
            "4",
        ],
    )
    .await;
    let (_agent, _) = Daemon::start(
        "ip",
        &[
            "netns",
            "exec",
            a,
            slave_bin,
            "--master",
            MASTER,
            "--ip",
            AGENT_IP,
            "--port",
            "5051",
            "--work-dir",
            work_dir,
            "--isolation",
            "posix",
            "--resources",
            "cpus:1;mem:256",
            "--master-ping-timeout-seconds",
            "3",
        ],
    )
    .await;

    let node = Node::builder()
        .bind(format!("{MASTER_IP}:0").parse().unwrap())
        .single_threaded()
        .start()
        .unwrap();
    let info = FrameworkInfo {
        capabilities: vec![Capability {
            r#type: capability::Type::PartitionAware as i32,
        }],
        ..framework_info("partitioned")
    };
    let mut framework =
        TestFramework::start(&node, &format!("master@{MASTER}").parse().unwrap(), info);
    framework.registered().await;
    framework
        .launch_on_first_offer(command_task("t", "sleep 300", "cpus:0.5;mem:16"))
        .await;
    let running = framework.status("t", TaskState::TaskRunning).await;
    let agent_id = running.agent_id.clone().unwrap();

    // Cut the agent off: the master misses 4 pongs (2 s), marks it unreachable and says so.
    nft(a, PARTITION);
    let unreachable = framework.status("t", TaskState::TaskUnreachable).await;
    assert_eq!(unreachable.reason(), Reason::AgentRemoved);
    let lost = framework
        .until(|e| match e {
            SchedulerEvent::AgentLost(id) => Some(id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(lost, agent_id);

    // Heal: the agent, pinged no more, registers again with its task.
    nft(a, "delete table inet keel_partition\n");
    let state_has_agent = || async {
        let state = libactor::http_client::get_json(MASTER, "/master/state")
            .await
            .ok()?;
        let slaves = state["slaves"].as_array()?;
        slaves
            .iter()
            .any(|s| s["id"] == agent_id.value.as_str())
            .then_some(())
    };
    eventually(
        "the agent re-registers after the partition",
        state_has_agent,
    )
    .await;
    let reconciled = framework.reconcile("t", Some(agent_id.clone())).await;
    assert_eq!(
        reconciled.state(),
        TaskState::TaskRunning,
        "the task ran on through the partition"
    );
    // The same task (never relaunched) is still the agent's: a kill ends it.
    framework
        .act(|d| d.kill_task(&TaskId { value: "t".into() }))
        .await;
    framework.status("t", TaskState::TaskKilled).await;
    node.shutdown().await;
}
