//! Machine reliability for the shared-state service scheduler, followed from Autopilot's device
//! manager (`/device-manager/machines` on the master's node, each machine's `reliability`):
//! refreshed every [`REFRESH`] in the background, read by hostname without waiting.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use frameworks::examples::omega_service::Reliability;
use serde_json::Value;

/// How often the scores are read again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Scores by hostname, kept fresh while this lives.
pub struct MachineReliability {
    scores: Arc<RwLock<HashMap<String, i64>>>,
    refresher: tokio::task::JoinHandle<()>,
}

impl MachineReliability {
    /// Follows the device manager on the node at `address` (host:port).
    pub fn follow(address: String) -> MachineReliability {
        let scores = Arc::new(RwLock::new(HashMap::new()));
        let shared = scores.clone();
        let refresher = tokio::spawn(async move {
            loop {
                match libactor::http_client::get_json(&address, "/device-manager/machines").await {
                    Ok(listing) => {
                        if let Ok(mut scores) = shared.write() {
                            *scores = scores_of(&listing);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "machine records not read"),
                }
                tokio::time::sleep(REFRESH).await;
            }
        });
        MachineReliability { scores, refresher }
    }

    /// The scores as the service scheduler reads them (0 for a machine not known yet).
    pub fn reliability(&self) -> Reliability {
        let scores = self.scores.clone();
        Arc::new(move |host: &str| {
            scores
                .read()
                .ok()
                .and_then(|s| s.get(host).copied())
                .unwrap_or(0)
        })
    }
}

impl Drop for MachineReliability {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// Each live (not replaced) machine's score in a `/device-manager/machines` listing.
pub fn scores_of(listing: &Value) -> HashMap<String, i64> {
    listing["machines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["replaced"] != Value::Bool(true))
        .filter_map(|m| {
            Some((
                m["hostname"].as_str()?.to_owned(),
                m["reliability"].as_i64()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_come_from_the_listing_of_live_machines() {
        let listing = serde_json::json!({"machines": [
            {"hostname": "a", "reliability": 0, "replaced": false},
            {"hostname": "b", "reliability": -3, "replaced": false},
            {"hostname": "c", "reliability": -1000, "replaced": true},
            {"hostname": "d"},
        ]});
        let scores = scores_of(&listing);
        assert_eq!(scores.len(), 2);
        assert_eq!((scores["a"], scores["b"]), (0, -3));
    }
}
