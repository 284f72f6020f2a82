//! Writing `/master/state` from the API process's view of a large cluster: 40,000 agents and
//! 400,000 running tasks (issue 18's shape; goal ≤ 300 ms for the whole answer), and the
//! operator API's `GET_STATE` in protobuf, beside the baseline of the same run: `serde_json`
//! writing the same number of flat task records of the same size (what any JSON writer must
//! pay for the bytes alone).
//!
//! ```text
//! cargo bench -p master --bench state
//! KEEL_STATE_TASKS=40000 cargo bench -p master --bench state   # a tenth of the scale
//! ```

use std::time::Duration;

use authentication::acls::Acls;
use criterion::{criterion_group, Criterion};
use master::api::state_json::{MasterSide, StateSource};
use master::api::task_wire;
use master::api::view::{ClusterView, ViewLimits};
use master::master::{FeedItem, StatusRecord};
use protos::v1::master::response::GetState;
use protos::v1::{AgentInfo, Attribute, FrameworkInfo, TaskState};
use resources::Resources;
use serde::Serialize;

const AGENTS_PER_TASKS: usize = 10;
const FRAMEWORKS: usize = 4;

fn tasks_wanted() -> usize {
    std::env::var("KEEL_STATE_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000)
}

/// A view as the master's feed leaves it after `tasks` launches reached RUNNING.
fn cluster(tasks: usize) -> ClusterView {
    let mut view = ClusterView::new(ViewLimits::default());
    let agents = (tasks / AGENTS_PER_TASKS).max(1);
    let total: Resources = "cpus:16;mem:65536;disk:1048576;ports:[31000-32000]"
        .parse()
        .expect("valid");
    for a in 0..agents {
        let info = AgentInfo {
            hostname: format!("host-{a}.example"),
            port: 5051,
            attributes: vec![Attribute {
                name: "rack".into(),
                r#type: protos::v1::value::Type::Text as i32,
                text: Some(protos::v1::value::Text {
                    value: format!("r{}", a % 40),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        view.apply(
            FeedItem::AgentAdded {
                id: format!("agent-{a:06}"),
                info,
                pid: format!("slave(1)@127.0.{}.{}:5051", a / 250, a % 250),
                total: total.clone(),
                at: 1.8e9,
            },
            1.8e9,
        );
    }
    for f in 0..FRAMEWORKS {
        view.apply(
            FeedItem::FrameworkChanged {
                id: format!("framework-{f}"),
                info: FrameworkInfo {
                    name: format!("bench-{f}"),
                    user: "root".into(),
                    ..Default::default()
                },
                active: true,
                added: true,
                at: 1.8e9,
            },
            1.8e9,
        );
    }
    let used: Resources = "cpus:0.1;mem:32".parse().expect("valid");
    for t in 0..tasks {
        let framework = format!("framework-{}", t % FRAMEWORKS);
        let id = format!("task-{t:07}");
        let agent = format!("agent-{:06}", t % agents);
        view.apply(
            FeedItem::TaskAdded {
                framework: framework.clone(),
                id: id.clone(),
                name: id.clone(),
                executor: String::new(),
                agent: agent.clone(),
                state: TaskState::TaskStaging,
                resources: used.clone(),
            },
            1.8e9,
        );
        for state in [TaskState::TaskStarting, TaskState::TaskRunning] {
            view.apply(
                FeedItem::TaskUpdated {
                    framework: framework.clone(),
                    id: id.clone(),
                    agent: agent.clone(),
                    status: StatusRecord {
                        state,
                        timestamp: 1.8e9 + t as f64 * 1e-4,
                        source: 1,
                        reason: None,
                        message: String::new(),
                        healthy: None,
                    },
                },
                1.8e9,
            );
        }
    }
    view
}

/// The baseline: flat records of about a task's size in the state.
#[derive(Serialize)]
struct Flat {
    id: String,
    name: String,
    framework_id: String,
    executor_id: String,
    slave_id: String,
    state: &'static str,
    cpus: f64,
    mem: f64,
    statuses: [(&'static str, f64); 2],
}

fn state(c: &mut Criterion) {
    let tasks = tasks_wanted();
    let view = cluster(tasks);
    let side = MasterSide::default();
    let acls = Acls::default();
    let source = StateSource {
        view: &view,
        side: &side,
        acls: &acls,
        principal: None,
        flags: &[],
        start_time: 1.8e9,
        weights: &Default::default(),
    };
    let bytes = source.state().len();
    println!(
        "/master/state of {tasks} tasks: {:.1} MiB",
        bytes as f64 / (1 << 20) as f64
    );
    let flat: Vec<Flat> = (0..tasks)
        .map(|t| Flat {
            id: format!("task-{t:07}"),
            name: format!("task-{t:07}"),
            framework_id: format!("framework-{}", t % FRAMEWORKS),
            executor_id: String::new(),
            slave_id: format!("agent-{:06}", t % (tasks / AGENTS_PER_TASKS).max(1)),
            state: "TASK_RUNNING",
            cpus: 0.1,
            mem: 32.0,
            statuses: [
                ("TASK_STARTING", 1.8e9 + t as f64 * 1e-4),
                ("TASK_RUNNING", 1.8e9 + t as f64 * 1e-4),
            ],
        })
        .collect();
    let mut group = c.benchmark_group("master_state");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("state_json", |b| b.iter(|| source.state()));
    group.bench_function("get_state_protobuf", |b| {
        b.iter(|| {
            let all = |_: &str| true;
            let rest = GetState {
                get_tasks: None,
                get_executors: Some(view.get_executors(&all)),
                get_frameworks: Some(view.get_frameworks(&|_| true)),
                get_agents: Some(view.get_agents()),
            };
            task_wire::get_state_response(&view.tasks_seen(&all), rest)
        })
    });
    group.bench_function("baseline_flat_tasks_json", |b| {
        b.iter(|| serde_json::to_vec(&flat).expect("serializes"))
    });
    group.finish();
}

criterion_group!(benches, state);

fn median_ms(name: &str) -> Option<f64> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/criterion/master_state")
        .join(name)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(value["median"]["point_estimate"].as_f64()? / 1e6)
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!("\n== /master/state vs the flat-records baseline (medians of this run) ==");
    match (
        median_ms("state_json"),
        median_ms("baseline_flat_tasks_json"),
    ) {
        (Some(state), Some(flat)) => println!(
            "state {state:.0} ms, baseline {flat:.0} ms: {:.2}x the baseline (goal 300 ms at 400,000 tasks)",
            state / flat
        ),
        _ => println!("no estimates"),
    }
}
