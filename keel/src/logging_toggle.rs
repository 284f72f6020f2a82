//! `/logging/toggle` (libprocess's endpoint, on every master and agent): raises the logging
//! level for a while, as the v1 operator API's `SET_LOGGING_LEVEL` does
//! ([`libactor::log_level`]), from a query: `level=1&duration=10secs`.
//!
//! Who may call it: an operator — on a secure node a client certificate in the `operator`
//! role, on a node with `--credentials` HTTP Basic credentials of a principal in that role;
//! anyone on an insecure node without credentials (as Mesos without HTTP authentication).
//! Anything else gets 401 or 403 and is counted (`logging/toggle_refused`), as is a query
//! that is not one (400).

use authentication::Credentials;
use libactor::metrics::Counter;
use libactor::{Context, HttpRequest, HttpResponse, Node, Process, SpawnError};

/// The process id, so that its route is `/logging/toggle`.
pub const ID: &str = "logging";

/// The process serving `/logging/toggle`.
pub struct LoggingToggle {
    credentials: Option<Credentials>,
    refused: Option<Counter>,
}

impl LoggingToggle {
    /// Spawns it on `node`; `credentials` are the node's, whose principals in the `operator`
    /// role may call it with HTTP Basic.
    pub fn spawn(node: &Node, credentials: Option<Credentials>) -> Result<(), SpawnError> {
        node.spawn_ref(
            ID,
            LoggingToggle {
                credentials,
                refused: None,
            },
        )
        .map(|_| ())
    }

    fn toggle(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        let secure = ctx.node().is_secure();
        let answer = authentication::operator::operator_of(&req, self.credentials.as_ref(), secure)
            .map_err(|r| (r.status, r.why))
            .and_then(|operator| {
                let (level, duration) = query(&req).map_err(|why| (400, why))?;
                libactor::log_level::set_for(level, duration)
                    .map_err(|e| (e.http_status(), e.to_string()))?;
                tracing::info!(%operator, level, ?duration, "logging level toggled");
                Ok(())
            });
        match answer {
            Ok(()) => HttpResponse::text(200, ""),
            Err((status, why)) => {
                if let Some(refused) = &self.refused {
                    refused.inc();
                }
                tracing::warn!(status, %why, "refused /logging/toggle");
                HttpResponse::text(status, format!("{why}\n"))
            }
        }
    }
}

/// The level and duration a `/logging/toggle` query asks for, or why it is not one (in
/// libprocess's words).
fn query(req: &HttpRequest) -> Result<(u32, std::time::Duration), String> {
    let level = req
        .query_param("level")
        .ok_or("Expecting 'level=VALUE' in query.")?;
    let level: u32 = level
        .parse()
        .map_err(|_| format!("Invalid level '{level}'."))?;
    let duration = req
        .query_param("duration")
        .ok_or("Expecting 'duration=VALUE' in query.")?;
    let duration = protos::parse_mesos_duration(duration)
        .ok_or_else(|| format!("Invalid duration '{duration}' (e.g. 10secs, 15mins, 1hrs)."))?;
    Ok((level, duration))
}

impl Process for LoggingToggle {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        self.refused = Some(ctx.metrics().counter("logging/toggle_refused"));
        ctx.route("/toggle", Self::toggle);
    }
}
