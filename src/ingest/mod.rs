//! Ingest: turning what RMF says into typed records stamped with a logical time.
//!
//! - [`ros2msg`]: the `.msg` schema language rosbag2 embeds;
//! - [`cdr`]: the CDR wire format (reader, writer, generic and typed decoding);
//! - [`builtin`]: built-in RMF message definitions per release;
//! - [`decode`]: per-topic choice of decoding path and layout detection;
//! - [`admission`]: the fleet and robot names the engine takes in (bounded).
pub mod admission;
pub mod bag;
pub mod builtin;
pub mod cdr;
pub mod decode;
pub mod feed;
pub mod internal;
pub mod live;
pub mod ros2msg;
pub mod source;
