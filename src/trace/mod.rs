//! Recorded-trace tools: `trace gen` (the realistic site generator), `trace info` and
//! `trace dump`.

pub mod dump;
pub mod generate;
pub mod info;

use thiserror::Error;

use crate::ingest::bag::BagError;

#[derive(Debug, Error)]
pub enum TraceError {
    #[error(transparent)]
    Bag(#[from] BagError),
    #[error("{0}")]
    Usage(String),
    #[error("output")]
    Io(#[from] std::io::Error),
}
