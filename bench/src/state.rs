//! `keel-bench state`: Mesos's state endpoints on a large cluster that keeps scheduling. A real
//! `keel-master` with N emulated agents and M long-running tasks; then
//! - how long `GET /master/state` and the operator API's `GET_STATE` take, and how big they are;
//! - launches per second with a reader polling `/master/state` every `poll` against the same
//!   launches with no reader (the baseline of the same run);
//! - whether one operator `SUBSCRIBE` stream keeps up with the task events of those launches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use frameworks::{scheduler_driver, SchedulerOptions};
use libactor::http_client::open_stream;
use libactor::Node;
use prost::Message;
use protos::http_api::{next_record, Encoding};
use protos::v1::master::{call, event, Call, Event};

use crate::emulated_agent::EmulationCounters;
use crate::emulated_fleet::start_agents;
use crate::launch_scheduler::{LaunchCounters, LaunchScheduler};
use crate::master_child::MasterChild;
use crate::phase::wait_until;

/// What each emulated agent offers (room for far more tiny tasks than the run launches).
const AGENT_RESOURCES: &str = "cpus:64;mem:262144";
/// What each task takes.
const TASK_RESOURCES: &str = "cpus:0.01;mem:1";
/// State reads timed.
const READS: usize = 7;

/// Runs the benchmark (see the module docs).
pub async fn run(agents: usize, tasks: u64, launches: u64, poll: Duration) -> anyhow::Result<()> {
    let master = MasterChild::start().await?;
    let counters = Arc::new(EmulationCounters::default());
    // Tasks outlive the run: the emulated agents finish them only after a day.
    let nodes = start_agents(
        agents,
        &master.pid,
        &AGENT_RESOURCES.parse()?,
        Duration::from_secs(86_400),
        &counters,
        None,
    )?;
    let took = wait_until("agent registration", || {
        counters.registered.load(Ordering::Relaxed) == agents as u64
    })
    .await?;
    println!("state: {agents} emulated agents registered in {took:.2?}");
    let framework_node = Node::builder().start()?;
    let took = launch(&framework_node, &master, "fill", tasks).await?;
    println!(
        "state: {tasks} long-running tasks launched in {took:.2?}; master RSS {:.0} MiB",
        master.rss_bytes() as f64 / (1 << 20) as f64
    );

    let address = master.pid.address().to_owned();
    let (median, max, bytes) = time_reads(|| read_state(&address)).await?;
    println!(
        "state: GET /master/state ({:.1} MiB) median {median:.0} ms, max {max:.0} ms over {READS} reads",
        bytes as f64 / (1 << 20) as f64
    );
    let (median, max, bytes) = time_reads(|| get_state(&address)).await?;
    println!(
        "state: operator GET_STATE, protobuf ({:.1} MiB) median {median:.0} ms, max {max:.0} ms",
        bytes as f64 / (1 << 20) as f64
    );

    // Baseline: launches with nobody reading state.
    let quiet = launch(&framework_node, &master, "quiet", launches).await?;
    let quiet_rate = launches as f64 / quiet.as_secs_f64();
    // The same launches with a reader polling state, and an operator event stream open.
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicU64::new(0));
    let poller = {
        let (address, stop, polls) = (address.clone(), stop.clone(), polls.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if read_state(&address).await.is_ok() {
                    polls.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(poll).await;
            }
        })
    };
    let events = Arc::new(AtomicU64::new(0));
    let subscriber = subscribe(&address, events.clone()).await?;
    let polled = launch(&framework_node, &master, "polled", launches).await?;
    let polled_rate = launches as f64 / polled.as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = poller.await;
    println!(
        "state: {launches} launches: {quiet_rate:.0}/s with no reader, {polled_rate:.0}/s with /master/state read every {poll:?} ({} reads): polled / quiet = {:.2}",
        polls.load(Ordering::Relaxed),
        polled_rate / quiet_rate
    );
    // Each launched task is one TASK_ADDED and one TASK_UPDATED (RUNNING).
    let expected = 2 * launches;
    let caught_up = tokio::time::timeout(
        Duration::from_secs(30),
        wait_until("the event stream catches up", || {
            events.load(Ordering::Relaxed) >= expected
        }),
    )
    .await
    .map_err(anyhow::Error::from)
    .and_then(|r| r);
    let received = events.load(Ordering::Relaxed);
    let rate = expected as f64 / polled.as_secs_f64();
    match caught_up {
        Ok(lag) => println!(
            "state: one SUBSCRIBE stream received all {expected} task events ({rate:.0} events/s during the launches), {lag:.2?} after the last launch"
        ),
        Err(_) => println!(
            "state: one SUBSCRIBE stream received {received} of {expected} task events (it fell behind or was cut off)"
        ),
    }
    subscriber.abort();
    framework_node.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}

/// Launches `tasks` tasks with a new framework; how long until all are RUNNING.
async fn launch(
    node: &Node,
    master: &MasterChild,
    name: &str,
    tasks: u64,
) -> anyhow::Result<Duration> {
    let counters = Arc::new(LaunchCounters::default());
    let handle = scheduler_driver::start(
        node,
        master.pid.clone(),
        keel::example_runs::framework_info(name),
        LaunchScheduler::new(tasks, TASK_RESOURCES.parse()?, counters.clone()),
        SchedulerOptions::default(),
    )?;
    let took = wait_until("the tasks RUNNING", || {
        counters.running.load(Ordering::Relaxed) >= tasks
    })
    .await?;
    // The framework stays registered: its tasks keep holding resources (and stay in state).
    std::mem::forget(handle);
    Ok(took)
}

/// Times `READS` reads; (median ms, max ms, bytes of the last).
async fn time_reads<F, Fut>(mut read: F) -> anyhow::Result<(f64, f64, usize)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..READS {
        let start = Instant::now();
        bytes = read().await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[times.len() - 1], bytes))
}

/// The whole body of a request's answer, however large (a full-scale state is well over the
/// client's 64 MiB limit for ordinary answers): its length, once read.
async fn read_all(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: bytes::Bytes,
) -> anyhow::Result<usize> {
    let mut reply = open_stream(address, None, method, path, headers, body).await?;
    anyhow::ensure!(reply.status == 200, "{path}: {}", reply.status);
    let mut len = 0;
    while let Some(chunk) = reply.next_chunk().await {
        len += chunk?.len();
    }
    Ok(len)
}

async fn read_state(address: &str) -> anyhow::Result<usize> {
    read_all(address, "GET", "/master/state", &[], Default::default()).await
}

async fn get_state(address: &str) -> anyhow::Result<usize> {
    let call = Call {
        r#type: call::Type::GetState as i32,
        ..Default::default()
    };
    let protobuf = Encoding::Protobuf.content_type().to_owned();
    let headers = [("content-type", protobuf.clone()), ("accept", protobuf)];
    read_all(
        address,
        "POST",
        "/api/v1",
        &headers,
        call.encode_to_vec().into(),
    )
    .await
}

/// Opens an operator event stream (protobuf) counting task events in `events`.
async fn subscribe(
    address: &str,
    events: Arc<AtomicU64>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let call = Call {
        r#type: call::Type::Subscribe as i32,
        ..Default::default()
    };
    let protobuf = Encoding::Protobuf.content_type().to_owned();
    let headers = [("content-type", protobuf.clone()), ("accept", protobuf)];
    let mut reply = open_stream(
        address,
        None,
        "POST",
        "/api/v1",
        &headers,
        call.encode_to_vec().into(),
    )
    .await?;
    anyhow::ensure!(reply.status == 200, "SUBSCRIBE: {}", reply.status);
    Ok(tokio::spawn(async move {
        let mut buffer = Vec::new();
        while let Some(Ok(chunk)) = reply.next_chunk().await {
            buffer.extend_from_slice(&chunk);
            while let Ok(Some(record)) = next_record(&mut buffer) {
                let Ok(event) = Event::decode(&record[..]) else {
                    return;
                };
                let task = [event::Type::TaskAdded, event::Type::TaskUpdated]
                    .iter()
                    .any(|t| event.r#type == *t as i32);
                if task {
                    events.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }))
}
