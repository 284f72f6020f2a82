//! How `keelctl` and `keel-local` prove an operator to the master's operator endpoints: HTTPS
//! with a certificate in the `operator` role, HTTP Basic with a credential, or neither against
//! an insecure master without credentials.

use bytes::Bytes;
use libactor::http_client::{request_over, HttpError, Reply};
use libactor::TlsConfig;

/// An operator's proofs, any of which may be absent.
#[derive(Debug, Clone, Default)]
pub struct OperatorAuth {
    /// HTTP Basic against the master's `--credentials`.
    pub credential: Option<authentication::Credential>,
    /// A client certificate (its node's TLS directory), used over HTTPS.
    pub tls: Option<TlsConfig>,
}

impl OperatorAuth {
    /// POSTs `body` to `path` on `address` with `headers` and whatever proof this holds.
    pub async fn post(
        &self,
        address: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Reply, HttpError> {
        let mut all: Vec<(&str, String)> = headers.to_vec();
        if let Some(c) = &self.credential {
            all.push(("authorization", authentication::basic_authorization(c)));
        }
        request_over(address, self.tls.as_ref(), "POST", path, &all, body).await
    }
}
