//! keelctl's commands over Mesos's v1 operator API (`POST /api/v1`): maintenance (schedule,
//! start, stop, status), draining and reactivating an agent, and following the master's event
//! stream (`SUBSCRIBE`). What any Mesos operator tool can do, keelctl does the same way.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use protos::http_api::{next_record, Encoding};
use protos::v1::maintenance::{Schedule, Window};
use protos::v1::master::{call, event, Call, Event, Response};
use protos::v1::{AgentId, DurationInfo, MachineId, TimeInfo, Unavailability};

use crate::duration_flag::Seconds;
use crate::operator_client::OperatorAuth;
use crate::tables;

/// `keelctl maintenance …`.
#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Add machines (by hostname) to the maintenance schedule, in one window.
    Schedule {
        /// The machines' hostnames.
        #[arg(required = true)]
        hosts: Vec<String>,
        /// When the window starts, from now.
        #[arg(long, default_value = "0s")]
        start_in: Seconds,
        /// How long the machines are away (open-ended if unset).
        #[arg(long)]
        duration: Option<Seconds>,
    },
    /// Take scheduled machines down: out of offers, their tasks killed.
    Start {
        /// The machines' hostnames.
        #[arg(required = true)]
        hosts: Vec<String>,
    },
    /// Bring machines back up and take them off the schedule.
    Stop {
        /// The machines' hostnames.
        #[arg(required = true)]
        hosts: Vec<String>,
    },
    /// Scheduled machines still up (draining), and machines down.
    Status,
}

/// `keelctl quota` subcommands (without one: every role's limits).
#[derive(Debug, clap::Subcommand)]
pub enum QuotaCommand {
    /// Set a role's limits: the most it may hold, offered or used, e.g. `cpus:8;mem:16384`.
    Set {
        /// The role.
        role: String,
        /// Scalar resources, as `--resources` takes them.
        limits: String,
        /// Set them even below what the role's tasks hold now (they keep running).
        #[arg(long)]
        force: bool,
    },
    /// Lift a role's limits.
    Remove {
        /// The role.
        role: String,
    },
}

/// `keelctl quota [set ROLE LIMITS | remove ROLE]` (GET_QUOTA / UPDATE_QUOTA).
pub async fn quota(
    operator: &OperatorAuth,
    master: &str,
    as_json: bool,
    command: Option<QuotaCommand>,
) -> anyhow::Result<ExitCode> {
    use protos::v1::quota::QuotaConfig;
    use protos::v1::value::Scalar;
    let (role, limits, force) = match command {
        None => {
            let response = ask(operator, master, &call_of(call::Type::GetQuota)).await?;
            print_response(as_json, &response, || {
                let configs = response
                    .get_quota
                    .as_ref()
                    .and_then(|q| q.status.as_ref())
                    .map(|s| s.configs.clone())
                    .unwrap_or_default();
                let rows: Vec<Vec<String>> = configs
                    .iter()
                    .map(|c| {
                        let mut limits: Vec<String> = c
                            .limits
                            .iter()
                            .map(|(name, s)| format!("{name}:{}", s.value))
                            .collect();
                        limits.sort();
                        vec![c.role.clone(), limits.join(";")]
                    })
                    .collect();
                tables::render(&["ROLE", "LIMITS"], &rows)
            });
            return Ok(ExitCode::SUCCESS);
        }
        Some(QuotaCommand::Set {
            role,
            limits,
            force,
        }) => {
            let parsed: resources::Resources = limits
                .parse()
                .with_context(|| format!("quota limits {limits:?}"))?;
            (role, parsed.scalar_totals(), force)
        }
        Some(QuotaCommand::Remove { role }) => (role, Default::default(), false),
    };
    let config = QuotaConfig {
        role: role.clone(),
        limits: limits
            .into_iter()
            .map(|(name, value)| (name, Scalar { value }))
            .collect(),
        ..Default::default()
    };
    let lifted = config.limits.is_empty();
    let update = Call {
        r#type: call::Type::UpdateQuota as i32,
        update_quota: Some(call::UpdateQuota {
            force: Some(force),
            quota_configs: vec![config],
        }),
        ..Default::default()
    };
    change(operator, master, &update).await?;
    if lifted {
        println!("role {role}: no quota");
    } else {
        println!("role {role}: quota set");
    }
    Ok(ExitCode::SUCCESS)
}

fn machines(hosts: &[String]) -> Vec<MachineId> {
    hosts
        .iter()
        .map(|h| MachineId {
            hostname: h.clone(),
            ip: String::new(),
        })
        .collect()
}

fn call_of(kind: call::Type) -> Call {
    Call {
        r#type: kind as i32,
        ..Default::default()
    }
}

async fn ask(operator: &OperatorAuth, master: &str, call: &Call) -> anyhow::Result<Response> {
    let name = call::Type::try_from(call.r#type).map_or("?", |t| t.as_str_name());
    operator
        .call(master, call)
        .await
        .with_context(|| format!("{name} at {master}"))?
        .with_context(|| format!("{name} at {master}: no response"))
}

async fn change(operator: &OperatorAuth, master: &str, call: &Call) -> anyhow::Result<()> {
    let name = call::Type::try_from(call.r#type).map_or("?", |t| t.as_str_name());
    operator
        .call(master, call)
        .await
        .with_context(|| format!("{name} at {master}"))?;
    Ok(())
}

fn print_response(as_json: bool, response: &Response, table: impl FnOnce() -> String) {
    if as_json {
        let value = protos::mesos_json::to_json(response).unwrap_or_default();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", table());
    }
}

/// Runs `keelctl maintenance …` against the master at `master` (`host:port`).
pub async fn maintenance(
    operator: &OperatorAuth,
    master: &str,
    as_json: bool,
    command: MaintenanceCommand,
    now: f64,
) -> anyhow::Result<ExitCode> {
    match command {
        MaintenanceCommand::Schedule {
            hosts,
            start_in,
            duration,
        } => {
            let current = ask(
                operator,
                master,
                &call_of(call::Type::GetMaintenanceSchedule),
            )
            .await?;
            let mut schedule = current
                .get_maintenance_schedule
                .and_then(|s| s.schedule)
                .unwrap_or_default();
            let start = now + start_in.0.as_secs_f64();
            schedule.windows.push(Window {
                machine_ids: machines(&hosts),
                unavailability: Some(Unavailability {
                    start: Some(TimeInfo {
                        nanoseconds: (start * 1e9) as i64,
                    }),
                    duration: duration.map(|d| DurationInfo {
                        nanoseconds: d.0.as_nanos().min(i64::MAX as u128) as i64,
                    }),
                }),
            });
            let update = Call {
                r#type: call::Type::UpdateMaintenanceSchedule as i32,
                update_maintenance_schedule: Some(call::UpdateMaintenanceSchedule {
                    schedule: Some(Schedule {
                        windows: schedule.windows,
                    }),
                }),
                ..Default::default()
            };
            change(operator, master, &update).await?;
            println!("scheduled for maintenance: {}", hosts.join(", "));
        }
        MaintenanceCommand::Start { hosts } => {
            let start = Call {
                r#type: call::Type::StartMaintenance as i32,
                start_maintenance: Some(call::StartMaintenance {
                    machines: machines(&hosts),
                }),
                ..Default::default()
            };
            change(operator, master, &start).await?;
            println!("down for maintenance: {}", hosts.join(", "));
        }
        MaintenanceCommand::Stop { hosts } => {
            let stop = Call {
                r#type: call::Type::StopMaintenance as i32,
                stop_maintenance: Some(call::StopMaintenance {
                    machines: machines(&hosts),
                }),
                ..Default::default()
            };
            change(operator, master, &stop).await?;
            println!("back up: {}", hosts.join(", "));
        }
        MaintenanceCommand::Status => {
            let status = ask(operator, master, &call_of(call::Type::GetMaintenanceStatus)).await?;
            print_response(as_json, &status, || {
                let cluster = status
                    .get_maintenance_status
                    .clone()
                    .and_then(|s| s.status)
                    .unwrap_or_default();
                let mut rows: Vec<Vec<String>> = cluster
                    .draining_machines
                    .iter()
                    .filter_map(|m| m.id.as_ref())
                    .map(|m| vec![m.hostname.clone(), "draining (scheduled)".into()])
                    .collect();
                rows.extend(
                    cluster
                        .down_machines
                        .iter()
                        .map(|m| vec![m.hostname.clone(), "down".into()]),
                );
                tables::render(&["MACHINE", "STATUS"], &rows)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `keelctl` asks of one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAction {
    /// `keelctl drain AGENT` (DRAIN_AGENT).
    Drain,
    /// `keelctl reactivate AGENT` (REACTIVATE_AGENT).
    Reactivate,
    /// `keelctl mark-gone AGENT` (MARK_AGENT_GONE).
    MarkGone,
}

/// `keelctl drain|reactivate|mark-gone AGENT`.
pub async fn agent_call(
    operator: &OperatorAuth,
    master: &str,
    agent: &str,
    action: AgentAction,
) -> anyhow::Result<ExitCode> {
    let agent_id = Some(AgentId {
        value: agent.to_owned(),
    });
    let (call, done) = match action {
        AgentAction::Reactivate => (
            Call {
                r#type: call::Type::ReactivateAgent as i32,
                reactivate_agent: Some(call::ReactivateAgent { agent_id }),
                ..Default::default()
            },
            "offered again",
        ),
        AgentAction::Drain => (
            Call {
                r#type: call::Type::DrainAgent as i32,
                drain_agent: Some(call::DrainAgent {
                    agent_id,
                    mark_gone: None,
                }),
                ..Default::default()
            },
            "drained: out of offers, its tasks being killed",
        ),
        AgentAction::MarkGone => (
            Call {
                r#type: call::Type::MarkAgentGone as i32,
                mark_agent_gone: Some(call::MarkAgentGone { agent_id }),
                ..Default::default()
            },
            "marked gone: its tasks are GONE_BY_OPERATOR and its id is refused from now on",
        ),
    };
    change(operator, master, &call).await?;
    println!("agent {agent} {done}");
    Ok(ExitCode::SUCCESS)
}

/// `keelctl events`: the master's event stream, one line (or one JSON object) per event,
/// until it ends or `count` events (heartbeats aside) were shown.
pub async fn events(
    operator: &OperatorAuth,
    master: &str,
    as_json: bool,
    count: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let mut reply = operator
        .subscribe(master, &call_of(call::Type::Subscribe))
        .await
        .with_context(|| format!("SUBSCRIBE at {master}"))?;
    let mut buffer = Vec::new();
    let mut shown = 0;
    loop {
        while let Some(record) = next_record(&mut buffer).map_err(anyhow::Error::msg)? {
            let event: Event = Encoding::Json.decode(&record).map_err(anyhow::Error::msg)?;
            if event.r#type == event::Type::Heartbeat as i32 {
                continue;
            }
            if as_json {
                println!("{}", String::from_utf8_lossy(&record));
            } else {
                println!("{}", describe(&event));
            }
            shown += 1;
            if count.is_some_and(|c| shown >= c) {
                return Ok(ExitCode::SUCCESS);
            }
        }
        match reply.next_chunk().await {
            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
            Some(Err(e)) => bail!("the event stream broke: {e}"),
            None => bail!("the master ended the event stream"),
        }
    }
}

/// One line about `event`.
pub fn describe(event: &Event) -> String {
    let text = |v: Option<&str>| v.unwrap_or("?").to_owned();
    let state_name = |s: Option<i32>| {
        s.and_then(|s| protos::v1::TaskState::try_from(s).ok())
            .map_or("?", |s| s.as_str_name())
    };
    match event::Type::try_from(event.r#type).unwrap_or(event::Type::Unknown) {
        event::Type::Subscribed => {
            let state = event
                .subscribed
                .as_ref()
                .and_then(|s| s.get_state.clone())
                .unwrap_or_default();
            format!(
                "SUBSCRIBED         {} agents, {} frameworks, {} live tasks",
                state.get_agents.map_or(0, |a| a.agents.len()),
                state.get_frameworks.map_or(0, |f| f.frameworks.len()),
                state.get_tasks.map_or(0, |t| t.tasks.len()),
            )
        }
        event::Type::TaskAdded => {
            let task = event.task_added.as_ref().and_then(|t| t.task.as_ref());
            format!(
                "TASK_ADDED         {}/{} on {} {}",
                text(
                    task.and_then(|t| t.framework_id.as_ref())
                        .map(|f| f.value.as_str())
                ),
                text(
                    task.and_then(|t| t.task_id.as_ref())
                        .map(|f| f.value.as_str())
                ),
                text(
                    task.and_then(|t| t.agent_id.as_ref())
                        .map(|f| f.value.as_str())
                ),
                state_name(task.and_then(|t| t.state)),
            )
        }
        event::Type::TaskUpdated => {
            let update = event.task_updated.as_ref();
            let status = update.and_then(|u| u.status.as_ref());
            format!(
                "TASK_UPDATED       {}/{} {} {}",
                text(
                    update
                        .and_then(|u| u.framework_id.as_ref())
                        .map(|f| f.value.as_str())
                ),
                text(
                    status
                        .and_then(|s| s.task_id.as_ref())
                        .map(|t| t.value.as_str())
                ),
                state_name(update.and_then(|u| u.state)),
                status.map_or("", |s| s.message.as_str()),
            )
        }
        event::Type::AgentAdded => {
            let info = event
                .agent_added
                .as_ref()
                .and_then(|a| a.agent.as_ref())
                .and_then(|a| a.agent_info.as_ref());
            format!(
                "AGENT_ADDED        {} {}",
                text(info.and_then(|i| i.id.as_ref()).map(|i| i.value.as_str())),
                text(info.map(|i| i.hostname.as_str())),
            )
        }
        event::Type::AgentRemoved => format!(
            "AGENT_REMOVED      {}",
            text(
                event
                    .agent_removed
                    .as_ref()
                    .and_then(|a| a.agent_id.as_ref())
                    .map(|a| a.value.as_str())
            )
        ),
        kind @ (event::Type::FrameworkAdded | event::Type::FrameworkUpdated) => {
            let framework = event
                .framework_added
                .as_ref()
                .and_then(|f| f.framework.as_ref())
                .or_else(|| {
                    event
                        .framework_updated
                        .as_ref()
                        .and_then(|f| f.framework.as_ref())
                });
            let info = framework.and_then(|f| f.framework_info.as_ref());
            format!(
                "{:<18} {} {} {}",
                kind.as_str_name(),
                text(info.and_then(|i| i.id.as_ref()).map(|i| i.value.as_str())),
                text(info.map(|i| i.name.as_str())),
                if framework.and_then(|f| f.connected) == Some(true) {
                    "connected"
                } else {
                    "disconnected"
                },
            )
        }
        event::Type::FrameworkRemoved => format!(
            "FRAMEWORK_REMOVED  {}",
            text(
                event
                    .framework_removed
                    .as_ref()
                    .and_then(|f| f.framework_info.as_ref())
                    .and_then(|i| i.id.as_ref())
                    .map(|i| i.value.as_str())
            )
        ),
        other => other.as_str_name().to_owned(),
    }
}
