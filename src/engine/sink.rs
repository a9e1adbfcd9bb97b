//! The engine's output operator: gathers every output change on the first worker and delivers
//! all changes of a time `t` together once the frontier has passed `t`, consolidated, retractions
//! first (then by room). Nothing after the engine's end time is delivered, nor anything before a
//! rebuilt engine's start (delivered by the engine it replaces, see `recovery`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc::UnboundedSender;

use rmf_dash_dataflows::derived::Output;
use rmf_dash_dataflows::prelude::host::{Probe, consolidate};
use rmf_dash_dataflows::prelude::*;

use super::Batch;

/// Where and what the output operator delivers.
pub struct Delivery {
    /// Where batches go (on the worker that has it).
    pub sender: Option<UnboundedSender<Batch>>,
    /// Nothing after this time is delivered.
    pub end: std::rc::Rc<std::cell::Cell<Time>>,
    /// The output frontier, raised as batches go out (never lowered).
    pub delivered: Arc<AtomicU64>,
    /// Nothing before this time is delivered.
    pub from: Time,
}

/// Sends complete-time batches of `out` as `delivery` says.
pub fn complete_batches<'s>(out: Coll<'s, Output>, probe: &ProbeHandle<Time>, delivery: Delivery) {
    let Delivery {
        sender,
        end,
        delivered,
        from,
    } = delivery;
    let mut pending: BTreeMap<Time, Vec<(Output, Diff)>> = BTreeMap::new();
    let stream = out.inner.probe_with(probe);
    stream.sink(
        Exchange::new(|_| 0),
        "CompleteBatches",
        move |(input, frontier)| {
            input.for_each(|_cap, data| {
                for (o, t, d) in data.drain(..) {
                    pending.entry(t).or_default().push((o, d));
                }
            });
            let limit = frontier.frontier().first().copied();
            while let Some(entry) = pending.first_entry() {
                let t = *entry.key();
                if limit.is_some_and(|f| t >= f) {
                    break;
                }
                let mut changes = entry.remove();
                if t > end.get() || t < from {
                    continue;
                }
                consolidate(&mut changes);
                changes.sort_by(|(a, da), (b, db)| {
                    (da.signum(), &a.room, &a.value).cmp(&(db.signum(), &b.room, &b.value))
                });
                if !changes.is_empty()
                    && let Some(s) = &sender
                {
                    let _ = s.send(Batch { time: t, changes });
                }
            }
            if sender.is_some()
                && let Some(f) = limit
            {
                delivered.fetch_max(f.min(end.get().saturating_add(1)), Ordering::AcqRel);
            }
        },
    );
}
