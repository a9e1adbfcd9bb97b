//! `Parts`: logics chosen at run time (a list, not a type) sharing one keyed operator.
//!
//! [`super::keyed::Both`] joins two logics whose types are written out; `Parts` joins any number
//! of boxed [`Part`]s of one key, input and output type, each with its own state and timer, in
//! one `KeyedLogic` (one exchange, one lookup per value for all of them). A part is a
//! `KeyedLogic` boxed with [`part`]; its output is tagged with its index in the list.
//!
//! Snapshots: the state of a key is the list of the parts' timers and states, each state encoded
//! on its own (bincode). A state read from a snapshot stays encoded until its part first uses it,
//! so that the list's state type does not need to know the parts' types.

use std::any::Any;
use std::marker::PhantomData;

use differential_dataflow::ExchangeData;
use serde::{Deserialize, Serialize};

use super::keyed::{Ctx, KeyedLogic};
use crate::prelude::*;

/// A part's state: in use, or as read from a snapshot until first used.
enum Slot {
    Live(Box<dyn Any>),
    Encoded(Vec<u8>),
}

/// One part's state and timer within a key's state.
struct PartState {
    timer: Option<Time>,
    slot: Slot,
}

/// A key's state: one entry per part, in the order of the list (created when first used).
#[derive(Default)]
pub struct PartsState {
    parts: Vec<PartState>,
    /// Each live part's encoder, by index (set when its state is made live).
    encoders: Vec<Option<fn(&dyn Any) -> Vec<u8>>>,
}

impl Serialize for PartsState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded: Vec<(Option<Time>, Vec<u8>)> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let bytes = match &p.slot {
                    Slot::Encoded(bytes) => bytes.clone(),
                    Slot::Live(state) => self
                        .encoders
                        .get(i)
                        .copied()
                        .flatten()
                        .map_or_else(Vec::new, |encode| encode(state.as_ref())),
                };
                (p.timer, bytes)
            })
            .collect();
        encoded.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PartsState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let encoded: Vec<(Option<Time>, Vec<u8>)> = Vec::deserialize(d)?;
        Ok(PartsState {
            encoders: vec![None; encoded.len()],
            parts: encoded
                .into_iter()
                .map(|(timer, bytes)| PartState {
                    timer,
                    slot: Slot::Encoded(bytes),
                })
                .collect(),
        })
    }
}

/// A logic of key `K`, input `I` and output `O`, boxed for a [`Parts`] list.
pub trait Part<K, I, O> {
    fn input(&self, state: &mut dyn Any, key: &K, value: &I, ctx: &mut Ctx<O>);
    fn timer(&self, state: &mut dyn Any, key: &K, ctx: &mut Ctx<O>);
    fn output(&self, state: &dyn Any, key: &K, out: &mut Vec<O>);
    fn keep(&self, state: &dyn Any) -> bool;
    /// A new state, or the one `bytes` encode (the default when they do not decode).
    fn state(&self, bytes: Option<&[u8]>) -> Box<dyn Any>;
    fn encoder(&self) -> fn(&dyn Any) -> Vec<u8>;
}

/// `L` as a [`Part`].
struct Boxed<L>(L);

/// Boxes `logic` for a [`Parts`] list.
pub fn part<L: KeyedLogic>(logic: L) -> Box<dyn Part<L::Key, L::In, L::Out>> {
    Box::new(Boxed(logic))
}

fn encode<S: Serialize + 'static>(state: &dyn Any) -> Vec<u8> {
    state
        .downcast_ref::<S>()
        .and_then(|s| bincode::serialize(s).ok())
        .unwrap_or_default()
}

/// The state a part gave itself; a part only ever sees the state it created (the list keeps
/// them apart by index), so the downcast holds.
fn mine<S: 'static>(state: &dyn Any) -> Option<&S> {
    state.downcast_ref::<S>()
}

impl<L: KeyedLogic> Part<L::Key, L::In, L::Out> for Boxed<L> {
    fn input(&self, state: &mut dyn Any, key: &L::Key, value: &L::In, ctx: &mut Ctx<L::Out>) {
        if let Some(s) = state.downcast_mut::<L::State>() {
            self.0.input(s, key, value, ctx);
        }
    }

    fn timer(&self, state: &mut dyn Any, key: &L::Key, ctx: &mut Ctx<L::Out>) {
        if let Some(s) = state.downcast_mut::<L::State>() {
            self.0.timer(s, key, ctx);
        }
    }

    fn output(&self, state: &dyn Any, key: &L::Key, out: &mut Vec<L::Out>) {
        if let Some(s) = mine::<L::State>(state) {
            self.0.output(s, key, out);
        }
    }

    fn keep(&self, state: &dyn Any) -> bool {
        mine::<L::State>(state).is_some_and(|s| self.0.keep(s))
    }

    fn state(&self, bytes: Option<&[u8]>) -> Box<dyn Any> {
        let decoded = bytes.and_then(|b| bincode::deserialize::<L::State>(b).ok());
        Box::new(decoded.unwrap_or_default())
    }

    fn encoder(&self) -> fn(&dyn Any) -> Vec<u8> {
        encode::<L::State>
    }
}

/// Boxed parts in one keyed operator; output `(index of the part, record)`.
pub struct Parts<K, I, O> {
    parts: Vec<Box<dyn Part<K, I, O>>>,
    _types: PhantomData<fn(K, I) -> O>,
}

impl<K, I, O> Parts<K, I, O> {
    pub fn new(parts: Vec<Box<dyn Part<K, I, O>>>) -> Self {
        Parts {
            parts,
            _types: PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Part `i`'s state and timer, made live (created or decoded) if needed.
    fn live<'a>(&self, s: &'a mut PartsState, i: usize) -> (&'a mut dyn Any, &'a mut Option<Time>) {
        let part = &self.parts[i];
        while s.parts.len() <= i {
            s.parts.push(PartState {
                timer: None,
                slot: Slot::Encoded(Vec::new()),
            });
            s.encoders.push(None);
        }
        let entry = &mut s.parts[i];
        if let Slot::Encoded(bytes) = &entry.slot {
            let bytes = (!bytes.is_empty()).then_some(bytes.as_slice());
            entry.slot = Slot::Live(part.state(bytes));
            s.encoders[i] = Some(part.encoder());
        }
        match &mut entry.slot {
            Slot::Live(state) => (state.as_mut(), &mut entry.timer),
            Slot::Encoded(_) => unreachable!("made live above"),
        }
    }

    fn timer_of(s: &PartsState) -> Option<Time> {
        s.parts.iter().filter_map(|p| p.timer).min()
    }
}

impl<K, I, O> KeyedLogic for Parts<K, I, O>
where
    K: ExchangeData + std::hash::Hash + Eq,
    I: ExchangeData,
    O: ExchangeData,
{
    type Key = K;
    type In = I;
    type Out = (u16, O);
    type State = PartsState;

    fn input(&self, s: &mut PartsState, key: &K, value: &I, ctx: &mut Ctx<(u16, O)>) {
        for i in 0..self.parts.len() {
            let (state, timer) = self.live(s, i);
            let mut events = Vec::new();
            let mut sub = ctx.sub(timer, &mut events);
            self.parts[i].input(state, key, value, &mut sub);
            ctx.emit_all(events.into_iter().map(|e| (i as u16, e)));
        }
        ctx.set_or_clear(Self::timer_of(s));
    }

    fn timer(&self, s: &mut PartsState, key: &K, ctx: &mut Ctx<(u16, O)>) {
        let t = ctx.t;
        for i in 0..self.parts.len() {
            let (state, timer) = self.live(s, i);
            if timer.is_none_or(|at| at > t) {
                continue;
            }
            *timer = None;
            let mut events = Vec::new();
            let mut sub = ctx.sub(timer, &mut events);
            self.parts[i].timer(state, key, &mut sub);
            ctx.emit_all(events.into_iter().map(|e| (i as u16, e)));
        }
        ctx.set_or_clear(Self::timer_of(s));
    }

    fn output(&self, s: &PartsState, key: &K, out: &mut Vec<(u16, O)>) {
        let mut mine = Vec::new();
        for (i, (part, p)) in self.parts.iter().zip(&s.parts).enumerate() {
            if let Slot::Live(state) = &p.slot {
                part.output(state.as_ref(), key, &mut mine);
                out.extend(mine.drain(..).map(|o| (i as u16, o)));
            }
        }
    }

    fn keep(&self, s: &PartsState) -> bool {
        self.parts
            .iter()
            .zip(&s.parts)
            .any(|(part, p)| match &p.slot {
                Slot::Live(state) => part.keep(state.as_ref()),
                // Not used since the restore: its state is kept as it was.
                Slot::Encoded(bytes) => !bytes.is_empty(),
            })
    }
}
