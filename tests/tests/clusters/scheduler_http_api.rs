//! Mesos's v1 scheduler HTTP API against a real cluster (master and agent on loopback ports,
//! tasks as OS processes), spoken the way Mesos clients speak it: JSON bodies as pymesos writes
//! them, and protobuf with Mesos's field numbers; events read off the RecordIO stream.

use std::time::Duration;

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::v1_client::{self, EventStream};
use libactor::http_client::{open_stream, request_over};
use libactor::TlsConfig;
use prost::Message;
use protos::http_api::{next_record, Encoding};
use protos::v1::scheduler::{call, event, Call, Event};
use protos::v1::{FrameworkId, TaskState};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// A subscription: its stream and what it needs for calls.
struct Subscriber {
    events: EventStream<Event>,
    encoding: Encoding,
    stream_id: String,
    address: String,
    tls: Option<TlsConfig>,
}

async fn post(
    address: &str,
    tls: Option<&TlsConfig>,
    content_type: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, String) {
    let reply = v1_client::post(
        address,
        tls,
        "/api/v1/scheduler",
        content_type,
        headers,
        body,
    )
    .await;
    (reply.status, reply.text())
}

impl Subscriber {
    async fn subscribe(
        address: &str,
        tls: Option<TlsConfig>,
        encoding: Encoding,
        body: Vec<u8>,
    ) -> Subscriber {
        let events = EventStream::open(
            address,
            tls.as_ref(),
            "/api/v1/scheduler",
            encoding,
            &[],
            body,
        )
        .await;
        let stream_id = events
            .header("mesos-stream-id")
            .expect("a Mesos-Stream-Id header")
            .to_owned();
        Subscriber {
            events,
            encoding,
            stream_id,
            address: address.to_owned(),
            tls,
        }
    }

    /// The next event, as the raw JSON when the stream is JSON (and decoded either way).
    async fn next(&mut self) -> Option<(Event, Option<serde_json::Value>)> {
        self.events.next().await
    }

    /// The next event of type `kind`, skipping others (heartbeats, offers not wanted).
    async fn until(&mut self, kind: event::Type) -> (Event, Option<serde_json::Value>) {
        self.events
            .until(kind.as_str_name(), |e| e.r#type == kind as i32)
            .await
    }

    async fn call(&self, call: &Call) -> (u16, String) {
        post(
            &self.address,
            self.tls.as_ref(),
            self.encoding.content_type(),
            &[("mesos-stream-id", self.stream_id.clone())],
            v1_client::body(self.encoding, call),
        )
        .await
    }
}

fn subscribe_json(name: &str) -> Vec<u8> {
    json!({
        "type": "SUBSCRIBE",
        "subscribe": {"framework_info": {"user": "root", "name": name, "failover_timeout": 60.0}}
    })
    .to_string()
    .into_bytes()
}

async fn cluster(dir: &std::path::Path, secure: bool) -> LocalCluster {
    let mut config = LocalClusterConfig::new(1, dir);
    if secure {
        config = config.secure().unwrap();
    }
    let cluster = LocalCluster::start(config).await.expect("cluster starts");
    cluster
        .wait_for_agents(WAIT)
        .await
        .expect("the agent registers");
    cluster
}

/// Accepts the first offer with one command task `id` running `command`; the task's updates
/// follow, each acknowledged, until `last`.
async fn run_task(
    sub: &mut Subscriber,
    framework_id: &FrameworkId,
    id: &str,
    command: &str,
    last: TaskState,
) {
    let (offers, json) = sub.until(event::Type::Offers).await;
    let offer = offers.offers.unwrap().offers.remove(0);
    if let Some(json) = json {
        let first = &json["offers"]["offers"][0];
        assert_eq!(first["framework_id"]["value"], framework_id.value.as_str());
        assert_eq!(first["resources"][0]["type"], "SCALAR", "{first}");
    }
    let accept = match sub.encoding {
        // JSON as a Mesos client writes it by hand.
        Encoding::Json => protos::mesos_json::from_json::<Call>(&json!({
            "framework_id": {"value": framework_id.value},
            "type": "ACCEPT",
            "accept": {
                "offer_ids": [{"value": offer.id.as_ref().unwrap().value}],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
                    "name": id,
                    "task_id": {"value": id},
                    "agent_id": {"value": offer.agent_id.as_ref().unwrap().value},
                    "resources": [
                        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                        {"name": "mem", "type": "SCALAR", "scalar": {"value": 16}}
                    ],
                    "command": {"value": command}
                }]}}],
                "filters": {"refuse_seconds": 1.0}
            }
        }))
        .unwrap(),
        Encoding::Protobuf => Call {
            framework_id: Some(framework_id.clone()),
            r#type: call::Type::Accept as i32,
            accept: Some(call::Accept {
                offer_ids: vec![offer.id.clone().unwrap()],
                operations: vec![protos::v1::offer::Operation {
                    r#type: protos::v1::offer::operation::Type::Launch as i32,
                    launch: Some(protos::v1::offer::operation::Launch {
                        task_infos: vec![protos::v1::TaskInfo {
                            name: id.into(),
                            task_id: Some(protos::v1::TaskId { value: id.into() }),
                            agent_id: offer.agent_id.clone(),
                            resources: "cpus:0.1;mem:16"
                                .parse::<resources::Resources>()
                                .unwrap()
                                .to_proto(),
                            command: Some(protos::v1::CommandInfo {
                                value: command.into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                    }),
                    ..Default::default()
                }],
                filters: None,
            }),
            ..Default::default()
        },
    };
    assert_eq!(sub.call(&accept).await.0, 202);
    loop {
        let (update, json) = sub.until(event::Type::Update).await;
        let status = update.update.unwrap().status.unwrap();
        if let Some(json) = json {
            // Mesos's JSON: enum names, bytes in base64.
            let state = json["update"]["status"]["state"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(
                state,
                TaskState::try_from(status.state).unwrap().as_str_name()
            );
        }
        assert_eq!(status.task_id.as_ref().unwrap().value, id);
        acknowledge(sub, framework_id, &status).await;
        if status.state == last as i32 {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_scheduler_subscribes_launches_acknowledges_and_tears_down() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    let address = cluster.master_pid().address().to_owned();
    let mut sub =
        Subscriber::subscribe(&address, None, Encoding::Json, subscribe_json("json")).await;
    let (subscribed, json) = sub.until(event::Type::Subscribed).await;
    let json = json.unwrap();
    assert_eq!(json["type"], "SUBSCRIBED");
    assert_eq!(json["subscribed"]["heartbeat_interval_seconds"], 15.0);
    let framework_id = subscribed.subscribed.unwrap().framework_id.unwrap();
    run_task(
        &mut sub,
        &framework_id,
        "hello",
        "echo hello",
        TaskState::TaskFinished,
    )
    .await;

    // The framework is in /master/state like any other, HTTP or not.
    let state = libactor::http_client::get_json(&address, "/master/state")
        .await
        .unwrap();
    assert_eq!(state["frameworks"][0]["id"], framework_id.value.as_str());
    assert_eq!(state["frameworks"][0]["name"], "json");

    // Teardown ends the framework and its stream.
    let teardown = Call {
        framework_id: Some(framework_id.clone()),
        r#type: call::Type::Teardown as i32,
        ..Default::default()
    };
    assert_eq!(sub.call(&teardown).await.0, 202);
    while sub.next().await.is_some() {}
    let state = libactor::http_client::get_json(&address, "/master/state")
        .await
        .unwrap();
    assert_eq!(state["frameworks"], json!([]));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protobuf_scheduler_runs_a_task_and_a_second_subscription_replaces_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    let address = cluster.master_pid().address().to_owned();
    let subscribe = |id: Option<FrameworkId>| Call {
        framework_id: id.clone(),
        r#type: call::Type::Subscribe as i32,
        subscribe: Some(call::Subscribe {
            framework_info: Some(protos::v1::FrameworkInfo {
                user: "root".into(),
                name: "proto".into(),
                id,
                failover_timeout: Some(60.0),
                ..Default::default()
            }),
            suppressed_roles: Vec::new(),
        }),
        ..Default::default()
    };
    let mut first = Subscriber::subscribe(
        &address,
        None,
        Encoding::Protobuf,
        subscribe(None).encode_to_vec(),
    )
    .await;
    let (subscribed, _) = first.until(event::Type::Subscribed).await;
    let framework_id = subscribed.subscribed.unwrap().framework_id.unwrap();
    run_task(
        &mut first,
        &framework_id,
        "p1",
        "true",
        TaskState::TaskFinished,
    )
    .await;

    // A second subscription for the framework (a scheduler failover) closes the first stream.
    let mut second = Subscriber::subscribe(
        &address,
        None,
        Encoding::Protobuf,
        subscribe(Some(framework_id.clone())).encode_to_vec(),
    )
    .await;
    let (again, _) = second.until(event::Type::Subscribed).await;
    assert_eq!(
        again.subscribed.unwrap().framework_id.unwrap(),
        framework_id
    );
    while first.next().await.is_some() {}
    // The first stream's id is no longer the framework's.
    let revive = Call {
        framework_id: Some(framework_id.clone()),
        r#type: call::Type::Revive as i32,
        ..Default::default()
    };
    assert_eq!(first.call(&revive).await.0, 400);
    assert_eq!(second.call(&revive).await.0, 202);
    run_task(
        &mut second,
        &framework_id,
        "p2",
        "true",
        TaskState::TaskFinished,
    )
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_clear_errors_and_the_master_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    let address = cluster.master_pid().address().to_owned();
    let json_post = |body: &str, headers: Vec<(&'static str, String)>| {
        let (address, body) = (address.clone(), body.as_bytes().to_vec());
        async move { post(&address, None, "application/json", &headers, body).await }
    };
    let (status, why) = json_post("{\"type\": ", vec![]).await;
    assert_eq!(status, 400);
    assert!(why.contains("not JSON"), "{why}");
    assert_eq!(
        json_post(r#"{"type": "NO_SUCH_CALL"}"#, vec![]).await.0,
        400
    );
    assert_eq!(json_post(r#"{"type": "SUBSCRIBE"}"#, vec![]).await.0, 400);
    let (status, why) = json_post(
        r#"{"type": "REVIVE", "framework_id": {"value": "f"}}"#,
        vec![],
    )
    .await;
    assert_eq!(status, 400);
    assert!(why.contains("Mesos-Stream-Id"), "{why}");
    let (status, _) = json_post(
        r#"{"type": "REVIVE", "framework_id": {"value": "f"}}"#,
        vec![("mesos-stream-id", "s".into())],
    )
    .await;
    assert_eq!(status, 403, "not subscribed");
    let (status, why) = json_post(
        r#"{"type": "ACCEPT", "framework_id": {"value": "f"}, "accept": {"operations": [{"type": "RESERVE"}]}}"#,
        vec![],
    )
    .await;
    assert_eq!(status, 400);
    assert!(why.contains("RESERVE"), "{why}");
    // Deep JSON is refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(json_post(&deep, vec![]).await.0, 400);
    assert_eq!(
        post(&address, None, "text/plain", &[], b"x".to_vec())
            .await
            .0,
        415
    );
    assert_eq!(
        post(
            &address,
            None,
            "application/x-protobuf",
            &[],
            vec![0xff, 0xff, 0xff]
        )
        .await
        .0,
        400
    );
    let reply = request_over(
        &address,
        None,
        "POST",
        "/api/v1/scheduler",
        &[
            ("content-type", "application/json".into()),
            ("accept", "text/html".into()),
        ],
        subscribe_json("x").into(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 406);
    // Still serving.
    let mut sub = Subscriber::subscribe(&address, None, Encoding::Json, subscribe_json("ok")).await;
    sub.until(event::Type::Subscribed).await;
    let refused = cluster.master_node.metrics().snapshot()["master/api/calls_refused"];
    assert!(refused >= 9.0, "{refused}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_secure_master_only_a_proven_framework_subscribes_and_only_it_calls() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), true).await;
    let address = cluster.master_pid().address().to_owned();
    // Without a certificate: 401. With an operator's: 403.
    let (status, _) = post(
        &address,
        None,
        "application/json",
        &[],
        subscribe_json("anon"),
    )
    .await;
    assert_eq!(status, 401);
    let operator = cluster
        .issue("ops", &[authentication::roles::OPERATOR])
        .unwrap();
    let (status, _) = post(
        &address,
        operator.as_ref(),
        "application/json",
        &[],
        subscribe_json("ops"),
    )
    .await;
    assert_eq!(status, 403);
    let analytics = cluster
        .issue("analytics", &[authentication::roles::FRAMEWORK])
        .unwrap();
    let mut sub =
        Subscriber::subscribe(&address, analytics, Encoding::Json, subscribe_json("a")).await;
    let (subscribed, _) = sub.until(event::Type::Subscribed).await;
    let framework_id = subscribed.subscribed.unwrap().framework_id.unwrap();
    run_task(
        &mut sub,
        &framework_id,
        "s1",
        "true",
        TaskState::TaskFinished,
    )
    .await;
    let state = libactor::http_client::get_json(&address, "/master/state")
        .await
        .unwrap();
    assert_eq!(state["frameworks"][0]["principal"], "analytics");
    // Another framework principal, with the stream id, may not act for it.
    let intruder = cluster
        .issue("intruder", &[authentication::roles::FRAMEWORK])
        .unwrap();
    let teardown = protos::mesos_json::to_json(&Call {
        framework_id: Some(framework_id.clone()),
        r#type: call::Type::Teardown as i32,
        ..Default::default()
    })
    .unwrap();
    let (status, _) = post(
        &address,
        intruder.as_ref(),
        "application/json",
        &[("mesos-stream-id", sub.stream_id.clone())],
        teardown.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 403);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_redirect_answer_as_mesos_does() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    let address = cluster.master_pid().address().to_owned();
    let version = libactor::http_client::get_json(&address, "/version")
        .await
        .unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    let redirect = request_over(
        &address,
        None,
        "GET",
        "/master/redirect",
        &[],
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(redirect.status, 307);
    assert_eq!(
        redirect.header("location"),
        Some(format!("//{address}").as_str())
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_agent_lets_only_the_executor_itself_subscribe_to_its_executor_api() {
    use protos::v1::executor;
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), true).await;
    let agent = cluster.agents[0].node.address().to_owned();
    let subscribe = protos::mesos_json::to_json(&executor::Call {
        framework_id: Some(FrameworkId { value: "F".into() }),
        executor_id: Some(protos::v1::ExecutorId { value: "e".into() }),
        r#type: executor::call::Type::Subscribe as i32,
        ..Default::default()
    })
    .unwrap()
    .to_string();
    let post = |headers: Vec<(&'static str, String)>| {
        let (agent, body) = (agent.clone(), subscribe.clone());
        async move {
            let mut all = vec![("content-type", "application/json".to_owned())];
            all.extend(headers);
            open_stream(&agent, None, "POST", "/api/v1/executor", &all, body.into())
                .await
                .unwrap()
        }
    };
    assert_eq!(post(vec![]).await.status, 401);
    let tokens = slave::executor_api::token::ExecutorTokens::load_or_create(
        &dir.path().join("agent-0/meta"),
    )
    .unwrap();
    let other = format!("Bearer {}", tokens.token("F", "someone-else"));
    assert_eq!(post(vec![("authorization", other)]).await.status, 401);
    // With its token (from MESOS_EXECUTOR_AUTHENTICATION_TOKEN) it subscribes; the agent runs
    // no such executor and tells it to shut down.
    let mine = format!("Bearer {}", tokens.token("F", "e"));
    let mut reply = post(vec![("authorization", mine)]).await;
    assert_eq!(reply.status, 200);
    let mut buffer = Vec::new();
    let event = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(record) = next_record(&mut buffer).unwrap() {
                return serde_json::from_slice::<serde_json::Value>(&record).unwrap();
            }
            buffer.extend_from_slice(&reply.next_chunk().await.unwrap().unwrap());
        }
    })
    .await
    .unwrap();
    assert_eq!(event["type"], "SHUTDOWN", "{event}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_classic_endpoints_list_agents_frameworks_tasks_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    let address = cluster.master_pid().address().to_owned();
    let mut sub =
        Subscriber::subscribe(&address, None, Encoding::Json, subscribe_json("classic")).await;
    let (subscribed, _) = sub.until(event::Type::Subscribed).await;
    let framework_id = subscribed.subscribed.unwrap().framework_id.unwrap();
    run_task(
        &mut sub,
        &framework_id,
        "t1",
        "exec sleep 60",
        TaskState::TaskRunning,
    )
    .await;
    run_task(
        &mut sub,
        &framework_id,
        "t2",
        "exec sleep 60",
        TaskState::TaskRunning,
    )
    .await;
    let get = |path: &'static str| {
        let address = address.clone();
        async move { libactor::http_client::get_json(&address, path).await }
    };
    let slaves = get("/master/slaves").await.unwrap();
    assert_eq!(slaves["slaves"].as_array().unwrap().len(), 1, "{slaves}");
    let frameworks = get("/master/frameworks").await.unwrap();
    assert_eq!(
        frameworks["frameworks"][0]["id"],
        framework_id.value.as_str()
    );
    assert_eq!(frameworks["unregistered_frameworks"], json!([]));
    let tasks = get("/master/tasks").await.unwrap();
    assert_eq!(
        tasks["tasks"][0]["id"], "t2",
        "descending by default: {tasks}"
    );
    let page = get("/master/tasks?limit=1&offset=1&order=asc")
        .await
        .unwrap();
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(page["tasks"][0]["id"], "t2");
    assert!(get("/master/tasks?order=sideways").await.is_err(), "400");
    assert!(get("/master/tasks?limit=-1").await.is_err(), "400");
    let roles = get("/master/roles").await.unwrap();
    assert_eq!(roles["roles"][0]["name"], "*");
    assert_eq!(
        roles["roles"][0]["frameworks"][0],
        framework_id.value.as_str()
    );
    assert_eq!(roles["roles"][0]["resources"]["cpus"], 0.2, "{roles}");

    // /master/state in Mesos's shape: statuses with timestamps, attributes as an object,
    // start and registration times, and the past (completed tasks and frameworks).
    let kill = Call {
        framework_id: Some(framework_id.clone()),
        r#type: call::Type::Kill as i32,
        kill: Some(call::Kill {
            task_id: Some(protos::v1::TaskId { value: "t1".into() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(sub.call(&kill).await.0, 202);
    loop {
        let (update, _) = sub.until(event::Type::Update).await;
        if update.update.unwrap().status.unwrap().state == TaskState::TaskKilled as i32 {
            break;
        }
    }
    let state = get("/master/state").await.unwrap();
    assert!(state["start_time"].as_f64().unwrap() > 0.0, "{state}");
    assert!(state["slaves"][0]["attributes"].is_object(), "{state}");
    assert!(state["slaves"][0]["registered_time"].as_f64().unwrap() > 0.0);
    let framework = &state["frameworks"][0];
    assert!(framework["registered_time"].as_f64().unwrap() > 0.0);
    assert_eq!(framework["failover_timeout"], 60.0);
    let running = &framework["tasks"][0];
    assert_eq!(running["id"], "t2");
    let statuses = running["statuses"].as_array().unwrap();
    assert_eq!(statuses.last().unwrap()["state"], "TASK_RUNNING");
    assert!(statuses[0]["timestamp"].as_f64().unwrap() > 0.0);
    assert_eq!(framework["completed_tasks"][0]["id"], "t1", "{framework}");
    assert_eq!(framework["completed_tasks"][0]["state"], "TASK_KILLED");
    let summary = get("/master/state-summary").await.unwrap();
    assert_eq!(summary["frameworks"][0]["TASK_RUNNING"], 1, "{summary}");
    assert_eq!(summary["frameworks"][0]["TASK_KILLED"], 1, "{summary}");
    assert_eq!(summary["frameworks"][0]["tasks"], json!(null));
    let aliased = get("/master/state.json").await.unwrap();
    assert_eq!(aliased["id"], state["id"]);
    let wrapped = libactor::http_client::request(
        &address,
        "GET",
        "/master/slaves?jsonp=show",
        &[],
        Default::default(),
    )
    .await
    .unwrap();
    let wrapped = String::from_utf8_lossy(&wrapped.body).into_owned();
    assert!(
        wrapped.starts_with("show({") && wrapped.ends_with("});"),
        "{wrapped}"
    );
    assert!(get("/master/slaves?jsonp=alert(1)").await.is_err(), "400");

    // A torn-down framework stays listed as completed, with its tasks.
    let teardown = Call {
        framework_id: Some(framework_id.clone()),
        r#type: call::Type::Teardown as i32,
        ..Default::default()
    };
    assert_eq!(sub.call(&teardown).await.0, 202);
    let frameworks = testkit_eventually(&address).await;
    assert_eq!(
        frameworks["completed_frameworks"][0]["id"],
        framework_id.value.as_str()
    );
    let tasks = frameworks["completed_frameworks"][0]["completed_tasks"]
        .as_array()
        .unwrap();
    assert_eq!(tasks.len(), 2, "{frameworks}");
    cluster.shutdown().await;
}

/// `/master/frameworks` once it lists a completed framework.
async fn testkit_eventually(address: &str) -> serde_json::Value {
    keel_testkit::eventually::eventually("the framework is completed", || async {
        let f = libactor::http_client::get_json(address, "/master/frameworks")
            .await
            .ok()?;
        (!f["completed_frameworks"].as_array()?.is_empty()).then_some(f)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_updates_its_framework_and_shuts_an_executor_down() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    let address = cluster.master_pid().address().to_owned();
    let mut sub =
        Subscriber::subscribe(&address, None, Encoding::Json, subscribe_json("before")).await;
    let (subscribed, _) = sub.until(event::Type::Subscribed).await;
    let framework_id = subscribed.subscribed.unwrap().framework_id.unwrap();

    // UPDATE_FRAMEWORK: the name and failover timeout change at once (200); the user may not.
    let update = |info: serde_json::Value| {
        protos::mesos_json::from_json::<Call>(&json!({
            "framework_id": {"value": framework_id.value},
            "type": "UPDATE_FRAMEWORK",
            "update_framework": {"framework_info": info}
        }))
        .unwrap()
    };
    let renamed = update(json!({
        "id": {"value": framework_id.value}, "user": "root", "name": "after",
        "failover_timeout": 120.0
    }));
    let (status, body) = sub.call(&renamed).await;
    assert_eq!(status, 200, "{body}");
    let frameworks = libactor::http_client::get_json(&address, "/master/frameworks")
        .await
        .unwrap();
    assert_eq!(frameworks["frameworks"][0]["name"], "after", "{frameworks}");
    assert_eq!(frameworks["frameworks"][0]["failover_timeout"], 120.0);
    let other_user = update(json!({
        "id": {"value": framework_id.value}, "user": "someone-else", "name": "after"
    }));
    let (status, body) = sub.call(&other_user).await;
    assert_eq!(status, 400);
    assert!(body.contains("'user' cannot be changed"), "{body}");
    let other_id = update(json!({"id": {"value": "another"}, "user": "root", "name": "x"}));
    assert_eq!(sub.call(&other_id).await.0, 400);

    // SHUTDOWN of a command task's executor (its id is the task's): the task is killed.
    run_task(
        &mut sub,
        &framework_id,
        "doomed",
        "exec sleep 60",
        TaskState::TaskRunning,
    )
    .await;
    let agent_id = libactor::http_client::get_json(&address, "/master/slaves")
        .await
        .unwrap()["slaves"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shutdown = protos::mesos_json::from_json::<Call>(&json!({
        "framework_id": {"value": framework_id.value},
        "type": "SHUTDOWN",
        "shutdown": {"executor_id": {"value": "doomed"}, "agent_id": {"value": agent_id}}
    }))
    .unwrap();
    assert_eq!(sub.call(&shutdown).await.0, 202);
    loop {
        let (update, _) = sub.until(event::Type::Update).await;
        let status = update.update.unwrap().status.unwrap();
        if status.task_id.as_ref().unwrap().value == "doomed" {
            assert_eq!(status.state, TaskState::TaskKilled as i32, "{status:?}");
            break;
        }
    }
    let incomplete = protos::mesos_json::from_json::<Call>(&json!({
        "framework_id": {"value": framework_id.value},
        "type": "SHUTDOWN",
        "shutdown": {"executor_id": {"value": "doomed"}}
    }))
    .unwrap();
    assert_eq!(sub.call(&incomplete).await.0, 400);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scheduler_call_and_event_in_json() {
    every_call_and_event(Encoding::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scheduler_call_and_event_in_protobuf() {
    every_call_and_event(Encoding::Protobuf).await;
}

/// One framework in `encoding` makes every call of the scheduler API and sees every event,
/// on the paused clock (heartbeats are 15 s apart) against a real agent running the echo
/// executor.
async fn every_call_and_event(encoding: Encoding) {
    use protos::v1::{
        AgentId, CommandInfo, ExecutorId, ExecutorInfo, Filters, FrameworkInfo, TaskId, TaskInfo,
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = libactor::Clock::paused();
    let mut config = LocalClusterConfig::new(1, dir.path());
    config.clock = Some(clock.clone());
    let cluster = LocalCluster::start(config).await.expect("cluster starts");
    cluster.wait_for_agents(WAIT).await.unwrap();
    let advance = |by: Duration| {
        let clock = clock.clone();
        async move {
            clock.advance(by);
            clock.settle().await.unwrap();
        }
    };
    let address = cluster.master_pid().address().to_owned();
    let info = FrameworkInfo {
        user: "root".into(),
        name: "every-call".into(),
        failover_timeout: Some(60.0),
        ..Default::default()
    };
    let subscribe = Call {
        r#type: call::Type::Subscribe as i32,
        subscribe: Some(call::Subscribe {
            framework_info: Some(info.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut sub = Subscriber::subscribe(
        &address,
        None,
        encoding,
        v1_client::body(encoding, &subscribe),
    )
    .await;
    let (subscribed, _) = sub.until(event::Type::Subscribed).await;
    let subscribed = subscribed.subscribed.unwrap();
    assert_eq!(subscribed.heartbeat_interval_seconds, Some(15.0));
    let id = subscribed.framework_id.unwrap();
    let call_of = |kind: call::Type, fill: &dyn Fn(&mut Call)| {
        let mut c = Call {
            framework_id: Some(id.clone()),
            r#type: kind as i32,
            ..Default::default()
        };
        fill(&mut c);
        c
    };
    let accepted = |(status, body): (u16, String)| assert_eq!(status, 202, "{body}");

    let renamed = call_of(call::Type::UpdateFramework, &|c| {
        c.update_framework = Some(call::UpdateFramework {
            framework_info: Some(FrameworkInfo {
                id: Some(id.clone()),
                name: "every-call-renamed".into(),
                ..info.clone()
            }),
            ..Default::default()
        })
    });
    assert_eq!(sub.call(&renamed).await.0, 200);

    // DECLINE gives an offer back; it comes again, and a HEARTBEAT 15 s after subscribing.
    let (offers, _) = sub.until(event::Type::Offers).await;
    let offer = offers.offers.unwrap().offers.remove(0);
    accepted(
        sub.call(&call_of(call::Type::Decline, &|c| {
            c.decline = Some(call::Decline {
                offer_ids: vec![offer.id.clone().unwrap()],
                filters: Some(Filters {
                    refuse_seconds: Some(0.0),
                }),
            })
        }))
        .await,
    );
    advance(Duration::from_secs(15)).await;
    let (mut offer, mut heartbeat) = (None, false);
    while offer.is_none() || !heartbeat {
        let (event, _) = sub.next().await.expect("events");
        match event::Type::try_from(event.r#type).unwrap() {
            event::Type::Offers => offer = event.offers.unwrap().offers.into_iter().next(),
            event::Type::Heartbeat => heartbeat = true,
            _ => {}
        }
    }
    let offer = offer.expect("the declined resources are offered again");
    let agent_id: AgentId = offer.agent_id.clone().unwrap();
    accepted(
        sub.call(&call_of(call::Type::Suppress, &|c| {
            c.suppress = Some(call::Suppress::default())
        }))
        .await,
    );
    accepted(
        sub.call(&call_of(call::Type::Revive, &|c| {
            c.revive = Some(call::Revive::default())
        }))
        .await,
    );

    // ACCEPT a task on the echo executor, and a task group on it (LAUNCH_GROUP, the group's
    // executor typed CUSTOM); their updates are acknowledged.
    let executor = ExecutorInfo {
        executor_id: Some(ExecutorId {
            value: "echo".into(),
        }),
        command: Some(CommandInfo {
            value: env!("CARGO_BIN_EXE_echo-executor").into(),
            shell: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let task = TaskInfo {
        name: "e1".into(),
        task_id: Some(TaskId { value: "e1".into() }),
        agent_id: Some(agent_id.clone()),
        resources: "cpus:0.5;mem:32"
            .parse::<resources::Resources>()
            .unwrap()
            .to_proto(),
        executor: Some(executor.clone()),
        ..Default::default()
    };
    let grouped = TaskInfo {
        name: "e2".into(),
        task_id: Some(TaskId { value: "e2".into() }),
        executor: None,
        ..task.clone()
    };
    let launch = call_of(call::Type::Accept, &|c| {
        c.accept = Some(call::Accept {
            offer_ids: vec![offer.id.clone().unwrap()],
            operations: vec![
                protos::v1::offer::Operation {
                    r#type: protos::v1::offer::operation::Type::Launch as i32,
                    launch: Some(protos::v1::offer::operation::Launch {
                        task_infos: vec![task.clone()],
                    }),
                    ..Default::default()
                },
                protos::v1::offer::Operation {
                    r#type: protos::v1::offer::operation::Type::LaunchGroup as i32,
                    launch_group: Some(protos::v1::offer::operation::LaunchGroup {
                        executor: Some(ExecutorInfo {
                            r#type: protos::v1::executor_info::Type::Custom as i32,
                            ..executor.clone()
                        }),
                        task_group: Some(protos::v1::TaskGroupInfo {
                            tasks: vec![grouped.clone()],
                        }),
                    }),
                    ..Default::default()
                },
            ],
            filters: None,
        })
    });
    accepted(sub.call(&launch).await);
    let mut running = Vec::new();
    for _ in 0..2 {
        let status = update_to(&mut sub, &id, TaskState::TaskRunning).await;
        running.push(status.task_id.unwrap().value);
    }
    running.sort();
    assert_eq!(running, ["e1", "e2"]);

    // MESSAGE to the executor, which echoes it back as a MESSAGE event.
    accepted(
        sub.call(&call_of(call::Type::Message, &|c| {
            c.message = Some(call::Message {
                agent_id: Some(agent_id.clone()),
                executor_id: Some(ExecutorId {
                    value: "echo".into(),
                }),
                data: bytes::Bytes::from_static(b"ping \x00\xff"),
            })
        }))
        .await,
    );
    let (echoed, json) = sub.until(event::Type::Message).await;
    assert_eq!(&echoed.message.unwrap().data[..], b"ping \x00\xff");
    if let Some(json) = json {
        assert_eq!(json["message"]["data"], "cGluZyAA/w==", "bytes in base64");
    }

    // RECONCILE: the task's state, for the reason of reconciliation.
    accepted(
        sub.call(&call_of(call::Type::Reconcile, &|c| {
            c.reconcile = Some(call::Reconcile {
                tasks: vec![call::reconcile::Task {
                    task_id: task.task_id.clone(),
                    agent_id: Some(agent_id.clone()),
                }],
            })
        }))
        .await,
    );
    let reconciled = update_to(&mut sub, &id, TaskState::TaskRunning).await;
    assert_eq!(
        reconciled.reason,
        Some(protos::v1::task_status::Reason::Reconciliation as i32)
    );

    // KILL: the executor kills it.
    accepted(
        sub.call(&call_of(call::Type::Kill, &|c| {
            c.kill = Some(call::Kill {
                task_id: task.task_id.clone(),
                agent_id: Some(agent_id.clone()),
                kill_policy: None,
            })
        }))
        .await,
    );
    update_to(&mut sub, &id, TaskState::TaskKilled).await;

    // Calls Keel answers without effect: no resource requests, no inverse offers.
    accepted(
        sub.call(&call_of(call::Type::Request, &|c| {
            c.request = Some(call::Request::default())
        }))
        .await,
    );
    accepted(
        sub.call(&call_of(call::Type::AcceptInverseOffers, &|c| {
            c.accept_inverse_offers = Some(call::AcceptInverseOffers::default())
        }))
        .await,
    );
    accepted(
        sub.call(&call_of(call::Type::DeclineInverseOffers, &|c| {
            c.decline_inverse_offers = Some(call::DeclineInverseOffers::default())
        }))
        .await,
    );

    // SHUTDOWN the executor: a FAILURE names it.
    accepted(
        sub.call(&call_of(call::Type::Shutdown, &|c| {
            c.shutdown = Some(call::Shutdown {
                executor_id: Some(ExecutorId {
                    value: "echo".into(),
                }),
                agent_id: Some(agent_id.clone()),
            })
        }))
        .await,
    );
    // Offers made from here on (the group's task ends with its executor) may be rescinded below.
    let mut outstanding = std::collections::HashSet::new();
    let mut note_offers = |e: &Event| {
        if let Some(offers) = &e.offers {
            outstanding.extend(offers.offers.iter().filter_map(|o| o.id.clone()));
        }
    };
    let (failure, _) = sub
        .events
        .until("the executor's FAILURE", |e| {
            note_offers(e);
            e.failure.as_ref().is_some_and(|f| f.executor_id.is_some())
        })
        .await;
    assert_eq!(failure.failure.unwrap().executor_id.unwrap().value, "echo");

    // RESCIND: the outstanding offers of a machine the operator drains. Past the 5 s an
    // accept's remainder is refused for, everything free is offered again.
    advance(Duration::from_secs(6)).await;
    let hostname = cluster.agents[0].hostname.clone();
    let drained = cluster
        .master
        .master
        .call(move |m, ctx| m.drain_machine(ctx, &hostname, false, "test").map(drop))
        .await
        .unwrap();
    assert!(drained.is_ok(), "{drained:?}");
    let (rescind, _) = sub
        .events
        .until("RESCIND", |e| {
            note_offers(e);
            e.r#type == event::Type::Rescind as i32
        })
        .await;
    let rescinded = rescind.rescind.unwrap().offer_id.unwrap();
    assert!(
        outstanding.is_empty() || outstanding.contains(&rescinded),
        "{rescinded:?} not among {outstanding:?}"
    );

    // FAILURE of the agent: an operator marks it gone.
    let gone = agent_id.value.clone();
    let marking = cluster
        .master
        .master
        .call(move |m, ctx| m.mark_agent_gone(ctx, "ops", &gone).map(drop))
        .await
        .unwrap();
    assert!(marking.is_ok(), "{marking:?}");
    let (failure, _) = sub
        .events
        .until("the agent's FAILURE", |e| {
            e.failure
                .as_ref()
                .is_some_and(|f| f.executor_id.is_none() && f.agent_id.is_some())
        })
        .await;
    assert_eq!(failure.failure.unwrap().agent_id.unwrap(), agent_id);

    // ERROR: an operator tears the framework down; then the stream ends.
    let framework = id.value.clone();
    let torn = cluster
        .master
        .master
        .call(move |m, ctx| m.teardown_framework(ctx, "ops", &framework))
        .await
        .unwrap();
    assert!(torn.is_ok(), "{torn:?}");
    let (error, _) = sub.until(event::Type::Error).await;
    assert!(!error.error.unwrap().message.is_empty());
    cluster.shutdown().await;
}

/// The next update of a task to `state`, acknowledged if it asks to be.
async fn update_to(
    sub: &mut Subscriber,
    framework: &FrameworkId,
    state: TaskState,
) -> protos::v1::TaskStatus {
    let (event, _) = sub
        .events
        .until(state.as_str_name(), |e| {
            e.update
                .as_ref()
                .and_then(|u| u.status.as_ref())
                .is_some_and(|s| s.state == state as i32)
        })
        .await;
    let status = event.update.unwrap().status.unwrap();
    acknowledge(sub, framework, &status).await;
    status
}

/// Acknowledges `status` if it asks to be (it has a uuid).
async fn acknowledge(sub: &Subscriber, framework: &FrameworkId, status: &protos::v1::TaskStatus) {
    if status.uuid.is_empty() {
        return;
    }
    let ack = Call {
        framework_id: Some(framework.clone()),
        r#type: call::Type::Acknowledge as i32,
        acknowledge: Some(call::Acknowledge {
            agent_id: status.agent_id.clone(),
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone(),
        }),
        ..Default::default()
    };
    assert_eq!(sub.call(&ack).await.0, 202);
}
