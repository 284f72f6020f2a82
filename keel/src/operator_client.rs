//! How `keelctl` and `keel-local` prove an operator to the master's operator endpoints: HTTPS
//! with a certificate in the `operator` role, HTTP Basic with a credential, or neither against
//! an insecure master without credentials; and the v1 operator API (`POST /api/v1`) spoken
//! with those proofs, in JSON.

use bytes::Bytes;
use libactor::http_client::{open_stream, request_over, HttpError, Reply, StreamReply};
use libactor::TlsConfig;
use protos::http_api::Encoding;
use protos::v1::master::{Call, Response};

/// The operator API's path.
pub const OPERATOR_API: &str = "/api/v1";

/// An operator's proofs, any of which may be absent.
#[derive(Debug, Clone, Default)]
pub struct OperatorAuth {
    /// HTTP Basic against the master's `--credentials`.
    pub credential: Option<authentication::Credential>,
    /// A client certificate (its node's TLS directory), used over HTTPS.
    pub tls: Option<TlsConfig>,
}

/// Why an operator API call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The master could not be reached, or the exchange broke.
    #[error("{0}")]
    Http(#[from] HttpError),
    /// The master refused the call.
    #[error("{status}: {why}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The master's reason.
        why: String,
    },
    /// The master's answer is not a `Response`.
    #[error("the master's answer is not an operator API response: {0}")]
    Malformed(String),
}

impl OperatorAuth {
    fn headers<'a>(&self, headers: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
        let mut all: Vec<(&str, String)> = headers.to_vec();
        if let Some(c) = &self.credential {
            all.push(("authorization", authentication::basic_authorization(c)));
        }
        all
    }

    /// POSTs `body` to `path` on `address` with `headers` and whatever proof this holds.
    pub async fn post(
        &self,
        address: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Reply, HttpError> {
        let all = self.headers(headers);
        request_over(address, self.tls.as_ref(), "POST", path, &all, body).await
    }

    /// Makes an operator API `call` on the master at `address`: its response, or `None` for a
    /// change the master accepted (`202`).
    pub async fn call(&self, address: &str, call: &Call) -> Result<Option<Response>, CallError> {
        let json = Encoding::Json;
        let headers = [
            ("content-type", json.content_type().to_owned()),
            ("accept", json.content_type().to_owned()),
        ];
        let reply = self
            .post(address, OPERATOR_API, &headers, json.body(call).into())
            .await?;
        match reply.status {
            // Changes Mesos answers once durable (MARK_AGENT_GONE, UPDATE_QUOTA): 200, no body.
            200 if reply.body.is_empty() => Ok(None),
            200 => json
                .decode(&reply.body)
                .map(Some)
                .map_err(CallError::Malformed),
            202 => Ok(None),
            status => Err(CallError::Refused {
                status,
                why: String::from_utf8_lossy(&reply.body).trim().to_owned(),
            }),
        }
    }

    /// Opens the operator API's `SUBSCRIBE` stream (JSON records) on the master at `address`.
    pub async fn subscribe(&self, address: &str, call: &Call) -> Result<StreamReply, CallError> {
        let json = Encoding::Json;
        let headers = self.headers(&[
            ("content-type", json.content_type().to_owned()),
            ("accept", json.content_type().to_owned()),
        ]);
        let reply = open_stream(
            address,
            self.tls.as_ref(),
            "POST",
            OPERATOR_API,
            &headers,
            json.body(call).into(),
        )
        .await?;
        if reply.status != 200 {
            return Err(CallError::Refused {
                status: reply.status,
                why: "SUBSCRIBE refused".into(),
            });
        }
        Ok(reply)
    }
}
