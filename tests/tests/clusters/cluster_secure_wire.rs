//! A secure cluster (every node on mutual TLS, certificates from one CA) attacked the way the
//! secure-wire issue found it could be: every message that claims a sender its connection does
//! not prove is refused and counted, and the cluster's work goes on untouched.
//!
//! The attackers hold valid certificates from the cluster's CA, for other principals and roles
//! (a framework, a second "agent"), and post messages the way libprocess peers do: over HTTPS,
//! naming any sender they like in `Libprocess-From`.

use std::time::Duration;

use authentication::roles;
use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::{command_task, framework_info, TestFramework};
use libactor::http_client::request_over;
use libactor::{Node, TlsConfig, Upid};
use prost::{Message, Name};
use protos::internal::{
    KillTaskMessage, RegisterFrameworkMessage, RegisterSlaveMessage, RunTaskMessage, StatusUpdate,
    StatusUpdateMessage,
};
use protos::v1::{FrameworkId, TaskId, TaskState, TaskStatus};

/// A secure one-agent cluster with a registered framework running `sleep` as task `t1`.
struct Secure {
    cluster: LocalCluster,
    node: Node,
    framework: TestFramework,
    framework_id: String,
}

async fn secure_cluster(dir: &std::path::Path) -> Secure {
    let config = LocalClusterConfig::new(1, dir).secure().unwrap();
    let cluster = LocalCluster::start(config).await.expect("cluster starts");
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .expect("agents register over TLS");
    let tls = cluster
        .issue("analytics", &[roles::FRAMEWORK])
        .unwrap()
        .expect("a secure cluster issues certificates");
    let node = Node::builder().single_threaded().tls(tls).start().unwrap();
    let mut framework = TestFramework::start(&node, cluster.master_pid(), framework_info("test"));
    let framework_id = framework.registered().await.value;
    framework
        .launch_on_first_offer(command_task("t1", "sleep 30", "cpus:0.1;mem:16"))
        .await;
    framework.status("t1", TaskState::TaskRunning).await;
    Secure {
        cluster,
        node,
        framework,
        framework_id,
    }
}

/// Posts `msg` to `to` claiming to be `from`, over HTTPS with `tls`'s certificate (or plain
/// HTTP without); returns the status.
async fn post<M: Message + Name>(tls: Option<&TlsConfig>, from: &Upid, to: &Upid, msg: M) -> u16 {
    request_over(
        to.address(),
        tls,
        "POST",
        &format!("/{}/{}", to.id(), M::full_name()),
        &[("libprocess-from", from.to_string())],
        msg.encode_to_vec().into(),
    )
    .await
    .expect("the node answers")
    .status
}

fn metric(node: &Node, name: &str) -> f64 {
    node.metrics().snapshot().get(name).copied().unwrap_or(0.0)
}

async fn metric_reaches(node: &Node, name: &str, at_least: f64) {
    eventually(name, || async {
        (metric(node, name) >= at_least).then_some(())
    })
    .await;
}

async fn task_state(cluster: &LocalCluster, framework: &str, task: &str) -> Option<TaskState> {
    let (framework, task) = (framework.to_owned(), task.to_owned());
    cluster
        .master
        .master
        .call(move |m, _| m.task_state(&framework, &task))
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_task_claiming_the_master_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = secure_cluster(dir.path()).await;
    let agent = &s.cluster.agents[0];
    let marker = dir.path().join("pwned");
    let mut task = command_task(
        "evil",
        &format!("touch {}", marker.display()),
        "cpus:0.1;mem:16",
    );
    task.agent_id = Some(protos::v1::AgentId {
        value: agent
            .slave
            .call(|s, _| s.id().unwrap_or_default().to_owned())
            .await
            .unwrap(),
    });
    let run = RunTaskMessage {
        framework_id: Some(FrameworkId {
            value: s.framework_id.clone(),
        }),
        framework: Some(framework_info("test")),
        pid: s.framework.handle.pid().to_string(),
        task: Some(task),
    };
    let intruder = s.cluster.issue("analytics", &[roles::FRAMEWORK]).unwrap();
    let master = s.cluster.master_pid().clone();

    // Plain HTTP proves nothing: refused before any process sees it.
    assert_eq!(
        post(None, &master, agent.slave.pid(), run.clone()).await,
        401
    );
    // A framework's certificate, claiming the master's pid: delivered, refused by the agent.
    assert_eq!(
        post(intruder.as_ref(), &master, agent.slave.pid(), run.clone()).await,
        202
    );
    metric_reaches(&agent.node, "libactor/refused/unauthorized", 1.0).await;
    // Over the actor protocol from the framework's node, claiming the master's pid: dropped by
    // the transport (the master is not on that node).
    s.node.send_from(&master, agent.slave.pid(), run);
    metric_reaches(&agent.node, "libactor/dropped/unauthenticated_sender", 1.0).await;

    let tasks = agent.slave.call(|s, _| s.live_tasks()).await.unwrap();
    assert_eq!(tasks, 1, "only the framework's own task runs");
    assert!(!marker.exists(), "the forged command never ran");
    s.node.shutdown().await;
    s.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_need_the_role_and_framework_actions_their_principal() {
    let dir = tempfile::tempdir().unwrap();
    let s = secure_cluster(dir.path()).await;
    let master = s.cluster.master_pid().clone();
    let master_node = &s.cluster.master_node;
    let intruder = s.cluster.issue("intruder", &[roles::FRAMEWORK]).unwrap();
    let impostor_agent = s.cluster.issue("agent-99", &[roles::AGENT]).unwrap();
    let refused = "master/registrations_refused";
    let before = metric(master_node, refused);

    // A framework certificate registering an agent; an agent certificate registering a
    // framework.
    let fake_agent: Upid = "slave(7)@127.0.0.1:1".parse().unwrap();
    let agent_info = protos::v1::AgentInfo {
        hostname: "fake".into(),
        resources: "cpus:64;mem:65536"
            .parse::<resources::Resources>()
            .unwrap()
            .to_proto(),
        ..Default::default()
    };
    let slave = RegisterSlaveMessage {
        slave: Some(agent_info),
        version: String::new(),
    };
    assert_eq!(
        post(intruder.as_ref(), &fake_agent, &master, slave).await,
        202
    );
    let fake_scheduler: Upid = "scheduler(9)@127.0.0.1:1".parse().unwrap();
    let register = RegisterFrameworkMessage {
        framework: Some(framework_info("sneaky")),
    };
    assert_eq!(
        post(impostor_agent.as_ref(), &fake_scheduler, &master, register).await,
        202
    );
    metric_reaches(master_node, refused, before + 1.0).await;
    metric_reaches(master_node, "libactor/refused/unauthorized", 2.0).await;
    let (agents, frameworks) = s
        .cluster
        .master
        .master
        .call(|m, _| (m.agent_count(), m.framework_count()))
        .await
        .unwrap();
    assert_eq!((agents, frameworks), (1, 1), "nobody got in");

    // Another framework's principal killing this framework's task, claiming its scheduler.
    let scheduler = s.framework.handle.pid().clone();
    let kill = KillTaskMessage {
        framework_id: Some(FrameworkId {
            value: s.framework_id.clone(),
        }),
        task_id: Some(TaskId { value: "t1".into() }),
        ..Default::default()
    };
    let invalid = "master/invalid_messages";
    let before = metric(master_node, invalid);
    assert_eq!(
        post(intruder.as_ref(), &scheduler, &master, kill).await,
        202
    );
    metric_reaches(master_node, invalid, before + 1.0).await;
    assert_eq!(
        task_state(&s.cluster, &s.framework_id, "t1").await,
        Some(TaskState::TaskRunning)
    );

    // A fake TASK_FINISHED: from a framework (no agent role), then from another agent's
    // principal claiming the real agent's pid.
    let agent_pid = s.cluster.agents[0].slave.pid().clone();
    let finished = StatusUpdateMessage {
        update: Some(StatusUpdate {
            framework_id: Some(FrameworkId {
                value: s.framework_id.clone(),
            }),
            status: Some(TaskStatus {
                task_id: Some(TaskId { value: "t1".into() }),
                state: TaskState::TaskFinished as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        pid: agent_pid.to_string(),
    };
    let before = metric(master_node, invalid);
    assert_eq!(
        post(intruder.as_ref(), &agent_pid, &master, finished.clone()).await,
        202
    );
    assert_eq!(
        post(impostor_agent.as_ref(), &agent_pid, &master, finished).await,
        202
    );
    metric_reaches(master_node, invalid, before + 2.0).await;
    assert_eq!(
        task_state(&s.cluster, &s.framework_id, "t1").await,
        Some(TaskState::TaskRunning),
        "the master still holds the task's resources"
    );
    s.node.shutdown().await;
    s.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_node_cannot_join_a_secure_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let config = LocalClusterConfig::new(1, dir.path()).secure().unwrap();
    let cluster = LocalCluster::start(config).await.expect("cluster starts");
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .unwrap();
    let plain = Node::builder().single_threaded().start().unwrap();
    let mut framework = TestFramework::start(&plain, cluster.master_pid(), framework_info("plain"));
    metric_reaches(&cluster.master_node, "libactor/tls/refused_plaintext", 1.0).await;
    assert!(framework.drain().is_empty(), "never registered");
    assert_eq!(
        cluster
            .master
            .master
            .call(|m, _| m.framework_count())
            .await
            .unwrap(),
        0
    );
    plain.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autopilot_orders_and_reports_need_their_roles() {
    use keel::local_cluster::LocalAutopilot;
    use protos::autopilot::{
        Manifest, SyncManifest, WatchdogReport, WatchdogResult, WatchdogStatus,
    };

    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalClusterConfig::new(1, dir.path()).secure().unwrap();
    config.autopilot = Some(LocalAutopilot {
        watchdog_interval: Duration::from_millis(200),
        ..Default::default()
    });
    let cluster = LocalCluster::start(config).await.expect("cluster starts");
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .unwrap();
    let master = cluster.master_pid().clone();
    let host = cluster.agents[0].hostname.clone();
    let machine = |master: Upid, host: String| async move {
        let path = format!("/device-manager/machine?id={host}");
        libactor::http_client::get_json(master.address(), &path)
            .await
            .ok()
    };
    eventually("the machine reports over TLS and is Healthy", || async {
        let m = machine(master.clone(), host.clone()).await?;
        (m["state"] == "Healthy").then_some(())
    })
    .await;
    let intruder = cluster.issue("intruder", &[roles::FRAMEWORK]).unwrap();
    let ops = cluster.issue("ops", &[roles::OPERATOR]).unwrap();

    // Operator endpoints: a certificate in the operator role, nothing less.
    let kick = |tls: Option<TlsConfig>| {
        let address = master.address().to_owned();
        async move {
            request_over(
                &address,
                tls.as_ref(),
                "POST",
                "/device-manager/kick",
                &[],
                "{}".into(),
            )
            .await
            .unwrap()
            .status
        }
    };
    assert_eq!(kick(None).await, 401);
    assert_eq!(kick(intruder.clone()).await, 403);
    assert_eq!(kick(ops.clone()).await, 200);

    // A manifest claiming to come from the device manager, signed by a framework.
    let dm = cluster
        .device_manager
        .as_ref()
        .unwrap()
        .process
        .pid()
        .clone();
    let agent_node = &cluster.agents[0].node;
    let app_manager = agent_node.pid("app-manager").unwrap();
    let sync = SyncManifest {
        manifest: Some(Manifest {
            name: "evil".into(),
            version: "1".into(),
            ..Default::default()
        }),
        activate: true,
        ..Default::default()
    };
    assert_eq!(post(intruder.as_ref(), &dm, &app_manager, sync).await, 202);
    metric_reaches(agent_node, "libactor/refused/unauthorized", 1.0).await;

    // A watchdog report failing the machine, claiming its agent's watchdog.
    let watchdog = agent_node.pid("watchdog").unwrap();
    let report = WatchdogReport {
        hostname: host.clone(),
        results: vec![WatchdogResult {
            name: "disk".into(),
            status: WatchdogStatus::Error as i32,
            text: "forged".into(),
            fatal: true,
        }],
        ..Default::default()
    };
    let before = metric(&cluster.master_node, "libactor/refused/unauthorized");
    assert_eq!(post(intruder.as_ref(), &watchdog, &dm, report).await, 202);
    metric_reaches(
        &cluster.master_node,
        "libactor/refused/unauthorized",
        before + 1.0,
    )
    .await;
    let m = machine(master.clone(), host.clone()).await.unwrap();
    assert_eq!(
        m["state"], "Healthy",
        "a forged report fails no machine: {m}"
    );
    cluster.shutdown().await;
}

/// `GET path` on `address` as `principal` (a certificate in the operator role); the status
/// and the body as JSON (null when it is not JSON).
async fn get_as(
    cluster: &LocalCluster,
    principal: &str,
    address: &str,
    path: &str,
) -> (u16, serde_json::Value) {
    let tls = cluster.issue(principal, &[roles::OPERATOR]).unwrap();
    let reply = request_over(address, tls.as_ref(), "GET", path, &[], Default::default())
        .await
        .unwrap();
    let body = serde_json::from_slice(&reply.body).unwrap_or_default();
    (reply.status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_decide_who_registers_runs_as_whom_sees_reads_and_tears_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalClusterConfig::new(1, dir.path()).secure().unwrap();
    config.switch_user = true;
    config.acls = authentication::acls::Acls::parse(
        r#"{
          "permissive": false,
          "register_frameworks": [{"principals": {"values": ["analytics"]}, "roles": {"type": "ANY"}}],
          "run_tasks": [{"principals": {"values": ["analytics"]}, "users": {"values": ["nobody"]}}],
          "view_frameworks": [{"principals": {"values": ["analytics", "auditor"]}, "users": {"type": "ANY"}}],
          "view_tasks": [{"principals": {"values": ["analytics"]}, "users": {"type": "ANY"}}],
          "access_sandboxes": [{"principals": {"values": ["analytics"]}, "users": {"type": "ANY"}}],
          "teardown_frameworks": [{"principals": {"values": ["analytics"]}, "framework_principals": {"values": ["analytics"]}}],
          "get_endpoints": [{"principals": {"values": ["analytics"]}, "paths": {"values": ["/metrics/snapshot"]}}]
        }"#,
    )
    .unwrap();
    let cluster = LocalCluster::start(config).await.expect("cluster starts");
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .unwrap();
    let node_as = |principal: &str| {
        let tls = cluster
            .issue(principal, &[roles::FRAMEWORK])
            .unwrap()
            .unwrap();
        Node::builder().single_threaded().tls(tls).start().unwrap()
    };

    // Another principal may not register at all.
    let other_node = node_as("intruder");
    let mut other =
        TestFramework::start(&other_node, cluster.master_pid(), framework_info("other"));
    let refused = other
        .until(|e| match e {
            keel_testkit::recording_scheduler::SchedulerEvent::Error(why) => Some(why.clone()),
            _ => None,
        })
        .await;
    assert!(refused.contains("--acls"), "{refused}");

    // The allowed principal registers; a task as root is refused, one as nobody runs, and
    // runs as nobody (the agent switches users).
    let node = node_as("analytics");
    let mut framework = TestFramework::start(&node, cluster.master_pid(), framework_info("ok"));
    let framework_id = framework.registered().await.value;
    let mut as_root = command_task("as-root", "true", "cpus:0.1;mem:16");
    as_root.command.as_mut().unwrap().user = "root".into();
    framework.launch_on_first_offer(as_root).await;
    let status = framework.status("as-root", TaskState::TaskError).await;
    assert_eq!(
        status.reason,
        Some(protos::v1::task_status::Reason::TaskUnauthorized as i32)
    );
    let mut as_nobody = command_task("as-nobody", "id -u; id -un", "cpus:0.1;mem:16");
    as_nobody.command.as_mut().unwrap().user = "nobody".into();
    framework.launch_on_first_offer(as_nobody).await;
    framework.status("as-nobody", TaskState::TaskFinished).await;
    let mut sleeper = command_task("sleeper", "exec sleep 600", "cpus:0.1;mem:16");
    sleeper.command.as_mut().unwrap().user = "nobody".into();
    framework.launch_on_first_offer(sleeper).await;
    framework.status("sleeper", TaskState::TaskRunning).await;

    // /master/state shows the framework to whom view_frameworks lets see it, and its tasks to
    // whom view_tasks lets see them.
    let master = cluster.master_pid().address().to_owned();
    let state_of = |principal: &'static str| {
        let (cluster, master) = (&cluster, master.clone());
        async move { get_as(cluster, principal, &master, "/master/state").await.1 }
    };
    let seen = state_of("analytics").await;
    assert_eq!(seen["frameworks"].as_array().unwrap().len(), 1);
    assert_eq!(seen["frameworks"][0]["tasks"][0]["id"], "sleeper", "{seen}");
    let audited = state_of("auditor").await;
    assert_eq!(audited["frameworks"].as_array().unwrap().len(), 1);
    assert_eq!(audited["frameworks"][0]["tasks"], serde_json::json!([]));
    assert_eq!(
        state_of("intruder").await["frameworks"],
        serde_json::json!([])
    );

    // The sandbox, through /files: analytics may read it (and sees the task ran as nobody);
    // the auditor may not.
    let agent = cluster.agents[0].slave.pid().clone();
    let (_, agent_state) = get_as(
        &cluster,
        "analytics",
        agent.address(),
        &format!("/{}/state", agent.id()),
    )
    .await;
    let sandbox = agent_state["frameworks"][0]["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "sleeper")
        .and_then(|e| e["directory"].as_str())
        .expect("the sleeper's sandbox")
        .to_owned();
    // The finished task's run is a sibling of the sleeper's.
    let executors = std::path::Path::new(&sandbox).ancestors().nth(3).unwrap();
    let stdout = executors.join("as-nobody/runs");
    let run = std::fs::read_dir(&stdout)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let read = format!("/files/read?path={}/stdout&offset=0", run.display());
    let (status, out) = get_as(&cluster, "analytics", agent.address(), &read).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["data"], "65534\nnobody\n");
    let (status, _) = get_as(&cluster, "auditor", agent.address(), &read).await;
    assert_eq!(status, 403);

    // get_endpoints: the metrics are analytics's to read.
    assert_eq!(
        get_as(&cluster, "analytics", &master, "/metrics/snapshot")
            .await
            .0,
        200
    );
    assert_eq!(
        get_as(&cluster, "auditor", &master, "/metrics/snapshot")
            .await
            .0,
        403
    );

    // Teardown: an operator whom teardown_frameworks does not name is refused; analytics
    // tears its framework down, and its scheduler hears why.
    let teardown = |principal: &'static str| {
        let tls = cluster.issue(principal, &[roles::OPERATOR]).unwrap();
        let (master, body) = (master.clone(), format!("frameworkId={framework_id}"));
        async move {
            request_over(
                &master,
                tls.as_ref(),
                "POST",
                "/master/teardown",
                &[],
                body.into(),
            )
            .await
            .unwrap()
            .status
        }
    };
    assert_eq!(teardown("auditor").await, 403);
    assert_eq!(teardown("analytics").await, 200);
    let why = framework
        .until(|e| match e {
            keel_testkit::recording_scheduler::SchedulerEvent::Error(why) => Some(why.clone()),
            _ => None,
        })
        .await;
    assert!(why.contains("torn down"), "{why}");
    assert_eq!(
        state_of("analytics").await["frameworks"],
        serde_json::json!([])
    );
    for n in [other_node, node] {
        n.shutdown().await;
    }
    cluster.shutdown().await;
}
