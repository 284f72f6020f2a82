//! pymesos, the third-party Python Mesos client, unmodified, against the real binaries: its
//! scheduler subscribes through Keel's v1 scheduler HTTP API, authenticates with HTTP Basic
//! against a secure master's credentials, launches command tasks and sees them finish — at a
//! fixed master, and through ZooKeeper (pymesos's own kazoo detector) across a leader failover,
//! after which it re-subscribes and its tasks' updates arrive through the new leader.
//!
//! A pymesos executor (`tests/pymesos/executor.py`) subscribes to its agent's v1 executor API
//! and exchanges framework messages with a pymesos scheduler, and rides out its agent being
//! killed and restarted (it subscribes again, and finishes its task); pymesos cannot send
//! Mesos's executor token, so that runs on an insecure agent (a secure one refuses it: 401).
//!
//! The venv comes from `scripts/pymesos-venv.sh` (the README's test command makes it); its
//! python is `KEEL_PYMESOS_PYTHON`, or `target/pymesos-venv/bin/python`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use authentication::roles;
use coordination::Detector;
use keel_testkit::daemon::Daemon;
use keel_testkit::eventually::eventually;
use keel_testkit::leader::leader_other_than;
use keel_testkit::test_ca::TestCa;
use keel_testkit::zookeeper_server::ZooKeeperServer;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

const WAIT: Duration = Duration::from_secs(90);

fn python() -> PathBuf {
    let python = std::env::var_os("KEEL_PYMESOS_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pymesos-venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "no pymesos venv at {}: run scripts/pymesos-venv.sh (the README's test command does)",
        python.display()
    );
    python
}

fn scheduler_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/pymesos/scheduler.py")
}

/// The pymesos scheduler running `count` tasks of `command` at `master`, as principal `py`.
fn pymesos(master: &str, count: usize, command: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    pymesos_with(master, count, command, &[])
}

/// [`pymesos`] with the script's optional last arguments (`group`).
fn pymesos_with(
    master: &str,
    count: usize,
    command: &str,
    extra: &[&str],
) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = tokio::process::Command::new(python())
        .arg(scheduler_script())
        .args([master, &count.to_string(), command, "py", "s3cret"])
        .args(extra)
        .stdout(Stdio::piped())
        // pymesos's own warnings (connections refused, redirects followed) are what explains
        // a scheduler that never prints what a test waits for.
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, out)
}

/// Reads the scheduler's lines until one starts with `word`.
async fn line(out: &mut Lines<BufReader<ChildStdout>>, word: &str) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            match out.next_line().await.expect("the scheduler's stdout") {
                Some(l) if l.starts_with(word) => return l,
                Some(_) => continue,
                None => panic!("the pymesos scheduler ended before printing `{word}`"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `{word}` from the pymesos scheduler"))
}

/// A credentials file admitting `py` (secret `s3cret`) as a framework.
fn credentials(dir: &std::path::Path) -> String {
    let path = dir.join("credentials");
    std::fs::write(&path, "py s3cret framework\n").unwrap();
    path.display().to_string()
}

async fn agent(master: &str, work: &std::path::Path, ca: &TestCa) -> Daemon {
    Daemon::start(
        env!("CARGO_BIN_EXE_keel-slave"),
        &[
            "--master",
            master,
            "--port",
            "0",
            "--work-dir",
            work.to_str().unwrap(),
            "--resources",
            "cpus:2;mem:512;disk:100",
            "--isolation",
            "posix",
            "--tls-dir",
            &ca.tls_arg("agent-1", &[roles::AGENT]),
        ],
    )
    .await
    .0
}

async fn agents_registered(address: &str) {
    eventually("the agent registers", || async {
        let state = libactor::http_client::get_json(address, "/master/state")
            .await
            .ok()?;
        (state["slaves"].as_array()?.len() == 1).then_some(())
    })
    .await;
}

/// A secure `keel-master` (TLS, `--credentials` admitting `py`) and one TLS agent, registered.
struct SecureCluster {
    address: String,
    _master: Daemon,
    _agent: Daemon,
    _ca: TestCa,
    _dir: tempfile::TempDir,
}

impl SecureCluster {
    async fn start() -> SecureCluster {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let credentials = credentials(dir.path());
        let (master_daemon, master) = Daemon::start(
            env!("CARGO_BIN_EXE_keel-master"),
            &[
                "--port",
                "0",
                "--tls-dir",
                &ca.tls_arg("master", &[roles::MASTER]),
                "--credentials",
                &credentials,
            ],
        )
        .await;
        let address = master.split_once('@').unwrap().1.to_owned();
        let agent = agent(&master, &dir.path().join("agent"), &ca).await;
        agents_registered(&address).await;
        SecureCluster {
            address,
            _master: master_daemon,
            _agent: agent,
            _ca: ca,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pymesos_scheduler_runs_tasks_on_a_secure_master() {
    let cluster = SecureCluster::start().await;
    let address = cluster.address.clone();

    let (mut child, mut out) = pymesos(&address, 3, "echo hello from pymesos");
    line(&mut out, "registered").await;
    assert_eq!(line(&mut out, "all finished").await, "all finished");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    // The framework was pymesos's, under the principal it proved.
    let state = libactor::http_client::get_json(&address, "/master/state")
        .await
        .unwrap();
    let principals: Vec<&str> = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["principal"].as_str())
        .collect();
    assert!(principals.iter().all(|p| *p == "py"), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pymesos_scheduler_launches_a_task_group_on_the_default_executor() {
    // The agent runs keel-default-executor from beside its own binary.
    let cluster = SecureCluster::start().await;
    let address = cluster.address.clone();

    let command = "test -n \"$MESOS_SANDBOX\" && echo hello from a pod";
    let (mut child, mut out) = pymesos_with(&address, 3, command, &["group"]);
    line(&mut out, "registered").await;
    assert!(line(&mut out, "launching group of 3")
        .await
        .ends_with(&agent_id_of(&address).await));
    assert_eq!(line(&mut out, "all finished").await, "all finished");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    // All three ran on the group's executor.
    let state = libactor::http_client::get_json(&address, "/master/state")
        .await
        .unwrap();
    let executors: Vec<&str> = state["completed_frameworks"]
        .as_array()
        .into_iter()
        .chain(state["frameworks"].as_array())
        .flatten()
        .flat_map(|f| f["completed_tasks"].as_array().into_iter().flatten())
        .filter_map(|t| t["executor_id"].as_str())
        .collect();
    assert_eq!(executors, ["py-group"; 3], "{state:#}");
}

/// The id of the one agent registered at `address`.
async fn agent_id_of(address: &str) -> String {
    let state = libactor::http_client::get_json(address, "/master/state")
        .await
        .unwrap();
    state["slaves"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pymesos_scheduler_follows_zookeeper_across_a_leader_failover() {
    let zk = ZooKeeperServer::start().expect("zookeeper");
    let zk_url = zk.url("/keel");
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let credentials = credentials(dir.path());
    let master_tls = ca.tls_arg("master", &[roles::MASTER]);
    let mut masters = Vec::new();
    for _ in 0..2 {
        let args = [
            "--port",
            "0",
            "--zk",
            &zk_url,
            "--zk-session-timeout-seconds",
            "2",
            "--tls-dir",
            &master_tls,
            "--credentials",
            &credentials,
        ];
        masters.push(Daemon::start(env!("CARGO_BIN_EXE_keel-master"), &args).await);
    }
    let detector = Detector::start(zk_url.parse().unwrap(), Duration::from_secs(2));
    let first = leader_other_than(&detector, None).await;
    let first_address = first.split_once('@').unwrap().1.to_owned();
    let _agent = agent(&zk_url, &dir.path().join("agent"), &ca).await;
    agents_registered(&first_address).await;

    // The tasks wait for a file the test makes once the failover is over.
    let go = dir.path().join("go");
    let command = format!("while [ ! -e {} ]; do sleep 0.1; done", go.display());
    let (mut child, mut out) = pymesos(&zk_url, 2, &command);
    line(&mut out, "registered").await;
    line(&mut out, "update py-").await;
    line(&mut out, "update py-").await;

    let index = masters.iter().position(|(_, p)| *p == first).unwrap();
    let (leader, _) = masters.remove(index);
    leader.crash().await;
    let second = leader_other_than(&detector, Some(&first)).await;
    assert_ne!(second, first);
    // pymesos's detector finds the new leader and re-subscribes under its framework id.
    line(&mut out, "reregistered").await;
    std::fs::write(&go, b"").unwrap();
    assert_eq!(line(&mut out, "all finished").await, "all finished");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    for (master, _) in masters {
        master.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pymesos_executor_and_scheduler_exchange_framework_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (_master, master) =
        Daemon::start(env!("CARGO_BIN_EXE_keel-master"), &["--port", "0"]).await;
    let address = master.split_once('@').unwrap().1.to_owned();
    let work = dir.path().join("agent");
    let (_agent, agent_pid) = insecure_agent(&master, &work, 0).await;
    agents_registered(&address).await;
    let agent_address = agent_pid.split_once('@').unwrap().1.to_owned();
    let (mut child, mut out) = messages(&address, 2, false);
    let first = line(&mut out, "message").await;
    assert!(first.starts_with("message hello from msg-"), "{first}");
    assert_eq!(line(&mut out, "all finished").await, "all finished");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    // The scheduler ended its framework: the agent shuts the custom executor down. The test
    // waits for that, so that no executor outlives the agent the test is about to kill (one
    // did, orphaned, after a CI run).
    eventually(
        "the agent shuts the ended framework's executor down",
        || async {
            let state = libactor::http_client::get_json(&agent_address, "/slave(1)/state")
                .await
                .ok()?;
            state["frameworks"].as_array()?.is_empty().then_some(())
        },
    )
    .await;
}

/// An insecure agent of `master` with `work` as its work dir, on `port` (0: any).
async fn insecure_agent(master: &str, work: &std::path::Path, port: u16) -> (Daemon, String) {
    Daemon::start(
        env!("CARGO_BIN_EXE_keel-slave"),
        &[
            "--master",
            master,
            "--port",
            &port.to_string(),
            "--work-dir",
            work.to_str().unwrap(),
            "--resources",
            "cpus:2;mem:512;disk:100",
            "--isolation",
            "posix",
        ],
    )
    .await
}

/// `tests/pymesos/messages.py` at `master` with `count` tasks, holding its answers until told
/// "go" on its standard input when `hold`.
fn messages(
    master: &str,
    count: usize,
    hold: bool,
) -> (tokio::process::Child, Lines<BufReader<ChildStdout>>) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/pymesos/messages.py");
    let mut command = tokio::process::Command::new(python());
    command.arg(script).args([master, &count.to_string()]);
    if hold {
        command.arg("hold").stdin(Stdio::piped());
    }
    let mut child = command
        .stdout(Stdio::piped())
        // pymesos's own warnings (connections refused, redirects followed) are what explains
        // a scheduler that never prints what a test waits for.
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pymesos_executor_rides_out_its_agent_restarting() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let (_master, master) =
        Daemon::start(env!("CARGO_BIN_EXE_keel-master"), &["--port", "0"]).await;
    let address = master.split_once('@').unwrap().1.to_owned();
    // The executor finds its agent again at MESOS_AGENT_ENDPOINT: the restarted agent takes the
    // same port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let work = dir.path().join("agent");
    let (mut agent, agent_pid) = insecure_agent(&master, &work, port).await;
    agents_registered(&address).await;
    let (mut child, mut out) = messages(&address, 1, true);
    let hello = line(&mut out, "message").await;
    assert_eq!(hello, "message hello from msg-0");

    agent.signal(libc::SIGKILL);
    agent.exited(WAIT).await;
    let (_agent, again) = insecure_agent(&master, &work, port).await;
    assert_eq!(again, agent_pid, "the same agent, at the same address");
    let agent_address = agent_pid.split_once('@').unwrap().1.to_owned();
    eventually("the executor subscribes again", || async {
        let m = libactor::http_client::get_json(&agent_address, "/metrics/snapshot")
            .await
            .ok()?;
        (m["slave/api/executor_subscribers"].as_f64()? == 1.0).then_some(())
    })
    .await;

    // The same executor process finishes the task on the framework's word.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    stdin.flush().await.unwrap();
    assert_eq!(
        line(&mut out, "update msg-0 TASK_FINISHED").await,
        "update msg-0 TASK_FINISHED"
    );
    assert_eq!(line(&mut out, "all finished").await, "all finished");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
