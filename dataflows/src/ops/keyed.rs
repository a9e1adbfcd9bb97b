//! `KeyedProcess::keyed_process`: per-key logic run in event-time order, with one timer per key.
//!
//! The general form every stateful operator of `ops/` is built on. The input is an upsert
//! collection `(key, value)`: each insertion is a new value of the key at its time (retractions of
//! previous values carry no information and are skipped). A key only retracted at a time, with
//! no new value, is deleted: its state and timer are dropped, its current outputs retracted, and
//! it is forgotten (the engine evicts an entity that ended long ago this way). Updates are exchanged by key, buffered
//! until the input frontier passes their time, consolidated (a value inserted and replaced within
//! the same time never shows), then handed to the logic in time order, and within a time in
//! `(key, value)` order, so arrival order never matters; a timer fires at exactly its time, after
//! the inputs of that time. After each time a key was touched,
//! its *current outputs* are compared with the previous ones and the difference is emitted at that
//! time (a condition is a record present while it holds); *events* are emitted once (+1).
//!
//! Outputs therefore depend only on the input updates and their times: not on how the frontier
//! advanced (replay speed), nor on the number of workers. When the input closes, the pending
//! inputs are processed and timers after the last of them are dropped (nothing happens after the
//! end of the stream).
//!
//! Snapshots ([`super::snapshot`]): when the engine asks for one at `S`, the operator writes its
//! keys' states, timers and current outputs once its input frontier has passed `S`. Restored
//! from one, it starts with those states, emits the current outputs at `S`, and ignores its
//! inputs up to `S` (the engine re-inserts its latest inputs there: the states already hold them).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hash};

use differential_dataflow::ExchangeData;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::census::Count;
use super::snapshot::Part;
use crate::prelude::*;

/// What the logic may do while handling an input or a timer at time `t`.
pub struct Ctx<'a, O> {
    /// The logical time being processed.
    pub t: Time,
    timer: &'a mut Option<Time>,
    events: &'a mut Vec<O>,
}

impl<O> Ctx<'_, O> {
    /// Sets this key's (single) timer, replacing any previous one. Times at or before `t` are
    /// moved to `t + 1`.
    pub fn set_timer(&mut self, at: Time) {
        *self.timer = Some(at.max(self.t.saturating_add(1)));
    }

    pub fn clear_timer(&mut self) {
        *self.timer = None;
    }

    pub fn timer(&self) -> Option<Time> {
        *self.timer
    }

    /// Emits a one-off record (+1 at `t`, never retracted).
    pub fn emit(&mut self, record: O) {
        self.events.push(record);
    }

    /// The context of a logic held by another (`ops::parts`): its own timer and events.
    pub(super) fn sub<'b, P>(
        &self,
        timer: &'b mut Option<Time>,
        events: &'b mut Vec<P>,
    ) -> Ctx<'b, P> {
        Ctx {
            t: self.t,
            timer,
            events,
        }
    }

    /// Emits the events of held logics.
    pub(super) fn emit_all(&mut self, records: impl IntoIterator<Item = O>) {
        self.events.extend(records);
    }

    /// Sets the timer to the earliest of held logics' timers (already moved past `t`).
    pub(super) fn set_or_clear(&mut self, at: Option<Time>) {
        *self.timer = at;
    }
}

/// Per-key event-time logic.
pub trait KeyedLogic: 'static {
    type Key: ExchangeData + Hash + Eq;
    type In: ExchangeData;
    type Out: ExchangeData;
    /// Serializable for snapshots; a `&'static str` field uses `ops::snapshot::static_str`.
    type State: Default + Serialize + DeserializeOwned + 'static;

    /// A new value of `key` (by reference: several logics can share one operator, see
    /// [`Both`]).
    fn input(
        &self,
        state: &mut Self::State,
        key: &Self::Key,
        value: &Self::In,
        ctx: &mut Ctx<Self::Out>,
    );

    /// The key's timer fired.
    fn timer(&self, _state: &mut Self::State, _key: &Self::Key, _ctx: &mut Ctx<Self::Out>) {}

    /// The key's current outputs (records present now), after everything at the current time.
    fn output(&self, _state: &Self::State, _key: &Self::Key, _out: &mut Vec<Self::Out>) {}

    /// Whether to keep the key's state; a key with no timer and no current output whose state
    /// is not kept is forgotten.
    fn keep(&self, _state: &Self::State) -> bool {
        true
    }
}

/// Two logics on the same keyed input, in one operator (one exchange, one lookup per value):
/// each keeps its own state and timer; the key's timer is the earlier of the two, and outputs
/// and events are the union.
pub struct Both<A, B>(pub A, pub B);

/// A logic whose outputs and events are mapped into another type, so that it can share an
/// operator ([`Both`]) with logics of other output types.
pub struct MapOut<L: KeyedLogic, O>(pub L, pub fn(L::Out) -> O);

impl<L, O> KeyedLogic for MapOut<L, O>
where
    L: KeyedLogic,
    O: ExchangeData,
{
    type Key = L::Key;
    type In = L::In;
    type Out = O;
    type State = L::State;

    fn input(&self, s: &mut L::State, key: &L::Key, value: &L::In, ctx: &mut Ctx<O>) {
        let mut events = Vec::new();
        let mut sub = Ctx {
            t: ctx.t,
            timer: ctx.timer,
            events: &mut events,
        };
        self.0.input(s, key, value, &mut sub);
        ctx.events.extend(events.into_iter().map(self.1));
    }

    fn timer(&self, s: &mut L::State, key: &L::Key, ctx: &mut Ctx<O>) {
        let mut events = Vec::new();
        let mut sub = Ctx {
            t: ctx.t,
            timer: ctx.timer,
            events: &mut events,
        };
        self.0.timer(s, key, &mut sub);
        ctx.events.extend(events.into_iter().map(self.1));
    }

    fn output(&self, s: &L::State, key: &L::Key, out: &mut Vec<O>) {
        let mut inner = Vec::new();
        self.0.output(s, key, &mut inner);
        out.extend(inner.into_iter().map(self.1));
    }

    fn keep(&self, s: &L::State) -> bool {
        self.0.keep(s)
    }
}

/// The state of [`Both`]: each logic's state and timer.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct BothState<SA, SB> {
    a: SA,
    b: SB,
    timer_a: Option<Time>,
    timer_b: Option<Time>,
}

impl<SA, SB> BothState<SA, SB> {
    fn timer(&self) -> Option<Time> {
        match (self.timer_a, self.timer_b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl<A, B> KeyedLogic for Both<A, B>
where
    A: KeyedLogic,
    B: KeyedLogic<Key = A::Key, In = A::In, Out = A::Out>,
{
    type Key = A::Key;
    type In = A::In;
    type Out = A::Out;
    type State = BothState<A::State, B::State>;

    fn input(
        &self,
        s: &mut Self::State,
        key: &Self::Key,
        value: &Self::In,
        ctx: &mut Ctx<Self::Out>,
    ) {
        let t = ctx.t;
        let mut sub = Ctx {
            t,
            timer: &mut s.timer_a,
            events: ctx.events,
        };
        self.0.input(&mut s.a, key, value, &mut sub);
        let mut sub = Ctx {
            t,
            timer: &mut s.timer_b,
            events: ctx.events,
        };
        self.1.input(&mut s.b, key, value, &mut sub);
        *ctx.timer = s.timer();
    }

    fn timer(&self, s: &mut Self::State, key: &Self::Key, ctx: &mut Ctx<Self::Out>) {
        let t = ctx.t;
        if s.timer_a.is_some_and(|a| a <= t) {
            s.timer_a = None;
            let mut sub = Ctx {
                t,
                timer: &mut s.timer_a,
                events: ctx.events,
            };
            self.0.timer(&mut s.a, key, &mut sub);
        }
        if s.timer_b.is_some_and(|b| b <= t) {
            s.timer_b = None;
            let mut sub = Ctx {
                t,
                timer: &mut s.timer_b,
                events: ctx.events,
            };
            self.1.timer(&mut s.b, key, &mut sub);
        }
        *ctx.timer = s.timer();
    }

    fn output(&self, s: &Self::State, key: &Self::Key, out: &mut Vec<Self::Out>) {
        self.0.output(&s.a, key, out);
        self.1.output(&s.b, key, out);
    }

    fn keep(&self, s: &Self::State) -> bool {
        self.0.keep(&s.a) || self.1.keep(&s.b)
    }
}

struct Entry<S, O> {
    state: S,
    timer: Option<Time>,
    outputs: Vec<O>,
    touched: bool,
    /// Deleted at the current time (see [`deletions`]): forgotten once its outputs are retracted.
    deleted: bool,
}

pub trait KeyedProcess<'s, K, V> {
    fn keyed_process<L>(self, name: &str, logic: L) -> Coll<'s, L::Out>
    where
        L: KeyedLogic<Key = K, In = V>;
}

impl<'s, K: ExchangeData + Hash + Eq, V: ExchangeData> KeyedProcess<'s, K, V> for Coll<'s, (K, V)> {
    fn keyed_process<L>(self, name: &str, logic: L) -> Coll<'s, L::Out>
    where
        L: KeyedLogic<Key = K, In = V>,
    {
        let exchange = Exchange::new(|update: &((K, V), Time, Diff)| route(&(update.0).0));
        let reporting = super::building::current();
        let snapshots = reporting.snapshots;
        let worker = self.inner.scope().index();
        let census = reporting.census.map(|c| c.register(name, worker));
        let name = name.to_string();
        self.inner
            .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<(L::Out, Time, Diff)>>, _, _, _>(
                exchange,
                &name.clone(),
                move |capability, info| {
                    let mut keys: FxHashMap<K, Entry<L::State, L::Out>> = FxHashMap::default();
                    let mut pending: BTreeMap<Time, Vec<(u64, (K, V), Diff)>> = BTreeMap::new();
                    let mut timers: BTreeMap<Time, Vec<K>> = BTreeMap::new();
                    let mut held: Option<Capability<Time>> = None;
                    let id = format!("{name}@{:?}", info.address);
                    // Restored: inputs up to `restored` are in the state already; the current
                    // outputs are emitted at `restored` with the initial capability.
                    let mut restored: Option<Time> = None;
                    let mut initial: Option<Capability<Time>> = None;
                    if let Some(snapshots) = &snapshots
                        && let Some((t, bytes)) = snapshots.register(&id, worker)
                    {
                        match restore::<L>(&bytes, &mut keys, &mut timers) {
                            Ok(()) => {
                                restored = Some(t);
                                initial = Some(capability);
                            }
                            Err(e) => snapshots.problem(format!("operator {id}: {e}")),
                        }
                    }
                    let mut snapshotted: Option<Time> = None;
                    let mut touched: Vec<K> = Vec::new();
                    let mut events: Vec<L::Out> = Vec::new();
                    let mut fresh: Vec<L::Out> = Vec::new();
                    move |(input, frontier), output| {
                        if let (Some(cap), Some(t)) = (initial.take(), restored) {
                            let cap = cap.delayed(&t);
                            let mut session = output.session(&cap);
                            for entry in keys.values() {
                                for o in &entry.outputs {
                                    session.give((o.clone(), t, 1));
                                }
                            }
                            drop(session);
                            held = Some(cap);
                        }
                        input.for_each_stamp(|cap, data| {
                            // Updates carry their own times, at or after the message's stamp.
                            if let Some(&least) = cap.least()
                                && held.as_ref().is_none_or(|h| least < *h.time())
                            {
                                held = cap.retain_least(0);
                            }
                            for container in data {
                                for (kv, t, diff) in container.drain(..) {
                                    if restored.is_some_and(|r| t <= r) {
                                        continue;
                                    }
                                    let h = rustc_hash::FxBuildHasher.hash_one(&kv.0);
                                    pending.entry(t).or_default().push((h, kv, diff));
                                }
                            }
                        });
                        // A closed input (empty frontier) ends the stream: what is pending is
                        // processed up to the last input, later timers are dropped.
                        let closed = frontier.frontier().is_empty();
                        let limit = match frontier.frontier().first() {
                            Some(f) => Some(*f),
                            None => Some(pending.keys().next_back().map_or(0, |t| t + 1)),
                        };
                        loop {
                            let next_input = pending.keys().next().copied();
                            let next_timer = timers.keys().next().copied();
                            let t = match (next_input, next_timer) {
                                (Some(a), Some(b)) => a.min(b),
                                (Some(a), None) | (None, Some(a)) => a,
                                (None, None) => break,
                            };
                            if limit.is_some_and(|f| t >= f) {
                                break;
                            }
                            let Some(cap) = held.as_ref() else { break };
                            let cap = cap.delayed(&t);
                            if next_input == Some(t) {
                                let mut batch = pending.remove(&t).unwrap_or_default();
                                canonical(&mut batch);
                                let deleted = deletions(&batch);
                                for (_, (k, v), diff) in batch {
                                    if diff <= 0 {
                                        if deleted.contains(&k) && let Some(entry) = keys.get_mut(&k) {
                                            entry.state = L::State::default();
                                            schedule(&mut timers, &k, entry.timer, None);
                                            entry.timer = None;
                                            entry.deleted = true;
                                            if !entry.touched {
                                                entry.touched = true;
                                                touched.push(k);
                                            }
                                        }
                                        continue;
                                    }
                                    let entry = keys.entry(k.clone()).or_insert_with(|| Entry {
                                        state: L::State::default(),
                                        timer: None,
                                        outputs: Vec::new(),
                                        touched: false,
                                        deleted: false,
                                    });
                                    entry.deleted = false;
                                    let mut timer = entry.timer;
                                    let mut ctx = Ctx { t, timer: &mut timer, events: &mut events };
                                    logic.input(&mut entry.state, &k, &v, &mut ctx);
                                    schedule(&mut timers, &k, entry.timer, timer);
                                    entry.timer = timer;
                                    if !entry.touched {
                                        entry.touched = true;
                                        touched.push(k);
                                    }
                                }
                            }
                            // Then the timers due at t that are still current.
                            if next_timer == Some(t) {
                                for k in timers.remove(&t).unwrap_or_default() {
                                    let Some(entry) = keys.get_mut(&k) else { continue };
                                    if entry.timer != Some(t) {
                                        continue;
                                    }
                                    let mut timer = None;
                                    let mut ctx = Ctx { t, timer: &mut timer, events: &mut events };
                                    logic.timer(&mut entry.state, &k, &mut ctx);
                                    schedule(&mut timers, &k, None, timer);
                                    entry.timer = timer;
                                    if !entry.touched {
                                        entry.touched = true;
                                        touched.push(k);
                                    }
                                }
                            }
                            let mut session = output.session(&cap);
                            for k in touched.drain(..) {
                                let Some(entry) = keys.get_mut(&k) else { continue };
                                entry.touched = false;
                                fresh.clear();
                                logic.output(&entry.state, &k, &mut fresh);
                                fresh.sort();
                                if fresh != entry.outputs {
                                    for old in entry.outputs.drain(..) {
                                        session.give((old, t, -1));
                                    }
                                    for new in &fresh {
                                        session.give((new.clone(), t, 1));
                                    }
                                    entry.outputs.append(&mut fresh);
                                }
                                let forgotten = entry.deleted || !logic.keep(&entry.state);
                                if entry.timer.is_none() && entry.outputs.is_empty() && forgotten {
                                    keys.remove(&k);
                                }
                            }
                            for e in events.drain(..) {
                                session.give((e, t, 1));
                            }
                        }
                        if let Some(census) = &census {
                            census.set(Count { keys: keys.len(), timer_times: timers.len() });
                        }
                        if let Some(snapshots) = &snapshots
                            && let Some(s) = snapshots.request()
                            && snapshotted != Some(s)
                            && frontier.frontier().first().is_some_and(|f| *f > s)
                        {
                            snapshotted = Some(s);
                            match bincode::serialize(&sorted(&keys)) {
                                Ok(state) => snapshots.put(s, Part { operator: id.clone(), worker, state }),
                                Err(e) => snapshots.fail(s, format!("operator {id}: {e}")),
                            }
                        }
                        if closed {
                            pending.clear();
                            timers.clear();
                            held = None;
                            return;
                        }
                        // Hold a capability only as long as something may still be emitted.
                        let next = [pending.keys().next(), timers.keys().next()]
                            .into_iter()
                            .flatten()
                            .min()
                            .copied();
                        match (next, held.as_mut()) {
                            (Some(t), Some(cap)) => cap.downgrade(&t),
                            (None, _) => held = None,
                            (Some(_), None) => {}
                        }
                    }
                },
            )
            .as_collection()
    }
}

/// One key's snapshot: state, timer, current outputs.
type Saved<K, S, O> = (K, S, Option<Time>, Vec<O>);

/// The keys' entries in key order (a snapshot's bytes do not depend on hash map order).
fn sorted<K: Ord, S, O>(keys: &FxHashMap<K, Entry<S, O>>) -> Vec<(&K, &S, Option<Time>, &Vec<O>)> {
    let mut v: Vec<_> = keys
        .iter()
        .map(|(k, e)| (k, &e.state, e.timer, &e.outputs))
        .collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// Loads a snapshot part into an empty operator.
fn restore<L: KeyedLogic>(
    bytes: &[u8],
    keys: &mut FxHashMap<L::Key, Entry<L::State, L::Out>>,
    timers: &mut BTreeMap<Time, Vec<L::Key>>,
) -> Result<(), bincode::Error> {
    let saved: Vec<Saved<L::Key, L::State, L::Out>> = bincode::deserialize(bytes)?;
    keys.reserve(saved.len());
    for (k, state, timer, outputs) in saved {
        if let Some(t) = timer {
            timers.entry(t).or_default().push(k.clone());
        }
        keys.insert(
            k,
            Entry {
                state,
                timer,
                outputs,
                touched: false,
                deleted: false,
            },
        );
    }
    Ok(())
}

/// The keys of a canonical batch ([`canonical`]) that are only retracted at its time: deleted
/// from the upsert collection (the engine evicts an entity that ended long ago this way; see
/// `src/engine/latest.rs`). A key whose value is replaced has an insertion too.
fn deletions<K: Ord + Clone, V>(batch: &[(u64, (K, V), Diff)]) -> Vec<K> {
    let mut out: Vec<K> = Vec::new();
    let mut i = 0;
    while i < batch.len() {
        let key = &(batch[i].1).0;
        let mut j = i;
        let mut inserted = false;
        while j < batch.len() && (batch[j].1).0 == *key {
            inserted |= batch[j].2 > 0;
            j += 1;
        }
        if !inserted {
            out.push(key.clone());
        }
        i = j;
    }
    out
}

/// Puts the inputs of one time in a canonical order, whatever their arrival order, and cancels
/// values inserted and replaced within that time: sorted by key hash (cheap integer compares;
/// the order among keys does not matter), then by key and value, consolidated.
fn canonical<K: Ord, V: Ord>(batch: &mut Vec<(u64, (K, V), Diff)>) {
    batch.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    // Sum the diffs of equal records (adjacent after the sort), keep the non-zero ones.
    let mut w = 0;
    for r in 0..batch.len() {
        if w > 0 && batch[w - 1].0 == batch[r].0 && batch[w - 1].1 == batch[r].1 {
            batch[w - 1].2 += batch[r].2;
        } else {
            batch.swap(w, r);
            w += 1;
        }
    }
    batch.truncate(w);
    batch.retain(|e| e.2 != 0);
}

/// Moves a key's timer in the time index from `old` to `new`. The old entry is taken out at
/// once: a logic that pushes its timer back on every input (a timeout restarted by each value)
/// would otherwise leave one entry per input until its time came, a day later for some.
fn schedule<K: Clone + Eq>(
    timers: &mut BTreeMap<Time, Vec<K>>,
    key: &K,
    old: Option<Time>,
    new: Option<Time>,
) {
    if old == new {
        return;
    }
    if let Some(at) = old
        && let Some(keys) = timers.get_mut(&at)
    {
        if let Some(i) = keys.iter().position(|k| k == key) {
            keys.remove(i);
        }
        if keys.is_empty() {
            timers.remove(&at);
        }
    }
    if let Some(at) = new {
        timers.entry(at).or_default().push(key.clone());
    }
}

impl<S: Debug, O: Debug> Debug for Entry<S, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("state", &self.state)
            .field("timer", &self.timer)
            .field("outputs", &self.outputs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_upsert_deleting;

    /// Counts a key's values, keeps its last one as the current output (none once deleted),
    /// emits every value and, 10 ms after a value that found no timer, the count then.
    struct Probe;

    #[derive(Default, Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Seen {
        count: u64,
        last: u64,
    }

    type Out = (u32, String, u64);

    impl KeyedLogic for Probe {
        type Key = u32;
        type In = u64;
        type Out = Out;
        type State = Seen;

        fn input(&self, s: &mut Seen, key: &u32, value: &u64, ctx: &mut Ctx<Out>) {
            s.count += 1;
            s.last = *value;
            ctx.emit((*key, "in".into(), *value));
            if ctx.timer().is_none() {
                ctx.set_timer(ctx.t + 10);
            }
        }

        fn timer(&self, s: &mut Seen, key: &u32, ctx: &mut Ctx<Out>) {
            ctx.emit((*key, "timer".into(), s.count));
        }

        fn output(&self, s: &Seen, key: &u32, out: &mut Vec<Out>) {
            if s.count > 0 {
                out.push((*key, "last".into(), s.last));
            }
        }
    }

    fn rec(key: u32, kind: &str, v: u64, t: Time, diff: Diff) -> (Out, Time, Diff) {
        ((key, kind.into(), v), t, diff)
    }

    #[test]
    fn inputs_in_time_order_timers_after_them_outputs_as_differences() {
        let inputs = vec![
            // Replaced within its time: the logic never sees 5.
            (1, Some(5), 10),
            (1, Some(6), 10),
            (2, Some(7), 15),
            // At the time of key 1's timer: the input first (the timer then counts 2).
            (1, Some(8), 20),
            // Key 2 deleted after its timer fired: its output is retracted, the key forgotten.
            (2, None, 30),
        ];
        let want = vec![
            rec(1, "in", 6, 10, 1),
            rec(1, "last", 6, 10, 1),
            rec(2, "in", 7, 15, 1),
            rec(2, "last", 7, 15, 1),
            rec(1, "in", 8, 20, 1),
            rec(1, "last", 6, 20, -1),
            rec(1, "last", 8, 20, 1),
            rec(1, "timer", 2, 20, 1),
            rec(2, "timer", 1, 25, 1),
            rec(2, "last", 7, 30, -1),
        ];
        for workers in [1, 2] {
            let out = run_upsert_deleting(workers, inputs.clone(), 100, |c| {
                c.keyed_process("Probe", Probe)
            });
            assert_eq!(out, want, "{workers} workers");
        }
    }

    fn entry(count: u64, timer: Option<Time>) -> Entry<Seen, Out> {
        Entry {
            state: Seen { count, last: count },
            timer,
            outputs: vec![(0, "last".into(), count)],
            touched: false,
            deleted: false,
        }
    }

    #[test]
    fn a_snapshot_part_does_not_depend_on_map_order_and_restores_the_timer_index() {
        let mut a: FxHashMap<u32, Entry<Seen, Out>> = FxHashMap::default();
        let mut b = FxHashMap::default();
        for k in 0..50u32 {
            a.insert(
                k,
                entry(k.into(), (k % 3 == 0).then_some(Time::from(k % 2))),
            );
        }
        for k in (0..50u32).rev() {
            b.insert(
                k,
                entry(k.into(), (k % 3 == 0).then_some(Time::from(k % 2))),
            );
        }
        let bytes = bincode::serialize(&sorted(&a)).expect("encode");
        assert_eq!(bytes, bincode::serialize(&sorted(&b)).expect("encode"));
        let (mut keys, mut timers) = (FxHashMap::default(), BTreeMap::new());
        restore::<Probe>(&bytes, &mut keys, &mut timers).expect("decode");
        assert_eq!(keys.len(), 50);
        assert_eq!(keys[&7].state, Seen { count: 7, last: 7 });
        assert_eq!(keys[&7].outputs, vec![(0, "last".to_string(), 7)]);
        assert_eq!(timers[&0], [0, 6, 12, 18, 24, 30, 36, 42, 48]);
        assert_eq!(timers[&1], [3, 9, 15, 21, 27, 33, 39, 45]);
        let err = restore::<Probe>(&bytes[..bytes.len() / 2], &mut keys, &mut timers);
        assert!(err.is_err(), "a cut part is refused");
    }

    #[test]
    fn a_batch_is_canonical_whatever_its_arrival_order() {
        let h = |k: u32| rustc_hash::FxBuildHasher.hash_one(k);
        let mut batch = vec![
            (h(2), (2, 9), 1),
            (h(1), (1, 5), 1),
            (h(1), (1, 4), -1),
            (h(1), (1, 5), -1),
            (h(3), (3, 1), -1),
        ];
        canonical(&mut batch);
        let kept: Vec<_> = batch.iter().map(|e| (e.1, e.2)).collect();
        let mut want = vec![((1, 4), -1), ((2, 9), 1), ((3, 1), -1)];
        want.sort_by_key(|((k, _), _)| h(*k));
        assert_eq!(kept, want);
        // Key 1 is only retracted once 5 cancels: deleted, as key 3.
        let mut deleted = deletions(&batch);
        deleted.sort();
        assert_eq!(deleted, [1, 3]);
    }

    #[test]
    fn a_moved_timer_leaves_no_entry_behind() {
        let mut timers: BTreeMap<Time, Vec<u32>> = BTreeMap::new();
        schedule(&mut timers, &1, None, Some(10));
        schedule(&mut timers, &2, None, Some(10));
        schedule(&mut timers, &1, Some(10), Some(20));
        schedule(&mut timers, &2, Some(10), None);
        assert_eq!(timers, BTreeMap::from([(20, vec![1])]));
    }
}
