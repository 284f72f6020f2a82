//! The agent's answers to Mesos's v1 operator API (`POST /api/v1` on the agent, read by the
//! `api` gateway and asked here): `GET_HEALTH`, `GET_FLAGS`, `GET_VERSION`, `GET_METRICS`,
//! `GET_LOGGING_LEVEL`, `GET_STATE`, `GET_FRAMEWORKS`, `GET_EXECUTORS`, `GET_TASKS` (live tasks as launched,
//! terminal ones whose last update is not acknowledged as terminated), `GET_CONTAINERS` (with
//! each container's resource statistics) and `GET_AGENT`. `LIST_FILES` and `READ_FILE` are
//! answered by the gateway itself from the sandboxes (see `files::operator_call`), and
//! `SET_LOGGING_LEVEL` by the gateway too (it is the process's, see `libactor::log_level`).
//! Other calls get `501` saying so.
//!
//! Who may call: whoever the node lets in (on a secure agent every request proves a principal);
//! these are reads.

use libactor::Context;
use protos::v1::agent::call::Type as CallType;
use protos::v1::agent::response::{
    get_containers::Container, get_executors::Executor, get_frameworks::Framework, GetAgent,
    GetContainers, GetExecutors, GetFlags, GetFrameworks, GetHealth, GetLoggingLevel, GetMetrics,
    GetState, GetTasks, GetVersion, Type as ResponseType,
};
use protos::v1::agent::Response;
use protos::v1::{AgentId, ContainerId, ExecutorId, Flag, FrameworkId, Metric, Task, VersionInfo};

use super::Slave;

impl Slave {
    /// The agent's answer to an operator API call of type `kind`, or why it has none (an HTTP
    /// status and the reason).
    pub fn operator_call(
        &mut self,
        ctx: &mut Context<Self>,
        kind: CallType,
    ) -> Result<Response, (u16, String)> {
        let mut r = Response::default();
        let answer = |r: &mut Response, t: ResponseType| r.r#type = t as i32;
        match kind {
            CallType::Unknown => return Err((400, "unknown call type".into())),
            CallType::GetHealth => {
                answer(&mut r, ResponseType::GetHealth);
                r.get_health = Some(GetHealth {
                    healthy: Some(true),
                });
            }
            CallType::GetFlags => {
                answer(&mut r, ResponseType::GetFlags);
                r.get_flags = Some(GetFlags {
                    flags: Flag::list(&self.flags),
                });
            }
            CallType::GetVersion => {
                answer(&mut r, ResponseType::GetVersion);
                r.get_version = Some(GetVersion {
                    version_info: Some(VersionInfo {
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..Default::default()
                    }),
                });
            }
            CallType::GetLoggingLevel => {
                answer(&mut r, ResponseType::GetLoggingLevel);
                r.get_logging_level = Some(GetLoggingLevel {
                    level: Some(libactor::log_level::level()),
                });
            }
            CallType::GetMetrics => {
                answer(&mut r, ResponseType::GetMetrics);
                let metrics = ctx.node().metrics().snapshot();
                r.get_metrics = Some(GetMetrics {
                    metrics: metrics
                        .into_iter()
                        .map(|(name, value)| Metric {
                            name,
                            value: Some(value),
                        })
                        .collect(),
                });
            }
            CallType::GetState => {
                answer(&mut r, ResponseType::GetState);
                r.get_state = Some(GetState {
                    get_tasks: Some(self.tasks_response()),
                    get_executors: Some(self.executors_response()),
                    get_frameworks: Some(self.frameworks_response()),
                });
            }
            CallType::GetFrameworks => {
                answer(&mut r, ResponseType::GetFrameworks);
                r.get_frameworks = Some(self.frameworks_response());
            }
            CallType::GetExecutors => {
                answer(&mut r, ResponseType::GetExecutors);
                r.get_executors = Some(self.executors_response());
            }
            CallType::GetTasks => {
                answer(&mut r, ResponseType::GetTasks);
                r.get_tasks = Some(self.tasks_response());
            }
            CallType::GetContainers => {
                answer(&mut r, ResponseType::GetContainers);
                r.get_containers = Some(self.containers_response());
            }
            CallType::GetAgent => {
                answer(&mut r, ResponseType::GetAgent);
                r.get_agent = Some(GetAgent {
                    agent_info: Some(self.agent_info()),
                });
            }
            other => {
                return Err((
                    501,
                    format!("this agent does not carry out {}", other.as_str_name()),
                ))
            }
        }
        Ok(r)
    }

    fn frameworks_response(&self) -> GetFrameworks {
        let mut ids: Vec<&String> = self.frameworks.keys().collect();
        ids.sort();
        GetFrameworks {
            frameworks: ids
                .into_iter()
                .map(|id| {
                    let mut info = self.frameworks[id].info.clone();
                    info.id = Some(FrameworkId { value: id.clone() });
                    Framework {
                        framework_info: Some(info),
                    }
                })
                .collect(),
            completed_frameworks: Vec::new(),
        }
    }

    fn executors_response(&self) -> GetExecutors {
        let executors = self
            .frameworks
            .iter()
            .flat_map(|(framework, f)| f.executors.values().map(move |e| (framework, e)))
            .map(|(framework, e)| {
                let mut info = e.info.clone().unwrap_or_default();
                info.executor_id = Some(ExecutorId {
                    value: e.id.clone(),
                });
                info.framework_id = Some(FrameworkId {
                    value: framework.clone(),
                });
                Executor {
                    executor_info: Some(info),
                }
            })
            .collect();
        GetExecutors {
            executors,
            completed_executors: Vec::new(),
        }
    }

    fn tasks_response(&self) -> GetTasks {
        let agent_id = self.id.clone().map(|value| AgentId { value });
        let mut tasks = GetTasks::default();
        for (framework, f) in &self.frameworks {
            for executor in f.executors.values() {
                for task in executor.tasks.values() {
                    let proto = Task {
                        name: task.info.name.clone(),
                        task_id: task.info.task_id.clone(),
                        framework_id: Some(FrameworkId {
                            value: framework.clone(),
                        }),
                        executor_id: Some(ExecutorId {
                            value: executor.id.clone(),
                        }),
                        agent_id: agent_id.clone(),
                        state: Some(task.state as i32),
                        resources: task.resources.to_proto(),
                        ..Default::default()
                    };
                    if task.state.is_terminal() {
                        tasks.terminated_tasks.push(proto);
                    } else {
                        tasks.launched_tasks.push(proto);
                    }
                }
            }
        }
        tasks
    }

    fn containers_response(&self) -> GetContainers {
        let containers = self
            .frameworks
            .iter()
            .flat_map(|(framework, f)| f.executors.values().map(move |e| (framework, e)))
            .filter_map(|(framework, e)| {
                let handle = e.container.as_ref()?;
                Some(Container {
                    framework_id: Some(FrameworkId {
                        value: framework.clone(),
                    }),
                    executor_id: Some(ExecutorId {
                        value: e.id.clone(),
                    }),
                    executor_name: e.info.as_ref().map(|i| i.name.clone()).unwrap_or_default(),
                    container_id: Some(ContainerId {
                        value: handle.id().to_owned(),
                    }),
                    resource_statistics: Some(handle.statistics()),
                })
            })
            .collect();
        GetContainers { containers }
    }
}
