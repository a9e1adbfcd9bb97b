//! rmf-dash: the real-time data backend for Open-RMF dashboards.
//!
//! - [`ingest`]: decoding RMF messages (schema parser, CDR, built-in definitions), recordings and
//!   sources;
//! - [`trace`]: the recorded-trace tools (generator, info, dump);
//! - [`progress`]: progress display of long operations.
//! - [`rmf_link`]: commands to RMF (door and lift requests, the task API, alert responses).
//! - [`ros2`]: rmf-dash as a ROS 2 node (live topics in, commands out; `--features ros2`).
//! - [`view`]: the built-in live view of the site (a page served at `/`).
//! - [`edge`]: what every HTTP listener puts in front of its routes (CORS, the public URL).
//! - [`listener`]: the bounds of every HTTP listener (header and idle timeouts, open
//!   connections).
//! - [`json_limits`]: the bounds on JSON read from the network (depth, size), at every door.
//! - [`quarantine`]: engine inputs that made a worker panic, recorded and skipped from then on.
//! - [`site`]: the site configuration file (`--config`: derived events' sections, kept flags).
//! - [`error`]: error text for people: an error and its causes, each said once.
//! - [`store`]: PostgreSQL persistence (batched writer, restore, dump, retention, private
//!   cluster).
pub mod access;
pub mod api;
pub mod bench;
pub mod edge;
pub mod engine;
pub mod error;
pub mod hub;
pub mod ingest;
pub mod json_limits;
pub mod listener;
pub mod progress;
pub mod proxy;
pub mod quarantine;
pub mod replay;
pub mod rmf_link;
pub mod ros2;
pub mod scheduled;
pub mod serve;
pub mod site;
pub mod store;
pub mod trace;
pub mod users;
pub mod view;
