//! Reading Autopilot's device manager from tests: a machine's record and its repairs.

use libactor::Upid;
use serde_json::Value;

/// `GET path` on the node of `pid` as JSON, or `None` while it does not answer.
pub async fn get(pid: &Upid, path: &str) -> Option<Value> {
    libactor::http_client::get_json(pid.address(), path)
        .await
        .ok()
}

/// The repair actions of a machine's failures (`/device-manager/machine` JSON), in order.
pub fn repair_actions(machine: &Value) -> Vec<String> {
    machine["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["state"] == "Failure")
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}
