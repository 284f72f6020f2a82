//! A custom executor for tests that speaks Mesos's v1 executor HTTP API (as pymesos's does), in
//! the encoding its one argument names (`json` or `protobuf`). It tells its framework every
//! event it sees, as a framework message `<EVENT> <detail>`: each task it is given says
//! TASK_RUNNING (each task of a LAUNCH_GROUP too), a KILL ends it TASK_KILLED, framework messages are echoed, and SHUTDOWN ends
//! the executor.

use std::time::Duration;

use anyhow::{bail, Context as _};
use keel_testkit::v1_client::{self, EventStream};
use protos::http_api::Encoding;
use protos::v1::executor::{call, event, Call, Event};
use protos::v1::{ExecutorId, FrameworkId, TaskId, TaskState, TaskStatus};

/// The agent's executor API and who this executor is, from Mesos's environment.
struct Executor {
    agent: String,
    framework: FrameworkId,
    executor: ExecutorId,
    encoding: Encoding,
}

impl Executor {
    fn from_env(encoding: Encoding) -> anyhow::Result<Executor> {
        let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
        Ok(Executor {
            agent: var("MESOS_AGENT_ENDPOINT")?,
            framework: FrameworkId {
                value: var("MESOS_FRAMEWORK_ID")?,
            },
            executor: ExecutorId {
                value: var("MESOS_EXECUTOR_ID")?,
            },
            encoding,
        })
    }

    fn call(&self, kind: call::Type) -> Call {
        Call {
            framework_id: Some(self.framework.clone()),
            executor_id: Some(self.executor.clone()),
            r#type: kind as i32,
            ..Default::default()
        }
    }

    async fn post(&self, call: &Call) -> anyhow::Result<()> {
        let reply = v1_client::post(
            &self.agent,
            None,
            "/api/v1/executor",
            self.encoding.content_type(),
            &[],
            v1_client::body(self.encoding, call),
        )
        .await;
        if reply.status != 202 {
            bail!(
                "{:?} answered {}: {}",
                call.r#type,
                reply.status,
                reply.text()
            );
        }
        Ok(())
    }

    /// Tells the framework `text`.
    async fn say(&self, text: String) -> anyhow::Result<()> {
        let mut message = self.call(call::Type::Message);
        message.message = Some(call::Message {
            data: text.into_bytes().into(),
        });
        self.post(&message).await
    }

    async fn update(&self, task: Option<TaskId>, state: TaskState) -> anyhow::Result<()> {
        let mut update = self.call(call::Type::Update);
        update.update = Some(call::Update {
            status: Some(TaskStatus {
                task_id: task,
                state: state as i32,
                uuid: uuid_bytes().into(),
                ..Default::default()
            }),
        });
        self.post(&update).await
    }
}

/// A fresh update uuid (the executor names its updates, as Mesos's executors do).
fn uuid_bytes() -> Vec<u8> {
    let mut bytes = [0u8; 16];
    if let Ok(mut file) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = file.read_exact(&mut bytes);
    }
    bytes.to_vec()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let encoding = match std::env::args().nth(1).as_deref() {
        Some("json") => Encoding::Json,
        Some("protobuf") => Encoding::Protobuf,
        other => bail!("usage: http-executor json|protobuf (got {other:?})"),
    };
    let executor = Executor::from_env(encoding)?;
    let subscribe = Call {
        subscribe: Some(call::Subscribe::default()),
        ..executor.call(call::Type::Subscribe)
    };
    let mut events: EventStream<Event> = EventStream::open(
        &executor.agent,
        None,
        "/api/v1/executor",
        encoding,
        &[],
        v1_client::body(encoding, &subscribe),
    )
    .await;
    loop {
        // The agent sends a HEARTBEAT every 15 s; a silent stream for much longer is gone.
        let next = tokio::time::timeout(Duration::from_secs(120), events.next()).await;
        let Ok(Some((event, _))) = next else {
            bail!("the agent's stream ended");
        };
        let kind = event::Type::try_from(event.r#type).unwrap_or(event::Type::Unknown);
        match kind {
            event::Type::Subscribed => executor.say("SUBSCRIBED".into()).await?,
            event::Type::Launch => {
                let task = event.launch.and_then(|l| l.task).and_then(|t| t.task_id);
                executor
                    .update(task.clone(), TaskState::TaskRunning)
                    .await?;
                let id = task.map(|t| t.value).unwrap_or_default();
                executor.say(format!("LAUNCH {id}")).await?;
            }
            event::Type::LaunchGroup => {
                let tasks = event.launch_group.and_then(|l| l.task_group);
                let mut ids = Vec::new();
                for task in tasks.into_iter().flat_map(|g| g.tasks) {
                    executor
                        .update(task.task_id.clone(), TaskState::TaskRunning)
                        .await?;
                    ids.push(task.task_id.map(|t| t.value).unwrap_or_default());
                }
                executor
                    .say(format!("LAUNCH_GROUP {}", ids.join(",")))
                    .await?;
            }
            event::Type::Acknowledged => {
                let task = event.acknowledged.and_then(|a| a.task_id);
                let id = task.map(|t| t.value).unwrap_or_default();
                executor.say(format!("ACKNOWLEDGED {id}")).await?;
            }
            event::Type::Message => {
                let data = event.message.map(|m| m.data).unwrap_or_default();
                let text = String::from_utf8_lossy(&data).into_owned();
                executor.say(format!("MESSAGE {text}")).await?;
            }
            event::Type::Kill => {
                let task = event.kill.and_then(|k| k.task_id);
                executor.update(task.clone(), TaskState::TaskKilled).await?;
                let id = task.map(|t| t.value).unwrap_or_default();
                executor.say(format!("KILL {id}")).await?;
            }
            event::Type::Heartbeat => executor.say("HEARTBEAT".into()).await?,
            event::Type::Shutdown => {
                eprintln!("told to shut down");
                return Ok(());
            }
            other => executor.say(other.as_str_name().to_owned()).await?,
        }
    }
}
