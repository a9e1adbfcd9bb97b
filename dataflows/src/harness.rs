//! Test harness: runs a dataflow on timed upsert inputs and returns its consolidated timed
//! output, the way the engine would deliver it, on one or several workers.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use differential_dataflow::ExchangeData;
use differential_dataflow::consolidation::consolidate_updates;

use timely::dataflow::operators::{Inspect, Probe};

use crate::prelude::*;

/// Runs `build` on `inputs` — `(key, value, time)` in time order, applied as upserts (a new value
/// of a key retracts the previous one) — with `workers` worker threads, until every output at
/// or before `until` is complete. Returns `(record, time, diff)` consolidated and sorted by time,
/// then record.
pub fn run_upsert<K, V, O, F>(
    workers: usize,
    inputs: Vec<(K, V, Time)>,
    until: Time,
    build: F,
) -> Vec<(O, Time, Diff)>
where
    K: ExchangeData + Hash + Eq + Sync,
    V: ExchangeData + Sync,
    O: ExchangeData,
    F: for<'s> Fn(Coll<'s, (K, V)>) -> Coll<'s, O> + Send + Sync + 'static,
{
    let inputs = inputs
        .into_iter()
        .map(|(k, v, t)| (k, Some(v), t))
        .collect();
    run_upsert_deleting(workers, inputs, until, build)
}

/// [`run_upsert`] where a `None` value deletes the key (its value is retracted, none replaces
/// it: how the engine evicts an entity that ended).
pub fn run_upsert_deleting<K, V, O, F>(
    workers: usize,
    inputs: Vec<(K, Option<V>, Time)>,
    until: Time,
    build: F,
) -> Vec<(O, Time, Diff)>
where
    K: ExchangeData + Hash + Eq + Sync,
    V: ExchangeData + Sync,
    O: ExchangeData,
    F: for<'s> Fn(Coll<'s, (K, V)>) -> Coll<'s, O> + Send + Sync + 'static,
{
    let results = Arc::new(Mutex::new(Vec::new()));
    let sink = results.clone();
    let inputs = Arc::new(inputs);
    let config = if workers <= 1 {
        timely::Config::thread()
    } else {
        timely::Config::process(workers)
    };
    let guards = timely::execute(config, move |worker| {
        let mut input = InputSession::<Time, (K, V), Diff>::new();
        let probe = ProbeHandle::new();
        let sink = sink.clone();
        worker.dataflow::<Time, _, _>(|scope| {
            let out = build(input.to_collection(scope));
            out.inner
                .inspect_core(move |event| {
                    if let Ok((_, data)) = event
                        && let Ok(mut s) = sink.lock()
                    {
                        s.extend(data.iter().cloned());
                    }
                })
                .probe_with(&probe);
        });
        // Worker 0 feeds everything; the others only step (their inputs are closed).
        if worker.index() == 0 {
            let mut latest: HashMap<K, V> = HashMap::new();
            for (k, v, t) in inputs.iter().cloned() {
                if t > *input.time() {
                    input.advance_to(t);
                }
                let old = match &v {
                    Some(v) => latest.insert(k.clone(), v.clone()),
                    None => latest.remove(&k),
                };
                if let Some(old) = old {
                    input.update((k.clone(), old), -1);
                }
                if let Some(v) = v {
                    input.update((k, v), 1);
                }
            }
            input.advance_to(until + 1);
            input.flush();
            while probe.less_than(&(until + 1)) {
                worker.step();
            }
        } else {
            drop(input);
            while probe.less_than(&(until + 1)) {
                worker.step();
            }
        }
    });
    if let Ok(g) = guards {
        drop(g.join());
    }
    let mut out = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    out.retain(|(_, t, _)| *t <= until);
    consolidate_updates(&mut out);
    out.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    out
}
