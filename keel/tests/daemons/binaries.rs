//! The real binaries as separate OS processes: `keel-master`, two `keel-slave`s and `keelctl`
//! over real TCP on 127.0.0.1, and `keel-local` running `particles` end to end (its custom
//! executors are yet more OS processes, started by the agents).

use std::process::Command;

use keel_testkit::daemon::Daemon;
use keel_testkit::eventually::eventually;

async fn start(binary: &str, args: &[&str]) -> (Daemon, String) {
    Daemon::start(binary, args).await
}

/// keelctl against the insecure master these tests start.
fn keelctl(master: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keelctl"))
        .env("KEEL_INSECURE", "true")
        .args(["--master", master])
        .args(args)
        .output()
        .expect("keelctl runs")
}

/// A daemon's answer to the operator API's `GET_FLAGS` (JSON), over TLS when `tls` is given.
async fn get_flags(address: &str, tls: Option<&libactor::tls::TlsConfig>) -> serde_json::Value {
    operator_call_over(address, tls, r#"{"type": "GET_FLAGS"}"#)
        .await
        .1
}

/// A daemon's status and JSON answer to an operator API call (JSON), on an insecure node.
async fn operator_call(address: &str, call: &str) -> (u16, serde_json::Value) {
    operator_call_over(address, None, call).await
}

/// [`operator_call`], over TLS when `tls` is given.
async fn operator_call_over(
    address: &str,
    tls: Option<&libactor::tls::TlsConfig>,
    call: &str,
) -> (u16, serde_json::Value) {
    let answer = libactor::http_client::request_over(
        address,
        tls,
        "POST",
        "/api/v1",
        &[("content-type", "application/json".to_owned())],
        call.to_owned().into(),
    )
    .await
    .unwrap();
    let json = serde_json::from_slice(&answer.body).unwrap_or(serde_json::Value::Null);
    (answer.status, json)
}

/// Sets a daemon's logging level for `seconds` through the operator API, sees it set, and
/// waits (bounded) for it to go back to 0.
async fn logging_level_goes_up_and_back(address: &str, level: u32, seconds: u64) {
    let get = r#"{"type": "GET_LOGGING_LEVEL"}"#;
    assert_eq!(
        operator_call(address, get).await.1["get_logging_level"]["level"],
        0
    );
    let set = |level: u32, nanoseconds: u64| {
        format!(
            r#"{{"type": "SET_LOGGING_LEVEL", "set_logging_level": {{"level": {level}, "duration": {{"nanoseconds": {nanoseconds}}}}}}}"#
        )
    };
    assert_eq!(
        operator_call(address, &set(level, 0)).await.0,
        400,
        "no duration"
    );
    assert_eq!(
        operator_call(address, &set(level, seconds * 1_000_000_000))
            .await
            .0,
        202
    );
    logging_level_is_then_back(address, level).await;
}

/// Sees a daemon's logging level at `level`, then waits (bounded) for it to go back to 0.
async fn logging_level_is_then_back(address: &str, level: u32) {
    let get = r#"{"type": "GET_LOGGING_LEVEL"}"#;
    assert_eq!(
        operator_call(address, get).await.1["get_logging_level"]["level"],
        level
    );
    eventually("the logging level goes back to 0", || async {
        let level = operator_call(address, get).await.1["get_logging_level"]["level"].clone();
        (level == 0).then_some(())
    })
    .await;
}

/// Sets a daemon's logging level for a second through libprocess's `/logging/toggle`, sees it
/// set, and waits (bounded) for it to go back to 0; a query that is not one gets 400.
async fn logging_toggle_goes_up_and_back(address: &str, level: u32) {
    let toggle = |query: String| {
        let address = address.to_owned();
        async move {
            let path = format!("/logging/toggle{query}");
            let reply =
                libactor::http_client::request(&address, "GET", &path, &[], Default::default())
                    .await
                    .unwrap();
            (
                reply.status,
                String::from_utf8_lossy(&reply.body).into_owned(),
            )
        }
    };
    let (status, why) = toggle("?duration=1secs".into()).await;
    assert_eq!(
        (status, why.as_str()),
        (400, "Expecting 'level=VALUE' in query.\n")
    );
    let (status, why) = toggle(format!("?level={level}&duration=soon")).await;
    assert_eq!(status, 400, "{why}");
    assert_eq!(
        toggle(format!("?level={level}&duration=1secs")).await.0,
        200
    );
    logging_level_is_then_back(address, level).await;
}

/// Runs `keelctl agents --json` until `n` agents are listed (bounded).
async fn wait_for_agents(master: &str, n: usize) -> serde_json::Value {
    eventually(&format!("{n} agents register"), || async {
        let out = keelctl(master, &["agents", "--json"]);
        let agents: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (out.status.success() && agents.as_array().is_some_and(|a| a.len() == n)).then_some(agents)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_slaves_and_keelctl_as_separate_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (_master, master_pid) = start(env!("CARGO_BIN_EXE_keel-master"), &["--port", "0"]).await;
    let master = master_pid.clone();
    let mut slaves = Vec::new();
    for i in 0..2 {
        let work = dir.path().join(format!("s{i}"));
        let work = work.to_str().unwrap().to_owned();
        slaves.push(
            start(
                env!("CARGO_BIN_EXE_keel-slave"),
                &[
                    "--master",
                    &master,
                    "--port",
                    "0",
                    "--work-dir",
                    &work,
                    "--resources",
                    "cpus:1;mem:256;disk:100",
                    "--attributes",
                    "rack:r1",
                ],
            )
            .await,
        );
    }
    let agents = wait_for_agents(&master, 2).await;
    assert_eq!(agents[0]["resources"]["cpus"], 1.0);
    // An agent reports the flags it runs with, to the operator API and at `/flags`.
    let agent_pid = agents[0]["pid"].as_str().unwrap().to_owned();
    let (agent_id, agent_addr) = agent_pid.split_once('@').unwrap();
    let asked = get_flags(agent_addr, None).await;
    let flags = asked["get_flags"]["flags"].as_array().unwrap();
    let flag = |name: &str| {
        flags
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["value"].clone())
    };
    assert_eq!(
        flag("resources"),
        Some("cpus:1;mem:256;disk:100".into()),
        "{asked}"
    );
    assert_eq!(flag("attributes"), Some("rack:r1".into()), "{asked}");
    // Operators raise a daemon's logging for a while (Mesos's SET_LOGGING_LEVEL).
    let master_addr = master.split_once('@').unwrap().1.to_owned();
    logging_level_goes_up_and_back(&master_addr, 1, 2).await;
    logging_level_goes_up_and_back(agent_addr, 2, 1).await;
    // And with libprocess's endpoint.
    logging_toggle_goes_up_and_back(&master_addr, 2).await;
    logging_toggle_goes_up_and_back(agent_addr, 1).await;
    let listed = libactor::http_client::get_json(agent_addr, &format!("/{agent_id}/flags"))
        .await
        .unwrap();
    assert_eq!(listed["flags"]["master"], master.as_str(), "{listed}");
    assert!(
        listed["flags"]["work_dir"]
            .as_str()
            .unwrap()
            .starts_with(dir.path().to_str().unwrap()),
        "{listed}"
    );
    let slaves: Vec<Daemon> = slaves.into_iter().map(|(daemon, _)| daemon).collect();

    // A one-off command framework: every instance finishes, keelctl exits 0.
    let ok = keelctl(
        &master,
        &[
            "execute",
            "--command",
            "echo done",
            "--instances",
            "3",
            "--cpus",
            "0.2",
        ],
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}");
    assert_eq!(text.matches("TASK_FINISHED").count(), 3, "{text}");
    assert!(text.contains("3 task(s): 3 finished, 0 did not"), "{text}");

    // A failing command: keelctl reports it and exits non-zero.
    let bad = keelctl(&master, &["execute", "--command", "exit 4", "--json"]);
    assert!(!bad.status.success());
    let last: serde_json::Value = String::from_utf8_lossy(&bad.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .next_back()
        .expect("JSON lines");
    assert_eq!(last["state"], "TASK_FAILED");
    assert_eq!(last["message"], "Command exited with status 4");

    // The tables read the live state.
    let state = keelctl(&master, &["state"]);
    let text = String::from_utf8_lossy(&state.stdout);
    assert!(text.contains("2 agents"), "{text}");

    // A control message posted by name: a malformed one is refused, a well-formed one
    // accepted (and, not being from a framework's scheduler, counted as invalid by the master).
    let malformed = keelctl(&master, &["send", &master, "ReviveOffersMessage", "{nope"]);
    assert!(!malformed.status.success());
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("JSON does not fit"));
    let sent = keelctl(
        &master,
        &[
            "send",
            &master,
            "ReviveOffersMessage",
            r#"{"frameworkId": {"value": "F"}}"#,
        ],
    );
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // The cluster still works after all that.
    wait_for_agents(&master, 2).await;

    // Operator endpoints: health, and metrics of what happened (gauges refresh every second).
    let address = master.split('@').nth(1).unwrap().to_owned();
    let health =
        libactor::http_client::request(&address, "GET", "/master/health", &[], Default::default())
            .await
            .unwrap();
    assert_eq!(health.status, 200);
    // The gauges refresh every second: wait until they have caught up with the counters.
    let m = eventually("gauges show 2 agents and no running task", || async {
        let m = libactor::http_client::get_json(&address, "/metrics/snapshot")
            .await
            .ok()?;
        let caught_up = m["master/agents_active"].as_f64() == Some(2.0)
            && m["master/tasks_running"].as_f64() == Some(0.0);
        caught_up.then_some(m)
    })
    .await;
    let get = |k: &str| m[k].as_f64().unwrap_or(-1.0);
    assert_eq!(get("master/tasks_finished"), 3.0);
    assert_eq!(get("master/tasks_failed"), 1.0);
    assert!(get("master/offers_sent") >= 2.0);
    assert!(
        get("allocator/cycle_time/count") >= 1.0,
        "allocation cycles are timed"
    );
    for slave in slaves {
        slave.stop().await;
    }
}

/// Runs `keel-local` on any free port in a fresh work dir with `args`; asserts it succeeded
/// and returns what it printed.
fn keel_local(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keel-local"))
        .args(["--master-port", "0"])
        .args(args)
        .arg("--work-dir")
        .arg(dir.path())
        .output()
        .expect("keel-local runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn keel_local_runs_particles_on_three_agents() {
    let text = keel_local(&["--particles", "20000", "--batch-size", "2000"]);
    assert_eq!(text.matches(" registered as ").count(), 3, "{text}");
    assert!(text.contains("10/10 batches counted"), "{text}");
    assert!(text.contains("matches the cloud's construction"), "{text}");
    // Every agent ran its share through a custom executor: an OS process per agent.
    assert_eq!(text.matches("executors started 1").count(), 3, "{text}");
}

#[test]
fn keel_local_autopilot_repairs_a_failing_agent_process() {
    let text = keel_local(&[
        "--autopilot",
        "--fail-agent",
        "0",
        "--autopilot-probation-seconds",
        "1",
        "--framework",
        "batch",
        "--tasks",
        "2",
        "--command",
        "true",
        "--isolation",
        "posix",
    ]);
    assert!(
        text.contains("batch finished: 2 tasks, 0 did not finish"),
        "{text}"
    );
    // The failing machine's agent process was really restarted, then its work dir wiped.
    assert!(
        text.contains("local-agent-0: Healthy -> Failure (Reboot)"),
        "{text}"
    );
    assert!(
        text.contains("Reboot done (agent restarted as pid"),
        "{text}"
    );
    assert!(text.contains("wiped"), "{text}");
    assert!(text.contains("local-agent-0 is Healthy again"), "{text}");
    // The demo manifest rolled out one agent per unit.
    assert!(
        text.contains("rollout 1: unit 3 of 3 switching to 1"),
        "{text}"
    );
    assert!(text.contains("rollout of `hello` Succeeded"), "{text}");
    assert!(text.contains("3 machine(s), 0 in repair"), "{text}");
}

/// The processes whose command line mentions `needle`, but this test's own.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy() != me)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_local_stopped_mid_rollout_leaves_no_agent_process_behind() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_str().unwrap().to_owned();
    let mut local = tokio::process::Command::new(env!("CARGO_BIN_EXE_keel-local"))
        .args([
            "--master-port",
            "0",
            "--autopilot",
            "--framework",
            "none",
            "--agents",
            "2",
            "--work-dir",
            &work,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("keel-local starts");
    let mut out = BufReader::new(local.stdout.take().unwrap()).lines();
    // SIGTERM while the demo rollout runs, as a `timeout` or a service manager would send it.
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(line) = out.next_line().await.unwrap() {
            if line.contains("rollout 1: unit 1") {
                return;
            }
        }
        panic!("keel-local ended before its rollout");
    })
    .await
    .expect("the demo rollout starts");
    assert!(!processes_mentioning(&work).is_empty(), "its agents run");
    // SAFETY: kill(2) on the child this test spawned and has not reaped.
    unsafe {
        libc::kill(local.id().unwrap() as i32, libc::SIGTERM);
    }
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), local.wait())
        .await
        .expect("keel-local stops on SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(143));
    eventually("no process of the run is left", || async {
        processes_mentioning(&work).is_empty().then_some(())
    })
    .await;
}

/// `keelctl` with `args`, as the principal whose TLS directory is `tls`.
/// The next line keelctl printed (read off its stdout by a thread).
async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(30), lines.recv())
        .await
        .expect("keelctl prints in time")
        .expect("keelctl runs")
}

fn keelctl_as(tls: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keelctl"))
        .env("KEEL_TLS_DIR", tls)
        .env_remove("KEEL_INSECURE")
        .args(args)
        .output()
        .expect("keelctl runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_cluster_by_hand_as_the_readme_says() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    let ca = path("ca");
    let ops = dir.path().join("tls/ops");
    let init = keelctl_as(&ops, &["ca", "init", "--dir", &ca]);
    assert!(init.status.success(), "{init:?}");
    for (principal, roles) in [
        ("master", &["master"][..]),
        ("agent-1", &["agent"][..]),
        ("ops", &["framework", "operator"][..]),
    ] {
        let out_dir = path(&format!("tls/{principal}"));
        let mut args = vec!["ca", "issue", "--ca", &ca, "--principal", principal];
        for role in roles {
            args.extend(["--role", role]);
        }
        args.extend(["--host", "127.0.0.1", "--out", &out_dir]);
        let issued = keelctl_as(&ops, &args);
        assert!(issued.status.success(), "{issued:?}");
    }
    // Without --tls-dir or --insecure a master refuses to start, saying what to do.
    let bare = Command::new(env!("CARGO_BIN_EXE_keel-master"))
        .env_remove("KEEL_INSECURE")
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert!(!bare.status.success());
    assert!(String::from_utf8_lossy(&bare.stderr).contains("--tls-dir DIR"));

    let master_tls = path("tls/master");
    let (_master, master) = start(
        env!("CARGO_BIN_EXE_keel-master"),
        &[
            "--port",
            "0",
            "--tls-dir",
            &master_tls,
            "--authenticate-http-readonly",
        ],
    )
    .await;
    // Reads want a certificate too; the health check stays open.
    let master_addr = master.split_once('@').unwrap().1.to_owned();
    let get = |path: &'static str| {
        let addr = master_addr.clone();
        async move {
            libactor::http_client::request(&addr, "GET", path, &[], Default::default())
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(get("/master/state").await, 401);
    assert_eq!(get("/master/health").await, 200);
    assert_eq!(get("/logging/toggle?level=3&duration=1hrs").await, 401);
    let (agent_tls, work) = (path("tls/agent-1"), path("s1"));
    let (mut agent, _) = start(
        env!("CARGO_BIN_EXE_keel-slave"),
        &[
            "--master",
            &master,
            "--port",
            "0",
            "--work-dir",
            &work,
            "--tls-dir",
            &agent_tls,
        ],
    )
    .await;
    eventually("the agent registers over TLS", || async {
        let out = keelctl_as(&ops, &["--master", &master, "agents", "--json"]);
        let agents: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (agents.as_array()?.len() == 1).then_some(())
    })
    .await;
    let run = keelctl_as(
        &ops,
        &[
            "--master",
            &master,
            "execute",
            "--command",
            "true",
            "--instances",
            "2",
        ],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    // A framework's certificate cannot order the agent about, even naming the master.
    let agent_pid = {
        let out = keelctl_as(&ops, &["--master", &master, "agents", "--json"]);
        let agents: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        agents[0]["pid"].as_str().unwrap().to_owned()
    };
    let forged = keelctl_as(
        &ops,
        &[
            "send",
            &agent_pid,
            "ShutdownFrameworkMessage",
            r#"{"frameworkId": {"value": "x"}}"#,
            "--from",
            &master,
        ],
    );
    assert!(
        forged.status.success(),
        "delivered (202), then refused by the agent"
    );
    let agent_addr = agent_pid.split_once('@').unwrap().1.to_owned();
    eventually("the agent counts the refusal", || async {
        let m = libactor::http_client::get_json(&agent_addr, "/metrics/snapshot")
            .await
            .ok()?;
        (m["libactor/refused/unauthorized"].as_f64()? >= 1.0).then_some(())
    })
    .await;

    // Mesos's operator API through keelctl: maintenance takes the machine down and back up.
    let hostname = {
        let out = keelctl_as(&ops, &["--master", &master, "agents", "--json"]);
        let agents: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        agents[0]["hostname"].as_str().unwrap().to_owned()
    };
    let status = || {
        let out = keelctl_as(&ops, &["--master", &master, "maintenance", "status"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for step in ["schedule", "start"] {
        let out = keelctl_as(&ops, &["--master", &master, "maintenance", step, &hostname]);
        assert!(out.status.success(), "{step}: {out:?}");
        let expected = if step == "schedule" {
            "draining"
        } else {
            "down"
        };
        assert!(status().contains(expected), "after {step}: {}", status());
    }
    let stopped = keelctl_as(
        &ops,
        &["--master", &master, "maintenance", "stop", &hostname],
    );
    assert!(stopped.status.success(), "{stopped:?}");
    assert!(!status().contains(&hostname), "{}", status());
    let unknown = keelctl_as(&ops, &["--master", &master, "mark-gone", "no-such-agent"]);
    assert!(!unknown.status.success());
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(said.contains("404") && said.contains("not found"), "{said}");
    // Quota limits: set, listed, lifted.
    let set = keelctl_as(
        &ops,
        &[
            "--master",
            &master,
            "quota",
            "set",
            "*",
            "cpus:100;mem:65536",
        ],
    );
    assert!(set.status.success(), "{set:?}");
    let listed = keelctl_as(&ops, &["--master", &master, "quota"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("cpus:100") && listed.contains("mem:65536"),
        "{listed}"
    );
    let removed = keelctl_as(&ops, &["--master", &master, "quota", "remove", "*"]);
    assert!(removed.status.success(), "{removed:?}");
    let listed = keelctl_as(&ops, &["--master", &master, "quota"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("cpus:100"));
    // keel-master reports its flags to the operator API.
    let ops_tls = libactor::tls::dir::load(&ops).unwrap();
    let flags = get_flags(&master_addr, Some(&ops_tls)).await;
    assert!(
        flags["get_flags"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "authenticate_http_readonly" && f["value"] == "true"),
        "{flags}"
    );
    // keelctl events follows the cluster: here, until the framework below is torn down.
    let mut events = std::process::Command::new(env!("CARGO_BIN_EXE_keelctl"))
        .env("KEEL_TLS_DIR", &ops)
        .env_remove("KEEL_INSECURE")
        .args(["--master", &master, "events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let events_out = events.stdout.take().unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(events_out).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let subscribed = next_line(&mut lines).await;
    assert!(
        subscribed.starts_with("SUBSCRIBED") && subscribed.contains("1 agents"),
        "{subscribed}"
    );

    // An operator tears a framework down: its tasks end and keelctl execute hears why.
    let long = std::process::Command::new(env!("CARGO_BIN_EXE_keelctl"))
        .env("KEEL_TLS_DIR", &ops)
        .env_remove("KEEL_INSECURE")
        .args(["--master", &master, "execute", "--command", "sleep 600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let framework = eventually("the framework is registered", || async {
        let out = keelctl_as(&ops, &["--master", &master, "frameworks", "--json"]);
        let frameworks: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        frameworks
            .as_array()?
            .iter()
            .find(|f| f["active"] == true)
            .and_then(|f| f["id"].as_str().map(str::to_owned))
    })
    .await;
    let unknown = keelctl_as(
        &ops,
        &["--master", &master, "teardown", "no-such-framework"],
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no framework"));
    let torn = keelctl_as(&ops, &["--master", &master, "teardown", &framework]);
    assert!(torn.status.success(), "{torn:?}");
    let ended = tokio::task::spawn_blocking(move || long.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!ended.status.success());
    assert!(
        String::from_utf8_lossy(&ended.stderr).contains("torn down"),
        "{ended:?}"
    );
    let mut seen = Vec::new();
    while !seen
        .last()
        .is_some_and(|l: &String| l.starts_with("FRAMEWORK_REMOVED"))
    {
        seen.push(next_line(&mut lines).await);
    }
    let _ = events.kill();
    let _ = events.wait();
    for kind in ["FRAMEWORK_ADDED", "TASK_ADDED", "TASK_UPDATED"] {
        assert!(seen.iter().any(|l| l.starts_with(kind)), "{kind}: {seen:?}");
    }
    assert!(seen.iter().any(|l| l.contains("TASK_KILLED")), "{seen:?}");

    // An agent marked gone is shut down, and its daemon exits as Mesos's agent does (for a
    // supervisor to start it again as a new agent).
    let agent_id = {
        let out = keelctl_as(&ops, &["--master", &master, "agents", "--json"]);
        let agents: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        agents[0]["id"].as_str().unwrap().to_owned()
    };
    let gone = keelctl_as(&ops, &["--master", &master, "mark-gone", &agent_id]);
    assert!(gone.status.success(), "{gone:?}");
    assert_eq!(
        agent.exited(keel_testkit::daemon::DAEMON_TIMEOUT).await,
        Some(0),
        "keel-slave exits once the master shut it down"
    );
}
