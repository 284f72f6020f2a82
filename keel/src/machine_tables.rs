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
            out.contains("h1    web   Probation  01:01:01  Reboot   disk"),
            "{out}"
        );
        assert!(out.contains("Replaced"), "{out}");
        assert!(
            out.ends_with("2 machine(s), 1 in repair (cap 1)\n"),
            "{out}"
        );
    }
}
