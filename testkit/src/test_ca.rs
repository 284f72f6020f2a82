//! A cluster CA for one test's daemons and clients: TLS directories (`ca.crt`, `node.crt`,
//! `node.key`, as `keelctl ca issue` writes them) issued on demand for a principal in some
//! roles on 127.0.0.1, under a temporary directory the CA owns. Daemons take one with
//! `--tls-dir`; in-process nodes load it with [`TestCa::tls`].
//!
//! [`shared`] is one CA for every test of a test binary, for fixtures (the Autopilot daemons,
//! `keelctl deploy`) that tests call without passing a CA around; clusters of different tests
//! never meet (they listen on different ports), so sharing their CA proves nothing less.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use libactor::tls::ca::{CertRequest, ClusterCa};
use libactor::TlsConfig;

/// A test's CA and the directories it has issued.
pub struct TestCa {
    ca: Arc<ClusterCa>,
    dir: tempfile::TempDir,
    /// Held while a directory is issued, so that a concurrent test never loads half of one.
    issuing: Mutex<()>,
}

/// The CA shared by the tests of this test binary (its directory stays until the machine's
/// temporary files are cleared: a few kilobytes).
pub fn shared() -> &'static TestCa {
    static SHARED: OnceLock<TestCa> = OnceLock::new();
    SHARED.get_or_init(TestCa::new)
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> TestCa {
        TestCa {
            ca: Arc::new(ClusterCa::generate("keel test CA").expect("a CA is generated")),
            dir: tempfile::tempdir().expect("a directory for the CA's certificates"),
            issuing: Mutex::new(()),
        }
    }

    /// The CA itself, for a `LocalCluster` to issue its nodes' certificates from.
    pub fn ca(&self) -> Arc<ClusterCa> {
        self.ca.clone()
    }

    /// The TLS directory of `principal` in `roles` (issued on first use; the roles of the
    /// first use stay).
    pub fn tls_dir(&self, principal: &str, roles: &[&str]) -> PathBuf {
        let dir = self.dir.path().join(principal.replace('/', "_"));
        let _issuing = self.issuing.lock().unwrap_or_else(|e| e.into_inner());
        if !dir.join(libactor::tls::dir::CA_CERT).exists() {
            let cert = self
                .ca
                .issue(&CertRequest::new(principal, roles, &["127.0.0.1"]))
                .expect("a certificate is issued");
            libactor::tls::dir::write(&dir, self.ca.cert_pem(), &cert)
                .expect("the TLS directory is written");
        }
        dir
    }

    /// `tls_dir` as a path string, for a daemon's `--tls-dir`.
    pub fn tls_arg(&self, principal: &str, roles: &[&str]) -> String {
        self.tls_dir(principal, roles).display().to_string()
    }

    /// The TLS configuration of `principal` in `roles`, for an in-process node.
    pub fn tls(&self, principal: &str, roles: &[&str]) -> TlsConfig {
        libactor::tls::dir::load(&self.tls_dir(principal, roles)).expect("the TLS directory loads")
    }
}
