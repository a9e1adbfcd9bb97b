//! The one place where timely and differential-dataflow types are spelled (both are pinned
//! exactly in the workspace `Cargo.toml`; an upgrade touches this file).

pub use differential_dataflow::AsCollection;
pub use differential_dataflow::input::InputSession;
pub use timely::dataflow::channels::pact::{Exchange, Pipeline};
pub use timely::dataflow::operators::Capability;
pub use timely::dataflow::operators::generic::Operator;
pub use timely::dataflow::{ProbeHandle, Scope};

/// Logical time: milliseconds (of the recording's log time, or of the live ingest clock),
/// rounded up to the engine's tick.
pub type Time = u64;

/// Multiplicity change of a record.
pub type Diff = isize;

/// A differential collection of `D` at logical [`Time`].
pub type Coll<'s, D> = differential_dataflow::VecCollection<'s, Time, D, Diff>;

/// The scope dataflows are built in.
pub type Sc<'s> = Scope<'s, Time>;

/// A stable hash for routing a key to a worker: the same on every process of a cluster and in
/// every run, so that outputs do not depend on the worker count.
pub fn route<K: std::hash::Hash + ?Sized>(key: &K) -> u64 {
    use std::hash::Hasher;
    // FNV-1a over the key's Hash stream; std's DefaultHasher::new() is also stable, but its
    // algorithm is not documented to stay the same across Rust releases.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 ^= u64::from(*b);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    key.hash(&mut h);
    h.finish()
}

/// What the engine host needs to run workers.
pub mod host {
    pub use differential_dataflow::consolidation::consolidate;
    pub use timely::communication::WorkerGuards;
    pub use timely::dataflow::operators::Probe;
    pub use timely::worker::Worker;
    pub use timely::{CommunicationConfig, Config, WorkerConfig, execute};
}
