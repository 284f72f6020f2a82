//! `POST /master/teardown` (Mesos's operator endpoint): an operator ends a framework, its
//! tasks killed and its resources freed, as if it had unregistered.
//!
//! Who may: a principal proven in the `operator` role (client certificate, or HTTP Basic
//! against `--credentials`), and, under `--acls`, one whose `teardown_frameworks` rules name
//! the framework's principal. The scheduler hears `FrameworkErrorMessage` (its driver
//! aborts) so that it does not keep re-registering the framework.

use libactor::{Context, HttpRequest, HttpResponse};

use super::Master;

impl Master {
    pub(super) fn teardown(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpResponse {
        if req.method != "POST" {
            return HttpResponse::text(405, "POST frameworkId=<id>\n");
        }
        let secure = ctx.node().is_secure();
        let operator = match authentication::operator::operator_of(
            &req,
            self.auth.policy.credentials.as_ref(),
            secure,
        ) {
            Ok(operator) => operator,
            Err(refusal) => {
                self.metrics.inc(|m| &m.operator_requests_refused);
                return HttpResponse::text(refusal.status, format!("{}\n", refusal.why));
            }
        };
        let id = form_value(&req.body, "frameworkId")
            .or_else(|| req.query_param("frameworkId").map(str::to_owned));
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            return HttpResponse::bad_request("expected frameworkId=<id> in the body\n");
        };
        match self.teardown_framework(ctx, &operator, &id) {
            Ok(()) => HttpResponse::text(200, ""),
            Err(refusal) => HttpResponse::text(refusal.status, format!("{}\n", refusal.why)),
        }
    }
}

/// The value of `key` in a form-encoded body (`a=1&b=2`).
fn form_value(body: &[u8], key: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::form_value;

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(
            form_value(b"x=1&frameworkId=a%2Fb", "frameworkId").as_deref(),
            Some("a/b")
        );
        assert_eq!(form_value(b"x=1", "frameworkId"), None);
    }
}
