//! Mesos's `master/messages_*` counters (`docs/monitoring.md`): every message of a kind the
//! master takes from agents, frameworks and executors is counted as it arrives, whether its
//! handler then accepts it or refuses it (refusals have counters of their own).

use libactor::{Context, Message, Upid};

use super::Master;

/// Installs `handler` for messages of type `M`, counting each under `master/messages_{name}`.
pub(super) fn install_counted<M: Message>(
    ctx: &mut Context<Master>,
    name: &str,
    handler: impl Fn(&mut Master, &mut Context<Master>, Upid, M) + 'static,
) {
    let counter = ctx.metrics().counter(&format!("master/messages_{name}"));
    ctx.install(move |master: &mut Master, ctx, from, msg: M| {
        counter.inc();
        handler(master, ctx, from, msg);
    });
}
