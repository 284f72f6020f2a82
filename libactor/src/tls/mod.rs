//! Mutual TLS between nodes: every connection proves who is at each end.
//!
//! A secure node ([`crate::NodeBuilder::tls`]) holds a [`TlsConfig`]: the cluster CA it trusts
//! and its own certificate and key. Its listener accepts TLS (and, for HTTP only, plaintext);
//! its outbound connections are TLS with its certificate presented as the client's. ALPN tells
//! the actor protocol (`keel-actor/1`) from HTTPS on the one port. An actor-protocol connection
//! without a valid client certificate is refused; plaintext actor-protocol connections to a
//! secure node are refused and counted.
//!
//! The peer's certificate becomes its [`Identity`] (principal, roles, hosts). The reader of a
//! connection pins the node address of the first frame (it must be a host the certificate
//! names) and drops any later frame that claims a sender on another node: a `from` is believed
//! only as far as the connection proves it. Handlers then ask
//! [`crate::Context::sender_identity`] or [`crate::Context::authorize`].
//!
//! - [`identity`]: the certificate layout and [`Identity`];
//! - [`ca`]: a cluster CA that issues certificates in that layout;
//! - [`dir`]: a node's CA, certificate and key in one directory.
//!
//! ```
//! use libactor::tls::{ca::{CertRequest, ClusterCa}, TlsConfig};
//!
//! let ca = ClusterCa::generate("example cluster").unwrap();
//! let cert = ca.issue(&CertRequest::new("agent-1", &["agent"], &["127.0.0.1"])).unwrap();
//! let tls = TlsConfig::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
//! assert_eq!(tls.identity().principal(), "agent-1");
//! assert!(tls.identity().has_role("agent"));
//! ```

pub mod ca;
pub mod dir;
pub mod identity;

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use identity::{Identity, IdentityError};

/// ALPN protocol of the actor protocol over TLS.
pub const ALPN_ACTOR: &[u8] = b"keel-actor/1";
/// ALPN protocol of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A certificate is missing, malformed or cannot be issued.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The private key is missing or malformed (its bytes are never shown).
    #[error("private key: {0}")]
    Key(String),
    /// rustls refused the combination (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A node's TLS setup: whom it trusts, who it is. Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    identity: Arc<Identity>,
    roots: Arc<RootCertStore>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// A configuration from PEM text: the CA certificate(s) to trust, this node's certificate
    /// (chain) and its private key.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<TlsConfig, TlsError> {
        let ca = certs(ca_pem, "CA")?;
        let chain = certs(cert_pem, "node")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| TlsError::Key(format!("no usable PEM private key ({e})")))?;
        let identity =
            Identity::from_der(&chain[0]).map_err(|e| TlsError::Certificate(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots
                .add(cert)
                .map_err(|e| TlsError::Certificate(format!("CA certificate: {e}")))?;
        }
        let roots = Arc::new(roots);
        // ring builds with a C compiler alone (aws-lc needs more tooling); rustls marks it
        // deprecated only because it lacks post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config_error = |e: rustls::Error| TlsError::Config(e.to_string());

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            // HTTPS clients (curl, browsers, scrapers) may come without a certificate; the
            // actor protocol may not (the listener checks).
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_error)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(config_error)?;
        server.alpn_protocols = vec![ALPN_ACTOR.to_vec(), ALPN_HTTP1.to_vec()];
        // Clients reconnect rarely and tickets would be unsolicited bytes on a connection
        // whose reader expects none.
        server.send_tls13_tickets = 0;

        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_error)?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain, key)
            .map_err(config_error)?;
        client.alpn_protocols = vec![ALPN_ACTOR.to_vec()];

        Ok(TlsConfig {
            server: Arc::new(server),
            client: Arc::new(client),
            identity: Arc::new(identity),
            roots,
        })
    }

    /// A configuration from PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|error| TlsError::Read {
                path: path.display().to_string(),
                error,
            })
        };
        TlsConfig::from_pem(&read(ca)?, &read(cert)?, &read(key)?)
    }

    /// Who this node is.
    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// A client configuration for HTTPS requests with this node's certificate (ALPN
    /// `http/1.1`).
    pub fn https_client(&self) -> Arc<ClientConfig> {
        let mut client = (*self.client).clone();
        client.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Arc::new(client)
    }

    /// The CA certificates this node trusts.
    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.client.clone())
    }
}

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(format!("{what} PEM does not parse: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Certificate(format!(
            "no {what} certificate in the PEM"
        )));
    }
    Ok(certs)
}
