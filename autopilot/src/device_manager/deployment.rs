//! Deployments in the device manager: operators' routes (`POST /deploy`, `GET /rollout`,
//! `POST /rollback`, `POST /kick`), the application managers' `ManifestStatus` reports, and
//! carrying out what [`rollout`](crate::rollout) decides: sending manifests to machines,
//! moving them through Probation, recording every step in the audit log. The rollout is part
//! of the ground truth, so a new device manager (after a master failover) resumes it.

use std::time::Duration;

use libactor::{Context, HttpRequest, HttpResponse, Upid};
use protos::autopilot::{
    HealthState, Kick, Manifest, ManifestState, ManifestStatus, RepairAction, RolloutState,
    SyncManifest,
};
use serde_json::json;

use super::DeviceManager;
use crate::app_manager::APP_MANAGER_ID;
use crate::ground_truth::DEPLOYMENT;
use crate::manifest;
use crate::rollout::{self, Step, DEFAULT_HEALTHY_THRESHOLD, DEFAULT_UNIT_SIZE};
use crate::watchdog::WATCHDOG_ID;

/// How often rollouts are checked for timeouts.
const TICK: Duration = Duration::from_secs(1);
/// Largest scale unit accepted.
const MAX_UNIT_SIZE: u64 = 100_000;

impl DeviceManager {
    /// Tells machine `id`'s application manager to fetch `manifest` (none: run nothing) and,
    /// with `activate`, to run it.
    pub(super) fn sync_machine(
        &self,
        ctx: &mut Context<Self>,
        id: &str,
        manifest: Option<&Manifest>,
        activate: bool,
    ) {
        let Some(to) = self.satellite(id, APP_MANAGER_ID) else {
            return;
        };
        ctx.send(
            &to,
            SyncManifest {
                manifest: manifest.cloned(),
                activate,
                deployment_server: ctx.pid().address().to_owned(),
                hostname: id.to_owned(),
            },
        );
    }

    /// The satellite `service` on machine `id`'s agent, if it has reported from one.
    fn satellite(&self, id: &str, service: &str) -> Option<Upid> {
        let address = &self.machines.get(id)?.agent_address;
        format!("{service}@{address}").parse().ok()
    }

    /// Tells the deployment server that machine `id` holds the files of the manifest it runs
    /// (a type's active one, or the rollout's new or previous one).
    pub(super) fn note_holder(&self, id: &str) {
        let (Some(server), Some(m)) = (&self.deployment_server, self.machines.get(id)) else {
            return;
        };
        if m.manifest_version.is_empty() || m.agent_address.is_empty() || m.replaced {
            return;
        }
        let rollout = self.deployment.rollout.as_ref();
        let manifest = self
            .deployment
            .active
            .iter()
            .chain(rollout.and_then(|r| r.manifest.as_ref()))
            .chain(rollout.and_then(|r| r.previous.as_ref()))
            .find(|x| x.machine_type == m.machine_type && x.version == m.manifest_version);
        let Some(manifest) = manifest else {
            return;
        };
        let files: Vec<String> = manifest.files.iter().map(|f| f.sha256.clone()).collect();
        let address = m.agent_address.clone();
        server.dispatch(move |s, ctx| s.note_holder(ctx, address, files));
    }

    fn active_of(&self, machine_type: &str) -> Option<Manifest> {
        self.deployment
            .active
            .iter()
            .find(|m| m.machine_type == machine_type)
            .cloned()
    }

    pub(super) fn deploy_route(
        &mut self,
        ctx: &mut Context<Self>,
        req: HttpRequest,
    ) -> HttpResponse {
        let _span = tracing::info_span!("deploy_request").entered();
        let (operator, body) = match self.operator_request(ctx, &req) {
            Ok(authorized) => authorized,
            Err(refusal) => return refusal,
        };
        let manifest = match manifest::from_json(&body["manifest"]) {
            Ok(m) => m,
            Err(e) => {
                self.metrics.inc(|m| &m.invalid);
                return HttpResponse::text(400, format!("{e}\n"));
            }
        };
        let unit_size = body["unit_size"]
            .as_u64()
            .unwrap_or(DEFAULT_UNIT_SIZE.into());
        let threshold = body["healthy_threshold"]
            .as_f64()
            .unwrap_or(DEFAULT_HEALTHY_THRESHOLD);
        if unit_size > MAX_UNIT_SIZE {
            return HttpResponse::text(400, format!("unit size above {MAX_UNIT_SIZE}\n"));
        }
        if self
            .deployment
            .rollout
            .as_ref()
            .is_some_and(rollout::in_progress)
        {
            return HttpResponse::text(409, "a rollout is under way; wait or roll it back\n");
        }
        if let Some(dir) = &self.config.deployment_dir {
            if let Some(missing) = manifest
                .files
                .iter()
                .find(|f| !dir.join(&f.sha256).exists())
            {
                return HttpResponse::text(
                    409,
                    format!(
                        "{} ({}) is not on the deployment server: upload it first\n",
                        missing.path, missing.sha256
                    ),
                );
            }
        }
        let previous = self.active_of(&manifest.machine_type);
        if previous
            .as_ref()
            .is_some_and(|p| p.version == manifest.version)
        {
            return HttpResponse::text(
                409,
                format!("version {} is already active\n", manifest.version),
            );
        }
        let id = self.deployment.next_rollout_id.max(1);
        let now = self.now(ctx);
        let plan = rollout::plan(
            id,
            manifest.clone(),
            previous,
            &self.machines,
            unit_size as u32,
            threshold,
            now,
        );
        let r = match plan {
            Ok(r) => r,
            Err(e) => return HttpResponse::text(409, format!("{e}\n")),
        };
        self.deployment.next_rollout_id = id + 1;
        let units = r.units.len();
        self.deployment.rollout = Some(r);
        self.dirty.insert(DEPLOYMENT);
        self.record(
            ctx,
            &operator,
            format!(
                "rollout {id}: {} {} to type {} started",
                manifest.name, manifest.version, manifest.machine_type
            ),
            format!(
                "{units} units of up to {unit_size}, {:.0}% Healthy to go on",
                threshold * 100.0
            ),
        );
        // Every machine pre-loads now; units switch one at a time.
        let targets: Vec<String> = self
            .deployment
            .rollout
            .iter()
            .flat_map(|r| r.units.iter().skip(1).flat_map(|u| u.machines.clone()))
            .collect();
        for id in targets {
            self.sync_machine(ctx, &id, Some(&manifest), false);
        }
        self.start_unit(ctx);
        self.persist(ctx);
        HttpResponse::json(&self.rollout_json())
    }

    pub(super) fn rollout_route(
        &mut self,
        _ctx: &mut Context<Self>,
        _req: HttpRequest,
    ) -> HttpResponse {
        HttpResponse::json(&self.rollout_json())
    }

    pub(super) fn rollback_route(
        &mut self,
        ctx: &mut Context<Self>,
        req: HttpRequest,
    ) -> HttpResponse {
        let (operator, _) = match self.operator_request(ctx, &req) {
            Ok(authorized) => authorized,
            Err(refusal) => return refusal,
        };
        let running = self
            .deployment
            .rollout
            .as_ref()
            .is_some_and(|r| r.state() == RolloutState::Running);
        if !running {
            return HttpResponse::text(409, "no rollout is running\n");
        }
        self.start_rollback(ctx, format!("rolled back by {operator}"));
        HttpResponse::json(&self.rollout_json())
    }

    pub(super) fn kick_route(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        if let Err(refusal) = self.operator_request(ctx, &req) {
            return refusal;
        }
        let ids: Vec<String> = self
            .machines
            .values()
            .filter(|m| !m.replaced)
            .map(|m| m.id.clone())
            .collect();
        for id in &ids {
            for service in [APP_MANAGER_ID, WATCHDOG_ID] {
                if let Some(to) = self.satellite(id, service) {
                    ctx.send(&to, Kick {});
                }
            }
        }
        HttpResponse::json(&json!({ "kicked": ids.len() }))
    }

    pub(super) fn manifest_status(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        status: ManifestStatus,
    ) {
        let _span = tracing::info_span!("manifest_status", %from, machine = %status.hostname, version = %status.version).entered();
        let id = status.hostname.clone();
        if !self.sent_by_its_agent(ctx, &from, &id) {
            return;
        }
        let Some(m) = self.machines.get_mut(&id) else {
            self.metrics.inc(|m| &m.invalid);
            return;
        };
        match status.state() {
            ManifestState::Active => {
                if m.manifest_version != status.version {
                    m.manifest_version = status.version.clone();
                    self.dirty.insert(crate::ground_truth::shard_of(&id));
                    self.persist(ctx);
                    self.note_holder(&id);
                }
            }
            ManifestState::Failed => {
                let target = self
                    .deployment
                    .rollout
                    .as_ref()
                    .and_then(|r| r.manifest.as_ref())
                    .map(|m| m.version.clone());
                if target.as_deref() == Some(status.version.as_str()) {
                    let why = format!("version {} failed: {}", status.version, status.detail);
                    self.rollout_claims(ctx, &id, &why);
                } else {
                    tracing::warn!(machine = %id, detail = %status.detail, "a manifest failed outside a rollout");
                }
            }
            ManifestState::Preloaded | ManifestState::Unknown => {}
        }
        self.drive_rollout(ctx);
    }

    /// Whether a failure of `id` belongs to the rollout (its new version failed, or it is
    /// being rolled back): then it is the manifest's fault, not the machine's, and no repair
    /// follows.
    pub(super) fn rollout_claims(&mut self, ctx: &mut Context<Self>, id: &str, why: &str) -> bool {
        let Some(r) = self.deployment.rollout.as_mut() else {
            return false;
        };
        match r.state() {
            RolloutState::Running => {
                let in_unit = r
                    .units
                    .get(r.current_unit as usize)
                    .is_some_and(|u| u.machines.iter().any(|m| m == id));
                if !in_unit {
                    return false;
                }
                if !r.failed.iter().any(|f| f == id) {
                    r.failed.push(id.to_owned());
                    let rollout_id = r.id;
                    self.dirty.insert(DEPLOYMENT);
                    self.record(
                        ctx,
                        "deployment",
                        format!("rollout {rollout_id}: machine {id} failed the new version"),
                        why.to_owned(),
                    );
                    self.persist(ctx);
                    self.drive_rollout(ctx);
                }
                true
            }
            RolloutState::RollingBack => rollout::updated(r).any(|m| m == id),
            RolloutState::Succeeded | RolloutState::RolledBack => false,
        }
    }

    /// Whether `version` is the one the last rollout rolled back (or is rolling back): errors
    /// reported while a machine ran it are the version's fault, not the machine's.
    pub(super) fn rolled_back(&self, version: &str) -> bool {
        !version.is_empty()
            && self.deployment.rollout.as_ref().is_some_and(|r| {
                matches!(
                    r.state(),
                    RolloutState::RollingBack | RolloutState::RolledBack
                ) && r.manifest.as_ref().is_some_and(|m| m.version == version)
            })
    }

    /// Applies what the rollout should do now.
    pub(super) fn drive_rollout(&mut self, ctx: &mut Context<Self>) {
        let Some(r) = self.deployment.rollout.as_ref() else {
            return;
        };
        let now = self.now(ctx);
        let step = rollout::assess(
            r,
            &self.machines,
            self.config.unit_timeout.as_secs_f64(),
            now,
        );
        let id = r.id;
        match step {
            Step::Wait => {}
            Step::Advance => {
                if let Some(r) = self.deployment.rollout.as_mut() {
                    r.current_unit += 1;
                    r.unit_started = now;
                    r.failed.clear();
                }
                self.dirty.insert(DEPLOYMENT);
                self.start_unit(ctx);
                self.persist(ctx);
            }
            Step::Succeeded => {
                let Some(r) = self.deployment.rollout.as_mut() else {
                    return;
                };
                r.set_state(RolloutState::Succeeded);
                r.detail = "every unit Healthy on the new version".into();
                let manifest = r.manifest.clone().unwrap_or_default();
                self.deployment
                    .active
                    .retain(|m| m.machine_type != manifest.machine_type);
                self.deployment.active.push(manifest.clone());
                self.dirty.insert(DEPLOYMENT);
                self.record(
                    ctx,
                    "deployment",
                    format!("rollout {id}: succeeded"),
                    format!(
                        "{} {} active on type {}",
                        manifest.name, manifest.version, manifest.machine_type
                    ),
                );
                self.persist(ctx);
                // Machines the rollout left out (in repair then) catch up once Healthy.
                let stragglers: Vec<String> = self
                    .machines
                    .values()
                    .filter(|m| {
                        m.machine_type == manifest.machine_type
                            && m.state() == HealthState::Healthy
                            && !m.replaced
                    })
                    .map(|m| m.id.clone())
                    .collect();
                for id in stragglers {
                    self.catch_up(ctx, &id);
                }
            }
            Step::RollBack(why) => self.start_rollback(ctx, why),
            Step::RolledBack => {
                if let Some(r) = self.deployment.rollout.as_mut() {
                    r.set_state(RolloutState::RolledBack);
                }
                self.dirty.insert(DEPLOYMENT);
                self.record(
                    ctx,
                    "deployment",
                    format!("rollout {id}: rolled back"),
                    "every updated machine runs the previous version".into(),
                );
                self.persist(ctx);
            }
        }
    }

    /// Switches the current unit's machines: Probation, then the new manifest.
    fn start_unit(&mut self, ctx: &mut Context<Self>) {
        let Some(r) = self.deployment.rollout.as_ref() else {
            return;
        };
        let Some(unit) = r.units.get(r.current_unit as usize).cloned() else {
            return;
        };
        let manifest = r.manifest.clone().unwrap_or_default();
        let (id, k, total) = (r.id, r.current_unit + 1, r.units.len());
        self.record(
            ctx,
            "deployment",
            format!(
                "rollout {id}: unit {k} of {total} switching to {}",
                manifest.version
            ),
            format!("{} machines", unit.machines.len()),
        );
        for machine in &unit.machines {
            let why = format!("rollout {id}: unit {k}, version {}", manifest.version);
            self.transition(
                ctx,
                machine,
                HealthState::Probation,
                RepairAction::DoNothing,
                "deployment",
                why,
            );
            self.sync_machine(ctx, machine, Some(&manifest), true);
        }
    }

    /// Stops the rollout and sends every updated machine back to the previous manifest.
    fn start_rollback(&mut self, ctx: &mut Context<Self>, why: String) {
        let now = self.now(ctx);
        let Some(r) = self.deployment.rollout.as_mut() else {
            return;
        };
        r.set_state(RolloutState::RollingBack);
        r.unit_started = now;
        r.detail = why.clone();
        let id = r.id;
        let previous = r.previous.clone();
        let machines: Vec<String> = rollout::updated(r).cloned().collect();
        self.dirty.insert(DEPLOYMENT);
        let version = previous
            .as_ref()
            .map_or("nothing".to_owned(), |m| m.version.clone());
        self.record(
            ctx,
            "deployment",
            format!(
                "rollout {id}: rolling back {} machines to {version}",
                machines.len()
            ),
            why,
        );
        for machine in &machines {
            let why = format!("rollout {id}: rollback to {version}");
            self.transition(
                ctx,
                machine,
                HealthState::Probation,
                RepairAction::DoNothing,
                "deployment",
                why,
            );
            self.sync_machine(ctx, machine, previous.as_ref(), true);
        }
        self.persist(ctx);
        self.drive_rollout(ctx);
    }

    /// After a failover: tell the machines again what the rollout under way wants of them.
    pub(super) fn resume_rollout(&mut self, ctx: &mut Context<Self>) {
        let Some(r) = self.deployment.rollout.clone() else {
            return;
        };
        let (wanted, scope): (Option<Manifest>, Vec<String>) = match r.state() {
            RolloutState::Running => (
                r.manifest.clone(),
                r.units
                    .get(r.current_unit as usize)
                    .map(|u| u.machines.clone())
                    .unwrap_or_default(),
            ),
            RolloutState::RollingBack => {
                (r.previous.clone(), rollout::updated(&r).cloned().collect())
            }
            RolloutState::Succeeded | RolloutState::RolledBack => return,
        };
        tracing::info!(
            rollout = r.id,
            state = rollout::state_name(r.state()),
            "resuming a rollout"
        );
        for machine in scope {
            self.sync_machine(ctx, &machine, wanted.as_ref(), true);
        }
    }

    /// A machine Healthy again (after a repair, or one a rollout left out) that does not run
    /// its type's active manifest gets it, unless a rollout under way owns it.
    pub(super) fn catch_up(&mut self, ctx: &mut Context<Self>, id: &str) {
        let Some(m) = self.machines.get(id) else {
            return;
        };
        let Some(active) = self.active_of(&m.machine_type) else {
            return;
        };
        let owned = self.deployment.rollout.as_ref().is_some_and(|r| {
            rollout::in_progress(r) && r.units.iter().any(|u| u.machines.iter().any(|x| x == id))
        });
        if owned || m.manifest_version == active.version {
            return;
        }
        tracing::info!(machine = %id, version = %active.version, "catching up with its type's manifest");
        self.sync_machine(ctx, id, Some(&active), true);
    }

    pub(super) fn tick(&mut self, ctx: &mut Context<Self>) {
        self.drive_rollout(ctx);
        ctx.delay(TICK, |dm: &mut DeviceManager, ctx| dm.tick(ctx));
    }

    /// The rollout under way or the last one, with each unit's progress.
    pub(super) fn rollout_json(&self) -> serde_json::Value {
        let Some(r) = &self.deployment.rollout else {
            return json!({ "rollout": null, "active": self.deployment.active.iter().map(manifest::to_json).collect::<Vec<_>>() });
        };
        let target = r.manifest.as_ref().map_or("", |m| m.version.as_str());
        let units: Vec<serde_json::Value> = r
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let phase = match (i as u32).cmp(&r.current_unit) {
                    std::cmp::Ordering::Less => "done",
                    std::cmp::Ordering::Equal => "current",
                    std::cmp::Ordering::Greater => "pending",
                };
                let on_target = u
                    .machines
                    .iter()
                    .filter_map(|m| self.machines.get(m))
                    .filter(|m| m.manifest_version == target)
                    .count();
                json!({
                    "machines": u.machines,
                    "needed": rollout::needed(r, u),
                    "healthy": rollout::healthy_on(r, u, target, &self.machines),
                    "on_version": on_target,
                    "phase": phase,
                })
            })
            .collect();
        json!({
            "rollout": {
                "id": r.id,
                "state": rollout::state_name(r.state()),
                "manifest": r.manifest.as_ref().map(manifest::to_json),
                "previous_version": r.previous.as_ref().map(|m| m.version.clone()),
                "unit_size": r.unit_size,
                "healthy_threshold": r.healthy_threshold,
                "current_unit": r.current_unit + 1,
                "units": units,
                "failed": r.failed,
                "detail": r.detail,
                "started": r.started,
            },
            "active": self.deployment.active.iter().map(manifest::to_json).collect::<Vec<_>>(),
        })
    }
}
