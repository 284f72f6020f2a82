//! High availability with the real binaries and a real ZooKeeper: three `keel-master`s
//! contend, standbys redirect HTTP to the leader, the leader is SIGKILLed, a new one is
//! elected, the agent and the framework follow it and re-register, and the running task keeps
//! running (never launched twice) and its later updates arrive; `keelctl execute` given the
//! `zk://` URL follows the new leader and sees its task finish. Every daemon and client runs
//! mutual TLS with a certificate from the test's CA.

use std::io::{Read, Write};
use std::time::Duration;

use authentication::roles;
use coordination::{Detector, ZkUrl};
use keel_testkit::daemon::Daemon;
use keel_testkit::eventually::eventually;
use keel_testkit::leader::leader_other_than;
use keel_testkit::recording_scheduler::{
    command_task, framework_info, SchedulerEvent, TestFramework,
};
use keel_testkit::test_ca::TestCa;
use keel_testkit::zookeeper_server::ZooKeeperServer;
use protos::v1::{TaskId, TaskState};
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(60);
/// Short, so that a killed leader's session (and candidacy) ends quickly.
const ZK_SESSION_SECONDS: &str = "2";

/// `GET path` on `addr`; returns the status code and the `Location` header.
fn get(addr: &str, path: &str) -> (u16, Option<String>) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = response
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .map(str::to_owned);
    (status, location)
}

/// Starts `n` masters contending in `zk_url`, on certificates from `ca`; returns each with
/// its pid.
async fn start_masters(n: usize, zk_url: &str, ca: &TestCa) -> Vec<(Daemon, String)> {
    let mut masters = Vec::new();
    let tls = ca.tls_arg("master", &[roles::MASTER]);
    for _ in 0..n {
        let args = [
            "--port",
            "0",
            "--zk",
            zk_url,
            "--zk-session-timeout-seconds",
            ZK_SESSION_SECONDS,
            "--tls-dir",
            &tls,
        ];
        masters.push(Daemon::start(env!("CARGO_BIN_EXE_keel-master"), &args).await);
    }
    masters
}

/// `GET path` until `done(status)` (a master changing role has no event a test can wait on
/// but its answers); returns that answer.
async fn poll(addr: &str, path: &str, done: impl Fn(u16) -> bool) -> (u16, Option<String>) {
    eventually(&format!("GET {addr}{path} answers as expected"), || async {
        let answer = get(addr, path);
        done(answer.0).then_some(answer)
    })
    .await
}

/// The tasks the leader's `/master/state` lists (through `keelctl --master zk://…`, over
/// HTTPS with `tls`).
fn tasks_via_keelctl(zk: &str, tls: &std::path::Path) -> Option<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keelctl"))
        .env("KEEL_TLS_DIR", tls)
        .env_remove("KEEL_INSECURE")
        .args(["--master", zk, "tasks", "--json"])
        .output()
        .expect("keelctl runs");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_new_leader_elected_and_running_tasks_survive() {
    let zk = ZooKeeperServer::start().expect("zookeeper");
    let zk_url = zk.url("/keel");
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ops = ca.tls_dir("ops", &[roles::FRAMEWORK, roles::OPERATOR]);

    let mut masters = start_masters(3, &zk_url, &ca).await;
    let url: ZkUrl = zk_url.parse().unwrap();
    let detector = Detector::start(url, Duration::from_secs(2));
    let first = leader_other_than(&detector, None).await;
    let leader_index = masters
        .iter()
        .position(|(_, p)| *p == first)
        .expect("a started master leads");

    // A standby redirects HTTP to the leader.
    let standby = &masters[(leader_index + 1) % 3].1;
    let standby_addr = standby.split('@').nth(1).unwrap();
    let leader_addr = first.split('@').nth(1).unwrap().to_owned();
    // (503 until the standby's own detector has seen the leader.)
    let (status, location) = poll(standby_addr, "/master/state?jsonp=x", |s| s != 503).await;
    assert_eq!(status, 307);
    assert_eq!(
        location.as_deref(),
        Some(format!("http://{leader_addr}/master/state?jsonp=x").as_str())
    );
    // The elected master replaces its standby process with the real one: wait until it serves.
    assert_eq!(
        poll(&leader_addr, "/master/state", |s| s == 200).await.0,
        200
    );

    // One agent and one framework, both following ZooKeeper.
    let (agent, _) = Daemon::start(
        env!("CARGO_BIN_EXE_keel-slave"),
        &[
            "--master",
            &zk_url,
            "--port",
            "0",
            "--work-dir",
            dir.path().to_str().unwrap(),
            "--resources",
            "cpus:2;mem:512;disk:100",
            "--isolation",
            "posix",
            "--tls-dir",
            &ca.tls_arg("agent-1", &[roles::AGENT]),
        ],
    )
    .await;
    // keelctl execute, given the zk:// URL, runs a task across the failover: it must follow the
    // new leader to hear its task end (the task waits for a file the test creates later).
    let go = dir.path().join("go");
    let mut execute = tokio::process::Command::new(env!("CARGO_BIN_EXE_keelctl"))
        .env("KEEL_TLS_DIR", &ops)
        .env_remove("KEEL_INSECURE")
        .args([
            "--master",
            &zk_url,
            "execute",
            "--name",
            "across",
            "--command",
            &format!("while [ ! -e {} ]; do sleep 0.1; done", go.display()),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("keelctl starts");
    let mut execute_out = BufReader::new(execute.stdout.take().expect("stdout")).lines();
    tokio::time::timeout(WAIT, async {
        while let Some(line) = execute_out.next_line().await.expect("keelctl's stdout") {
            if line.contains("TASK_RUNNING") {
                return;
            }
        }
        panic!("keelctl ended before its task ran");
    })
    .await
    .expect("keelctl's task runs");

    let node = libactor::Node::builder()
        .tls(ca.tls("ha", &[roles::FRAMEWORK]))
        .start()
        .unwrap();
    let mut framework = TestFramework::start(&node, &first.parse().unwrap(), framework_info("ha"));
    let framework_id = framework.registered().await;
    let following = {
        let handle = framework.handle.clone();
        keel::master_address::follow(
            Detector::start(zk_url.parse().unwrap(), Duration::from_secs(2)),
            first.parse().unwrap(),
            move |leader| handle.set_master(leader),
        )
    };
    framework
        .launch_on_first_offer(command_task("long", "exec sleep 600", "cpus:0.1;mem:16"))
        .await;
    framework.status("long", TaskState::TaskRunning).await;
    // The leader crashes.
    let (leader, _) = masters.remove(leader_index);
    leader.crash().await;
    let second = leader_other_than(&detector, Some(&first)).await;
    assert_ne!(second, first);

    // The framework re-registers with the new leader under its id...
    framework
        .until(|e| {
            matches!(
                e,
                SchedulerEvent::Reregistered | SchedulerEvent::Registered(_)
            )
            .then_some(())
        })
        .await;
    // ...and the agent brings its running task back (seen through keelctl following ZooKeeper).
    eventually("the task is back on the new leader", || async {
        let tasks = tasks_via_keelctl(&zk_url, &ops)?;
        tasks
            .as_array()?
            .iter()
            .any(|t| t["id"] == "long" && t["state"] == "TASK_RUNNING")
            .then_some(())
    })
    .await;
    // Never launched twice: one run of its executor on the agent.
    let runs: Vec<_> = walk_runs(dir.path(), "long");
    assert_eq!(runs.len(), 1, "{runs:?}");
    // keelctl's task ends now; keelctl hears it through the new leader and exits 0.
    std::fs::write(&go, b"").expect("the go file");
    let done = tokio::time::timeout(WAIT, async {
        while execute_out.next_line().await.ok().flatten().is_some() {}
        execute.wait().await
    })
    .await
    .expect("keelctl execute ends after the failover")
    .expect("keelctl's exit status");
    assert!(done.success(), "keelctl execute: {done:?}");

    // Later updates arrive through the new leader: kill it.
    framework
        .act(|d| {
            d.kill_task(&TaskId {
                value: "long".into(),
            })
        })
        .await;
    let killed = framework.status("long", TaskState::TaskKilled).await;
    assert_eq!(killed.task_id.unwrap().value, "long");
    assert_eq!(
        framework
            .handle
            .call(|_, d| d.framework_id().cloned())
            .await
            .unwrap(),
        Some(framework_id)
    );

    following.abort();
    framework.handle.stop();
    agent.stop().await;
    for (master, _) in masters {
        master.stop().await;
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_whose_session_expires_exits_and_the_standby_takes_over() {
    let zk = ZooKeeperServer::start().expect("zookeeper");
    let zk_url = zk.url("/keel");
    let ca = TestCa::new();
    let mut masters = start_masters(2, &zk_url, &ca).await;
    let detector = Detector::start(zk_url.parse().unwrap(), Duration::from_secs(2));
    let first = leader_other_than(&detector, None).await;
    let index = masters.iter().position(|(_, p)| *p == first).unwrap();
    let (mut old, _) = masters.remove(index);
    let (standby, standby_pid) = masters.remove(0);
    // ZooKeeper names it leader before it has taken over: wait until it leads.
    old.line_starting("leading", WAIT).await;

    // Freeze the leader: it stops talking to ZooKeeper, whose session for it expires.
    old.signal(libc::SIGSTOP);
    let second = leader_other_than(&detector, Some(&first)).await;
    assert_eq!(second, standby_pid);
    // Thawed, the old leader learns its session is gone and exits rather than lead too.
    old.signal(libc::SIGCONT);
    assert_eq!(old.exited(WAIT).await, Some(1));
    let addr = second.split('@').nth(1).unwrap().to_owned();
    assert_eq!(poll(&addr, "/master/state", |s| s == 200).await.0, 200);
    standby.stop().await;
}

/// The run directories of executor `executor` under an agent's work dir.
fn walk_runs(work_dir: &std::path::Path, executor: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![work_dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "runs")
                && path
                    .parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == executor)
            {
                found.extend(
                    std::fs::read_dir(&path)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.path()),
                );
            } else {
                stack.push(path);
            }
        }
    }
    found
}
