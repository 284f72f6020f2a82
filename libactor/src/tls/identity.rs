//! Who a certificate says its holder is: a principal, the roles it acts in, and the hosts its
//! node may advertise. The certificate layout is defined here, beside the code that reads it,
//! and [`super::ca`] writes exactly this layout:
//!
//! - subject common name: the principal (`master`, `agent-3`, `ops`);
//! - one URI subject alternative name `urn:keel:role:<role>` per role;
//! - IP and DNS subject alternative names: the hosts the node may put in its UPIDs (they also
//!   make the certificate valid for TLS server names, so one certificate serves both ends).

use std::net::IpAddr;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::Host;

/// Prefix of the URI subject alternative names that carry roles.
pub(crate) const ROLE_URI_PREFIX: &str = "urn:keel:role:";

/// A proven identity: what a certificate, verified against the cluster CA, says about its
/// holder. Connections carry the peer's; handlers ask it through
/// [`crate::Context::sender_identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    principal: String,
    roles: Vec<String>,
    ips: Vec<IpAddr>,
    names: Vec<String>,
}

/// Why a certificate does not describe an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The DER does not parse as an X.509 certificate.
    #[error("certificate does not parse: {0}")]
    Parse(String),
    /// No common name, or one that is not text.
    #[error("certificate has no principal (subject common name)")]
    NoPrincipal,
}

impl Identity {
    /// An identity built directly (tests; processes that hold no certificate).
    pub fn new(principal: &str, roles: &[&str], hosts: &[&str]) -> Identity {
        let mut identity = Identity {
            principal: principal.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ips: Vec::new(),
            names: Vec::new(),
        };
        for host in hosts {
            match host.parse::<IpAddr>() {
                Ok(ip) => identity.ips.push(ip),
                Err(_) => identity.names.push(host.to_ascii_lowercase()),
            }
        }
        identity.roles.sort();
        identity.roles.dedup();
        identity
    }

    /// Reads the identity from a DER certificate (already verified by the TLS handshake).
    pub fn from_der(der: &[u8]) -> Result<Identity, IdentityError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| IdentityError::Parse(e.to_string()))?;
        let principal = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .filter(|cn| !cn.is_empty())
            .ok_or(IdentityError::NoPrincipal)?
            .to_owned();
        let mut identity = Identity {
            principal,
            roles: Vec::new(),
            ips: Vec::new(),
            names: Vec::new(),
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(uri) => {
                        if let Some(role) = uri.strip_prefix(ROLE_URI_PREFIX) {
                            identity.roles.push(role.to_owned());
                        }
                    }
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            identity.ips.push(ip);
                        }
                    }
                    GeneralName::DNSName(dns) => identity.names.push(dns.to_ascii_lowercase()),
                    _ => {}
                }
            }
        }
        identity.roles.sort();
        identity.roles.dedup();
        Ok(identity)
    }

    /// The principal: who this is, for ACLs, logs and audit.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The roles, sorted.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether the identity acts in `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether a node holding this identity may advertise `host` in its UPIDs.
    pub fn may_advertise(&self, host: &Host) -> bool {
        match host {
            Host::Ip(ip) => self.ips.contains(ip),
            Host::Name(name) => self.names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        }
    }

    /// The hosts named in the certificate, as text (for errors and `/__node__`).
    pub fn hosts(&self) -> Vec<String> {
        self.ips
            .iter()
            .map(IpAddr::to_string)
            .chain(self.names.iter().cloned())
            .collect()
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.principal, self.roles.join(","))
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}
