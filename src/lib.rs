//! rmf-dash: the real-time data backend for Open-RMF dashboards.
//!
//! The modules, from the bottom up (a module is meant to use only those of its own group and
//! the groups above it in this list; issue 22 tracks the arrows that still point up):
//!
//! Shared foundations
//! - [`error`]: error text for people: an error and its causes, each said once.
//! - [`progress`]: progress display of long operations.
//! - [`stop`]: the process's stop signal (Ctrl-C or SIGTERM).
//! - [`json_limits`]: the bounds on JSON read from the network (depth, size), at every door.
//! - [`site`]: the site configuration file (`--config`: derived events' sections, kept flags).
//! - [`query`]: what a read asks for (time windows, pages and their order, task filters),
//!   answered by the store and by memory alike.
//! - [`access`]: who may do what (tokens, permissions, room grants), asked by every entry point.
//! - [`listener`]: the bounds of every HTTP listener (header and idle timeouts, open
//!   connections, the bound address written for supervisors).
//! - [`edge`]: what every HTTP listener puts in front of its routes (CORS, the public URL).
//! - [`metrics`]: `/metrics` in Prometheus's text format, written family by family by the part
//!   that owns each.
//!
//! Data in and out of RMF
//! - [`ingest`]: decoding RMF messages (schema parser, CDR, built-in definitions), recordings,
//!   sources, the feeder and the fleet adapters' `/_internal` websocket.
//! - [`trace`]: the recorded-trace tools (generator, info, dump).
//! - [`ros2`]: rmf-dash as a ROS 2 node (live topics in, commands out; `--features ros2`).
//! - [`rmf_link`]: commands to RMF (door and lift requests, the task API, alert responses).
//!
//! Derivation, state, persistence
//! - [`engine`]: the timely/differential workers running the dataflows of `rmf-dash-dataflows`.
//! - [`quarantine`]: engine inputs that made a worker panic, recorded and skipped from then on.
//! - [`hub`]: the sticky state of every room and the delivery of its changes to subscribers.
//! - [`store`]: PostgreSQL persistence (batched writer, input log, restore, dump, retention,
//!   leadership, private cluster).
//!
//! Surfaces
//! - [`api`]: the HTTP routes (REST of COMPAT.md, commands, `/health`, `/metrics`) and the
//!   socket.io mount.
//! - [`users`]: users, roles and permissions as rmf-web keeps them, and their admin routes.
//! - [`scheduled`]: scheduled tasks (`/scheduled_tasks`), dispatched by the active main process.
//! - [`view`]: the built-in live view of the site (a page served at `/`).
//! - [`proxy`]: `rmf-dash proxy`, a process fanning the main process's rooms out to more clients.
//!
//! Processes and tools (each wires the layers above)
//! - [`serve`]: `rmf-dash serve`, the process lifecycle (listen, standby, activate, serve, stop).
//! - [`replay`]: `rmf-dash replay`, a recording through the engine (and the store).
//! - [`bench`]: `rmf-dash bench`, every performance figure next to a same-run baseline.
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
pub mod metrics;
pub mod progress;
pub mod proxy;
pub mod quarantine;
pub mod query;
pub mod replay;
pub mod rmf_link;
pub mod ros2;
pub mod scheduled;
pub mod serve;
pub mod site;
pub mod stop;
pub mod store;
pub mod trace;
pub mod users;
pub mod view;
