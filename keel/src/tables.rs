//! keelctl's human output: compact tables built from the master's `/master/state` JSON.

use serde_json::Value;

/// Lays `rows` out under `headers` in left-aligned columns.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.clone()));
        out.push('\n');
    }
    out
}

/// A JSON value as a table cell (`-` for null).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `cpus:2 mem:2048 …` from a resources object.
pub fn resources(v: &Value) -> String {
    let Some(map) = v.as_object() else {
        return "-".into();
    };
    let mut parts: Vec<String> = map
        .iter()
        .map(|(k, v)| match v {
            Value::Number(n) => format!(
                "{k}:{}",
                n.as_f64().map_or(n.to_string(), |f| format!("{f}"))
            ),
            other => format!("{k}:{}", text(other)),
        })
        .collect();
    parts.sort();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

fn list<'a>(state: &'a Value, key: &str) -> &'a [Value] {
    state[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Agents: id, hostname, total, used, offered.
pub fn agents(state: &Value) -> String {
    let rows: Vec<Vec<String>> = list(state, "slaves")
        .iter()
        .map(|a| {
            vec![
                text(&a["id"]),
                text(&a["hostname"]),
                resources(&a["resources"]),
                resources(&a["used_resources"]),
                resources(&a["offered_resources"]),
            ]
        })
        .collect();
    render(&["ID", "HOSTNAME", "RESOURCES", "USED", "OFFERED"], &rows)
}

/// Frameworks: id, name, role, active, task count, used.
pub fn frameworks(state: &Value) -> String {
    let rows: Vec<Vec<String>> = list(state, "frameworks")
        .iter()
        .map(|f| {
            vec![
                text(&f["id"]),
                text(&f["name"]),
                text(&f["role"]),
                text(&f["active"]),
                list(f, "tasks").len().to_string(),
                resources(&f["used_resources"]),
            ]
        })
        .collect();
    render(&["ID", "NAME", "ROLE", "ACTIVE", "TASKS", "USED"], &rows)
}

/// Tasks of every framework: id, framework, agent, state, resources.
pub fn tasks(state: &Value) -> String {
    let rows: Vec<Vec<String>> = list(state, "frameworks")
        .iter()
        .flat_map(|f| list(f, "tasks"))
        .map(|t| {
            vec![
                text(&t["id"]),
                text(&t["framework_id"]),
                text(&t["slave_id"]),
                text(&t["state"]),
                resources(&t["resources"]),
            ]
        })
        .collect();
    render(&["ID", "FRAMEWORK", "AGENT", "STATE", "RESOURCES"], &rows)
}

/// Shared-state scheduling: the cell's epoch, version and subscribers, then the latest
/// transactions with what became of their placements.
pub fn transactions(state: &Value) -> String {
    let omega = &state["omega"];
    let subscribers: Vec<String> = list(omega, "subscribers").iter().map(text).collect();
    let rows: Vec<Vec<String>> = list(omega, "recent_transactions")
        .iter()
        .map(|t| {
            let outcome = match t["error"].as_str() {
                Some(error) => format!("refused: {error}"),
                None => String::new(),
            };
            vec![
                text(&t["framework_id"]),
                text(&t["transaction_id"]),
                text(&t["placements"]),
                text(&t["committed"]),
                text(&t["conflicted"]),
                text(&t["refused"]),
                text(&t["preempting"]),
                text(&t["commit_micros"]),
                outcome,
            ]
        })
        .collect();
    format!(
        "cell {} at version {}; subscribers: {}\n{}",
        text(&omega["epoch"]),
        text(&omega["version"]),
        if subscribers.is_empty() {
            "none".to_owned()
        } else {
            subscribers.join(", ")
        },
        render(
            &[
                "FRAMEWORK",
                "TRANSACTION",
                "PLACEMENTS",
                "COMMITTED",
                "CONFLICTED",
                "REFUSED",
                "PREEMPTING",
                "MICROS",
                "",
            ],
            &rows
        )
    )
}

/// A one-screen summary: the master, then agents, frameworks and tasks.
pub fn summary(state: &Value) -> String {
    let tasks: usize = list(state, "frameworks")
        .iter()
        .map(|f| list(f, "tasks").len())
        .sum();
    format!(
        "master {} (id {})\n{} agents, {} frameworks, {} live tasks\n\nAGENTS\n{}\nFRAMEWORKS\n{}",
        text(&state["pid"]),
        text(&state["id"]),
        list(state, "slaves").len(),
        list(state, "frameworks").len(),
        tasks,
        agents(state),
        frameworks(state)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let out = render(
            &["ID", "NAME"],
            &[
                vec!["a".into(), "x".into()],
                vec!["long-id".into(), "y".into()],
            ],
        );
        assert_eq!(out, "ID       NAME\na        x\nlong-id  y\n");
    }

    #[test]
    fn agents_table_reads_the_state_shape() {
        let state = serde_json::json!({"slaves": [{"id": "S1", "hostname": "h",
            "resources": {"cpus": 2.0, "ports": "[1-2]"}, "used_resources": {}, "offered_resources": {"cpus": 2.0}}]});
        let out = agents(&state);
        let row: Vec<&str> = out
            .lines()
            .nth(1)
            .unwrap()
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            row,
            ["S1", "h", "cpus:2 ports:[1-2]", "-", "cpus:2"],
            "{out}"
        );
    }
}
