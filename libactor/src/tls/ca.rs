//! A cluster certificate authority: one self-signed CA per cluster that issues each node and
//! principal a certificate in the layout [`super::identity`] reads. `keelctl ca` and
//! `keel-local` use it; nothing here touches the network.

use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use super::identity::ROLE_URI_PREFIX;
use super::TlsError;

/// How long a CA made by [`ClusterCa::generate`] is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long an issued certificate is valid unless asked otherwise.
pub const CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Clock skew tolerated between the issuer and the nodes: certificates start this long before
/// they are issued.
const BACKDATE: Duration = Duration::from_secs(3600);

/// A cluster CA: its certificate and signing key.
pub struct ClusterCa {
    cert: Certificate,
    key: KeyPair,
    /// The CA certificate as first written: what nodes trust, kept byte for byte.
    cert_pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (never logged: `Debug` leaves it out).
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// What a certificate is issued for.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// The principal (subject common name).
    pub principal: &'a str,
    /// Roles the principal acts in.
    pub roles: &'a [&'a str],
    /// IPs and DNS names the holder's node may advertise (and serve TLS as).
    pub hosts: &'a [&'a str],
    /// Valid from `now - 1 h` for this long.
    pub validity: Duration,
}

impl<'a> CertRequest<'a> {
    /// A request valid for [`CERT_VALIDITY`].
    pub fn new(principal: &'a str, roles: &'a [&'a str], hosts: &'a [&'a str]) -> Self {
        CertRequest {
            principal,
            roles,
            hosts,
            validity: CERT_VALIDITY,
        }
    }
}

impl ClusterCa {
    /// A new CA named `name`, with a fresh ECDSA P-256 key.
    pub fn generate(name: &str) -> Result<ClusterCa, TlsError> {
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key).map_err(rcgen_error)?;
        let cert_pem = cert.pem();
        Ok(ClusterCa {
            cert,
            key,
            cert_pem,
        })
    }

    /// A CA from its certificate and key, as [`ClusterCa::cert_pem`] and
    /// [`ClusterCa::key_pem`] wrote them.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        // Re-signing yields a certificate with the same subject and key: what it issues
        // verifies against the original, which is what nodes keep trusting.
        let cert = params.self_signed(&key).map_err(rcgen_error)?;
        Ok(ClusterCa {
            cert,
            key,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// The CA certificate, PEM: what every node and client trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PEM. Whoever holds it can mint any identity: keep it off nodes.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a certificate for `request`, with a fresh key.
    pub fn issue(&self, request: &CertRequest<'_>) -> Result<IssuedCert, TlsError> {
        let now = OffsetDateTime::now_utc();
        self.issue_between(request, now - BACKDATE, now + request.validity)
    }

    /// Issues a certificate valid from `not_before` to `not_after` (tests use it for expired
    /// certificates).
    pub fn issue_between(
        &self,
        request: &CertRequest<'_>,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<IssuedCert, TlsError> {
        if request.principal.is_empty() {
            return Err(TlsError::Certificate("a principal cannot be empty".into()));
        }
        let hosts: Vec<String> = request.hosts.iter().map(|h| (*h).to_owned()).collect();
        let mut params = CertificateParams::new(hosts).map_err(rcgen_error)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, request.principal);
        for role in request.roles {
            let uri = format!("{ROLE_URI_PREFIX}{role}");
            let uri = uri.try_into().map_err(rcgen_error)?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(rcgen_error)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn rcgen_error(e: rcgen::Error) -> TlsError {
    TlsError::Certificate(e.to_string())
}
