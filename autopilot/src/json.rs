//! The device manager's records as JSON, for its HTTP routes, `keelctl` and the cockpit.

use libactor::HttpResponse;
use protos::autopilot::{AuditRecord, MachineRecord};
use serde_json::{json, Value};

use crate::device_manager::{action_name, state_name, watchdog_status};

/// A 200 response carrying `value`.
pub fn response(value: Value) -> HttpResponse {
    HttpResponse::json(&value)
}

/// One machine; with `detail`, its history and last watchdog results too.
pub fn machine(m: &MachineRecord, detail: bool) -> Value {
    let mut v = json!({
        "id": m.id,
        "hostname": m.hostname,
        "machine_type": m.machine_type,
        "state": state_name(m.state()),
        "since": m.since,
        "action": action_name(m.action()),
        "error": m.error,
        "replaced": m.replaced,
        "last_report": m.last_report,
        "manifest_version": m.manifest_version,
        "agent_address": m.agent_address,
        "failures": crate::reliability::failures(m),
        "reliability": crate::reliability::reliability(m),
    });
    if detail {
        v["history"] = m
            .history
            .iter()
            .map(|e| {
                json!({
                    "at": e.at,
                    "state": state_name(e.state()),
                    "action": action_name(e.action()),
                    "detail": e.detail,
                })
            })
            .collect();
        v["watchdogs"] = m
            .watchdogs
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "status": watchdog_status(r),
                    "text": r.text,
                    "fatal": r.fatal,
                })
            })
            .collect();
    }
    v
}

/// One audit record.
pub fn audit(r: &AuditRecord) -> Value {
    json!({ "seq": r.seq, "at": r.at, "actor": r.actor, "what": r.what, "why": r.why })
}
