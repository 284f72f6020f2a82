//! A framework changes its `FrameworkInfo` while subscribed (the v1 scheduler API's
//! `UPDATE_FRAMEWORK`), as Mesos allows: `name`, `hostname`, `webui_url`, `labels`,
//! `failover_timeout` and `capabilities` change in place and show at once in the state
//! endpoints and operator events; `principal`, `user` and `checkpoint` may not change (`400`),
//! and Keel does not move a framework to another role (`400` saying so).
//!
//! Who may: the framework's subscriber, checked by the API process before it asks.

use super::{Master, OperatorRefusal};
use protos::v1::FrameworkInfo;

impl Master {
    /// Applies `info` to framework `id` (see the module docs).
    pub fn update_framework(
        &mut self,
        id: &str,
        info: FrameworkInfo,
    ) -> Result<(), OperatorRefusal> {
        let bad = |why: String| OperatorRefusal { status: 400, why };
        let Some(entry) = self.books.framework_mut(id) else {
            return Err(bad(format!("framework {id} is not registered")));
        };
        let current = &entry.info;
        // The principal is the one proven at subscription; an empty one means "unchanged".
        if !info.principal.is_empty() && info.principal != current.principal {
            return Err(bad("'principal' cannot be changed".into()));
        }
        if info.user != current.user {
            return Err(bad("'user' cannot be changed".into()));
        }
        if info.checkpoint != current.checkpoint {
            return Err(bad("'checkpoint' cannot be changed".into()));
        }
        if super::role_of(&info) != super::role_of(current) || info.roles != current.roles {
            return Err(bad(
                "Keel does not move a framework to other roles: re-register it".into(),
            ));
        }
        let updated = FrameworkInfo {
            name: info.name,
            hostname: info.hostname,
            webui_url: info.webui_url,
            labels: info.labels,
            failover_timeout: info.failover_timeout,
            capabilities: info.capabilities,
            ..current.clone()
        };
        tracing::info!(framework = %id, name = %updated.name, "framework updated");
        entry.info = updated;
        self.books.framework_updated(id);
        Ok(())
    }
}
