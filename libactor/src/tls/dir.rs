//! A node's TLS material on disk: one directory holding the CA certificate(s) it trusts, its
//! certificate and its private key. Every Keel binary takes one (`--tls-dir`), `keelctl ca
//! issue` writes one, and an agent writes one into each custom executor's sandbox.

use std::path::Path;

use super::ca::IssuedCert;
use super::{TlsConfig, TlsError};

/// The CA certificate(s) the node trusts.
pub const CA_CERT: &str = "ca.crt";
/// The node's certificate.
pub const NODE_CERT: &str = "node.crt";
/// The node's private key (written readable by its owner only).
pub const NODE_KEY: &str = "node.key";

/// Loads the TLS configuration kept in `dir`.
pub fn load(dir: &Path) -> Result<TlsConfig, TlsError> {
    TlsConfig::from_files(
        &dir.join(CA_CERT),
        &dir.join(NODE_CERT),
        &dir.join(NODE_KEY),
    )
}

/// Loads the TLS configuration kept in `dir`, trusting `extra_ca_pem` besides its CA (an
/// agent trusts the CA that issues its executors' certificates).
pub fn load_trusting(dir: &Path, extra_ca_pem: &str) -> Result<TlsConfig, TlsError> {
    let ca = read(&dir.join(CA_CERT))?;
    TlsConfig::from_pem(
        &format!("{ca}\n{extra_ca_pem}"),
        &read(&dir.join(NODE_CERT))?,
        &read(&dir.join(NODE_KEY))?,
    )
}

/// The CA certificate(s) kept in `dir`.
pub fn ca_pem(dir: &Path) -> Result<String, TlsError> {
    read(&dir.join(CA_CERT))
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|error| TlsError::Read {
        path: path.display().to_string(),
        error,
    })
}

/// Writes `ca_pem` and `cert` into `dir` (created if missing), the key with mode 0600.
pub fn write(dir: &Path, ca_pem: &str, cert: &IssuedCert) -> Result<(), TlsError> {
    let io = |path: &Path, error: std::io::Error| TlsError::Read {
        path: path.display().to_string(),
        error,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let write = |name: &str, text: &str, private: bool| {
        let path = dir.join(name);
        write_file(&path, text, private).map_err(|e| io(&path, e))
    };
    write(CA_CERT, ca_pem, false)?;
    write(NODE_CERT, &cert.cert_pem, false)?;
    write(NODE_KEY, &cert.key_pem, true)
}

/// Writes `text` to `path` through a temporary file, readable by the owner only when `private`
/// (the file never exists with wider permissions).
pub fn write_file(path: &Path, text: &str, private: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    options.mode(if private { 0o600 } else { 0o644 });
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
