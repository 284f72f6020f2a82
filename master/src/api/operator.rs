//! `POST /api/v1`: Mesos's v1 operator HTTP API on the master (`docs/operator-http-api.md`),
//! JSON or protobuf as `Content-Type` and `Accept` say.
//!
//! Reads (`GET_HEALTH`, `GET_FLAGS`, `GET_VERSION`, `GET_METRICS`, `GET_LOGGING_LEVEL`,
//! `GET_STATE`, `GET_AGENTS`, `GET_FRAMEWORKS`, `GET_EXECUTORS`, `GET_TASKS`, `GET_ROLES`,
//! `GET_WEIGHTS`, `GET_MASTER`) are answered from the API process's [`ClusterView`], never by
//! the master; `GET_MAINTENANCE_STATUS`, `GET_MAINTENANCE_SCHEDULE` and `GET_QUOTA` ask the
//! master. `SUBSCRIBE` answers `200` with a RecordIO stream: `SUBSCRIBED` (the whole state),
//! then `TASK_ADDED`, `TASK_UPDATED`, `AGENT_ADDED`, `AGENT_REMOVED`, `FRAMEWORK_ADDED`,
//! `FRAMEWORK_UPDATED`, `FRAMEWORK_REMOVED` as the master's books change, and `HEARTBEAT`
//! every [`HEARTBEAT_INTERVAL`]. A subscriber that falls [`STREAM_CAPACITY`] records (or [`STREAM_MAX_BYTES`]) behind is
//! cut off (`master/api/operator_subscribers_cut_off`), never buffered without bound.
//!
//! Changes (`TEARDOWN`, `UPDATE_WEIGHTS`, `UPDATE_MAINTENANCE_SCHEDULE`, `START_MAINTENANCE`,
//! `STOP_MAINTENANCE`, `DRAIN_AGENT`, `DEACTIVATE_AGENT`, `REACTIVATE_AGENT`,
//! `MARK_AGENT_GONE`, `UPDATE_QUOTA`) are carried out by the master (see `master::operator`,
//! `master::gone`, `master::quota`); Keel drains machines, so the drain calls act on every
//! agent of the named agent's host. `MARK_AGENT_GONE` and `UPDATE_QUOTA` answer `200` once
//! the change is in the registry. `SET_LOGGING_LEVEL` sets the process's level for its
//! duration (`libactor::log_level`) and answers `202`, as Mesos. Calls for what Keel does not
//! have (volumes, reservations, operations, master files) get `501` saying so.
//!
//! Who may call: reads and `SUBSCRIBE`, whoever the node lets in (on a secure master every
//! request proves a principal); what each reader sees of frameworks and tasks is decided by
//! `--acls` `view_frameworks` / `view_tasks` on the framework's user. Changes: a principal
//! proven in the `operator` role (client certificate, or HTTP Basic against `--credentials`),
//! and for `TEARDOWN` the `teardown_frameworks` rules.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use authentication::acls::{Acls, Action};
use bytes::Bytes;
use libactor::metrics::Counter;
use libactor::{Context, HttpReply, HttpRequest, HttpResponse, HttpStream};
use parking_lot::RwLock;
use protos::http_api::{read_call_to_answer, Encoding};
use protos::v1::master::call::Type as CallType;
use protos::v1::master::event::{Subscribed, Type as EventType};
use protos::v1::master::response::{
    self as resp, GetFlags, GetHealth, GetLoggingLevel, GetMaster, GetMetrics, GetRoles,
    GetVersion, GetWeights, Type as ResponseType,
};
use protos::v1::master::{Call, Event, Response};
use protos::v1::{Flag, FrameworkInfo, MasterInfo, Metric, VersionInfo, WeightInfo};

use tokio::sync::oneshot;

use super::mesos_gauges::{MesosGauges, REFRESH_INTERVAL as GAUGES_REFRESH};
use super::state_json::{MasterSide, StateSource};
use super::state_thread::{Build, SharedView};
use super::task_wire;
use super::view::{ClusterView, ViewLimits};
use super::{ApiGateway, STREAM_CAPACITY, STREAM_MAX_BYTES};
use crate::master::{validate_weights, MarkingGone, Master, OperatorRefusal};

/// How often a subscriber gets a HEARTBEAT (Mesos's default).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// How often the master's queued changes are applied when nothing reads or subscribes (which
/// bounds the queue).
pub const FEED_DRAIN_INTERVAL: Duration = Duration::from_millis(100);

/// An operator's event stream.
struct EventSubscriber {
    stream: HttpStream,
    encoding: Encoding,
    /// Who subscribed: what the ACLs let it see is all it gets.
    principal: Option<String>,
}

struct OperatorMetrics {
    calls: Counter,
    subscribers_cut_off: Counter,
}

/// The operator API's state in the API process: the view, the subscribers, and what the
/// master's reads report about the master itself.
pub struct OperatorState {
    pub(super) view: SharedView,
    master_id: String,
    flags: Arc<Vec<(String, String)>>,
    weights: BTreeMap<String, f64>,
    /// When this master started leading (seconds since the epoch).
    start_time: f64,
    subscribers: Vec<EventSubscriber>,
    metrics: Option<OperatorMetrics>,
    gauges: Option<MesosGauges>,
}

impl OperatorState {
    pub(super) fn new(master_id: &str) -> OperatorState {
        OperatorState {
            view: Arc::new(RwLock::new(ClusterView::new(ViewLimits::default()))),
            master_id: master_id.to_owned(),
            flags: Arc::default(),
            weights: BTreeMap::new(),
            start_time: 0.0,
            subscribers: Vec::new(),
            metrics: None,
            gauges: None,
        }
    }

    pub(super) fn initialize(&mut self, ctx: &mut Context<ApiGateway>) {
        self.start_time = ctx.node().clock().unix_seconds();
        let m = ctx.metrics();
        self.metrics = Some(OperatorMetrics {
            calls: m.counter("master/api/operator_calls"),
            subscribers_cut_off: m.counter("master/api/operator_subscribers_cut_off"),
        });
        self.gauges = Some(MesosGauges::register(m));
        // This process runs on the leading master only (a standby serves redirects instead).
        m.gauge_fn("master/elected", || 1.0);
        let (clock, start) = (ctx.node().clock().clone(), self.start_time);
        m.gauge_fn("master/uptime_secs", move || clock.unix_seconds() - start);
        ctx.delay(HEARTBEAT_INTERVAL, heartbeat);
        refresh_gauges(&self.gauges, &self.view.read(), self.subscribers.len());
        ctx.delay(GAUGES_REFRESH, |g: &mut ApiGateway, ctx| {
            g.operator.refresh(ctx)
        });
    }

    fn refresh(&mut self, ctx: &mut Context<ApiGateway>) {
        // While a read is being built, the gauges wait for the next refresh.
        if let Some(view) = self.view.try_read() {
            refresh_gauges(&self.gauges, &view, self.subscribers.len());
        }
        ctx.delay(GAUGES_REFRESH, |g: &mut ApiGateway, ctx| {
            g.operator.refresh(ctx)
        });
    }

    pub(super) fn set_flags(&mut self, flags: Vec<(String, String)>) {
        self.flags = Arc::new(flags);
    }

    /// The master's flags, shared with the state thread.
    pub(super) fn flags_shared(&self) -> Arc<Vec<(String, String)>> {
        self.flags.clone()
    }

    /// Role weights operators set.
    pub(super) fn weights(&self) -> &BTreeMap<String, f64> {
        &self.weights
    }

    /// When this master started leading (seconds since the epoch).
    pub(super) fn start_time(&self) -> f64 {
        self.start_time
    }

    /// Writes `event` to every subscriber allowed to see it (by `view`); drops those that
    /// are gone.
    fn publish(&mut self, acls: &Acls, event: &Event, view: &ClusterView) {
        if self.subscribers.is_empty() {
            return;
        }
        // Each encoding is made once, for every subscriber that reads it.
        let mut records: [Option<Bytes>; 2] = [None, None];
        let mut cut_off = 0;
        self.subscribers.retain_mut(|s| {
            if !may_see(view, acls, s.principal.as_deref(), event) {
                return true;
            }
            let slot = match s.encoding {
                Encoding::Json => 0,
                Encoding::Protobuf => 1,
            };
            let record = records[slot]
                .get_or_insert_with(|| s.encoding.record(event))
                .clone();
            let alive = s.stream.send(record).is_ok();
            if !alive && !s.stream.is_closed() {
                cut_off += 1;
            }
            alive
        });
        if let Some(m) = &self.metrics {
            m.subscribers_cut_off.add(cut_off);
        }
    }
}

/// Applies the master's queued changes, and again after [`FEED_DRAIN_INTERVAL`].
pub(super) fn drain_periodically(gateway: &mut ApiGateway, ctx: &mut Context<ApiGateway>) {
    gateway.drain_and_release(ctx);
    ctx.delay(FEED_DRAIN_INTERVAL, drain_periodically);
}

fn refresh_gauges(gauges: &Option<MesosGauges>, view: &ClusterView, subscribers: usize) {
    if let Some(g) = gauges {
        g.update(&view.totals(), subscribers);
    }
}

/// Sends every subscriber a HEARTBEAT, and again after [`HEARTBEAT_INTERVAL`].
fn heartbeat(gateway: &mut ApiGateway, ctx: &mut Context<ApiGateway>) {
    let event = Event {
        r#type: EventType::Heartbeat as i32,
        ..Default::default()
    };
    let acls = gateway.auth.acls.clone();
    // A heartbeat needs no view; an empty one stands in while a read holds the shared one.
    let shared = gateway.operator.view.clone();
    match shared.try_read() {
        Some(view) => gateway.operator.publish(&acls, &event, &view),
        None => gateway
            .operator
            .publish(&acls, &event, &ClusterView::new(ViewLimits::default())),
    }
    ctx.delay(HEARTBEAT_INTERVAL, heartbeat);
}

/// Whether `viewer` may see `event` (frameworks and tasks by `--acls`; agents and heartbeats
/// by everyone).
fn may_see(view: &ClusterView, acls: &Acls, viewer: Option<&str>, event: &Event) -> bool {
    match EventType::try_from(event.r#type).unwrap_or(EventType::Unknown) {
        EventType::TaskAdded => event
            .task_added
            .as_ref()
            .and_then(|t| t.task.as_ref())
            .and_then(|t| t.framework_id.as_ref())
            .is_some_and(|f| task_visible(view, acls, viewer, &f.value)),
        EventType::TaskUpdated => event
            .task_updated
            .as_ref()
            .and_then(|t| t.framework_id.as_ref())
            .is_some_and(|f| task_visible(view, acls, viewer, &f.value)),
        EventType::FrameworkAdded | EventType::FrameworkUpdated => event
            .framework_added
            .as_ref()
            .and_then(|f| f.framework.as_ref())
            .or_else(|| {
                event
                    .framework_updated
                    .as_ref()
                    .and_then(|f| f.framework.as_ref())
            })
            .and_then(|f| f.framework_info.as_ref())
            .is_some_and(|info| acls.permits(Action::ViewFramework, viewer, &info.user)),
        EventType::FrameworkRemoved => event
            .framework_removed
            .as_ref()
            .and_then(|f| f.framework_info.as_ref())
            .is_some_and(|info| {
                let user = view
                    .framework_info(info.id.as_ref().map_or("", |i| i.value.as_str()))
                    .map_or(info.user.as_str(), |i| i.user.as_str());
                acls.permits(Action::ViewFramework, viewer, user)
            }),
        _ => true,
    }
}

/// Whether `viewer` may see the tasks of `framework` (by its user; a framework not back
/// since a failover has no known user, which only a permissive rule admits).
fn task_visible(view: &ClusterView, acls: &Acls, viewer: Option<&str>, framework: &str) -> bool {
    let user = view
        .framework_info(framework)
        .map_or("", |i| i.user.as_str());
    acls.permits(Action::ViewTask, viewer, user)
}

/// `GET_STATE` of `view` as `viewer` may see it.
fn visible_state(view: &ClusterView, acls: &Acls, viewer: Option<&str>) -> resp::GetState {
    view.get_state(
        &|info: &FrameworkInfo| acls.permits(Action::ViewFramework, viewer, &info.user),
        &|framework: &str| task_visible(view, acls, viewer, framework),
    )
}

/// How the state thread answers a view-reading operator call (`kind`) in `encoding`.
fn view_read(encoding: Encoding, kind: CallType) -> Build {
    Box::new(move |source: &StateSource<'_>| {
        let (view, acls, viewer) = (source.view, source.acls, source.principal);
        let tasks_visible = |framework: &str| task_visible(view, acls, viewer, framework);
        let frameworks_visible =
            |info: &FrameworkInfo| acls.permits(Action::ViewFramework, viewer, &info.user);
        // Protobuf tasks are written straight from the records (see `task_wire`).
        if encoding == Encoding::Protobuf && matches!(kind, CallType::GetState | CallType::GetTasks)
        {
            let seen = view.tasks_seen(&tasks_visible);
            let body = if kind == CallType::GetState {
                let rest = resp::GetState {
                    get_tasks: None,
                    get_executors: Some(view.get_executors(&tasks_visible)),
                    get_frameworks: Some(view.get_frameworks(&frameworks_visible)),
                    get_agents: Some(view.get_agents()),
                };
                task_wire::get_state_response(&seen, rest)
            } else {
                task_wire::get_tasks_response(&seen)
            };
            return HttpResponse::bytes(200, encoding.content_type(), body);
        }
        let mut response = Response::default();
        let kind = match kind {
            CallType::GetState => {
                response.get_state = Some(visible_state(view, acls, viewer));
                ResponseType::GetState
            }
            CallType::GetAgents => {
                response.get_agents = Some(view.get_agents());
                ResponseType::GetAgents
            }
            CallType::GetFrameworks => {
                response.get_frameworks = Some(view.get_frameworks(&frameworks_visible));
                ResponseType::GetFrameworks
            }
            CallType::GetExecutors => {
                response.get_executors = Some(view.get_executors(&tasks_visible));
                ResponseType::GetExecutors
            }
            CallType::GetTasks => {
                response.get_tasks = Some(view.get_tasks(&tasks_visible));
                ResponseType::GetTasks
            }
            _ => {
                let weights = source.weights;
                let roles = view.get_roles(&|role: &str| weights.get(role).copied().unwrap_or(1.0));
                response.get_roles = Some(GetRoles { roles });
                ResponseType::GetRoles
            }
        };
        respond(encoding, kind, response)
    })
}

/// A reply that comes from `answer` once it is ready.
fn answer_later(answer: oneshot::Receiver<HttpResponse>) -> HttpReply {
    HttpReply::Later(Box::pin(async move {
        answer
            .await
            .unwrap_or_else(|_| HttpResponse::text(503, "the API process has stopped\n"))
    }))
}

fn respond(encoding: Encoding, kind: ResponseType, response: Response) -> HttpResponse {
    let response = Response {
        r#type: kind as i32,
        ..response
    };
    HttpResponse::bytes(200, encoding.content_type(), encoding.body(&response))
}

impl ApiGateway {
    /// Applies the master's queued changes to the view and streams their events to
    /// subscribers: before every read, every [`FEED_DRAIN_INTERVAL`], and when the master
    /// wakes this process (while someone subscribes). False, leaving the changes queued,
    /// while the state thread builds a read from the view.
    pub(crate) fn drain_feed(&mut self, ctx: &mut Context<Self>) -> bool {
        let shared = self.operator.view.clone();
        let Some(mut view) = shared.try_write() else {
            return false;
        };
        let now = ctx.node().clock().unix_seconds();
        let acls = self.auth.acls.clone();
        for item in self.feed.take() {
            if self.operator.subscribers.is_empty() {
                view.apply(item, now);
                continue;
            }
            // Events are built only for subscribers, from the change and the updated view.
            let change = item.clone();
            view.apply(item, now);
            if let Some(event) = super::events::event_of(&change, &view) {
                self.operator.publish(&acls, &event, &view);
            }
        }
        if self.operator.subscribers.is_empty() {
            self.feed.set_eager(false);
        }
        true
    }

    pub(super) fn operator(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpReply {
        let _span = tracing::debug_span!("operator_call").entered();
        let read = read_call_to_answer::<Call>(
            "/api/v1",
            &req.method,
            req.header("content-type"),
            req.header("accept"),
            &req.body,
        );
        let (encoding, call) = match read {
            Ok(read) => read,
            Err(r) => return self.refuse(r.status, r.why).into(),
        };
        if let Some(m) = &self.operator.metrics {
            m.calls.inc();
        }
        let kind = CallType::try_from(call.r#type).unwrap_or(CallType::Unknown);
        let viewer = req.principal.clone();
        let reply = match kind {
            CallType::Unknown => self.refuse(400, "unknown call type"),
            CallType::Subscribe => {
                // Its first event is the whole state: it waits for the changes held back.
                let (reply, answer) = oneshot::channel();
                self.when_drained(
                    ctx,
                    Box::new(move |g, _| {
                        let _ = reply.send(g.subscribe_operator(encoding, viewer));
                    }),
                );
                return answer_later(answer);
            }
            CallType::GetHealth => respond(
                encoding,
                ResponseType::GetHealth,
                Response {
                    get_health: Some(GetHealth {
                        healthy: Some(true),
                    }),
                    ..Default::default()
                },
            ),
            CallType::GetFlags => respond(
                encoding,
                ResponseType::GetFlags,
                Response {
                    get_flags: Some(GetFlags {
                        flags: Flag::list(&self.operator.flags),
                    }),
                    ..Default::default()
                },
            ),
            CallType::GetVersion => respond(
                encoding,
                ResponseType::GetVersion,
                Response {
                    get_version: Some(GetVersion {
                        version_info: Some(version_info()),
                    }),
                    ..Default::default()
                },
            ),
            CallType::GetMetrics => respond(
                encoding,
                ResponseType::GetMetrics,
                Response {
                    get_metrics: Some(GetMetrics {
                        metrics: ctx
                            .node()
                            .metrics()
                            .snapshot()
                            .into_iter()
                            .map(|(name, value)| Metric {
                                name,
                                value: Some(value),
                            })
                            .collect(),
                    }),
                    ..Default::default()
                },
            ),
            // 0: the logging the process started with; see `libactor::log_level`.
            CallType::GetLoggingLevel => respond(
                encoding,
                ResponseType::GetLoggingLevel,
                Response {
                    get_logging_level: Some(GetLoggingLevel {
                        level: Some(libactor::log_level::level()),
                    }),
                    ..Default::default()
                },
            ),
            CallType::GetState
            | CallType::GetAgents
            | CallType::GetFrameworks
            | CallType::GetExecutors
            | CallType::GetTasks
            | CallType::GetRoles => {
                let build = view_read(encoding, kind);
                return answer_later(self.read_view(ctx, viewer, MasterSide::default(), build));
            }
            CallType::GetWeights => respond(
                encoding,
                ResponseType::GetWeights,
                Response {
                    get_weights: Some(GetWeights {
                        weight_infos: self
                            .operator
                            .weights
                            .iter()
                            .map(|(role, weight)| WeightInfo {
                                weight: Some(*weight),
                                role: role.clone(),
                            })
                            .collect(),
                    }),
                    ..Default::default()
                },
            ),
            CallType::GetMaster => {
                let master = &self.master;
                let info = MasterInfo {
                    id: self.operator.master_id.clone(),
                    pid: master.to_string(),
                    port: u32::from(master.port()),
                    hostname: master.host().to_string(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                };
                respond(
                    encoding,
                    ResponseType::GetMaster,
                    Response {
                        get_master: Some(GetMaster {
                            master_info: Some(info),
                            start_time: Some(self.operator.start_time),
                            // A Keel master process starts once elected.
                            elected_time: Some(self.operator.start_time),
                        }),
                        ..Default::default()
                    },
                )
            }
            CallType::GetQuota => {
                return self.ask_master(encoding, |m, _| {
                    Ok(Some(Response {
                        r#type: ResponseType::GetQuota as i32,
                        get_quota: Some(resp::GetQuota {
                            status: Some(m.quota_status()),
                        }),
                        ..Default::default()
                    }))
                });
            }
            CallType::GetTransactions => {
                let viewer = req.principal.clone();
                return self.ask_master(encoding, move |m, _| {
                    Ok(Some(Response {
                        r#type: ResponseType::GetTransactions as i32,
                        get_transactions: Some(m.transactions_seen_by(viewer.as_deref())),
                        ..Default::default()
                    }))
                });
            }
            CallType::GetMaintenanceStatus | CallType::GetMaintenanceSchedule => {
                return self.ask_master(encoding, move |m, _| {
                    let response = if kind == CallType::GetMaintenanceStatus {
                        Response {
                            r#type: ResponseType::GetMaintenanceStatus as i32,
                            get_maintenance_status: Some(resp::GetMaintenanceStatus {
                                status: Some(m.maintenance_status()),
                            }),
                            ..Default::default()
                        }
                    } else {
                        Response {
                            r#type: ResponseType::GetMaintenanceSchedule as i32,
                            get_maintenance_schedule: Some(resp::GetMaintenanceSchedule {
                                schedule: Some(m.maintenance_schedule()),
                            }),
                            ..Default::default()
                        }
                    };
                    Ok(Some(response))
                });
            }
            CallType::Teardown
            | CallType::UpdateWeights
            | CallType::UpdateMaintenanceSchedule
            | CallType::StartMaintenance
            | CallType::StopMaintenance
            | CallType::DrainAgent
            | CallType::DeactivateAgent
            | CallType::ReactivateAgent
            | CallType::MarkAgentGone
            | CallType::UpdateQuota
            | CallType::SetLoggingLevel => return self.change(ctx, &req, encoding, kind, call),
            other => self.refuse(
                501,
                format!("Keel does not carry out {}", other.as_str_name()),
            ),
        };
        reply.into()
    }

    /// `GET_STATE` as `viewer` may see it (the view already drained).
    fn visible_state(&self, viewer: Option<&str>) -> resp::GetState {
        visible_state(&self.operator.view.read(), &self.auth.acls, viewer)
    }

    fn subscribe_operator(&mut self, encoding: Encoding, viewer: Option<String>) -> HttpResponse {
        let (response, mut stream) = HttpResponse::stream_bounded(
            200,
            encoding.content_type(),
            STREAM_CAPACITY,
            STREAM_MAX_BYTES,
        );
        let subscribed = Event {
            r#type: EventType::Subscribed as i32,
            subscribed: Some(Subscribed {
                get_state: Some(self.visible_state(viewer.as_deref())),
                heartbeat_interval_seconds: Some(HEARTBEAT_INTERVAL.as_secs_f64()),
            }),
            ..Default::default()
        };
        if stream.send_widening(encoding.record(&subscribed)).is_err() {
            return self.refuse(503, "the subscription closed before it started");
        }
        if let Some(c) = &self.subscribed {
            c.inc();
        }
        self.operator.subscribers.push(EventSubscriber {
            stream,
            encoding,
            principal: viewer,
        });
        self.feed.set_eager(true);
        response
    }

    /// Runs `f` on the master and answers with its response (`202` when it has none, as Mesos
    /// answers changes), or its refusal.
    fn ask_master(
        &mut self,
        encoding: Encoding,
        f: impl FnOnce(&mut Master, &mut Context<Master>) -> Result<Option<Response>, OperatorRefusal>
            + Send
            + 'static,
    ) -> HttpReply {
        self.on_master(f, move |response| async move {
            Ok(match response {
                Some(response) => {
                    HttpResponse::bytes(200, encoding.content_type(), encoding.body(&response))
                }
                None => HttpResponse::text(202, ""),
            })
        })
    }

    /// Runs `f` on the master, then `answer` on what it gave; a refusal of either is answered
    /// with its status and reason, and counted.
    fn on_master<T, A>(
        &mut self,
        f: impl FnOnce(&mut Master, &mut Context<Master>) -> Result<T, OperatorRefusal> + Send + 'static,
        answer: impl FnOnce(T) -> A + Send + 'static,
    ) -> HttpReply
    where
        T: Send + 'static,
        A: std::future::Future<Output = Result<HttpResponse, OperatorRefusal>> + Send,
    {
        let Some(master) = self.master_cell.get().cloned() else {
            return self.refuse(503, "the master is not running yet").into();
        };
        let refused = self.refused.clone();
        HttpReply::Later(Box::pin(async move {
            let answered = match master.call(f).await {
                Ok(Ok(done)) => answer(done).await,
                Ok(Err(refusal)) => Err(refusal),
                Err(_) => Err(OperatorRefusal {
                    status: 503,
                    why: "the master has stopped".into(),
                }),
            };
            answered.unwrap_or_else(|refusal| {
                if let Some(c) = &refused {
                    c.inc();
                }
                HttpResponse::text(refusal.status, format!("{}\n", refusal.why))
            })
        }))
    }

    /// A change: only a proven operator may ask; the master carries it out.
    fn change(
        &mut self,
        ctx: &mut Context<Self>,
        req: &HttpRequest,
        encoding: Encoding,
        kind: CallType,
        call: Call,
    ) -> HttpReply {
        let operator = match authentication::operator::operator_of(
            req,
            self.auth.credentials.as_ref(),
            ctx.node().is_secure(),
        ) {
            Ok(operator) => operator,
            Err(refusal) => return self.refuse(refusal.status, refusal.why).into(),
        };
        let missing = |what: &str| format!("expecting '{what}' to be present");
        let agent = |id: Option<&protos::v1::AgentId>| id.map(|a| a.value.clone());
        match kind {
            CallType::Teardown => {
                let Some(id) = call.teardown.and_then(|t| t.framework_id).map(|f| f.value) else {
                    return self.refuse(400, missing("teardown.framework_id")).into();
                };
                self.ask_master(encoding, move |m, ctx| {
                    m.teardown_framework(ctx, &operator, &id).map(|()| None)
                })
            }
            CallType::UpdateWeights => {
                let weights: Vec<(String, f64)> = call
                    .update_weights
                    .map(|u| u.weight_infos)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| (w.role, w.weight.unwrap_or(1.0)))
                    .collect();
                if let Err(refusal) = validate_weights(&weights) {
                    return self.refuse(refusal.status, refusal.why).into();
                }
                self.operator.weights.extend(weights.iter().cloned());
                self.ask_master(encoding, move |m, _| m.set_weights(weights).map(|()| None))
            }
            CallType::UpdateMaintenanceSchedule => {
                let Some(schedule) = call.update_maintenance_schedule.and_then(|u| u.schedule)
                else {
                    return self
                        .refuse(400, missing("update_maintenance_schedule.schedule"))
                        .into();
                };
                self.ask_master(encoding, move |m, _| {
                    m.update_maintenance_schedule(schedule).map(|()| None)
                })
            }
            CallType::StartMaintenance => {
                let machines = call
                    .start_maintenance
                    .map(|s| s.machines)
                    .unwrap_or_default();
                self.ask_master(encoding, move |m, ctx| {
                    m.start_maintenance(ctx, &machines).map(|()| None)
                })
            }
            CallType::StopMaintenance => {
                let machines = call
                    .stop_maintenance
                    .map(|s| s.machines)
                    .unwrap_or_default();
                self.ask_master(encoding, move |m, ctx| {
                    m.stop_maintenance(ctx, &machines).map(|()| None)
                })
            }
            CallType::DrainAgent | CallType::DeactivateAgent | CallType::ReactivateAgent => {
                let mut mark_gone = false;
                let (id, what) = match kind {
                    CallType::DrainAgent => {
                        let drain = call.drain_agent.unwrap_or_default();
                        mark_gone = drain.mark_gone == Some(true);
                        (agent(drain.agent_id.as_ref()), "drain_agent.agent_id")
                    }
                    CallType::DeactivateAgent => (
                        agent(call.deactivate_agent.and_then(|d| d.agent_id).as_ref()),
                        "deactivate_agent.agent_id",
                    ),
                    _ => (
                        agent(call.reactivate_agent.and_then(|d| d.agent_id).as_ref()),
                        "reactivate_agent.agent_id",
                    ),
                };
                let Some(id) = id.filter(|id| !id.is_empty()) else {
                    return self.refuse(400, missing(what)).into();
                };
                self.ask_master(encoding, move |m, ctx| {
                    let Some(hostname) = m.agent_hostname(&id) else {
                        return Err(OperatorRefusal {
                            status: 400,
                            why: format!("no agent {id} is registered"),
                        });
                    };
                    tracing::info!(agent = %id, %hostname, %operator, call = kind.as_str_name(), "operator call");
                    match kind {
                        CallType::ReactivateAgent => m.reactivate_machine(ctx, &hostname),
                        _ => {
                            if mark_gone {
                                m.may_mark_agents_gone(&operator)?;
                            }
                            let kill = kind == CallType::DrainAgent;
                            let why = format!("{} by operator {operator}", kind.as_str_name());
                            let drained = m
                                .drain_machine(ctx, &hostname, kill, &why)
                                .map_err(|e| OperatorRefusal {
                                    status: 400,
                                    why: e.to_string(),
                                })?;
                            if mark_gone {
                                m.mark_gone_once_drained(ctx, drained, operator, id);
                            }
                        }
                    }
                    Ok(None)
                })
            }
            CallType::MarkAgentGone => {
                let id = agent(call.mark_agent_gone.and_then(|g| g.agent_id).as_ref());
                let Some(id) = id.filter(|id| !id.is_empty()) else {
                    return self.refuse(400, missing("mark_agent_gone.agent_id")).into();
                };
                self.durable_change(move |m, ctx| {
                    Ok(match m.mark_agent_gone(ctx, &operator, &id)? {
                        MarkingGone::AlreadyGone => None,
                        MarkingGone::Underway(durable) => Some(durable),
                    })
                })
            }
            CallType::SetLoggingLevel => {
                let Some(set) = call.set_logging_level else {
                    return self.refuse(400, missing("set_logging_level")).into();
                };
                let nanoseconds = set.duration.map_or(0, |d| d.nanoseconds);
                match libactor::log_level::set_for_nanoseconds(set.level.unwrap_or(0), nanoseconds)
                {
                    // As Mesos answers it.
                    Ok(()) => HttpResponse::text(202, "").into(),
                    Err(e) => self.refuse(e.http_status(), e.to_string()).into(),
                }
            }
            CallType::UpdateQuota => {
                let update = call.update_quota.unwrap_or_default();
                let force = update.force.unwrap_or(false);
                self.durable_change(move |m, ctx| {
                    m.update_quota(ctx, &operator, force, update.quota_configs)
                        .map(Some)
                })
            }
            _ => self.refuse(400, "not a change").into(),
        }
    }

    /// A change the master answers once it is durable (`f` gives the receiver that fires
    /// then, or none when there was nothing to do): `200` with no body, as Mesos answers
    /// `MARK_AGENT_GONE` and `UPDATE_QUOTA`.
    fn durable_change(
        &mut self,
        f: impl FnOnce(
                &mut Master,
                &mut Context<Master>,
            )
                -> Result<Option<tokio::sync::oneshot::Receiver<()>>, OperatorRefusal>
            + Send
            + 'static,
    ) -> HttpReply {
        self.on_master(f, |durable| async move {
            if let Some(durable) = durable {
                durable.await.map_err(|_| OperatorRefusal {
                    status: 503,
                    why: "the master stopped before the change was written".into(),
                })?;
            }
            Ok(HttpResponse::text(200, ""))
        })
    }
}

/// This build's version.
fn version_info() -> VersionInfo {
    VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    }
}
