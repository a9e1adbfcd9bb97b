//! CDR, the serialized form of ROS 2 messages (RMF.md section 4): the byte-level reader and
//! writer, the schema-driven generic decoder, and the typed codecs of the RMF messages.
//!
//! A serialized message is a 4-byte encapsulation header (byte 1: 0x01 little endian, 0x00 big
//! endian) and a body; alignment counts from the first body byte. Offsets in errors are counted
//! from the start of the serialized message, header included, so they point into the payload as
//! it is stored in a recording.

pub mod generic;
pub mod reader;
pub mod typed;
pub mod writer;

use thiserror::Error;

pub use reader::CdrReader;
pub use writer::CdrWriter;

/// The RMF message layout of a release. `RobotMode` (inside every `FleetState`) gained a trailing
/// `performing_action: string` in rmf_internal_msgs 3.4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum RmfRelease {
    /// Humble and Jazzy (rmf_internal_msgs up to 3.3): RobotMode without `performing_action`.
    #[value(alias = "humble")]
    Jazzy,
    /// Kilted and main (rmf_internal_msgs 3.4.1 on): RobotMode with `performing_action`.
    #[value(alias = "main", alias = "rolling")]
    Kilted,
}

impl RmfRelease {
    pub const ALL: [RmfRelease; 2] = [RmfRelease::Jazzy, RmfRelease::Kilted];

    pub fn other(self) -> RmfRelease {
        match self {
            RmfRelease::Jazzy => RmfRelease::Kilted,
            RmfRelease::Kilted => RmfRelease::Jazzy,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RmfRelease::Jazzy => "jazzy",
            RmfRelease::Kilted => "kilted",
        }
    }
}

impl std::fmt::Display for RmfRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CDR decoding error. `offset` counts from the start of the serialized message.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CdrError {
    #[error("payload of {len} bytes is too short for the 4-byte encapsulation header")]
    NoHeader { len: usize },
    #[error(
        "unsupported encapsulation representation 0x{0:02x} 0x{1:02x} (expected CDR: 0x00 0x01 or 0x00 0x00)"
    )]
    Representation(u8, u8),
    #[error("offset {offset}: {what} needs {need} bytes, only {available} left")]
    Truncated {
        offset: usize,
        what: &'static str,
        need: usize,
        available: usize,
    },
    #[error("offset {offset}: string of length {len} is not NUL-terminated")]
    Unterminated { offset: usize, len: usize },
    #[error("offset {offset}: bool byte is {value}, not 0 or 1")]
    Bool { offset: usize, value: u8 },
    #[error(
        "offset {offset}: sequence of {count} elements cannot fit in the {available} bytes left"
    )]
    Count {
        offset: usize,
        count: u32,
        available: usize,
    },
    #[error("offset {offset}: {len} bytes left after the message ({what})")]
    Trailing {
        offset: usize,
        len: usize,
        what: &'static str,
    },
    #[error("offset {offset}: {what} is not supported")]
    Unsupported { offset: usize, what: &'static str },
    /// `error` at a field path. Its text is part of this message, not a `source()`: a CDR error
    /// reads as one line (`at items[1].v: offset 26: ...`) wherever it is printed.
    #[error("at {path}: {error}")]
    At { path: String, error: Box<CdrError> },
}

impl CdrError {
    /// Adds a field path segment (outermost first) to an error.
    pub fn at(self, segment: &str) -> CdrError {
        match self {
            CdrError::At { path, error } => {
                let sep = if path.starts_with('[') { "" } else { "." };
                CdrError::At {
                    path: format!("{segment}{sep}{path}"),
                    error,
                }
            }
            e => CdrError::At {
                path: segment.to_string(),
                error: Box::new(e),
            },
        }
    }

    /// The innermost error, without the field path.
    pub fn root_cause(&self) -> &CdrError {
        match self {
            CdrError::At { error, .. } => error.root_cause(),
            e => e,
        }
    }
}
