//! Certificates for custom executors on a secure agent. An executor is a program the agent
//! starts, not a node the cluster CA knows, so the agent keeps a CA of its own (in its meta
//! directory, so that executors it started survive its restart) and gives each custom executor
//! a certificate for principal `executor/<framework>/<executor>` with role `executor`. Only
//! this agent trusts that CA: the certificate opens this agent's door and no other.

use std::path::{Path, PathBuf};

use libactor::tls::ca::{CertRequest, ClusterCa};
use libactor::tls::{dir, TlsError};

/// Files of the agent's executor CA in its meta directory.
const CA_CERT: &str = "executor-ca.crt";
const CA_KEY: &str = "executor-ca.key";
/// The TLS directory inside an executor's sandbox.
pub const SANDBOX_TLS_DIR: &str = ".keel-tls";
/// Environment variable naming an executor's TLS directory.
pub const ENV_TLS_DIR: &str = "KEEL_TLS_DIR";

/// The principal of executor `executor` of `framework`.
pub fn executor_principal(framework: &str, executor: &str) -> String {
    format!("executor/{framework}/{executor}")
}

/// Issues executors their certificates.
pub struct ExecutorIssuer {
    ca: ClusterCa,
    /// The cluster CA, which executors trust to verify this agent.
    cluster_ca_pem: String,
}

impl std::fmt::Debug for ExecutorIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorIssuer").finish_non_exhaustive()
    }
}

impl ExecutorIssuer {
    /// The agent's executor CA from `meta_dir`, made there on first use.
    pub fn load_or_create(meta_dir: &Path, cluster_ca_pem: String) -> Result<Self, TlsError> {
        let (cert_path, key_path) = (meta_dir.join(CA_CERT), meta_dir.join(CA_KEY));
        let io = |path: &PathBuf, error| TlsError::Read {
            path: path.display().to_string(),
            error,
        };
        let ca = if cert_path.exists() && key_path.exists() {
            let cert = std::fs::read_to_string(&cert_path).map_err(|e| io(&cert_path, e))?;
            let key = std::fs::read_to_string(&key_path).map_err(|e| io(&key_path, e))?;
            ClusterCa::from_pem(&cert, &key)?
        } else {
            let ca = ClusterCa::generate("keel agent executor CA")?;
            std::fs::create_dir_all(meta_dir).map_err(|e| io(&meta_dir.to_path_buf(), e))?;
            dir::write_file(&key_path, &ca.key_pem(), true).map_err(|e| io(&key_path, e))?;
            dir::write_file(&cert_path, ca.cert_pem(), false).map_err(|e| io(&cert_path, e))?;
            ca
        };
        Ok(ExecutorIssuer { ca, cluster_ca_pem })
    }

    /// The executor CA's certificate, which the agent's node must trust.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Writes a TLS directory for executor `executor` of `framework` into `sandbox`, for a
    /// node on `host`; returns the directory.
    pub fn issue(
        &self,
        framework: &str,
        executor: &str,
        host: &str,
        sandbox: &Path,
    ) -> Result<PathBuf, TlsError> {
        let principal = executor_principal(framework, executor);
        let cert = self.ca.issue(&CertRequest::new(
            &principal,
            &[authentication::roles::EXECUTOR],
            &[host],
        ))?;
        let out = sandbox.join(SANDBOX_TLS_DIR);
        dir::write(&out, &self.cluster_ca_pem, &cert)?;
        Ok(out)
    }
}
