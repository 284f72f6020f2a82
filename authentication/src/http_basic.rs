//! HTTP Basic authentication for operator endpoints (`Authorization: Basic base64(p:s)`),
//! checked against the master's credentials. Meant for loopback or TLS-terminated links, as
//! Mesos's operator endpoints use it.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::{Credential, Credentials};

/// Why an `Authorization` header was refused (the reason never includes the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BasicAuthError {
    /// No header at all.
    #[error("authentication required (Authorization: Basic)")]
    Missing,
    /// Not `Basic <base64 of principal:secret>`.
    #[error("malformed Authorization header")]
    Malformed,
    /// Unknown principal or wrong secret.
    #[error("wrong principal or secret")]
    Refused,
}

/// The `Authorization` header value proving `credential`.
pub fn basic_authorization(credential: &Credential) -> String {
    let raw = format!("{}:{}", credential.principal, credential.secret);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

impl Credentials {
    /// The principal an `Authorization` header proves, if it does.
    pub fn check_basic(&self, header: Option<&str>) -> Result<String, BasicAuthError> {
        let header = header.ok_or(BasicAuthError::Missing)?;
        let encoded = header
            .strip_prefix("Basic ")
            .ok_or(BasicAuthError::Malformed)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| BasicAuthError::Malformed)?;
        let text = String::from_utf8(decoded).map_err(|_| BasicAuthError::Malformed)?;
        let (principal, secret) = text.split_once(':').ok_or(BasicAuthError::Malformed)?;
        let expected = self.secret(principal).ok_or(BasicAuthError::Refused)?;
        // Digests compared, so the time taken says nothing about how much of the secret matched.
        if Sha256::digest(expected.as_bytes()) == Sha256::digest(secret.as_bytes()) {
            Ok(principal.to_owned())
        } else {
            Err(BasicAuthError::Refused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_proves_its_principal_and_nothing_else_passes() {
        let ops = Credential {
            principal: "ops".into(),
            secret: "s3cret".into(),
        };
        let table = Credentials::single(&ops);
        assert_eq!(
            table.check_basic(Some(&basic_authorization(&ops))),
            Ok("ops".into())
        );
        let wrong = Credential {
            secret: "guess".into(),
            ..ops.clone()
        };
        assert_eq!(
            table.check_basic(Some(&basic_authorization(&wrong))),
            Err(BasicAuthError::Refused)
        );
        assert_eq!(table.check_basic(None), Err(BasicAuthError::Missing));
        assert_eq!(
            table.check_basic(Some("Bearer x")),
            Err(BasicAuthError::Malformed)
        );
        assert_eq!(
            table.check_basic(Some("Basic !!!")),
            Err(BasicAuthError::Malformed)
        );
    }
}
