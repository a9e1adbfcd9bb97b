//! Brute-force references for tests: recompute a derived event from the full input history at
//! every tick, and turn the successive snapshots into `(record, time, diff)` changes. The
//! incremental dataflow must give exactly the same changes (property tests in each event).

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
/// `t`.
pub fn streams<K, V, O: Ord + Clone>(
    history: &[(K, V, Time)],
    until: Time,
    tick: Time,
    events: impl Fn(&[(K, V, Time)], Time) -> Vec<O>,
) -> Vec<(O, Time, Diff)> {
    let mut out = Vec::new();
    let mut t = 0;
    while t <= until {
        let upto = history.partition_point(|(_, _, ht)| *ht <= t);
        let mut now = events(&history[..upto], t);
        now.sort();
        out.extend(now.into_iter().map(|o| (o, t, 1)));
        t += tick.max(1);
    }
    out
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
}
