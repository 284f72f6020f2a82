//! The client's side of authentication, shared by the agent and the scheduler driver: which
//! message to send at each step, and whether the master has accepted the proof.

use protos::internal::{AuthenticateMessage, AuthenticationResponseMessage};

use crate::{proof, Credential};

/// Where a client is in authenticating with its current master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticationState {
    /// Nothing sent yet (or the connection to the master broke).
    NotStarted,
    /// `AuthenticateMessage` sent; waiting for the challenge or the verdict.
    InProgress,
    /// The master accepted the proof.
    Authenticated,
    /// The master refused; the reason it gave.
    Failed(String),
}

/// A client with a credential, authenticating with one master at a time.
#[derive(Debug, Clone)]
pub struct Authenticatee {
    credential: Credential,
    state: AuthenticationState,
}

impl Authenticatee {
    /// A client that will authenticate as `credential`.
    pub fn new(credential: Credential) -> Self {
        Authenticatee {
            credential,
            state: AuthenticationState::NotStarted,
        }
    }

    /// The principal it authenticates as.
    pub fn principal(&self) -> &str {
        &self.credential.principal
    }

    /// Where it stands.
    pub fn state(&self) -> &AuthenticationState {
        &self.state
    }

    /// Whether the master accepted it.
    pub fn is_authenticated(&self) -> bool {
        self.state == AuthenticationState::Authenticated
    }

    /// Starts (or restarts) an attempt: the message to send to the master.
    pub fn begin(&mut self) -> AuthenticateMessage {
        self.state = AuthenticationState::InProgress;
        AuthenticateMessage {
            principal: self.credential.principal.clone(),
        }
    }

    /// The answer to the master's challenge, proving the secret for this client's `own_pid`.
    pub fn answer(&self, nonce: &[u8], own_pid: &str) -> AuthenticationResponseMessage {
        AuthenticationResponseMessage {
            mac: proof(&self.credential.secret, nonce, own_pid).into(),
        }
    }

    /// The master accepted the proof.
    pub fn completed(&mut self) {
        self.state = AuthenticationState::Authenticated;
    }

    /// The master refused.
    pub fn failed(&mut self, reason: &str) {
        self.state = AuthenticationState::Failed(reason.to_owned());
    }

    /// The connection to the master broke, or the master changed: authenticate again.
    pub fn reset(&mut self) {
        self.state = AuthenticationState::NotStarted;
    }
}
