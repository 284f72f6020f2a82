//! Mesos's v1 operator HTTP API (`POST /api/v1`) against a real cluster (master and agent on
//! loopback ports, tasks as OS processes), spoken as a Mesos operator tool speaks it: JSON in
//! Mesos's mapping and protobuf with Mesos's field numbers, `SUBSCRIBE` streams read record by
//! record.

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::recording_scheduler::{command_task, framework_info, TestFramework};
use keel_testkit::v1_client::{self, CallReply, EventStream};
use keel_testkit::AGENTS_UP;
use libactor::{Node, TlsConfig};
use protos::http_api::Encoding;
use protos::v1::maintenance::{Schedule, Window};
use protos::v1::master::{call, event, response, Call, Event, Response};
use protos::v1::task_status::Reason;
use protos::v1::{AgentId, Filters, FrameworkId, MachineId, TaskState, Unavailability};
use serde_json::json;

struct Setup {
    cluster: LocalCluster,
    address: String,
    node: Node,
    _dir: tempfile::TempDir,
}

async fn setup(config: impl FnOnce(LocalClusterConfig) -> LocalClusterConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(config(LocalClusterConfig::new(1, dir.path())))
        .await
        .expect("cluster starts");
    cluster.wait_for_agents(AGENTS_UP).await.expect("agent up");
    // The test's frameworks run as principal `fw` (with a certificate on a secure cluster).
    let mut node = Node::builder().single_threaded();
    if let Some(tls) = cluster.issue("fw", &["framework"]).unwrap() {
        node = node.tls(tls);
    }
    let node = node.start().unwrap();
    Setup {
        address: cluster.master_pid().address().to_owned(),
        cluster,
        node,
        _dir: dir,
    }
}

impl Setup {
    async fn call_as(&self, tls: Option<&TlsConfig>, encoding: Encoding, call: &Call) -> CallReply {
        v1_client::post(
            &self.address,
            tls,
            "/api/v1",
            encoding.content_type(),
            &[("accept", encoding.content_type().to_owned())],
            v1_client::body(encoding, call),
        )
        .await
    }

    async fn call(&self, encoding: Encoding, call: &Call) -> CallReply {
        self.call_as(None, encoding, call).await
    }

    /// `call`, which must succeed with a response of its kind.
    /// The id of the first agent `GET_AGENTS` lists.
    async fn first_agent(&self) -> AgentId {
        let agents = self.get(Encoding::Json, call::Type::GetAgents).await;
        let agent = agents.get_agents.unwrap().agents.remove(0);
        agent.agent_info.unwrap().id.unwrap()
    }

    async fn get(&self, encoding: Encoding, kind: call::Type) -> Response {
        let reply = self.call(encoding, &simple(kind)).await;
        assert_eq!(
            reply.status,
            200,
            "{}: {}",
            kind.as_str_name(),
            reply.text()
        );
        assert_eq!(reply.content_type.as_deref(), Some(encoding.content_type()));
        let response: Response = reply.decode(encoding);
        assert_eq!(
            response::Type::try_from(response.r#type)
                .unwrap()
                .as_str_name(),
            kind.as_str_name()
        );
        response
    }

    async fn subscribe(&self, encoding: Encoding) -> EventStream<Event> {
        EventStream::open(
            &self.address,
            None,
            "/api/v1",
            encoding,
            &[],
            v1_client::body(encoding, &simple(call::Type::Subscribe)),
        )
        .await
    }

    async fn framework(&self, name: &str) -> (TestFramework, FrameworkId) {
        let mut framework =
            TestFramework::start(&self.node, self.cluster.master_pid(), framework_info(name));
        let id = framework.registered().await;
        (framework, id)
    }

    async fn stop(self) {
        self.node.shutdown().await;
        self.cluster.shutdown().await;
    }
}

fn simple(kind: call::Type) -> Call {
    Call {
        r#type: kind as i32,
        ..Default::default()
    }
}

async fn launch(framework: &mut TestFramework, id: &str, command: &str) {
    let offers = framework.offers().await;
    let offer = offers[0].id.clone().unwrap();
    let task = command_task(id, command, "cpus:0.1;mem:16");
    framework
        .act(move |d| d.launch_tasks(&[offer], vec![task], Filters::default()))
        .await;
}

fn event_type(event: &Event) -> event::Type {
    event::Type::try_from(event.r#type).unwrap()
}

/// The next event of `kind` on `stream`.
async fn next_of(
    stream: &mut EventStream<Event>,
    kind: event::Type,
) -> (Event, Option<serde_json::Value>) {
    stream
        .until(kind.as_str_name(), |e| event_type(e) == kind)
        .await
}

/// The next TASK_UPDATED of `task` to `state`.
async fn task_reaches(stream: &mut EventStream<Event>, task: &str, state: TaskState) {
    stream
        .until(state.as_str_name(), |e| {
            e.task_updated.as_ref().is_some_and(|u| {
                u.state == Some(state as i32)
                    && u.status
                        .as_ref()
                        .and_then(|s| s.task_id.as_ref())
                        .is_some_and(|t| t.value == task)
            })
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_the_cluster_and_follows_it_in_json_and_protobuf() {
    let s = setup(|c| c).await;
    let mut json_stream = s.subscribe(Encoding::Json).await;
    let mut proto_stream = s.subscribe(Encoding::Protobuf).await;
    for stream in [&mut json_stream, &mut proto_stream] {
        let (subscribed, json) = stream.next().await.expect("SUBSCRIBED first");
        assert_eq!(event_type(&subscribed), event::Type::Subscribed);
        let subscribed = subscribed.subscribed.unwrap();
        assert_eq!(subscribed.heartbeat_interval_seconds, Some(15.0));
        let agents = subscribed.get_state.unwrap().get_agents.unwrap().agents;
        assert_eq!(agents.len(), 1);
        if let Some(json) = json {
            // Mesos's JSON: enum names, snake_case fields, resources as a list.
            assert_eq!(json["type"], "SUBSCRIBED");
            let agent = &json["subscribed"]["get_state"]["get_agents"]["agents"][0];
            assert_eq!(agent["active"], true, "{agent}");
            assert_eq!(agent["total_resources"][0]["type"], "SCALAR", "{agent}");
            assert!(agent["agent_info"]["hostname"].is_string(), "{agent}");
        }
    }

    let (mut framework, framework_id) = s.framework("watched").await;
    for stream in [&mut json_stream, &mut proto_stream] {
        let (added, _) = next_of(stream, event::Type::FrameworkAdded).await;
        let framework = added.framework_added.unwrap().framework.unwrap();
        assert_eq!(framework.framework_info.unwrap().id.unwrap(), framework_id);
        assert_eq!(framework.active, Some(true));
    }
    launch(&mut framework, "t1", "true").await;
    framework.status("t1", TaskState::TaskFinished).await;
    for stream in [&mut json_stream, &mut proto_stream] {
        let (added, json) = next_of(stream, event::Type::TaskAdded).await;
        let task = added.task_added.unwrap().task.unwrap();
        assert_eq!(task.task_id.unwrap().value, "t1");
        assert_eq!(task.framework_id.unwrap(), framework_id);
        if let Some(json) = json {
            assert_eq!(
                json["task_added"]["task"]["state"], "TASK_STAGING",
                "{json}"
            );
        }
        task_reaches(stream, "t1", TaskState::TaskRunning).await;
        task_reaches(stream, "t1", TaskState::TaskFinished).await;
    }

    // Reads, both encodings.
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let tasks = s
            .get(encoding, call::Type::GetTasks)
            .await
            .get_tasks
            .unwrap();
        assert!(tasks.tasks.is_empty());
        let done = &tasks.completed_tasks[0];
        assert_eq!(done.task_id.as_ref().unwrap().value, "t1");
        assert_eq!(done.state, Some(TaskState::TaskFinished as i32));
        let states: Vec<i32> = done.statuses.iter().map(|s| s.state).collect();
        assert!(
            states.ends_with(&[
                TaskState::TaskRunning as i32,
                TaskState::TaskFinished as i32
            ]),
            "{states:?}"
        );
        assert!(done.statuses.iter().all(|s| s.timestamp > 0.0));

        let state = s
            .get(encoding, call::Type::GetState)
            .await
            .get_state
            .unwrap();
        assert_eq!(state.get_agents.unwrap().agents.len(), 1);
        assert_eq!(state.get_frameworks.unwrap().frameworks.len(), 1);
        assert_eq!(state.get_tasks.unwrap().completed_tasks.len(), 1);

        let frameworks = s
            .get(encoding, call::Type::GetFrameworks)
            .await
            .get_frameworks
            .unwrap();
        assert_eq!(frameworks.frameworks[0].connected, Some(true));
        assert!(frameworks.frameworks[0].registered_time.is_some());
        let health = s.get(encoding, call::Type::GetHealth).await;
        assert_eq!(health.get_health.unwrap().healthy, Some(true));
        let version = s.get(encoding, call::Type::GetVersion).await;
        assert_eq!(
            version.get_version.unwrap().version_info.unwrap().version,
            env!("CARGO_PKG_VERSION")
        );
        let metrics = s.get(encoding, call::Type::GetMetrics).await;
        let metrics = metrics.get_metrics.unwrap().metrics;
        let launched = metrics
            .iter()
            .find(|m| m.name == "master/tasks_launched")
            .expect("the master's metrics");
        assert_eq!(launched.value, Some(1.0));
        let master = s
            .get(encoding, call::Type::GetMaster)
            .await
            .get_master
            .unwrap();
        assert_eq!(
            master.master_info.unwrap().pid,
            s.cluster.master_pid().to_string()
        );
        assert!(master.start_time.unwrap() > 0.0);
        let roles = s
            .get(encoding, call::Type::GetRoles)
            .await
            .get_roles
            .unwrap();
        assert_eq!(roles.roles[0].name, "*");
        assert_eq!(roles.roles[0].frameworks, vec![framework_id.clone()]);
        s.get(encoding, call::Type::GetExecutors).await;
        s.get(encoding, call::Type::GetAgents).await;
        s.get(encoding, call::Type::GetFlags).await;
        s.get(encoding, call::Type::GetLoggingLevel).await;
    }

    // Weights: changed, then read back in GET_WEIGHTS and GET_ROLES.
    let weights = protos::mesos_json::from_json::<Call>(&json!({
        "type": "UPDATE_WEIGHTS",
        "update_weights": {"weight_infos": [{"role": "*", "weight": 2.5}]}
    }))
    .unwrap();
    assert_eq!(s.call(Encoding::Json, &weights).await.status, 202);
    let got = s.get(Encoding::Json, call::Type::GetWeights).await;
    assert_eq!(got.get_weights.unwrap().weight_infos[0].weight, Some(2.5));
    let roles = s
        .get(Encoding::Json, call::Type::GetRoles)
        .await
        .get_roles
        .unwrap();
    assert_eq!(roles.roles[0].weight, Some(2.5));

    // Teardown: the framework ends, and is listed as completed.
    let teardown = Call {
        r#type: call::Type::Teardown as i32,
        teardown: Some(call::Teardown {
            framework_id: Some(framework_id.clone()),
        }),
        ..Default::default()
    };
    let reply = s.call(Encoding::Protobuf, &teardown).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    for stream in [&mut json_stream, &mut proto_stream] {
        let (removed, _) = next_of(stream, event::Type::FrameworkRemoved).await;
        let info = removed.framework_removed.unwrap().framework_info.unwrap();
        assert_eq!(info.id.unwrap(), framework_id);
    }
    let frameworks = s
        .get(Encoding::Json, call::Type::GetFrameworks)
        .await
        .get_frameworks
        .unwrap();
    assert!(frameworks.frameworks.is_empty());
    let completed = &frameworks.completed_frameworks[0];
    assert_eq!(
        completed.framework_info.as_ref().unwrap().id,
        Some(framework_id)
    );
    assert_eq!(completed.active, Some(false));
    assert!(completed.unregistered_time.is_some());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_takes_a_machine_down_and_brings_it_back() {
    let s = setup(|c| c).await;
    let agents = s.get(Encoding::Json, call::Type::GetAgents).await;
    let agent = agents
        .get_agents
        .unwrap()
        .agents
        .remove(0)
        .agent_info
        .unwrap();
    let hostname = agent.hostname.clone();
    let machine = MachineId {
        hostname: hostname.clone(),
        ip: String::new(),
    };
    let (mut framework, _) = s.framework("maintained").await;
    launch(&mut framework, "long", "sleep 300").await;
    framework.status("long", TaskState::TaskRunning).await;

    // Not scheduled: cannot go down.
    let start = Call {
        r#type: call::Type::StartMaintenance as i32,
        start_maintenance: Some(call::StartMaintenance {
            machines: vec![machine.clone()],
        }),
        ..Default::default()
    };
    let reply = s.call(Encoding::Json, &start).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().contains("not in the maintenance schedule"),
        "{}",
        reply.text()
    );

    let schedule = Call {
        r#type: call::Type::UpdateMaintenanceSchedule as i32,
        update_maintenance_schedule: Some(call::UpdateMaintenanceSchedule {
            schedule: Some(Schedule {
                windows: vec![Window {
                    machine_ids: vec![machine.clone()],
                    unavailability: Some(Unavailability {
                        start: Some(protos::v1::TimeInfo { nanoseconds: 1 }),
                        duration: None,
                    }),
                }],
            }),
        }),
        ..Default::default()
    };
    assert_eq!(s.call(Encoding::Protobuf, &schedule).await.status, 202);
    let status = s
        .get(Encoding::Json, call::Type::GetMaintenanceStatus)
        .await;
    let status = status.get_maintenance_status.unwrap().status.unwrap();
    assert_eq!(
        status.draining_machines[0].id.as_ref().unwrap().hostname,
        hostname
    );
    assert!(status.down_machines.is_empty());
    let got = s
        .get(Encoding::Protobuf, call::Type::GetMaintenanceSchedule)
        .await;
    assert_eq!(
        got.get_maintenance_schedule
            .unwrap()
            .schedule
            .unwrap()
            .windows[0]
            .machine_ids,
        vec![machine.clone()]
    );

    // Down: the task is killed with the draining reason.
    assert_eq!(s.call(Encoding::Json, &start).await.status, 202);
    let killed = framework.status("long", TaskState::TaskKilled).await;
    assert_eq!(
        killed.reason,
        Some(Reason::AgentDraining as i32),
        "{killed:?}"
    );
    let status = s
        .get(Encoding::Json, call::Type::GetMaintenanceStatus)
        .await;
    let status = status.get_maintenance_status.unwrap().status.unwrap();
    assert_eq!(status.down_machines, vec![machine.clone()]);
    // A machine that is down stays on the schedule until it comes back up.
    let empty = Call {
        r#type: call::Type::UpdateMaintenanceSchedule as i32,
        update_maintenance_schedule: Some(call::UpdateMaintenanceSchedule {
            schedule: Some(Schedule::default()),
        }),
        ..Default::default()
    };
    assert_eq!(s.call(Encoding::Json, &empty).await.status, 400);

    let stop = Call {
        r#type: call::Type::StopMaintenance as i32,
        stop_maintenance: Some(call::StopMaintenance {
            machines: vec![machine.clone()],
        }),
        ..Default::default()
    };
    assert_eq!(s.call(Encoding::Json, &stop).await.status, 202);
    let status = s
        .get(Encoding::Json, call::Type::GetMaintenanceStatus)
        .await;
    let status = status.get_maintenance_status.unwrap().status.unwrap();
    assert!(status.down_machines.is_empty() && status.draining_machines.is_empty());
    // Back in offers.
    launch(&mut framework, "again", "sleep 300").await;
    framework.status("again", TaskState::TaskRunning).await;

    // The same by agent: drain kills, reactivate brings it back.
    let agent_id = agent.id.clone().unwrap();
    let drain = Call {
        r#type: call::Type::DrainAgent as i32,
        drain_agent: Some(call::DrainAgent {
            agent_id: Some(agent_id.clone()),
            mark_gone: None,
        }),
        ..Default::default()
    };
    assert_eq!(s.call(Encoding::Protobuf, &drain).await.status, 202);
    framework.status("again", TaskState::TaskKilled).await;
    let reactivate = Call {
        r#type: call::Type::ReactivateAgent as i32,
        reactivate_agent: Some(call::ReactivateAgent {
            agent_id: Some(agent_id),
        }),
        ..Default::default()
    };
    assert_eq!(s.call(Encoding::Protobuf, &reactivate).await.status, 202);
    let unknown = Call {
        r#type: call::Type::DeactivateAgent as i32,
        deactivate_agent: Some(call::DeactivateAgent {
            agent_id: Some(AgentId {
                value: "no-such-agent".into(),
            }),
        }),
        ..Default::default()
    };
    assert_eq!(s.call(Encoding::Json, &unknown).await.status, 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_with_mark_gone_marks_the_agent_gone_once_its_tasks_end() {
    let s = setup(|mut c| {
        c.registry = true;
        c
    })
    .await;
    let (mut framework, _) = s.framework("drained").await;
    launch(&mut framework, "long", "sleep 300").await;
    framework.status("long", TaskState::TaskRunning).await;
    let agent_id = s.first_agent().await;
    let drain = Call {
        r#type: call::Type::DrainAgent as i32,
        drain_agent: Some(call::DrainAgent {
            agent_id: Some(agent_id.clone()),
            mark_gone: Some(true),
        }),
        ..Default::default()
    };
    assert_eq!(s.call(Encoding::Json, &drain).await.status, 202);
    framework.status("long", TaskState::TaskKilled).await;
    let marked = || {
        let metrics = s.cluster.master_node.metrics().snapshot();
        metrics.get("master/slaves_marked_gone").copied() == Some(1.0)
    };
    keel_testkit::eventually::eventually("the drained agent is marked gone", || async {
        marked().then_some(())
    })
    .await;
    // Gone for good: its id is refused, and the master knows it gone (no second mark).
    let gone = Call {
        r#type: call::Type::MarkAgentGone as i32,
        mark_agent_gone: Some(call::MarkAgentGone {
            agent_id: Some(agent_id),
        }),
        ..Default::default()
    };
    assert_eq!(s.call(Encoding::Json, &gone).await.status, 200);
    assert!(marked(), "marked once");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_marked_gone_stays_gone_across_a_master_restart() {
    let mut s = setup(|mut c| {
        c.registry = true;
        c
    })
    .await;
    let (mut framework, _) = s.framework("abandoned").await;
    launch(&mut framework, "long", "sleep 300").await;
    framework.status("long", TaskState::TaskRunning).await;
    let gone_id = s.first_agent().await;
    let gone = |agent_id: AgentId| Call {
        r#type: call::Type::MarkAgentGone as i32,
        mark_agent_gone: Some(call::MarkAgentGone {
            agent_id: Some(agent_id),
        }),
        ..Default::default()
    };
    let unknown = AgentId {
        value: "no-such-agent".into(),
    };
    let reply = s.call(Encoding::Json, &gone(unknown)).await;
    assert_eq!(reply.status, 404, "{}", reply.text());

    let reply = s.call(Encoding::Json, &gone(gone_id.clone())).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The framework (not partition-aware) hears TASK_LOST; the agent, told to shut down,
    // kills what it ran.
    let lost = framework.status("long", TaskState::TaskLost).await;
    assert_eq!(lost.reason, Some(Reason::AgentRemoved as i32), "{lost:?}");
    let slave = s.cluster.agents[0].slave.clone();
    keel_testkit::eventually::eventually("the gone agent's task is killed", || async {
        (slave.call(|a, _| a.live_tasks()).await.ok()? == 0).then_some(())
    })
    .await;
    // GET_AGENTS reads the state view, which follows the master's books a moment behind. The
    // agent the master shut down stays down: no registration retry armed before brings it
    // back (one did, as a new agent, when CI was slow).
    keel_testkit::eventually::eventually("the gone agent leaves GET_AGENTS", || async {
        let agents = s.get(Encoding::Protobuf, call::Type::GetAgents).await;
        let listed: Vec<AgentId> = agents
            .get_agents?
            .agents
            .into_iter()
            .filter_map(|a| a.agent_info?.id)
            .collect();
        assert!(!listed.contains(&gone_id), "{listed:?}");
        listed.is_empty().then_some(())
    })
    .await;

    // A new master reads the mark from the registry: the machine comes back only as a new
    // agent (its agent started again: the one shut down stays down until then), and the old
    // id is still gone (an unknown id would be 404).
    s.cluster.restart_master().await.unwrap();
    let master = s.cluster.master_pid().clone();
    s.cluster.agents[0]
        .slave
        .dispatch(move |a, ctx| a.set_master(ctx, master));
    s.cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    s.cluster
        .wait_for_master_agents(1, AGENTS_UP)
        .await
        .unwrap();
    let back = s.first_agent().await;
    assert_ne!(back, gone_id, "the machine returned under a new id");
    let reply = s.call(Encoding::Protobuf, &gone(gone_id)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let metrics = s.cluster.master_node.metrics().snapshot();
    assert_eq!(
        metrics
            .get("master/slaves_marked_gone")
            .copied()
            .unwrap_or(0.0),
        0.0,
        "the new master knew it gone: it marked nothing"
    );
    // Mesos's registrar metrics: the new master read the registry once and wrote the returning
    // agent's admission.
    assert_eq!(metrics["registrar/state_fetch_ms/count"], 1.0);
    assert!(
        metrics["registrar/state_store_ms/count"] >= 1.0,
        "{metrics:?}"
    );
    assert_eq!(metrics["registrar/queued_operations"], 0.0);
    assert!(metrics["registrar/registry_size_bytes"] > 0.0);
    drop(framework);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_limits_set_through_the_operator_api_cut_offers_and_survive_a_master_restart() {
    let mut s = setup(|mut c| {
        c.registry = true;
        c
    })
    .await;
    let post_json = |body: serde_json::Value| {
        let address = s.address.clone();
        async move {
            v1_client::post(
                &address,
                None,
                "/api/v1",
                "application/json",
                &[("accept", "application/json".to_owned())],
                body.to_string().into_bytes(),
            )
            .await
        }
    };
    // As Mesos's docs write it.
    let update = |role: &str, cpus: f64| {
        json!({"type": "UPDATE_QUOTA", "update_quota": {"force": false, "quota_configs": [
            {"role": role, "limits": {"cpus": {"value": cpus}, "mem": {"value": 64}}}
        ]}})
    };
    let reply = post_json(update("*", 0.5)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let over = json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "dev", "guarantees": {"cpus": {"value": 2}}, "limits": {"cpus": {"value": 1}}}
    ]}});
    let reply = post_json(over).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("exceeds its limit"),
        "{}",
        reply.text()
    );
    let guaranteed = json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "dev", "guarantees": {"cpus": {"value": 1}}}
    ]}});
    let reply = post_json(guaranteed).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // Offers to the role fit its limits.
    let (mut framework, _) = s.framework("limited").await;
    let offers = framework.offers().await;
    let offered: f64 = offers
        .iter()
        .map(|o| {
            resources::Resources::from_proto(&o.resources)
                .unwrap()
                .scalar("cpus")
        })
        .sum();
    assert!(offered <= 0.5 + 1e-9, "{offers:?}");
    let mem: f64 = offers
        .iter()
        .map(|o| {
            resources::Resources::from_proto(&o.resources)
                .unwrap()
                .scalar("mem")
        })
        .sum();
    assert!(mem <= 64.0 + 1e-9, "{offers:?}");

    let quota_of = |response: Response| {
        let status = response.get_quota.unwrap().status.unwrap();
        status
            .configs
            .iter()
            .map(|c| {
                let cpus = |m: &std::collections::HashMap<String, protos::v1::value::Scalar>| {
                    m.get("cpus").map(|s| s.value)
                };
                (c.role.clone(), cpus(&c.limits), cpus(&c.guarantees))
            })
            .collect::<Vec<_>>()
    };
    let expected = vec![
        ("*".to_owned(), Some(0.5), None),
        ("dev".to_owned(), None, Some(1.0)),
    ];
    let got = s.get(Encoding::Protobuf, call::Type::GetQuota).await;
    assert_eq!(quota_of(got), expected);
    drop(framework);

    // The registry keeps it for the next master.
    s.cluster.restart_master().await.unwrap();
    s.cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let got = s.get(Encoding::Json, call::Type::GetQuota).await;
    assert_eq!(quota_of(got), expected);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_classic_quota_endpoint_sets_shows_and_removes_a_role_quota() {
    let s = setup(|mut c| {
        c.registry = true;
        c
    })
    .await;
    let request = |method: &'static str, path: &'static str, body: &str| {
        let (address, body) = (s.address.clone(), body.to_owned());
        async move {
            let reply = libactor::http_client::request_over(
                &address,
                None,
                method,
                path,
                &[("content-type", "application/json".to_owned())],
                body.into(),
            )
            .await
            .unwrap();
            (
                reply.status,
                String::from_utf8_lossy(&reply.body).into_owned(),
            )
        }
    };
    // As Mesos's quota docs write a request.
    let set = r#"{"role": "dev", "guarantee": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}]}"#;
    assert_eq!(request("POST", "/master/quota", set).await.0, 200);
    let (status, why) = request("POST", "/master/quota", set).await;
    assert_eq!(
        (status, why.contains("already has quota")),
        (400, true),
        "{why}"
    );
    let (status, why) = request("POST", "/master/quota", "{\"role\": ").await;
    assert_eq!(status, 400, "{why}");

    let (status, body) = request("GET", "/master/quota", "").await;
    assert_eq!(status, 200, "{body}");
    let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["infos"][0]["role"], "dev", "{shown}");
    let guarantee = resources::Resources::from_proto(
        &protos::mesos_json::from_json::<protos::v1::quota::QuotaInfo>(&shown["infos"][0])
            .unwrap()
            .guarantee,
    )
    .unwrap();
    assert_eq!(guarantee.scalar("cpus"), 1.0);
    // The guarantee is the role's limit too (Mesos 1.9's reading of the classic endpoint).
    let got = s.get(Encoding::Json, call::Type::GetQuota).await;
    let config = got.get_quota.unwrap().status.unwrap().configs.remove(0);
    assert_eq!(config.role, "dev");
    assert_eq!(config.limits["cpus"].value, 1.0);
    assert_eq!(config.guarantees["mem"].value, 64.0);

    assert_eq!(request("DELETE", "/master/quota/dev", "").await.0, 200);
    let (status, body) = request("GET", "/master/quota", "").await;
    assert_eq!(status, 200);
    let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        shown.get("configs").is_none_or(|c| c == &json!([])),
        "{shown}"
    );
    let (status, why) = request("DELETE", "/master/quota/dev", "").await;
    assert_eq!((status, why.contains("no quota")), (400, true), "{why}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_operator_calls_get_clear_errors_and_the_master_keeps_serving() {
    let s = setup(|c| c).await;
    let post = |content_type: &'static str, accept: &'static str, body: Vec<u8>| {
        let address = s.address.clone();
        async move {
            v1_client::post(
                &address,
                None,
                "/api/v1",
                content_type,
                &[("accept", accept.to_owned())],
                body,
            )
            .await
        }
    };
    let json = "application/json";
    let proto = "application/x-protobuf";
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        (json, json, b"{\"type\": ".to_vec(), 400),
        (json, json, b"{\"type\": \"NO_SUCH_CALL\"}".to_vec(), 400),
        (json, json, b"{\"type\": \"UNKNOWN\"}".to_vec(), 400),
        (json, json, b"[1, 2]".to_vec(), 400),
        (json, json, format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(), 400),
        (proto, proto, vec![0x0a, 0xff, 0xff], 400),
        ("text/plain", json, b"hi".to_vec(), 415),
        (json, "text/html", b"{\"type\": \"GET_HEALTH\"}".to_vec(), 406),
        (json, json, b"{\"type\": \"CREATE_VOLUMES\"}".to_vec(), 501),
        (json, json, b"{\"type\": \"TEARDOWN\"}".to_vec(), 400),
        (json, json, b"{\"type\": \"DRAIN_AGENT\"}".to_vec(), 400),
        (json, json, b"{\"type\": \"MARK_AGENT_GONE\"}".to_vec(), 400),
        (json, json, b"{\"type\": \"UPDATE_WEIGHTS\", \"update_weights\": {\"weight_infos\": [{\"role\": \"r\", \"weight\": -1}]}}".to_vec(), 400),
    ];
    for (content_type, accept, body, status) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let reply = post(content_type, accept, body).await;
        assert_eq!(reply.status, status, "{shown}: {}", reply.text());
        assert!(!reply.text().is_empty(), "{shown}: a refusal says why");
    }
    let get = libactor::http_client::request_over(
        &s.address,
        None,
        "GET",
        "/api/v1",
        &[],
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(get.status, 405);
    let refused = s.cluster.master_node.metrics().snapshot()["master/api/calls_refused"];
    assert!(refused >= 12.0, "{refused}");
    s.get(Encoding::Json, call::Type::GetHealth).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_secure_master_only_operators_change_things_and_acls_decide_what_readers_see() {
    let acls = authentication::acls::Acls::parse(
        r#"{"permissive": true,
            "view_frameworks": [{"principals": {"values": ["outsider"]}, "users": {"type": "NONE"}}],
            "view_tasks": [{"principals": {"values": ["outsider"]}, "users": {"type": "NONE"}}]}"#,
    )
    .unwrap();
    let s = setup(move |c| {
        let mut c = c.secure().unwrap();
        c.acls = acls;
        c
    })
    .await;
    let framework_tls = s.cluster.issue("fw", &["framework"]).unwrap();
    let operator_tls = s.cluster.issue("ops", &["operator"]).unwrap();
    let outsider_tls = s.cluster.issue("outsider", &["framework"]).unwrap();
    let (mut framework, framework_id) = s.framework("guarded").await;
    launch(&mut framework, "t", "sleep 300").await;
    framework.status("t", TaskState::TaskRunning).await;

    let get_state = simple(call::Type::GetState);
    let seen = |reply: CallReply| {
        assert_eq!(reply.status, 200, "{}", reply.text());
        let state = reply.decode::<Response>(Encoding::Json).get_state.unwrap();
        (
            state.get_frameworks.unwrap().frameworks.len(),
            state.get_tasks.unwrap().tasks.len(),
        )
    };
    let by_operator = s
        .call_as(operator_tls.as_ref(), Encoding::Json, &get_state)
        .await;
    assert_eq!(seen(by_operator), (1, 1));
    let by_outsider = s
        .call_as(outsider_tls.as_ref(), Encoding::Json, &get_state)
        .await;
    assert_eq!(seen(by_outsider), (0, 0));

    let teardown = Call {
        r#type: call::Type::Teardown as i32,
        teardown: Some(call::Teardown {
            framework_id: Some(framework_id.clone()),
        }),
        ..Default::default()
    };
    let refused = s
        .call_as(framework_tls.as_ref(), Encoding::Json, &teardown)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    let mark_gone = Call {
        r#type: call::Type::MarkAgentGone as i32,
        mark_agent_gone: Some(call::MarkAgentGone {
            agent_id: Some(AgentId {
                value: "any".into(),
            }),
        }),
        ..Default::default()
    };
    let refused = s
        .call_as(framework_tls.as_ref(), Encoding::Json, &mark_gone)
        .await;
    assert_eq!(refused.status, 403, "only operators: {}", refused.text());
    let refused = s
        .call_as(
            framework_tls.as_ref(),
            Encoding::Json,
            &simple(call::Type::UpdateQuota),
        )
        .await;
    assert_eq!(refused.status, 403, "only operators: {}", refused.text());
    let done = s
        .call_as(operator_tls.as_ref(), Encoding::Json, &teardown)
        .await;
    assert_eq!(done.status, 202, "{}", done.text());
    // The operator API's view has it at once: its events precede the answer.
    let state = s
        .call_as(operator_tls.as_ref(), Encoding::Protobuf, &get_state)
        .await;
    let state = state
        .decode::<Response>(Encoding::Protobuf)
        .get_state
        .unwrap();
    assert!(state.get_frameworks.unwrap().frameworks.is_empty());
    let tasks = state.get_tasks.unwrap();
    assert_eq!(
        tasks.completed_tasks[0].state,
        Some(TaskState::TaskKilled as i32)
    );
    drop(framework);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_reports_mesos_metrics_by_their_mesos_names() {
    let s = setup(|c| c).await;
    let (mut framework, _) = s.framework("metered").await;
    launch(&mut framework, "busy", "sleep 300").await;
    framework.status("busy", TaskState::TaskRunning).await;
    let agents = s.get(Encoding::Json, call::Type::GetAgents).await;
    let agent = agents.get_agents.unwrap().agents.remove(0);
    let cpus = resources::Resources::from_proto(&agent.total_resources)
        .unwrap()
        .scalar("cpus");
    let metrics = s.cluster.master_node.metrics().clone();
    // Gauges are recomputed every second from the API process's view, one
    // at a time, and a snapshot reads them in no set order: one taken during
    // a refresh may mix two refreshes. So wait for a snapshot in which every
    // gauge that changes with the task shows it.
    let snapshot = keel_testkit::eventually::eventually("the gauges catch up", || {
        let snapshot = metrics.snapshot();
        let ready = snapshot.get("master/tasks_running") == Some(&1.0)
            && snapshot.get("master/slaves_active") == Some(&1.0)
            && snapshot.get("master/frameworks_connected") == Some(&1.0)
            && snapshot.get("master/cpus_total") == Some(&cpus)
            && snapshot
                .get("master/cpus_used")
                .is_some_and(|used| (used - 0.1).abs() < 1e-9)
            && snapshot
                .get("master/cpus_percent")
                .is_some_and(|percent| (percent - 0.1 / cpus).abs() < 1e-9);
        async move { ready.then_some(snapshot) }
    })
    .await;
    assert_eq!(snapshot["master/elected"], 1.0);
    assert!(snapshot["master/uptime_secs"] >= 0.0);
    assert_eq!(snapshot["master/slaves_active"], 1.0);
    assert_eq!(snapshot["master/frameworks_connected"], 1.0);
    assert_eq!(snapshot["master/cpus_total"], cpus);
    assert!((snapshot["master/cpus_used"] - 0.1).abs() < 1e-9);
    assert_eq!(snapshot["master/tasks_staging"], 0.0);
    assert!(snapshot.contains_key("master/outstanding_offers"));
    // Messages by kind, as they arrived.
    assert_eq!(snapshot["master/messages_register_slave"], 1.0);
    assert_eq!(snapshot["master/messages_register_framework"], 1.0);
    assert_eq!(snapshot["master/messages_launch_tasks"], 1.0);
    assert!(snapshot["master/messages_status_update"] >= 1.0);
    assert_eq!(snapshot["master/messages_kill_task"], 0.0);
    // The master's event queue, by kind (an idle master holds at most a timer's dispatch).
    for kind in ["messages", "dispatches", "http_requests"] {
        let queued = snapshot[&format!("master/event_queue_{kind}")];
        assert!((0.0..100.0).contains(&queued), "{kind}: {queued}");
    }
    // The agent's, likewise (its gauges too are read in no set order).
    let agent_metrics = s.cluster.agents[0].node.metrics().clone();
    let agent = keel_testkit::eventually::eventually("the agent's gauges catch up", || {
        let snapshot = agent_metrics.snapshot();
        let ready = snapshot.get("slave/tasks_running") == Some(&1.0)
            && snapshot.get("slave/executors_running") == Some(&1.0)
            && snapshot.get("slave/frameworks_active") == Some(&1.0)
            && snapshot.get("slave/cpus_total") == Some(&cpus)
            && snapshot
                .get("slave/cpus_used")
                .is_some_and(|used| (used - 0.1).abs() < 1e-9)
            && snapshot
                .get("slave/cpus_percent")
                .is_some_and(|percent| (percent - 0.1 / cpus).abs() < 1e-9);
        async move { ready.then_some(snapshot) }
    })
    .await;
    assert_eq!(agent["slave/registered"], 1.0);
    assert_eq!(agent["slave/executors_running"], 1.0);
    assert_eq!(agent["slave/frameworks_active"], 1.0);
    assert_eq!(agent["slave/cpus_total"], cpus);
    assert!((agent["slave/cpus_used"] - 0.1).abs() < 1e-9);
    assert!(agent["slave/uptime_secs"] >= 0.0);
    // Prometheus exposition carries them too, typed.
    let text = libactor::http_client::request_over(
        &s.address,
        None,
        "GET",
        "/metrics",
        &[],
        Default::default(),
    )
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&text.body).into_owned();
    assert!(text.contains("# TYPE master_tasks_running gauge"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_classic_maintenance_endpoints_take_a_machine_down_and_up() {
    let s = setup(|c| c).await;
    let agents = s.get(Encoding::Json, call::Type::GetAgents).await;
    let hostname = agents.get_agents.unwrap().agents[0]
        .agent_info
        .as_ref()
        .unwrap()
        .hostname
        .clone();
    let http = |method: &'static str, path: &'static str, body: String| {
        let address = s.address.clone();
        async move {
            let reply = libactor::http_client::request(
                &address,
                method,
                path,
                &[("content-type", "application/json".to_owned())],
                body.into(),
            )
            .await
            .unwrap();
            let text = String::from_utf8_lossy(&reply.body).into_owned();
            (reply.status, text)
        }
    };
    let machines = json!([{ "hostname": hostname }]).to_string();
    let (status, why) = http("POST", "/master/machine/down", machines.clone()).await;
    assert_eq!(status, 400);
    assert!(why.contains("not in the maintenance schedule"), "{why}");
    let schedule = json!({"windows": [{
        "machine_ids": [{"hostname": hostname}],
        "unavailability": {"start": {"nanoseconds": 1}}
    }]});
    let (status, why) = http("POST", "/master/maintenance/schedule", schedule.to_string()).await;
    assert_eq!(status, 200, "{why}");
    let (_, shown) = http("GET", "/master/maintenance/schedule", String::new()).await;
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        shown["windows"][0]["machine_ids"][0]["hostname"],
        hostname.as_str()
    );
    let (_, status_json) = http("GET", "/master/maintenance/status", String::new()).await;
    let cluster: serde_json::Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(
        cluster["draining_machines"][0]["id"]["hostname"],
        hostname.as_str()
    );

    assert_eq!(
        http("POST", "/master/machine/down", machines.clone())
            .await
            .0,
        200
    );
    let (_, status_json) = http("GET", "/master/maintenance/status", String::new()).await;
    let cluster: serde_json::Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(
        cluster["down_machines"][0]["hostname"],
        hostname.as_str(),
        "{cluster}"
    );
    assert_eq!(http("POST", "/master/machine/up", machines).await.0, 200);
    let (_, status_json) = http("GET", "/master/maintenance/status", String::new()).await;
    let cluster: serde_json::Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(cluster["down_machines"], json!([]), "{cluster}");
    assert_eq!(cluster["draining_machines"], json!([]), "{cluster}");

    assert_eq!(
        http("POST", "/master/machine/down", "{".into()).await.0,
        400
    );
    assert_eq!(
        http("POST", "/master/maintenance/schedule", "[]".into())
            .await
            .0,
        400
    );
    assert_eq!(
        http("GET", "/master/machine/up", String::new()).await.0,
        405
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answers_the_operator_api_about_its_tasks_and_containers() {
    use protos::v1::agent;
    let s = setup(|c| c).await;
    let (mut framework, framework_id) = s.framework("on-agent").await;
    launch(
        &mut framework,
        "resident",
        "echo from-the-sandbox; sleep 300",
    )
    .await;
    framework.status("resident", TaskState::TaskRunning).await;
    let address = s.cluster.agents[0].node.address().to_owned();
    let ask = |encoding: Encoding, kind: agent::call::Type| {
        agent_call(
            &address,
            encoding,
            agent::Call {
                r#type: kind as i32,
                ..Default::default()
            },
        )
    };
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let reply = ask(encoding, agent::call::Type::GetState).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let state = reply.decode::<agent::Response>(encoding).get_state.unwrap();
        let tasks = state.get_tasks.unwrap().launched_tasks;
        assert_eq!(tasks[0].task_id.as_ref().unwrap().value, "resident");
        assert_eq!(tasks[0].state, Some(TaskState::TaskRunning as i32));
        let frameworks = state.get_frameworks.unwrap().frameworks;
        assert_eq!(
            frameworks[0].framework_info.as_ref().unwrap().id,
            Some(framework_id.clone())
        );
        assert_eq!(state.get_executors.unwrap().executors.len(), 1);

        let containers = ask(encoding, agent::call::Type::GetContainers).await;
        let containers = containers
            .decode::<agent::Response>(encoding)
            .get_containers
            .unwrap()
            .containers;
        assert_eq!(containers.len(), 1);
        assert!(containers[0].resource_statistics.is_some());
        let me = ask(encoding, agent::call::Type::GetAgent).await;
        let me = me.decode::<agent::Response>(encoding).get_agent.unwrap();
        assert!(me.agent_info.unwrap().id.is_some());
        let health = ask(encoding, agent::call::Type::GetHealth).await;
        let health = health
            .decode::<agent::Response>(encoding)
            .get_health
            .unwrap();
        assert_eq!(health.healthy, Some(true));
    }
    let refused = ask(Encoding::Json, agent::call::Type::LaunchContainer).await;
    assert_eq!(refused.status, 501, "{}", refused.text());
    let unknown = ask(Encoding::Json, agent::call::Type::Unknown).await;
    assert_eq!(unknown.status, 400);

    // Sandbox files: LIST_FILES down to the task's stdout, READ_FILE it, in both encodings.
    let list = |encoding: Encoding, path: String| {
        agent_call(
            &address,
            encoding,
            agent::Call {
                r#type: agent::call::Type::ListFiles as i32,
                list_files: Some(agent::call::ListFiles { path }),
                ..Default::default()
            },
        )
    };
    let read = |encoding: Encoding, path: String, offset: u64| {
        agent_call(
            &address,
            encoding,
            agent::Call {
                r#type: agent::call::Type::ReadFile as i32,
                read_file: Some(agent::call::ReadFile {
                    path,
                    offset,
                    length: Some(1 << 16),
                }),
                ..Default::default()
            },
        )
    };
    let root = std::fs::canonicalize(s._dir.path().join("agent-0/slaves")).unwrap();
    let mut dirs = vec![root.display().to_string()];
    let mut stdout = None;
    while let Some(dir) = dirs.pop() {
        let reply = list(Encoding::Protobuf, dir.clone()).await;
        assert_eq!(reply.status, 200, "{dir}: {}", reply.text());
        let listed = reply.decode::<agent::Response>(Encoding::Protobuf);
        for file in listed.list_files.unwrap().file_infos {
            let is_dir = file.mode.unwrap() & libc::S_IFMT == libc::S_IFDIR;
            if is_dir {
                dirs.push(file.path);
            } else if file.path.ends_with("/stdout") {
                assert!(file.size.is_some() && file.mtime.is_some() && !file.uid.is_empty());
                stdout = Some(file.path);
            }
        }
    }
    let stdout = stdout.expect("the task's stdout is listed");
    // RUNNING says the command started, not that its echo has reached the file yet.
    keel_testkit::eventually::eventually("the task's output is in its stdout", || {
        let reply = read(Encoding::Protobuf, stdout.clone(), 0);
        async move {
            let file = reply
                .await
                .decode::<agent::Response>(Encoding::Protobuf)
                .read_file?;
            String::from_utf8_lossy(&file.data)
                .contains("from-the-sandbox")
                .then_some(())
        }
    })
    .await;
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let reply = read(encoding, stdout.clone(), 0).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let file = reply.decode::<agent::Response>(encoding).read_file.unwrap();
        assert!(
            String::from_utf8_lossy(&file.data).contains("from-the-sandbox"),
            "{file:?}"
        );
        assert_eq!(file.size, file.data.len() as u64);
        let past = read(encoding, stdout.clone(), file.size + 10).await;
        let past = past.decode::<agent::Response>(encoding).read_file.unwrap();
        assert!(past.data.is_empty(), "nothing past the end");
    }
    for outside in [
        "/etc/passwd",
        &format!("{}/../../../etc/passwd", root.display()),
    ] {
        let reply = read(Encoding::Json, outside.to_owned(), 0).await;
        assert_eq!(reply.status, 403, "{outside}: {}", reply.text());
    }
    let missing = agent_call(
        &address,
        Encoding::Json,
        agent::Call {
            r#type: agent::call::Type::ReadFile as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(missing.status, 400, "{}", missing.text());
    // `/files/download`: the file itself.
    let download = libactor::http_client::request_over(
        &address,
        None,
        "GET",
        &format!("/files/download?path={stdout}"),
        &[],
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(download.status, 200);
    assert!(String::from_utf8_lossy(&download.body).contains("from-the-sandbox"));
    s.stop().await;
}

/// One call to the agent's operator API at `address`.
async fn agent_call(address: &str, encoding: Encoding, call: protos::v1::agent::Call) -> CallReply {
    v1_client::post(
        address,
        None,
        "/api/v1",
        encoding.content_type(),
        &[("accept", encoding.content_type().to_owned())],
        v1_client::body(encoding, &call),
    )
    .await
}
