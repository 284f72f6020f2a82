//! `--tls-dir` and `--insecure`, shared by every Keel binary: a node runs mutual TLS unless
//! told, explicitly and loudly, not to.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use libactor::TlsConfig;

/// How a binary's node proves who it is.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecurityFlags {
    /// Directory with `ca.crt`, `node.crt` and `node.key` (made by `keelctl ca issue`): the
    /// node runs mutual TLS as the certificate's principal and roles.
    #[arg(long, env = "KEEL_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Run without TLS. Nothing a peer says about itself is then checked: any process that can
    /// reach the port can pose as the master, an agent or a framework.
    #[arg(long, env = "KEEL_INSECURE")]
    pub insecure: bool,
}

impl SecurityFlags {
    /// Secure flags for `dir`.
    pub fn tls_dir(dir: PathBuf) -> SecurityFlags {
        SecurityFlags {
            tls_dir: Some(dir),
            insecure: false,
        }
    }

    /// The node's TLS configuration, `None` with `--insecure`; an error when neither flag is
    /// given (secure is the default) or both are.
    pub fn tls(&self, binary: &str) -> anyhow::Result<Option<TlsConfig>> {
        match (&self.tls_dir, self.insecure) {
            (Some(_), true) => bail!("--tls-dir and --insecure exclude each other"),
            (Some(dir), false) => {
                let tls = libactor::tls::dir::load(dir)
                    .with_context(|| format!("loading TLS material from {}", dir.display()))?;
                tracing::info!(identity = %tls.identity(), "mutual TLS on");
                Ok(Some(tls))
            }
            (None, true) => {
                tracing::warn!(
                    "{binary} runs INSECURE (--insecure): no connection is authenticated and any \
                     sender may claim to be the master, an agent or a framework"
                );
                Ok(None)
            }
            (None, false) => bail!(
                "{binary} runs secure by default: give --tls-dir DIR (make one with `keelctl ca \
                 init` and `keelctl ca issue`) or, to run without authentication, --insecure"
            ),
        }
    }
}

/// What `--authenticate-http-readonly` asks of a node's HTTP: a client certificate (when the
/// node is secure) or HTTP Basic against `credentials`; an error when neither is possible.
pub fn http_authentication(
    binary: &str,
    tls: bool,
    credentials: Option<authentication::Credentials>,
) -> anyhow::Result<libactor::HttpAuthentication> {
    if !tls && credentials.is_none() {
        bail!("{binary} --authenticate-http-readonly needs --tls-dir (client certificates) or credentials (HTTP Basic)");
    }
    let basic = credentials.map(|table| {
        let check: libactor::BasicCheck =
            std::sync::Arc::new(move |header: &str| table.check_basic(Some(header)).ok());
        check
    });
    Ok(libactor::HttpAuthentication { basic })
}

/// The node's `get_endpoints` check from `--acls` (`None` when no file was given, so that no
/// request pays for a check that always passes).
pub fn endpoint_authorization(
    acls: Option<&authentication::acls::Acls>,
) -> Option<libactor::EndpointCheck> {
    let acls = acls?.clone();
    Some(libactor::EndpointCheck(std::sync::Arc::new(
        move |principal, path| acls.permits_endpoint(principal, path),
    )))
}

/// Applies `tls` to a node builder.
pub fn secure(builder: libactor::NodeBuilder, tls: Option<TlsConfig>) -> libactor::NodeBuilder {
    match tls {
        Some(tls) => builder.tls(tls),
        None => builder,
    }
}
