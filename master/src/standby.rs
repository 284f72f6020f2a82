//! What a master that does not lead runs at `master@ip:port` (Mesos's standby masters): HTTP
//! requests for any master endpoint are redirected (307) to the leader, or answered 503 while
//! no master leads; actor messages are not for a standby and are dropped (libactor counts
//! them as `dropped_unknown_message`). Agents and frameworks find the leader through the
//! detector, not through a standby.

use libactor::context::FALLBACK_ROUTE;
use libactor::{Context, HttpRequest, HttpResponse, Process};

/// A standby master's process.
#[derive(Debug, Default)]
pub struct StandbyMaster {
    /// `http://ip:port` of the leading master, when one leads.
    leader: Option<String>,
}

impl StandbyMaster {
    /// A standby that knows no leader yet.
    pub fn new() -> Self {
        StandbyMaster::default()
    }

    /// Records the leading master's HTTP base (`http://ip:port`), or that none leads.
    pub fn set_leader(&mut self, _ctx: &mut Context<Self>, leader: Option<String>) {
        self.leader = leader;
    }

    fn redirect(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        let Some(leader) = &self.leader else {
            return HttpResponse::text(503, "this master is a standby and no master leads yet\n");
        };
        let mut location = format!("{leader}/{}{}", ctx.pid().id(), req.path);
        for (i, (k, v)) in req.query.iter().enumerate() {
            location.push(if i == 0 { '?' } else { '&' });
            location.push_str(&query_escape(k));
            location.push('=');
            location.push_str(&query_escape(v));
        }
        HttpResponse::text(
            307,
            format!("this master is a standby; the leader is at {leader}\n"),
        )
        .with_header("Location", &location)
    }
}

/// Percent-encodes what a query component may not carry as is.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Process for StandbyMaster {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.route(FALLBACK_ROUTE, Self::redirect);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_escaped() {
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd/%C3%A9");
    }
}
