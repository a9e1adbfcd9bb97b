//! `LatestBy::latest_by`: the latest projection of each key's values, as an upsert collection
//! that changes only when the projection does.
//!
//! Robot samples arrive at 10 Hz but a robot's task or level changes rarely: projecting first
//! keeps joins and reductions downstream from re-doing work for every sample. `None` means the key
//! has no record (a previous record is retracted). Several values of a key at one time (upserts
//! merged under one key) are taken in value order: the greatest is the latest.

use differential_dataflow::ExchangeData;

use super::keyed::{Ctx, KeyedLogic, KeyedProcess};
use crate::prelude::*;

pub trait LatestBy<'s, K, V> {
    fn latest_by<P, F>(self, name: &str, project: F) -> Coll<'s, (K, P)>
    where
        P: ExchangeData,
        F: Fn(&K, &V) -> Option<P> + 'static;
}

struct Logic<K, V, P, F> {
    project: F,
    _types: std::marker::PhantomData<fn(K, V) -> P>,
}

impl<K, V, P, F> KeyedLogic for Logic<K, V, P, F>
where
    K: ExchangeData + std::hash::Hash + Eq,
    V: ExchangeData,
    P: ExchangeData,
    F: Fn(&K, &V) -> Option<P> + 'static,
{
    type Key = K;
    type In = V;
    type Out = (K, P);
    type State = Option<P>;

    fn input(&self, state: &mut Option<P>, key: &K, value: &V, _ctx: &mut Ctx<(K, P)>) {
        *state = (self.project)(key, value);
    }

    fn output(&self, state: &Option<P>, key: &K, out: &mut Vec<(K, P)>) {
        if let Some(p) = state {
            out.push((key.clone(), p.clone()));
        }
    }

    fn keep(&self, state: &Option<P>) -> bool {
        state.is_some()
    }
}

impl<'s, K, V> LatestBy<'s, K, V> for Coll<'s, (K, V)>
where
    K: ExchangeData + std::hash::Hash + Eq,
    V: ExchangeData,
{
    fn latest_by<P, F>(self, name: &str, project: F) -> Coll<'s, (K, P)>
    where
        P: ExchangeData,
        F: Fn(&K, &V) -> Option<P> + 'static,
    {
        self.keyed_process(
            name,
            Logic {
                project,
                _types: std::marker::PhantomData,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_upsert;

    #[test]
    fn changes_only_when_the_projection_does() {
        // (key, value): project the tens digit; None for negative values.
        let inputs = vec![
            ('a', 11, 10),
            ('a', 12, 20),
            ('a', 25, 30),
            ('b', 5, 30),
            ('a', -1, 40),
            ('a', 31, 50),
        ];
        let out = run_upsert(2, inputs, 100, |c| {
            c.latest_by("Tens", |_k, v: &i32| (*v >= 0).then_some(*v / 10))
        });
        assert_eq!(
            out,
            vec![
                (('a', 1), 10, 1),
                (('a', 1), 30, -1),
                (('a', 2), 30, 1),
                (('b', 0), 30, 1),
                (('a', 2), 40, -1),
                (('a', 3), 50, 1),
            ]
        );
    }

    #[test]
    fn a_deleted_key_is_retracted_and_forgotten() {
        // 'a' deleted at 20 (its record retracted), back at 30 as new; 'b' replaced at 20 is
        // not a deletion.
        let inputs = vec![
            ('a', Some(11), 10),
            ('b', Some(21), 10),
            ('a', None, 20),
            ('b', Some(35), 20),
            ('a', Some(12), 30),
        ];
        let census = crate::ops::census::Census::new();
        let counted = census.clone();
        let out = crate::harness::run_upsert_deleting(1, inputs, 100, move |c| {
            let reporting = crate::ops::building::Reporting {
                census: Some(counted.clone()),
                ..Default::default()
            };
            crate::ops::building::building(reporting, || {
                c.latest_by("Tens", |_k, v: &i32| Some(*v / 10))
            })
        });
        assert_eq!(
            out,
            vec![
                (('a', 1), 10, 1),
                (('b', 2), 10, 1),
                (('a', 1), 20, -1),
                (('b', 2), 20, -1),
                (('b', 3), 20, 1),
                (('a', 1), 30, 1),
            ]
        );
        assert_eq!(census.totals()["Tens"].keys, 2);
        // Deleted and not back: forgotten.
        let out = crate::harness::run_upsert_deleting(
            2,
            vec![('a', Some(11), 10), ('a', None, 20)],
            100,
            |c| c.latest_by("Tens", |_k, v: &i32| Some(*v / 10)),
        );
        assert_eq!(out, vec![(('a', 1), 10, 1), (('a', 1), 20, -1)]);
    }

    #[test]
    fn several_values_of_one_time_are_taken_in_value_order() {
        // Two upserts (by source 0 and 1) merged under key 'a': at 10 the greatest value is the
        // latest whatever the arrival order; at 20 the source-1 value changes, now the greatest.
        for first in [0u8, 1] {
            let second = 1 - first;
            let value = |source: u8| if source == 0 { 25 } else { 12 };
            let inputs = vec![
                (('a', first), value(first), 10),
                (('a', second), value(second), 10),
                (('a', 1), 31, 20),
            ];
            let out = run_upsert(2, inputs, 100, |c| {
                c.map(|((k, _), v)| (k, v))
                    .latest_by("Tens", |_k, v: &i32| Some(*v / 10))
            });
            assert_eq!(
                out,
                vec![(('a', 2), 10, 1), (('a', 2), 20, -1), (('a', 3), 20, 1)]
            );
        }
    }
}
