//! Reusable operators over upsert collections in event time. Each is an extension trait named
//! after its method, one per file; [`keyed`] is the general form the others build on.

pub mod keyed;
