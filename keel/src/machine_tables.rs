//! keelctl's human output for Autopilot: the device manager's machines, one machine's history
//! and the audit log, from its JSON routes.

use serde_json::Value;

use crate::tables::{render, text};

/// Seconds since the Unix epoch as `HH:MM:SS` UTC (the day is rarely in doubt at a console).
fn clock(v: &Value) -> String {
    let Some(secs) = v.as_f64().filter(|s| *s > 0.0) else {
        return "-".into();
    };
    let day = secs as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60)
}

fn rows<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map_or(&[], Vec::as_slice)
}

/// `/device-manager/machines` as a table, with the repair count against the cap.
pub fn machines(v: &Value) -> String {
    let table: Vec<Vec<String>> = rows(v, "machines")
        .iter()
        .map(|m| {
            let state = if m["replaced"].as_bool() == Some(true) {
                "Replaced".to_owned()
            } else {
                text(&m["state"])
            };
            vec![
                text(&m["id"]),
                text(&m["machine_type"]),
                state,
                clock(&m["since"]),
                text(&m["action"]),
                text(&m["error"]),
            ]
        })
        .collect();
    format!(
        "{}{} machine(s), {} in repair (cap {})\n",
        render(&["ID", "TYPE", "STATE", "SINCE", "ACTION", "ERROR"], &table),
        table.len(),
        text(&v["in_repair"]),
        text(&v["repair_cap"]),
    )
}

/// One machine: its state, last watchdog results and history.
pub fn machine(m: &Value) -> String {
    let mut out = format!(
        "machine {}  type {}  {} since {}  action {}\n",
        text(&m["id"]),
        text(&m["machine_type"]),
        text(&m["state"]),
        clock(&m["since"]),
        text(&m["action"]),
    );
    if let Some(error) = m["error"].as_str().filter(|e| !e.is_empty()) {
        out.push_str(&format!("error: {error}\n"));
    }
    let watchdogs: Vec<Vec<String>> = rows(m, "watchdogs")
        .iter()
        .map(|w| vec![text(&w["name"]), text(&w["status"]), text(&w["text"])])
        .collect();
    out.push_str("\nwatchdogs\n");
    out.push_str(&render(&["NAME", "STATUS", "TEXT"], &watchdogs));
    let history: Vec<Vec<String>> = rows(m, "history")
        .iter()
        .map(|e| {
            vec![
                clock(&e["at"]),
                text(&e["state"]),
                text(&e["action"]),
                text(&e["detail"]),
            ]
        })
        .collect();
    out.push_str("\nhistory\n");
    out.push_str(&render(&["AT", "STATE", "ACTION", "DETAIL"], &history));
    out
}

/// `/device-manager/audit` as a table, oldest first.
pub fn audit(v: &Value) -> String {
    let table: Vec<Vec<String>> = rows(v, "audit")
        .iter()
        .map(|r| {
            vec![
                text(&r["seq"]),
                clock(&r["at"]),
                text(&r["actor"]),
                text(&r["what"]),
                text(&r["why"]),
            ]
        })
        .collect();
    render(&["SEQ", "AT", "ACTOR", "WHAT", "WHY"], &table)
}

/// A bar of `width` cells, `done` of `total` filled.
fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as usize) * width).div_ceil(total as usize)
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// `/device-manager/rollout`: the rollout with a progress bar per scale unit.
pub fn rollout(v: &Value) -> String {
    let r = &v["rollout"];
    if r.is_null() {
        return "no rollout yet\n".into();
    }
    let manifest = &r["manifest"];
    let mut out = format!(
        "rollout {}: {} {} to type {} (from {})  {}  unit {}/{}\n",
        text(&r["id"]),
        text(&manifest["name"]),
        text(&manifest["version"]),
        text(&manifest["machine_type"]),
        text(&r["previous_version"]),
        text(&r["state"]),
        text(&r["current_unit"]),
        rows(r, "units").len(),
    );
    for (i, u) in rows(r, "units").iter().enumerate() {
        let total = u["machines"].as_array().map_or(0, Vec::len) as u64;
        let healthy = u["healthy"].as_u64().unwrap_or(0);
        let phase = u["phase"].as_str().unwrap_or_default();
        let shown = if phase == "done" { total } else { healthy };
        out.push_str(&format!(
            "  unit {:>3} {} {shown}/{total} Healthy on the new version (needs {})  {phase}\n",
            i + 1,
            bar(shown, total, 20),
            text(&u["needed"]),
        ));
    }
    if let Some(detail) = r["detail"].as_str().filter(|d| !d.is_empty()) {
        out.push_str(&format!("  {detail}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn machines_show_state_and_the_cap() {
        let v = json!({
            "machines": [
                {"id": "h1", "machine_type": "web", "state": "Probation", "since": 3661.0,
                 "action": "Reboot", "error": "disk", "replaced": false},
                {"id": "h2", "machine_type": "web", "state": "Probation", "since": 0.0,
                 "action": "Replace", "error": "", "replaced": true},
            ],
            "in_repair": 1,
            "repair_cap": 1,
        });
        let out = machines(&v);
        assert!(
            out.contains("h1  web   Probation  01:01:01  Reboot   disk"),
            "{out}"
        );
        assert!(out.contains("Replaced"), "{out}");
        assert!(
            out.ends_with("2 machine(s), 1 in repair (cap 1)\n"),
            "{out}"
        );
    }

    #[test]
    fn rollouts_show_a_bar_per_unit() {
        let v = json!({"rollout": {
            "id": 1, "state": "Running", "current_unit": 2, "previous_version": "1",
            "manifest": {"name": "web", "version": "2", "machine_type": "default"},
            "units": [
                {"machines": ["a", "b"], "healthy": 0, "needed": 2, "phase": "done"},
                {"machines": ["c", "d"], "healthy": 1, "needed": 2, "phase": "current"},
            ],
            "detail": "",
        }});
        let out = rollout(&v);
        assert!(out.contains("unit   1 [####################] 2/2"), "{out}");
        assert!(out.contains("unit   2 [##########----------] 1/2"), "{out}");
        assert!(
            out.starts_with("rollout 1: web 2 to type default (from 1)  Running  unit 2/2"),
            "{out}"
        );
    }
}
