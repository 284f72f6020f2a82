//! The repair service (Autopilot, Isard 2007): takes the repair orders of the device manager and carries
//! them out through a [`RepairDriver`], reporting each outcome back (`RepairOutcome`). It
//! decides nothing: which machine, which action and when are the device manager's; the
//! machine is drained before the order is given.
//!
//! It announces itself to the device manager at start and every [`ANNOUNCE_INTERVAL`] after,
//! so that a device manager that moved with leadership learns where it is; with a credential
//! it first authenticates with the master beside it (a master with credentials gives orders
//! to no other). Orders from any
//! other process are refused and counted; one machine is repaired once at a time, and at
//! most [`MAX_CONCURRENT`] machines at once (more wait their turn, in order).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use authentication::{roles, Authenticatee, Credential};
use libactor::metrics::{Counter, ProcessMetrics};
use libactor::{Context, Process, Upid};
use protos::autopilot::{RepairOrder, RepairOutcome, RepairServiceAnnouncement};
use protos::internal::{
    AuthenticationChallengeMessage, AuthenticationCompletedMessage, AuthenticationFailedMessage,
};

use crate::device_manager::{action_name, DEVICE_MANAGER_ID};
use crate::repair_driver::RepairDriver;

/// The repair service's process id.
pub const REPAIR_SERVICE_ID: &str = "repair";
/// Time between announcements to the device manager.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(5);
/// Machines repaired at once.
pub const MAX_CONCURRENT: usize = 64;
/// Orders waiting for a turn, at most (more are refused with a failed outcome).
pub const MAX_QUEUED: usize = 100_000;

struct Metrics {
    orders: Counter,
    refused: Counter,
    done: Counter,
    failed: Counter,
}

/// The repair service process.
pub struct RepairService {
    device_manager: Upid,
    driver: Arc<dyn RepairDriver>,
    /// Proves itself to the master beside the device manager before each announcement (a
    /// master with credentials admits no other repair service).
    authenticatee: Option<Authenticatee>,
    /// Machines with a repair under way.
    busy: HashSet<String>,
    queue: VecDeque<RepairOrder>,
    metrics: ProcessMetrics<Metrics>,
}

impl RepairService {
    /// A service taking orders from `device_manager` and carrying them out with `driver`.
    pub fn new(device_manager: Upid, driver: Arc<dyn RepairDriver>) -> RepairService {
        RepairService {
            device_manager,
            driver,
            authenticatee: None,
            busy: HashSet::new(),
            queue: VecDeque::new(),
            metrics: ProcessMetrics::default(),
        }
    }

    /// Authenticates as `credential` with the master beside the device manager before it
    /// announces itself.
    pub fn with_credential(mut self, credential: Credential) -> RepairService {
        self.authenticatee = Some(Authenticatee::new(credential));
        self
    }

    /// The master beside the device manager, which authenticates this service.
    fn master(&self) -> Option<Upid> {
        Upid::new(
            "master",
            self.device_manager.host().clone(),
            self.device_manager.port(),
        )
        .ok()
    }

    /// Follows the device manager to a new leading master.
    pub fn set_device_manager(&mut self, ctx: &mut Context<Self>, device_manager: Upid) {
        if device_manager != self.device_manager {
            self.device_manager = device_manager;
            self.announce(ctx);
        }
    }

    /// Machines being repaired now.
    pub fn in_progress(&self) -> usize {
        self.busy.len()
    }

    fn announce(&mut self, ctx: &mut Context<Self>) {
        ctx.send(
            &self.device_manager,
            RepairServiceAnnouncement {
                driver: self.driver.name().to_owned(),
            },
        );
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        // With a credential, each announcement follows a fresh proof (the master forgets one
        // when a connection breaks, or when it is a new master).
        let master = self.master();
        match (self.authenticatee.as_mut(), master) {
            (Some(auth), Some(master)) => ctx.send(&master, auth.begin()),
            _ => self.announce(ctx),
        }
        ctx.delay(ANNOUNCE_INTERVAL, |s: &mut RepairService, ctx| s.tick(ctx));
    }

    fn order(&mut self, ctx: &mut Context<Self>, from: Upid, order: RepairOrder) {
        let _span = tracing::info_span!("repair_order", %from, machine = %order.machine_id, action = action_name(order.action())).entered();
        // The device manager of the moment, or any device manager on the same node as it.
        if from.id() != DEVICE_MANAGER_ID || from.address() != self.device_manager.address() {
            self.metrics.inc(|m| &m.refused);
            tracing::warn!(%from, "refused a repair order not from the device manager");
            return;
        }
        self.metrics.inc(|m| &m.orders);
        if self.busy.contains(&order.machine_id)
            || self.queue.iter().any(|q| q.machine_id == order.machine_id)
        {
            tracing::info!("a repair of this machine is under way already");
            return;
        }
        if self.queue.len() >= MAX_QUEUED {
            self.metrics.inc(|m| &m.refused);
            self.report(ctx, &order, Err("the repair queue is full".into()));
            return;
        }
        self.queue.push_back(order);
        self.start_next(ctx);
    }

    fn start_next(&mut self, ctx: &mut Context<Self>) {
        while self.busy.len() < MAX_CONCURRENT {
            let Some(order) = self.queue.pop_front() else {
                return;
            };
            self.busy.insert(order.machine_id.clone());
            tracing::info!(machine = %order.machine_id, action = action_name(order.action()), "repair started");
            let work = self.driver.carry_out(&order);
            ctx.defer(work, move |s: &mut RepairService, ctx, result| {
                s.busy.remove(&order.machine_id);
                s.report(ctx, &order, result);
                s.start_next(ctx);
            });
        }
    }

    fn report(
        &mut self,
        ctx: &mut Context<Self>,
        order: &RepairOrder,
        result: Result<String, String>,
    ) {
        let ok = result.is_ok();
        self.metrics.inc(|m| if ok { &m.done } else { &m.failed });
        let detail = match result {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(machine = %order.machine_id, error = %e, "repair failed");
                e
            }
        };
        ctx.send(
            &self.device_manager,
            RepairOutcome {
                machine_id: order.machine_id.clone(),
                action: order.action,
                ok,
                detail,
            },
        );
    }
}

impl RepairService {
    /// Who may send: the master (whose device manager orders repairs), proven on a secure
    /// node by the `master` role of the message's connection.
    fn sent_by_master(&self, ctx: &Context<Self>, from: &Upid) -> bool {
        self.master().as_ref() == Some(from) && ctx.authorize(roles::MASTER)
    }

    fn challenge(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: AuthenticationChallengeMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        if let Some(auth) = &self.authenticatee {
            let answer = auth.answer(&msg.nonce, ctx.pid().as_str());
            ctx.send(&from, answer);
        }
    }

    fn completed(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        _: AuthenticationCompletedMessage,
    ) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        if let Some(auth) = self.authenticatee.as_mut() {
            auth.completed();
        }
        self.announce(ctx);
    }

    fn failed(&mut self, ctx: &mut Context<Self>, from: Upid, msg: AuthenticationFailedMessage) {
        if !self.sent_by_master(ctx, &from) {
            return;
        }
        self.metrics.inc(|m| &m.refused);
        tracing::warn!(reason = %msg.reason, "the master refused this repair service's credential");
        if let Some(auth) = self.authenticatee.as_mut() {
            auth.failed(&msg.reason);
        }
    }
}

impl Process for RepairService {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        let m = ctx.metrics();
        self.metrics.set(Metrics {
            orders: m.counter("autopilot/repair_service/orders"),
            refused: m.counter("autopilot/repair_service/refused"),
            done: m.counter("autopilot/repair_service/done"),
            failed: m.counter("autopilot/repair_service/failed"),
        });
        ctx.install(Self::order);
        ctx.install(Self::challenge);
        ctx.install(Self::completed);
        ctx.install(Self::failed);
        self.tick(ctx);
    }
}
