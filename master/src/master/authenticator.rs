//! Authentication of agents and schedulers (challenge–response, see the `authentication`
//! crate) and the admission check every registration passes.
//!
//! Handles `AuthenticateMessage` (→ `AuthenticationChallengeMessage`) and
//! `AuthenticationResponseMessage` (→ `AuthenticationCompletedMessage` or
//! `AuthenticationFailedMessage`). A pid that completed is remembered with its principal until
//! its connection breaks. With `authenticate_agents` / `authenticate_frameworks` set, a
//! registration from any other pid is refused, and a framework may only register as the
//! principal it authenticated as.

use std::time::Duration;

use authentication::acls::Action;
use authentication::{roles, Credentials};
use libactor::{Context, Upid};
use protos::internal::{
    AuthenticateMessage, AuthenticationChallengeMessage, AuthenticationCompletedMessage,
    AuthenticationFailedMessage, AuthenticationResponseMessage,
};

use super::Master;

/// Challenges outstanding at once; more are refused (a flood of AuthenticateMessages).
pub const MAX_PENDING_CHALLENGES: usize = 10_000;
/// How long a challenge may go unanswered.
pub const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(15);

/// What the master requires of the processes that register with it.
#[derive(Debug, Clone, Default)]
pub struct AuthenticationPolicy {
    /// Principals and secrets (`--credentials`); `None` refuses every authentication attempt.
    pub credentials: Option<Credentials>,
    /// Agents must authenticate before registering.
    pub agents: bool,
    /// Schedulers must authenticate before registering their framework.
    pub frameworks: bool,
    /// Who may register in which role and run tasks as which user (`--acls`).
    pub acls: authentication::acls::Acls,
}

/// The pids that authenticated with the master, with their principal, readable beside it (the
/// device manager admits a repair service only once it has authenticated).
#[derive(Debug, Clone, Default)]
pub struct Principals(std::sync::Arc<dashmap::DashMap<Upid, String, crate::fast_hash::FastHasher>>);

impl Principals {
    /// The principal `pid` authenticated as, if it did (and its connection still holds).
    pub fn of(&self, pid: &Upid) -> Option<String> {
        self.0.get(pid).map(|p| p.value().clone())
    }

    fn insert(&self, pid: Upid, principal: String) {
        self.0.insert(pid, principal);
    }

    fn remove(&self, pid: &Upid) {
        self.0.remove(pid);
    }
}

/// Who is registering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Registrant {
    Agent,
    Framework,
}

impl Master {
    pub(super) fn authenticate(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: AuthenticateMessage,
    ) {
        if self.auth.challenges.len() >= MAX_PENDING_CHALLENGES {
            self.metrics.inc(|m| &m.authentication_failures);
            ctx.send(
                &from,
                AuthenticationFailedMessage {
                    reason: "too many authentications in progress; retry later".into(),
                },
            );
            return;
        }
        // A challenge goes out even for an unknown principal, so that the answer does not say
        // which principals exist; the proof then fails.
        let nonce = authentication::nonce();
        self.auth.authenticated.remove(&from);
        self.auth
            .challenges
            .insert(from.clone(), (msg.principal, nonce.clone()));
        ctx.send(
            &from,
            AuthenticationChallengeMessage {
                nonce: nonce.clone().into(),
            },
        );
        ctx.delay(CHALLENGE_TIMEOUT, move |m: &mut Master, _| {
            if m.auth
                .challenges
                .get(&from)
                .is_some_and(|(_, n)| *n == nonce)
            {
                m.auth.challenges.remove(&from);
            }
        });
    }

    pub(super) fn authentication_response(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: AuthenticationResponseMessage,
    ) {
        let Some((principal, nonce)) = self.auth.challenges.remove(&from) else {
            self.metrics.inc(|m| &m.invalid_messages);
            return;
        };
        let secret = self
            .auth
            .policy
            .credentials
            .as_ref()
            .and_then(|c| c.secret(&principal));
        let ok = secret.is_some_and(|s| authentication::verify(s, &nonce, from.as_str(), &msg.mac));
        if ok {
            tracing::info!(%from, %principal, "authenticated");
            ctx.link(&from);
            self.auth.authenticated.insert(from.clone(), principal);
            ctx.send(&from, AuthenticationCompletedMessage {});
        } else {
            self.metrics.inc(|m| &m.authentication_failures);
            tracing::warn!(%from, %principal, "authentication failed");
            ctx.send(
                &from,
                AuthenticationFailedMessage {
                    reason: "unknown principal or wrong secret".into(),
                },
            );
        }
    }

    /// Whether `from` may register as `who` (claiming `principal`, for frameworks). `Ok` holds
    /// the principal the registrant proved, if it did.
    ///
    /// Who may register: on a secure master, a sender whose connection proved the `agent` or
    /// `framework` role, under the principal of its certificate (a framework naming another
    /// principal is refused); otherwise a pid that authenticated with a credential when the
    /// policy asks for it.
    pub(super) fn admit(
        &self,
        ctx: &Context<Self>,
        from: &Upid,
        who: Registrant,
        principal: &str,
    ) -> Result<Option<String>, String> {
        // A process of the master's own node (the v1 HTTP API's framework adapters) proved
        // its client's principal over HTTP before registering it.
        if ctx.sender_is_local() {
            return Ok(Some(principal.to_owned()).filter(|p| !p.is_empty()));
        }
        if ctx.node().is_secure() {
            let role = match who {
                Registrant::Agent => roles::AGENT,
                Registrant::Framework => roles::FRAMEWORK,
            };
            if !ctx.authorize(role) {
                return Err(format!("{from} has not proven the {role} role"));
            }
            let proven = ctx
                .sender_identity()
                .map(|i| i.principal().to_owned())
                .unwrap_or_default();
            if who == Registrant::Framework && !principal.is_empty() && principal != proven {
                return Err(format!(
                    "framework principal {principal:?} is not the proven principal {proven:?}"
                ));
            }
            return Ok(Some(proven));
        }
        let authenticated = self.auth.authenticated.of(from);
        let required = match who {
            Registrant::Agent => self.auth.policy.agents,
            Registrant::Framework => self.auth.policy.frameworks,
        };
        match (&authenticated, required) {
            (None, true) => Err(format!("{from} has not authenticated")),
            (Some(p), _)
                if who == Registrant::Framework && !principal.is_empty() && p != principal =>
            {
                Err(format!(
                    "framework principal {principal:?} is not the authenticated principal {p:?}"
                ))
            }
            _ => Ok(authenticated),
        }
    }

    /// Why `principal` may not do `action` to `object` under `--acls`, if it may not.
    pub(super) fn acls_refusal(
        &self,
        action: Action,
        principal: Option<&str>,
        object: &str,
    ) -> Option<String> {
        if self.auth.policy.acls.permits(action, principal, object) {
            return None;
        }
        let what = match action {
            Action::RegisterFramework => "register frameworks in role",
            Action::RunTask => "run tasks as user",
            Action::TeardownFramework => "tear down frameworks of principal",
            Action::ViewFramework => "view frameworks of user",
            Action::ViewTask => "view tasks of user",
            Action::AccessSandbox => "read sandboxes of user",
            Action::GetEndpoint => "call endpoint",
            Action::MarkAgentGone => "mark agents gone",
        };
        Some(format!(
            "principal {:?} may not {what} {object:?} (--acls)",
            principal.unwrap_or("")
        ))
    }

    /// Whether the message being handled comes from `principal`, as its connection proved.
    /// Always true on an insecure master (nothing is proven there), and for an entry admitted
    /// without a principal.
    pub(super) fn proven_as(&self, ctx: &Context<Self>, principal: Option<&str>) -> bool {
        let Some(principal) = principal.filter(|p| !p.is_empty()) else {
            return true;
        };
        if !ctx.node().is_secure() || ctx.sender_is_local() {
            return true;
        }
        let proven = ctx.sender_identity().map(|i| i.principal());
        if proven == Some(principal) {
            return true;
        }
        self.metrics.inc(|m| &m.invalid_messages);
        tracing::warn!(
            expected = principal,
            proven = proven.unwrap_or("(none)"),
            "refused a message: its connection proved another principal"
        );
        false
    }

    /// Forgets a pid's authentication (its connection broke).
    pub(super) fn forget_authentication(&mut self, pid: &Upid) {
        self.auth.authenticated.remove(pid);
        self.auth.challenges.remove(pid);
    }
}
