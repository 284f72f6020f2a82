//! `POST /api/v1/scheduler`: Mesos's v1 scheduler HTTP API, so that Mesos schedulers (pymesos,
//! anything written against `docs/scheduler-http-api.md`) run on Keel unmodified.
//!
//! A `SUBSCRIBE` call is answered `200` with a chunked stream of RecordIO-framed events and a
//! `Mesos-Stream-Id` header; every other call carries that id and the framework's id and is
//! answered `202` once validated (`400` with the reason otherwise; `403` for a framework not
//! subscribed, or subscribed by another principal). Calls and events are JSON (Mesos's
//! mapping) or protobuf (Mesos's field numbers), as `Content-Type` and `Accept` say (`415`,
//! `406` otherwise). A second subscription of a framework closes the first one's stream.
//!
//! Each subscribed framework is a [`FrameworkAdapter`] on the master's node, which the master
//! treats as the framework's scheduler: HTTP and driver frameworks share everything.
//!
//! Who may call: on a secure master, a client proven in the `framework` role (its TLS
//! certificate, or HTTP Basic against `--credentials` with that role); on an insecure master
//! with `--authenticate-frameworks`, HTTP Basic against `--credentials`; otherwise anyone. A
//! framework's principal is the proven one, and only that principal may make its calls.
//!
//! ```text
//! curl -X POST -H 'Content-Type: application/json' http://127.0.0.1:5050/api/v1/scheduler \
//!   -d '{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "me", "name": "hi"}}}'
//! ```

use libactor::{Context, HttpReply, HttpRequest, HttpResponse};
use protos::http_api::{read_call, stream_encoding, Encoding};
use protos::v1::offer::operation;
use protos::v1::scheduler::{call, Call};

use super::adapter::FrameworkAdapter;
use super::scheduler_calls::{forward, Forwarded};
use super::{ApiGateway, STREAM_CAPACITY, STREAM_ID_HEADER, STREAM_MAX_BYTES};

impl ApiGateway {
    pub(super) fn scheduler(&mut self, ctx: &mut Context<Self>, req: HttpRequest) -> HttpReply {
        let read = read_call::<Call>(
            "/api/v1/scheduler",
            &req.method,
            req.header("content-type"),
            &req.body,
        );
        let (encoding, call) = match read {
            Ok(read) => read,
            Err(r) => return self.refuse(r.status, r.why).into(),
        };
        if let Err(why) = validate(&call) {
            return self.refuse(400, why).into();
        }
        let principal = match self.principal(ctx, &req) {
            Ok(p) => p,
            Err(refusal) => return refusal.into(),
        };
        if call.r#type == call::Type::Subscribe as i32 {
            return self.subscribe(ctx, &req, encoding, call, principal).into();
        }
        let framework = call
            .framework_id
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_default();
        let Some(stream_id) = req.header(STREAM_ID_HEADER) else {
            return self
                .refuse(
                    400,
                    "all non-subscribe calls should include the 'Mesos-Stream-Id' header",
                )
                .into();
        };
        let Some(subscription) = self.subscriptions.get(&framework) else {
            return self
                .refuse(403, format!("framework {framework} is not subscribed"))
                .into();
        };
        if subscription.stream_id != stream_id {
            return self
                .refuse(
                    400,
                    format!(
                        "the stream id {stream_id:?} is not framework {framework}'s current one"
                    ),
                )
                .into();
        }
        if subscription.principal != principal {
            return self
                .refuse(
                    403,
                    format!("framework {framework} was subscribed by another principal"),
                )
                .into();
        }
        if call.r#type == call::Type::UpdateFramework as i32 {
            return self.update_framework(framework, subscription.adapter, call);
        }
        let adapter = subscription.adapter.pid();
        match forward(ctx.node(), adapter, &self.master, call) {
            Forwarded::Sent => {}
            Forwarded::Teardown => {
                subscription.adapter.dispatch(|a, ctx| a.teardown(ctx));
            }
        }
        HttpResponse::text(202, "").into()
    }

    /// `UPDATE_FRAMEWORK`: `200` once the master applied it (and the adapter will re-register
    /// with it after a failover), `400` with the master's reason otherwise.
    fn update_framework(
        &mut self,
        framework: String,
        adapter: libactor::ProcessRef<FrameworkAdapter>,
        call: Call,
    ) -> HttpReply {
        let Some(info) = call.update_framework.and_then(|u| u.framework_info) else {
            return self
                .refuse(400, "expecting 'update_framework.framework_info'")
                .into();
        };
        let Some(master) = self.master_cell.get().cloned() else {
            return self.refuse(503, "the master is not running yet").into();
        };
        let refused = self.refused.clone();
        HttpReply::Later(Box::pin(async move {
            let applied = info.clone();
            match master
                .call(move |m, _| m.update_framework(&framework, applied))
                .await
            {
                Ok(Ok(())) => {
                    adapter.dispatch(move |a, ctx| a.set_info(ctx, info));
                    HttpResponse::text(200, "")
                }
                Ok(Err(refusal)) => {
                    if let Some(c) = &refused {
                        c.inc();
                    }
                    HttpResponse::text(refusal.status, format!("{}\n", refusal.why))
                }
                Err(_) => HttpResponse::text(503, "the master has stopped\n"),
            }
        }))
    }

    fn subscribe(
        &mut self,
        ctx: &mut Context<Self>,
        req: &HttpRequest,
        encoding: Encoding,
        call: Call,
        principal: Option<String>,
    ) -> HttpResponse {
        let accepted = match stream_encoding(req.header("accept"), encoding) {
            Ok(accepted) => accepted,
            Err(r) => return self.refuse(r.status, r.why),
        };
        let mut info = call
            .subscribe
            .and_then(|s| s.framework_info)
            .unwrap_or_default();
        if let Some(id) = call.framework_id.filter(|id| !id.value.is_empty()) {
            info.id = Some(id);
        }
        match (&principal, info.principal.is_empty()) {
            (Some(p), true) => info.principal = p.clone(),
            (Some(p), false) if *p != info.principal => {
                return self.refuse(
                    403,
                    format!(
                        "framework principal {:?} is not the proven principal {p:?}",
                        info.principal
                    ),
                )
            }
            _ => {}
        }
        if info.user.is_empty() {
            return self.refuse(400, "framework_info.user is required");
        }
        let stream_id = ctx.node().random().uuid().to_string();
        let (response, stream) = HttpResponse::stream_bounded(
            200,
            accepted.content_type(),
            STREAM_CAPACITY,
            STREAM_MAX_BYTES,
        );
        // A second subscription of the framework closes the first one's stream.
        if let Some(id) = info.id.as_ref() {
            if let Some(old) = self.subscriptions.get(&id.value) {
                ctx.node().terminate(old.adapter.pid());
            }
        }
        let adapter = FrameworkAdapter::new(
            info,
            principal,
            self.master.clone(),
            stream,
            stream_id.clone(),
            accepted,
            self.subscriptions.clone(),
        );
        let id = ctx.node().generate_id("scheduler-http");
        if let Err(e) = ctx.node().spawn(&id, adapter) {
            return self.refuse(503, format!("cannot start the subscription: {e}"));
        }
        if let Some(c) = &self.subscribed {
            c.inc();
        }
        response.with_header(STREAM_ID_HEADER, &stream_id)
    }
}

/// Why `call` is malformed, if it is: what Mesos's validation refuses, and what Keel cannot do.
pub fn validate(call: &Call) -> Result<(), String> {
    use call::Type;
    let kind = Type::try_from(call.r#type).unwrap_or(Type::Unknown);
    let has_framework_id = call
        .framework_id
        .as_ref()
        .is_some_and(|f| !f.value.is_empty());
    match kind {
        Type::Unknown => return Err("unknown call type".into()),
        Type::Subscribe => {
            let Some(info) = call
                .subscribe
                .as_ref()
                .and_then(|s| s.framework_info.as_ref())
            else {
                return Err("expecting 'subscribe.framework_info' to be present".into());
            };
            if let (Some(a), Some(b)) = (call.framework_id.as_ref(), info.id.as_ref()) {
                if a.value != b.value && !a.value.is_empty() && !b.value.is_empty() {
                    return Err("'framework_id' differs from 'subscribe.framework_info.id'".into());
                }
            }
            return Ok(());
        }
        _ if !has_framework_id => return Err("expecting 'framework_id' to be present".into()),
        Type::Accept => {
            let accept = call
                .accept
                .as_ref()
                .ok_or("expecting 'accept' to be present")?;
            for op in &accept.operations {
                match operation::Type::try_from(op.r#type).unwrap_or(operation::Type::Unknown) {
                    operation::Type::Launch if op.launch.is_some() => {}
                    operation::Type::Launch => {
                        return Err("a LAUNCH operation without 'launch'".into())
                    }
                    operation::Type::LaunchGroup if op.launch_group.is_some() => {}
                    operation::Type::LaunchGroup => {
                        return Err("a LAUNCH_GROUP operation without 'launch_group'".into())
                    }
                    other => {
                        return Err(format!(
                            "Keel carries out LAUNCH and LAUNCH_GROUP operations only, not {}",
                            other.as_str_name()
                        ))
                    }
                }
            }
        }
        Type::Decline if call.decline.is_none() => {
            return Err("expecting 'decline' to be present".into())
        }
        Type::Kill
            if call
                .kill
                .as_ref()
                .and_then(|k| k.task_id.as_ref())
                .is_none() =>
        {
            return Err("expecting 'kill.task_id' to be present".into())
        }
        Type::Acknowledge => {
            let ack = call
                .acknowledge
                .as_ref()
                .ok_or("expecting 'acknowledge' to be present")?;
            if ack.task_id.is_none() || ack.agent_id.is_none() || ack.uuid.len() != 16 {
                return Err("'acknowledge' needs agent_id, task_id and a 16-byte uuid".into());
            }
        }
        Type::Message => {
            let m = call
                .message
                .as_ref()
                .ok_or("expecting 'message' to be present")?;
            if m.agent_id.is_none() || m.executor_id.is_none() {
                return Err("'message' needs agent_id and executor_id".into());
            }
        }
        Type::Shutdown => {
            let shutdown = call
                .shutdown
                .as_ref()
                .ok_or("expecting 'shutdown' to be present")?;
            if shutdown.executor_id.is_none() || shutdown.agent_id.is_none() {
                return Err("'shutdown' needs executor_id and agent_id".into());
            }
        }
        Type::UpdateFramework => {
            let info = call
                .update_framework
                .as_ref()
                .and_then(|u| u.framework_info.as_ref())
                .ok_or("expecting 'update_framework.framework_info' to be present")?;
            let same =
                info.id.as_ref().map(|i| &i.value) == call.framework_id.as_ref().map(|i| &i.value);
            if !same {
                return Err(
                    "'update_framework.framework_info.id' must be the framework's id".into(),
                );
            }
        }
        Type::AcknowledgeOperationStatus | Type::ReconcileOperations => {
            return Err(format!("Keel does not support {} yet", kind.as_str_name()))
        }
        _ => {}
    }
    Ok(())
}
