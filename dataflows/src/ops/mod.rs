//! Reusable operators over upsert collections in event time. Each is an extension trait named
//! after its method, one per file, or a small state machine used inside a `KeyedLogic`;
//! [`keyed`] is the general form the others build on.

pub mod building;
pub mod census;
pub mod debounce;
pub mod heartbeat;
pub mod hysteresis;
pub mod keyed;
pub mod latest;
pub mod parts;
pub mod snapshot;
pub mod window;
