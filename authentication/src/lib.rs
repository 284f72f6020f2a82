//! How agents and frameworks prove who they are to the Keel master (Mesos's authentication,
//! with HMAC-SHA256 in place of CRAM-MD5).
//!
//! The master keeps a [`Credentials`] table (principal → secret, from `--credentials FILE`);
//! each client holds one [`Credential`]. A client sends `AuthenticateMessage{principal}`; the
//! master answers with a fresh [`nonce`]; the client returns [`proof`]`(secret, nonce, its pid)`;
//! the master [`verify`]s it in constant time. The secret never crosses the wire, a proof is
//! bound to one nonce and one pid (it cannot be replayed or used from another process), and
//! secrets never reach logs: [`Credential`]'s `Debug` redacts them. [`Authenticatee`] is the
//! client's side, shared by agents and scheduler drivers.
//!
//! ```
//! use authentication::{nonce, proof, verify, Credentials};
//!
//! let table = Credentials::parse("ops s3cret\n# comment\nagent other").unwrap();
//! let secret = table.secret("ops").unwrap();
//! let n = nonce();
//! let mac = proof(secret, &n, "scheduler(1)@127.0.0.1:4000");
//! assert!(verify(secret, &n, "scheduler(1)@127.0.0.1:4000", &mac));
//! assert!(!verify(secret, &n, "scheduler(2)@127.0.0.1:4000", &mac), "bound to the pid");
//! assert!(!format!("{:?}", table).contains("s3cret"));
//! ```

pub mod acls;
mod authenticatee;
pub mod digest;
pub mod operator;
pub mod os_user;
pub mod roles;

pub use authenticatee::{Authenticatee, AuthenticationState};
mod http_basic;
pub use http_basic::{basic_authorization, BasicAuthError};

use std::collections::BTreeMap;
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Bytes of a challenge nonce.
pub const NONCE_BYTES: usize = 32;
/// Longest principal or secret accepted, so a credentials file cannot be made enormous.
pub const MAX_FIELD_BYTES: usize = 1024;

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read credentials file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A line is not `principal secret`.
    #[error("credentials line {line}: expected `principal secret`")]
    Malformed {
        /// 1-based line number (never the line itself: it holds a secret).
        line: usize,
    },
    /// A field is too long.
    #[error("credentials line {line}: a field is longer than {MAX_FIELD_BYTES} bytes")]
    TooLong {
        /// 1-based line number.
        line: usize,
    },
    /// No credential at all.
    #[error("the credentials file holds no credential")]
    Empty,
    /// A role that does not exist.
    #[error("credentials line {line}: unknown role {role:?}")]
    UnknownRole {
        /// 1-based line number.
        line: usize,
        /// The role named.
        role: String,
    },
}

/// One principal and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Who.
    pub principal: String,
    /// The shared secret.
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Credential {
    /// The first credential of a file in [`Credentials::parse`]'s format (an agent's or a
    /// framework's `--credential`).
    pub fn from_file(path: &Path) -> Result<Credential, CredentialsError> {
        Credentials::from_file(path)?
            .entries
            .into_iter()
            .next()
            .map(|(principal, secret)| Credential { principal, secret })
            .ok_or(CredentialsError::Empty)
    }
}

/// The master's table of principals, their secrets and the roles each may act in.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    entries: BTreeMap<String, String>,
    /// Roles by principal; a principal listed without roles acts in every role.
    roles: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

impl Credentials {
    /// `principal secret [role,role…]` per line (roles from [`roles::ALL`]; a principal
    /// without any acts in every role); blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        let mut table = Credentials::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(principal), Some(secret), roles, None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(CredentialsError::Malformed { line: i + 1 });
            };
            if principal.len() > MAX_FIELD_BYTES || secret.len() > MAX_FIELD_BYTES {
                return Err(CredentialsError::TooLong { line: i + 1 });
            }
            if let Some(roles) = roles {
                let roles: Vec<String> = roles.split(',').map(str::to_owned).collect();
                if let Some(unknown) = roles.iter().find(|r| !roles::ALL.contains(&r.as_str())) {
                    return Err(CredentialsError::UnknownRole {
                        line: i + 1,
                        role: unknown.clone(),
                    });
                }
                table.roles.insert(principal.to_owned(), roles);
            }
            table
                .entries
                .insert(principal.to_owned(), secret.to_owned());
        }
        if table.entries.is_empty() {
            return Err(CredentialsError::Empty);
        }
        Ok(table)
    }

    /// Whether `principal` may act in `role`: it is listed with that role, or listed without
    /// roles.
    pub fn has_role(&self, principal: &str, role: &str) -> bool {
        self.entries.contains_key(principal)
            && self
                .roles
                .get(principal)
                .is_none_or(|roles| roles.iter().any(|r| r == role))
    }

    /// Reads and parses a credentials file.
    pub fn from_file(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|error| CredentialsError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Credentials::parse(&text)
    }

    /// A table holding one credential, in every role.
    pub fn single(credential: &Credential) -> Credentials {
        Credentials {
            entries: [(credential.principal.clone(), credential.secret.clone())].into(),
            roles: BTreeMap::new(),
        }
    }

    /// The secret of `principal`.
    pub fn secret(&self, principal: &str) -> Option<&str> {
        self.entries.get(principal).map(String::as_str)
    }

    /// The principals, for logs.
    pub fn principals(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// A fresh random challenge.
pub fn nonce() -> Vec<u8> {
    let mut n = vec![0u8; NONCE_BYTES];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

fn mac(secret: &str, nonce: &[u8], pid: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(nonce);
    mac.update(&[0]);
    mac.update(pid.as_bytes());
    mac
}

/// The client's answer to `nonce`: HMAC-SHA256(secret, nonce ‖ 0 ‖ pid).
pub fn proof(secret: &str, nonce: &[u8], pid: &str) -> Vec<u8> {
    mac(secret, nonce, pid).finalize().into_bytes().to_vec()
}

/// Whether `answer` proves knowledge of `secret` for this nonce and pid (constant time).
pub fn verify(secret: &str, nonce: &[u8], pid: &str, answer: &[u8]) -> bool {
    mac(secret, nonce, pid).verify_slice(answer).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_are_reported_by_number_without_their_text() {
        let err = Credentials::parse("ok secret\nonlyone\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "credentials line 2: expected `principal secret`"
        );
        assert!(matches!(
            Credentials::parse("# nothing\n"),
            Err(CredentialsError::Empty)
        ));
        assert!(Credentials::parse("a b c d").is_err());
        assert!(matches!(
            Credentials::parse("a b wizard"),
            Err(CredentialsError::UnknownRole { line: 1, .. })
        ));
    }

    #[test]
    fn roles_limit_a_principal_and_no_roles_means_all() {
        let table = Credentials::parse("ops s1 operator\nfw s2 framework,agent\nold s3\n").unwrap();
        assert!(table.has_role("ops", roles::OPERATOR));
        assert!(
            !table.has_role("fw", roles::OPERATOR),
            "a framework's credential is no operator"
        );
        assert!(table.has_role("fw", roles::AGENT));
        assert!(table.has_role("old", roles::OPERATOR));
        assert!(!table.has_role("nobody", roles::FRAMEWORK));
    }

    #[test]
    fn a_wrong_secret_or_nonce_fails() {
        let n = nonce();
        let p = proof("right", &n, "x@127.0.0.1:1");
        assert!(!verify("wrong", &n, "x@127.0.0.1:1", &p));
        assert!(!verify("right", &nonce(), "x@127.0.0.1:1", &p));
        assert!(!verify("right", &n, "x@127.0.0.1:1", &p[..10]));
    }
}
