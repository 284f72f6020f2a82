//! `keel-bench launch --http`: the launch benchmark's framework spoken over Mesos's v1
//! scheduler HTTP API (JSON or protobuf) instead of the driver, against the same master and
//! emulated agents: one SUBSCRIBE stream for events, and calls (ACCEPT, DECLINE, SUPPRESS,
//! ACKNOWLEDGE, TEARDOWN) posted on a few persistent HTTP/1.1 connections, as a Mesos client
//! keeps them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use protos::http_api::{next_record, Encoding};
use protos::v1::scheduler::{call, event, Call, Event};
use protos::v1::{Filters, FrameworkId, TaskState};
use resources::Resources;
use tokio::sync::{mpsc, Mutex};

use crate::launch_scheduler::{LaunchCounters, TaskBatches, UNUSED_REFUSE_SECONDS};

/// Persistent connections calls are posted on (HTTP/1.1 carries one call at a time each).
pub const CALL_CONNECTIONS: usize = 16;

/// Posts calls on [`CALL_CONNECTIONS`] persistent connections to the master; a call the master
/// does not accept is counted in `refused`.
struct Caller {
    calls: mpsc::UnboundedSender<Bytes>,
    workers: Vec<tokio::task::JoinHandle<anyhow::Result<u64>>>,
}

impl Caller {
    async fn connect(address: &str, encoding: Encoding, stream_id: &str) -> anyhow::Result<Caller> {
        let (calls, queue) = mpsc::unbounded_channel::<Bytes>();
        let queue = Arc::new(Mutex::new(queue));
        let mut workers = Vec::new();
        for _ in 0..CALL_CONNECTIONS {
            let tcp = tokio::net::TcpStream::connect(address).await?;
            tcp.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(connection);
            let (queue, address) = (queue.clone(), address.to_owned());
            let stream_id = stream_id.to_owned();
            workers.push(tokio::spawn(async move {
                let mut refused = 0;
                loop {
                    let Some(body) = queue.lock().await.recv().await else {
                        return Ok(refused);
                    };
                    let request = hyper::Request::post("/api/v1/scheduler")
                        .header("host", &address)
                        .header("content-type", encoding.content_type())
                        .header("mesos-stream-id", &stream_id)
                        .body(Full::new(body))?;
                    sender.ready().await?;
                    let response = sender.send_request(request).await?;
                    let status = response.status().as_u16();
                    // The body (empty for 202) is read to free the connection for the next.
                    let body = http_body_util::BodyExt::collect(response.into_body()).await?;
                    if !matches!(status, 200 | 202) {
                        refused += 1;
                        if refused <= 3 {
                            let why = String::from_utf8_lossy(&body.to_bytes()).into_owned();
                            eprintln!("  a call was refused: {status} {}", why.trim());
                        }
                    }
                }
            }));
        }
        Ok(Caller { calls, workers })
    }

    fn post(&self, body: Vec<u8>) {
        let _ = self.calls.send(body.into());
    }

    /// Waits for the calls posted so far; how many the master refused.
    async fn finish(self) -> anyhow::Result<u64> {
        drop(self.calls);
        let mut refused = 0;
        for worker in self.workers {
            refused += worker.await??;
        }
        Ok(refused)
    }
}

/// Runs the benchmark's framework over the scheduler API at `address` in `encoding` until
/// `target` tasks of `task_resources` have ended; counts into `counters`.
pub async fn run_framework(
    address: &str,
    encoding: Encoding,
    target: u64,
    task_resources: Resources,
    counters: Arc<LaunchCounters>,
) -> anyhow::Result<()> {
    let subscribe = Call {
        r#type: call::Type::Subscribe as i32,
        subscribe: Some(call::Subscribe {
            framework_info: Some(protos::v1::FrameworkInfo {
                // Mesos's HTTP API needs the user (the driver fills in its own).
                user: authentication::os_user::current(),
                ..keel::example_runs::framework_info("keel-bench-http")
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let headers = [
        ("content-type", encoding.content_type().to_owned()),
        ("accept", encoding.content_type().to_owned()),
    ];
    let mut stream = libactor::http_client::open_stream(
        address,
        None,
        "POST",
        "/api/v1/scheduler",
        &headers,
        encoding.body(&subscribe).into(),
    )
    .await?;
    if stream.status != 200 {
        let why = match stream.next_chunk().await {
            Some(Ok(chunk)) => String::from_utf8_lossy(&chunk).into_owned(),
            _ => String::new(),
        };
        bail!("SUBSCRIBE answered {}: {}", stream.status, why.trim());
    }
    let stream_id = stream
        .header("mesos-stream-id")
        .context("no Mesos-Stream-Id")?
        .to_owned();
    let caller = Caller::connect(address, encoding, &stream_id).await?;
    let mut framework: Option<FrameworkId> = None;
    let mut batches = TaskBatches::new(target, task_resources);
    let mut suppressed = false;
    let mut buffer = Vec::new();
    let call = |framework: &Option<FrameworkId>, kind: call::Type| Call {
        framework_id: framework.clone(),
        r#type: kind as i32,
        ..Default::default()
    };
    loop {
        let Some(record) = next_record(&mut buffer).map_err(anyhow::Error::msg)? else {
            match stream.next_chunk().await {
                Some(chunk) => buffer.extend_from_slice(&chunk?),
                None => bail!("the master ended the event stream"),
            }
            continue;
        };
        let event: Event = encoding.decode(&record).map_err(anyhow::Error::msg)?;
        match event::Type::try_from(event.r#type).unwrap_or(event::Type::Unknown) {
            event::Type::Subscribed => {
                framework = event.subscribed.and_then(|s| s.framework_id);
            }
            event::Type::Offers => {
                let mut unused = Vec::new();
                for offer in event.offers.map(|o| o.offers).unwrap_or_default() {
                    let Some(id) = offer.id.clone() else { continue };
                    let tasks = batches.fill(&offer);
                    if tasks.is_empty() {
                        unused.push(id);
                        continue;
                    }
                    counters
                        .launched
                        .fetch_add(tasks.len() as u64, Ordering::Relaxed);
                    let mut accept = call(&framework, call::Type::Accept);
                    accept.accept = Some(call::Accept {
                        offer_ids: vec![id],
                        operations: vec![protos::v1::offer::Operation {
                            r#type: protos::v1::offer::operation::Type::Launch as i32,
                            launch: Some(protos::v1::offer::operation::Launch {
                                task_infos: tasks,
                            }),
                            ..Default::default()
                        }],
                        filters: Some(Filters {
                            refuse_seconds: Some(0.0),
                        }),
                    });
                    caller.post(encoding.body(&accept));
                }
                if !unused.is_empty() {
                    let mut decline = call(&framework, call::Type::Decline);
                    decline.decline = Some(call::Decline {
                        offer_ids: unused,
                        filters: Some(Filters {
                            refuse_seconds: Some(UNUSED_REFUSE_SECONDS),
                        }),
                    });
                    caller.post(encoding.body(&decline));
                }
                if batches.all_launched() && !suppressed {
                    suppressed = true;
                    let mut suppress = call(&framework, call::Type::Suppress);
                    suppress.suppress = Some(call::Suppress::default());
                    caller.post(encoding.body(&suppress));
                }
            }
            event::Type::Update => {
                let Some(status) = event.update.and_then(|u| u.status) else {
                    continue;
                };
                if !status.uuid.is_empty() {
                    let mut ack = call(&framework, call::Type::Acknowledge);
                    ack.acknowledge = Some(call::Acknowledge {
                        agent_id: status.agent_id.clone(),
                        task_id: status.task_id.clone(),
                        uuid: status.uuid.clone(),
                    });
                    caller.post(encoding.body(&ack));
                }
                match status.state() {
                    TaskState::TaskRunning => {
                        counters.running.fetch_add(1, Ordering::Relaxed);
                    }
                    TaskState::TaskFinished => {
                        counters.finished.fetch_add(1, Ordering::Relaxed);
                    }
                    s if s.is_terminal() => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                let ended = counters.finished.load(Ordering::Relaxed)
                    + counters.failed.load(Ordering::Relaxed);
                if ended >= target {
                    // The calls still in flight first: a teardown would overtake them.
                    let refused = caller.finish().await?;
                    if refused > 0 {
                        bail!("the master refused {refused} calls");
                    }
                    let teardown = libactor::http_client::request(
                        address,
                        "POST",
                        "/api/v1/scheduler",
                        &[
                            ("content-type", encoding.content_type().to_owned()),
                            ("mesos-stream-id", stream_id.clone()),
                        ],
                        encoding
                            .body(&call(&framework, call::Type::Teardown))
                            .into(),
                    )
                    .await?;
                    if teardown.status != 202 {
                        bail!("TEARDOWN answered {}", teardown.status);
                    }
                    return Ok(());
                }
            }
            _ => {}
        }
    }
}
