//! Brute-force references for tests: recompute a derived event from the full input history at
//! every tick, and turn the successive snapshots into `(record, time, diff)` changes. The
//! incremental dataflow must give exactly the same changes (property tests in each event).
//!
//! What a `keyed_process` is handed of its input follows two rules a reference must follow too:
//! [`upserts`] (an identical re-send is no new value, a value replaced within its time never
//! shows) and [`keyed_inputs`] (one of each distinct `(key, value)` per time, in `(key, value)`
//! order within a time, whatever the arrival order).

use crate::prelude::*;

/// Changes of a state event: `snapshot(history up to t, t)` is the set of records present at `t`,
/// evaluated at every multiple of `tick` up to `until` (history sorted by time).
pub fn states<K, V, O: Ord + Clone>(
    history: &[(K, V, Time)],
    until: Time,
    tick: Time,
    snapshot: impl Fn(&[(K, V, Time)], Time) -> Vec<O>,
) -> Vec<(O, Time, Diff)> {
    let mut out = Vec::new();
    let mut previous: Vec<O> = Vec::new();
    let mut t = 0;
    while t <= until {
        let upto = history.partition_point(|(_, _, ht)| *ht <= t);
        let mut now = snapshot(&history[..upto], t);
        now.sort();
        now.dedup();
        for o in previous.iter().filter(|o| now.binary_search(o).is_err()) {
            out.push((o.clone(), t, -1));
        }
        for o in now.iter().filter(|o| previous.binary_search(o).is_err()) {
            out.push((o.clone(), t, 1));
        }
        previous = now;
        t += tick.max(1);
    }
    out.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    out
}

/// Changes of a stream event: `events(history up to t, t)` are the records emitted at exactly
/// `t`, consolidated like a dataflow's output (a record emitted twice at `t` is one row with
/// diff 2), sorted by time, then record.
pub fn streams<K, V, O: Ord + Clone>(
    history: &[(K, V, Time)],
    until: Time,
    tick: Time,
    events: impl Fn(&[(K, V, Time)], Time) -> Vec<O>,
) -> Vec<(O, Time, Diff)> {
    let mut out: Vec<(O, Time, Diff)> = Vec::new();
    let mut t = 0;
    while t <= until {
        let upto = history.partition_point(|(_, _, ht)| *ht <= t);
        let mut now = events(&history[..upto], t);
        now.sort();
        for o in now {
            match out.last_mut() {
                Some((last, lt, diff)) if *lt == t && *last == o => *diff += 1,
                _ => out.push((o, t, 1)),
            }
        }
        t += tick.max(1);
    }
    out
}

/// The new values of an upsert history (`(key, value, time)` in time order, applied as upserts
/// like `harness::run_upsert` and the engine do): per time, the last value of each key at that
/// time, unless it equals the key's value before that time (an identical re-send is a duplicate,
/// not a new value; a value replaced within its time never shows). Sorted by time, then key.
pub fn upserts<K: Ord + Clone, V: Ord + Clone>(history: &[(K, V, Time)]) -> Vec<(K, V, Time)> {
    let mut out = Vec::new();
    let mut current: Vec<(K, V)> = Vec::new();
    let mut i = 0;
    while i < history.len() {
        let t = history[i].2;
        let end = i + history[i..].partition_point(|(_, _, ht)| *ht == t);
        let mut last_of_time: Vec<(K, V)> = Vec::new();
        for (k, v, _) in &history[i..end] {
            match last_of_time.iter_mut().find(|(lk, _)| lk == k) {
                Some(entry) => entry.1 = v.clone(),
                None => last_of_time.push((k.clone(), v.clone())),
            }
        }
        last_of_time.sort();
        for (k, v) in last_of_time {
            match current.iter_mut().find(|(ck, _)| *ck == k) {
                Some(entry) if entry.1 == v => continue,
                Some(entry) => entry.1 = v.clone(),
                None => current.push((k.clone(), v.clone())),
            }
            out.push((k, v, t));
        }
        i = end;
    }
    out
}

/// What a `keyed_process` handles of the values it receives (`(key, value, time)`, each an
/// insertion, in any order): one of each distinct `(key, value)` per time (the same value twice
/// at one time is consolidated into one), in time, then key, then value order. Assumes no
/// value received is also retracted at the same time by another input key mapping to it.
pub fn keyed_inputs<K: Ord, V: Ord>(mut received: Vec<(K, V, Time)>) -> Vec<(K, V, Time)> {
    received.sort_by(|a, b| (a.2, &a.0, &a.1).cmp(&(b.2, &b.0, &b.1)));
    received.dedup();
    received
}

/// What a `keyed_process` handles of an input merging several upserts per key (the robot
/// samples keyed `fleet/robot` are one upsert per source); `upsert(key, value)` names the upsert
/// a value belongs to. The new values of each upsert ([`upserts`]), in [`keyed_inputs`] order.
pub fn merged_upserts<K, V, U>(
    history: &[(K, V, Time)],
    upsert: impl Fn(&K, &V) -> U,
) -> Vec<(K, V, Time)>
where
    K: Ord + Clone,
    V: Ord + Clone,
    U: Ord + Clone,
{
    let by_upsert: Vec<((K, U), V, Time)> = history
        .iter()
        .map(|(k, v, t)| ((k.clone(), upsert(k, v)), v.clone(), *t))
        .collect();
    keyed_inputs(
        upserts(&by_upsert)
            .into_iter()
            .map(|((k, _), v, t)| (k, v, t))
            .collect(),
    )
}

/// The latest value of every key at the end of `history`, in first-appearance order.
pub fn latest<K: PartialEq + Clone, V: Clone>(history: &[(K, V, Time)]) -> Vec<(K, V, Time)> {
    let mut out: Vec<(K, V, Time)> = Vec::new();
    for (k, v, t) in history {
        match out.iter_mut().find(|(ok, _, _)| ok == k) {
            Some(e) => *e = (k.clone(), v.clone(), *t),
            None => out.push((k.clone(), v.clone(), *t)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_become_changes() {
        let history = vec![("a", 1, 10), ("a", 5, 30)];
        // Present: the key when its latest value is above 2.
        let out = states(&history, 50, 10, |h, _| {
            latest(h)
                .into_iter()
                .filter(|(_, v, _)| *v > 2)
                .map(|(k, _, _)| k)
                .collect()
        });
        assert_eq!(out, vec![("a", 30, 1)]);
    }

    #[test]
    fn stream_records_emitted_twice_at_a_time_are_one_row() {
        let history = vec![("a", 1, 10), ("b", 1, 10), ("a", 2, 20)];
        // Each input of time t emits its value.
        let out = streams(&history, 30, 10, |h, t| {
            h.iter()
                .filter(|(_, _, ht)| *ht == t)
                .map(|(_, v, _)| *v)
                .collect()
        });
        assert_eq!(out, vec![(1, 10, 2), (2, 20, 1)]);
    }

    #[test]
    fn upserts_drop_duplicates_and_values_replaced_within_their_time() {
        let history = vec![
            ("b", 1, 10),
            ("a", 9, 10),
            ("a", 1, 10),
            // Identical re-send: no new value.
            ("a", 1, 20),
            // Replaced within the time by the current value: nothing new either.
            ("b", 5, 30),
            ("b", 1, 30),
            ("a", 2, 40),
            ("a", 1, 50),
        ];
        assert_eq!(
            upserts(&history),
            vec![("a", 1, 10), ("b", 1, 10), ("a", 2, 40), ("a", 1, 50)]
        );
    }

    #[test]
    fn merged_upserts_keep_each_upsert_and_order_by_value() {
        // Key "r", upserts by the value's parity: 3 and 4 are two upserts of the same tick.
        let history = vec![("r", 3, 10), ("r", 4, 10), ("r", 3, 20), ("r", 5, 20)];
        assert_eq!(
            merged_upserts(&history, |_, v| v % 2),
            vec![("r", 3, 10), ("r", 4, 10), ("r", 5, 20)]
        );
    }

    #[test]
    fn keyed_inputs_are_distinct_and_in_key_then_value_order_per_time() {
        let received = vec![
            ("b", 2, 10),
            ("a", 3, 10),
            ("b", 1, 10),
            ("b", 2, 10),
            ("a", 0, 20),
        ];
        assert_eq!(
            keyed_inputs(received),
            vec![("a", 3, 10), ("b", 1, 10), ("b", 2, 10), ("a", 0, 20)]
        );
    }
}
