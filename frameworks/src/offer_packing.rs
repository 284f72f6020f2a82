//! Packing an offer with tasks of one size: what most schedulers do with each offer.

use protos::v1::{Filters, Offer};
use resources::Resources;

use crate::scheduler_driver::SchedulerDriver;

/// Fills `offer` with tasks of `per_task` resources: `next` is asked for one task at a time
/// while another still fits, and returns `None` when the scheduler has nothing more to run.
/// The tasks are launched (what they leave is declined with default filters); an offer that
/// got none is declined.
pub fn launch_packed<T>(
    driver: &mut SchedulerDriver,
    offer: &Offer,
    per_task: &Resources,
    mut next: impl FnMut() -> Option<T>,
    mut task: impl FnMut(T) -> protos::v1::TaskInfo,
) {
    let Some(offer_id) = offer.id.clone() else {
        return;
    };
    let mut left = Resources::from_proto(&offer.resources).unwrap_or_default();
    let mut tasks = Vec::new();
    while let Some(rest) = left.checked_sub(per_task) {
        let Some(item) = next() else {
            break;
        };
        left = rest;
        let mut info = task(item);
        info.agent_id = offer.agent_id.clone();
        info.resources = per_task.to_proto();
        tasks.push(info);
    }
    if tasks.is_empty() {
        driver.decline_offer(&offer_id, Filters::default());
    } else {
        driver.launch_tasks(&[offer_id], tasks, Filters::default());
    }
}
