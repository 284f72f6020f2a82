//! Offers: a cycle's allocations become offers, one message per framework; declines and
//! timeouts give their resources back to the allocator, with refusal filters.

use std::collections::BTreeMap;
use std::time::Duration;

use libactor::{Context, Upid};
use protos::internal::{DeclineOffersMessage, RescindResourceOfferMessage, ResourceOffersMessage};
use protos::v1::{AgentId, FrameworkId, Offer, OfferId};
use protos::IdText;
use resources::Resources;

use crate::allocator::{Allocation, Allocator, RefuseFilter};

use super::books::{BooksError, OfferEntry};
use super::{
    Master, DEFAULT_REFUSE_SECONDS, MAX_OFFERS_PER_MESSAGE, MAX_REFUSE_SECONDS, OFFER_TIMEOUT,
};

impl Master {
    /// Turns a cycle's allocations into offers, one message per framework.
    pub(super) fn offer(
        &mut self,
        ctx: &mut Context<Self>,
        allocations: Vec<Allocation>,
        applied: u64,
    ) {
        // Ordered: frameworks hear of their offers in the same order in every run.
        let mut by_framework: BTreeMap<String, Vec<Offer>> = BTreeMap::new();
        for allocation in allocations {
            if self.allocator_sequence.is_stale(&allocation.agent, applied) {
                // The agent was removed and admitted again since: the allocator forgot this
                // allocation when it removed the agent. Nothing to give back.
                self.metrics.inc(|m| &m.allocations_stale);
                tracing::debug!(framework = %allocation.framework, agent = %allocation.agent, "allocation from before the agent's latest admission dropped");
                continue;
            }
            if !self.books.has_framework(&allocation.framework)
                || !self.books.has_agent(&allocation.agent)
            {
                // Removed since the cycle ran: the removal reached the allocator after this
                // allocation, so the allocator forgot it with the framework or agent. Nothing
                // to give back.
                tracing::debug!(framework = %allocation.framework, agent = %allocation.agent, "allocation for a removed framework or agent dropped");
                continue;
            }
            if self
                .books
                .framework(&allocation.framework)
                .is_some_and(|f| f.shared_state)
            {
                // Made before its subscription reached the allocator.
                self.recover(
                    &allocation.framework,
                    &allocation.agent,
                    allocation.resources,
                    None,
                );
                continue;
            }
            let id = self.next("O");
            let offer = Offer {
                id: Some(OfferId { value: id.clone() }),
                framework_id: Some(FrameworkId {
                    value: allocation.framework.clone(),
                }),
                agent_id: Some(AgentId {
                    value: allocation.agent.clone(),
                }),
                resources: allocation.resources.to_proto(),
                ..Default::default()
            };
            let entry = OfferEntry {
                framework: allocation.framework.clone(),
                agent: allocation.agent,
                resources: allocation.resources,
            };
            match self.books.add_offer(&id, entry) {
                Ok(()) => {}
                Err(BooksError::DoesNotFit { agent, asked, .. }) if self.cell.claimed => {
                    // A transaction committed part of it after the allocator made it: the
                    // allocator gets it back, and its claim settles.
                    tracing::debug!(offer = %id, %agent, "allocation overtaken by a commit");
                    self.metrics.inc(|m| &m.allocations_overtaken);
                    self.recover(&allocation.framework, &agent, asked, None);
                    continue;
                }
                Err(e) => {
                    // The allocator and the books disagree: a bug, never an offer.
                    debug_assert!(false, "offer {id} refused by the books: {e}");
                    tracing::error!(offer = %id, error = %e, "allocation refused by the master's books");
                    continue;
                }
            }
            let timed = id.clone();
            ctx.delay(OFFER_TIMEOUT, move |m: &mut Master, ctx| {
                m.offer_timeout(ctx, timed)
            });
            by_framework
                .entry(allocation.framework)
                .or_default()
                .push(offer);
        }
        for (framework, offers) in by_framework {
            if let Some(entry) = self.books.framework(&framework) {
                self.metrics.add(|m| &m.offers_sent, offers.len() as u64);
                // A cycle over a large cluster can offer a framework every agent at once; one
                // message per chunk keeps each under the frame limit.
                for chunk in offers.chunks(MAX_OFFERS_PER_MESSAGE) {
                    ctx.send(
                        &entry.pid,
                        ResourceOffersMessage {
                            offers: chunk.to_vec(),
                            pids: Vec::new(),
                        },
                    );
                }
            }
        }
    }

    pub(super) fn recover(
        &self,
        framework: &str,
        agent: &str,
        resources: Resources,
        refuse: Option<RefuseFilter>,
    ) {
        if resources.is_empty() {
            return;
        }
        let (framework, agent) = (framework.to_owned(), agent.to_owned());
        self.tell_allocator("allocator refused recovered resources", move |a| {
            a.recover(&framework, &agent, &resources, refuse)
        });
    }

    /// Takes the framework's offers out of circulation; `None` if any is unknown or not its.
    pub(super) fn take_offers(
        &mut self,
        framework: &str,
        ids: &[OfferId],
    ) -> Option<Vec<OfferEntry>> {
        let valid = !ids.is_empty()
            && ids.iter().all(|id| {
                self.books
                    .offer(&id.value)
                    .is_some_and(|o| o.framework == framework)
            });
        if !valid {
            return None;
        }
        Some(
            ids.iter()
                .filter_map(|id| self.books.take_offer(&id.value))
                .collect(),
        )
    }

    pub(super) fn refuse_filter(
        &self,
        ctx: &Context<Self>,
        filters: Option<&protos::v1::Filters>,
        resources: &Resources,
    ) -> Option<RefuseFilter> {
        let seconds = filters
            .and_then(|f| f.refuse_seconds)
            .unwrap_or(DEFAULT_REFUSE_SECONDS);
        if !seconds.is_finite() || seconds <= 0.0 {
            return None;
        }
        Some(RefuseFilter {
            resources: resources.clone(),
            until: ctx.node().clock().now()
                + Duration::from_secs_f64(seconds.min(MAX_REFUSE_SECONDS)),
        })
    }

    pub(super) fn decline(
        &mut self,
        ctx: &mut Context<Self>,
        from: Upid,
        msg: DeclineOffersMessage,
    ) {
        let Some(framework) = self.sender_framework(ctx, &from, Some(msg.framework_id.text()))
        else {
            return;
        };
        // An offer declined after it was rescinded (a commit took it, it timed out, its agent
        // left) is void already: the race is routine, so it is counted and skipped, and the
        // rest of the decline stands.
        let (known, void): (Vec<&OfferId>, Vec<&OfferId>) = msg.offer_ids.iter().partition(|id| {
            self.books
                .offer(&id.value)
                .is_some_and(|o| o.framework == framework)
        });
        if !void.is_empty() {
            self.metrics
                .add(|m| &m.offers_declined_void, void.len() as u64);
            tracing::debug!(%framework, offers = void.len(), "declined offers that are void already");
        }
        let offers: Vec<_> = known
            .into_iter()
            .filter_map(|id| self.books.take_offer(&id.value))
            .collect();
        for offer in offers {
            self.metrics.inc(|m| &m.offers_declined);
            let filter = self.refuse_filter(ctx, msg.filters.as_ref(), &offer.resources);
            self.recover(&framework, &offer.agent, offer.resources, filter);
        }
    }

    pub(super) fn offer_timeout(&mut self, ctx: &mut Context<Self>, offer_id: String) {
        let Some(offer) = self.books.take_offer(&offer_id) else {
            return;
        };
        tracing::info!(offer = %offer_id, framework = %offer.framework, "offer timed out");
        self.metrics.inc(|m| &m.offers_rescinded);
        if let Some(f) = self.books.framework(&offer.framework) {
            ctx.send(
                &f.pid,
                RescindResourceOfferMessage {
                    offer_id: Some(OfferId { value: offer_id }),
                },
            );
        }
        self.recover(&offer.framework, &offer.agent, offer.resources, None);
    }
}
