//! Who may call an operator endpoint (deploy, roll back, repair, kick, upload): a principal
//! proven in the `operator` role, by the request's TLS client certificate or by HTTP Basic
//! against the master's credentials (a credential listed with roles must list `operator`).
//! Only an insecure cluster without credentials lets anyone in.

use crate::{roles, Credentials};
use libactor::HttpRequest;

/// Why an operator request was refused: its status (401 unproven, 403 not an operator) and
/// the reason, for the response and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401 or 403.
    pub status: u16,
    /// What was wrong.
    pub why: String,
}

/// The operator `req` proves. `secure`: the node runs mutual TLS (a certificate is then the
/// way in when there are no credentials).
pub fn operator_of(
    req: &HttpRequest,
    credentials: Option<&Credentials>,
    secure: bool,
) -> Result<String, Refusal> {
    let refuse = |status, why: String| Err(Refusal { status, why });
    if let Some(identity) = &req.identity {
        if identity.has_role(roles::OPERATOR) {
            return Ok(identity.principal().to_owned());
        }
        return refuse(
            403,
            format!("principal {} lacks the operator role", identity.principal()),
        );
    }
    match credentials {
        Some(credentials) => {
            let header = req.header("authorization");
            match credentials.check_basic(header) {
                Ok(principal) if credentials.has_role(&principal, roles::OPERATOR) => Ok(principal),
                Ok(principal) => refuse(
                    403,
                    format!("principal {principal} lacks the operator role"),
                ),
                Err(e) => refuse(401, e.to_string()),
            }
        }
        None if secure => refuse(
            401,
            "operators prove themselves with a client certificate in the operator role".into(),
        ),
        None => Ok("operator".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{basic_authorization, Credential};

    fn request(authorization: Option<String>, identity: Option<libactor::Identity>) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: "/kick".into(),
            query: Vec::new(),
            headers: authorization
                .map(|a| {
                    let mut headers = libactor::HeaderMap::new();
                    headers.insert("authorization", a.parse().expect("a header value"));
                    headers
                })
                .unwrap_or_default(),
            body: Default::default(),
            principal: identity.as_ref().map(|i| i.principal().to_owned()),
            identity: identity.map(std::sync::Arc::new),
        }
    }

    #[test]
    fn only_operators_get_in() {
        let table = Credentials::parse("ops s1 operator\nfw s2 framework\n").unwrap();
        let basic = |p: &str, s: &str| {
            Some(basic_authorization(&Credential {
                principal: p.into(),
                secret: s.into(),
            }))
        };
        assert_eq!(
            operator_of(&request(basic("ops", "s1"), None), Some(&table), false),
            Ok("ops".into())
        );
        assert_eq!(
            operator_of(&request(basic("fw", "s2"), None), Some(&table), false)
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(
            operator_of(&request(basic("ops", "no"), None), Some(&table), false)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            operator_of(&request(None, None), Some(&table), true)
                .unwrap_err()
                .status,
            401
        );

        let cert = |roles: &[&str]| Some(libactor::Identity::new("alice", roles, &["127.0.0.1"]));
        assert_eq!(
            operator_of(&request(None, cert(&["operator"])), None, true),
            Ok("alice".into())
        );
        assert_eq!(
            operator_of(&request(None, cert(&["framework"])), None, true)
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(
            operator_of(&request(None, None), None, true)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            operator_of(&request(None, None), None, false),
            Ok("operator".into())
        );
    }
}
