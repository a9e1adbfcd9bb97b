//! The `rmf-dash` command line: parses arguments and hands over to the library.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use rmf_dash::ingest::cdr::RmfRelease;
use rmf_dash::ingest::decode::ReleasePolicy;
use rmf_dash::trace;

#[global_allocator]
static ALLOCATOR: rmf_dash::bench::memory::Counting = rmf_dash::bench::memory::Counting;

#[derive(Parser)]
#[command(
    name = "rmf-dash",
    version,
    about = "Real-time data backend for Open-RMF dashboards"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Recorded traces: generate, inspect, dump.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Run a recording through the engine (as fast as possible by default).
    Replay(ReplayArgs),
    /// Measure every performance figure against its baseline on a generated trace.
    Bench(BenchArgs),
    /// Run the server: REST, socket.io, the fleet-adapter websocket, fed by RMF or a recording.
    Serve(Box<ServeArgs>),
    Proxy(ProxyArgs),
    /// The PostgreSQL store: dump, prune, stats.
    #[command(subcommand)]
    Store(StoreCommand),
    /// The registered derived events: rooms, inputs, persistence, lookback and configuration.
    Events(EventsArgs),
    /// The fan-out benchmark's client load (started by `bench`).
    #[command(hide = true)]
    BenchLoad(BenchLoadArgs),
}

#[derive(Args)]
struct EventsArgs {
    /// A site configuration file: its `[derived.*]` sections are the configuration shown.
    #[arg(long, env = "RMF_DASH_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchLoadArgs {
    #[arg(long)]
    addr: std::net::SocketAddr,
    #[arg(long, value_enum)]
    mode: rmf_dash::bench::load::Mode,
    #[arg(long)]
    clients: usize,
    #[arg(long)]
    per_client: usize,
    /// Comma-separated rooms.
    #[arg(long, value_delimiter = ',')]
    rooms: Vec<String>,
}

/// The socket.io rooms restricted by role (`serve` and `proxy`).
#[derive(Args)]
struct RoomArgs {
    /// A socket.io room restricted to some roles: PREFIX=ACTION (repeated or comma separated;
    /// like /alerts=alert_read): rooms starting with PREFIX need ACTION in the site-wide group
    /// (the longest matching prefix decides; admins read everything). None: every
    /// authenticated user reads every room.
    #[arg(long, env = "RMF_DASH_ROOM_PERMISSIONS", value_delimiter = ',')]
    room_permission: Vec<rmf_dash::access::rooms::RoomRule>,
}

/// Browsers on other origins and the URLs inside payloads (`serve` and `proxy`).
#[derive(Args)]
struct EdgeArgs {
    /// An origin browsers may call from (scheme://host[:port]; repeated or comma separated).
    /// None or `*`: every origin, as rmf-web's api-server allows.
    #[arg(long, env = "RMF_DASH_CORS_ORIGINS", value_delimiter = ',')]
    cors_origin: Vec<String>,
    /// The URL clients reach this server at (http(s)://host[:port][/prefix]); the URLs inside
    /// payloads (the building map's images) are made from it. Default: http://<listen><prefix>
    /// (localhost for an unspecified address).
    #[arg(long, env = "RMF_DASH_PUBLIC_URL")]
    public_url: Option<String>,
}

/// The bounds of the HTTP listener (`serve` and `proxy`); 0 turns a bound off.
#[derive(Args)]
struct ListenerArgs {
    /// Milliseconds a connection has to send complete request headers (from its accept, or
    /// from its first byte after an idle time); then it is closed.
    #[arg(long, default_value_t = 10_000, env = "RMF_DASH_HEADER_TIMEOUT_MS")]
    header_timeout_ms: u64,
    /// Milliseconds a keep-alive connection may stay with no request in flight (websockets are
    /// not cut: their pings keep them).
    #[arg(long, default_value_t = 60_000, env = "RMF_DASH_IDLE_TIMEOUT_MS")]
    idle_timeout_ms: u64,
    /// Open connections (websockets included) beyond which new ones are closed at once
    /// (counted on /metrics). Keep it below the process's file limit (raised at start to its
    /// hard limit).
    #[arg(long, default_value_t = 10_000, env = "RMF_DASH_MAX_CONNECTIONS")]
    max_connections: u64,
    /// Once listening, write the bound address (`127.0.0.1:40123`) to this file: with
    /// `--listen 127.0.0.1:0` the port is free and chosen without a race.
    #[arg(long, value_name = "FILE", env = "RMF_DASH_LISTEN_FILE")]
    listen_file: Option<std::path::PathBuf>,
}

/// The bounds of the hub and its sockets (`serve` and `proxy`); 0 turns a bound off.
#[derive(Args)]
struct HubArgs {
    /// Rooms held at most; beyond, rooms nobody follows are evicted (without a value first,
    /// then stream rooms, then the oldest-updated values: counted and warned), and
    /// subscriptions that would need a room's value evicted are refused.
    #[arg(long, default_value_t = rmf_dash::hub::bounds::DEFAULT_MAX_ROOMS, env = "RMF_DASH_MAX_ROOMS")]
    max_rooms: usize,
    /// Rooms one socket.io client may follow (more are refused with subscribe_error).
    #[arg(long, default_value_t = rmf_dash::hub::bounds::DEFAULT_MAX_ROOMS_PER_CLIENT, env = "RMF_DASH_MAX_ROOMS_PER_CLIENT")]
    max_rooms_per_client: usize,
    /// Bytes that may wait in one socket.io client's outgoing queue; a slower client then
    /// gets the latest value of each room it missed.
    #[arg(long, default_value_t = rmf_dash::hub::bounds::DEFAULT_SOCKET_QUEUE_BYTES, env = "RMF_DASH_SOCKET_QUEUE_BYTES")]
    socket_queue_bytes: u64,
    /// Final values of retired rooms (tasks that ended and left memory) kept in memory for
    /// subscribers and reads soon after; older ones are read from the store.
    #[arg(long, default_value_t = rmf_dash::hub::retire::DEFAULT_ARCHIVED_ROOMS, env = "RMF_DASH_ARCHIVED_ROOMS")]
    archived_rooms: usize,
}

impl HubArgs {
    fn bounds(&self) -> rmf_dash::hub::HubBounds {
        rmf_dash::hub::HubBounds {
            max_rooms: self.max_rooms,
            max_rooms_per_client: self.max_rooms_per_client,
            socket_queue_bytes: self.socket_queue_bytes,
            archived_rooms: self.archived_rooms,
        }
    }
}

/// The fleet and robot names the engine takes in; 0 turns a bound off.
#[derive(Args)]
struct NameArgs {
    /// Fleet names taken in over the life of the process; inputs of further fleets are dropped
    /// (counted, warned).
    #[arg(long, default_value_t = rmf_dash::ingest::admission::DEFAULT_MAX_FLEETS, env = "RMF_DASH_MAX_FLEETS")]
    max_fleets: usize,
    /// Robot names taken in over the life of the process, site-wide; inputs of further robots
    /// are dropped (counted, warned).
    #[arg(long, default_value_t = rmf_dash::ingest::admission::DEFAULT_MAX_ROBOTS, env = "RMF_DASH_MAX_ROBOTS")]
    max_robots: usize,
}

impl NameArgs {
    fn bounds(&self) -> rmf_dash::ingest::admission::NameBounds {
        rmf_dash::ingest::admission::NameBounds {
            max_fleets: self.max_fleets,
            max_robots: self.max_robots,
        }
    }
}

/// The bounds on JSON read from the network (`serve` and `proxy`): REST bodies, /_internal
/// frames, /_replicate requests, socket.io payloads.
#[derive(Args)]
struct JsonArgs {
    /// Deepest nesting of arrays and objects accepted in a JSON document; a deeper one is
    /// refused (REST 422, /_internal frame dropped, counted on /metrics). At most 100, so that
    /// every reader downstream (serde_json refuses 128 levels) reads what was accepted.
    #[arg(long, default_value_t = rmf_dash::json_limits::DEFAULT_MAX_DEPTH as u32, env = "RMF_DASH_MAX_JSON_DEPTH", value_parser = clap::value_parser!(u32).range(1..=rmf_dash::json_limits::MAX_DEPTH_CEILING as i64))]
    max_json_depth: u32,
    /// Largest REST body and socket.io message in bytes (a larger body: 413); /_internal
    /// frames have --internal-max-frame.
    #[arg(long, default_value_t = rmf_dash::json_limits::DEFAULT_MAX_BYTES, env = "RMF_DASH_MAX_JSON_BYTES")]
    max_json_bytes: usize,
}

impl JsonArgs {
    /// Sets the process's JSON bounds (before anything is served).
    fn apply(&self) {
        rmf_dash::json_limits::configure(rmf_dash::json_limits::Limits {
            max_depth: self.max_json_depth as usize,
            max_bytes: self.max_json_bytes,
        });
    }
}

impl ListenerArgs {
    fn config(&self) -> rmf_dash::listener::ListenerConfig {
        rmf_dash::listener::ListenerConfig {
            header_timeout: std::time::Duration::from_millis(self.header_timeout_ms),
            idle_timeout: std::time::Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
            listen_file: self.listen_file.clone(),
        }
    }
}

impl EdgeArgs {
    fn config(self) -> rmf_dash::edge::EdgeConfig {
        rmf_dash::edge::EdgeConfig {
            cors_origins: self.cors_origin,
            public_url: self.public_url,
        }
    }
}

#[derive(Args)]
struct ProxyArgs {
    /// The main process or another proxy: http://host:port[/prefix]. Several (repeated or
    /// comma separated): the main processes of one site; the proxy follows the active one.
    #[arg(
        long,
        env = "RMF_DASH_UPSTREAM",
        required = true,
        value_delimiter = ','
    )]
    upstream: Vec<String>,
    /// JWT given to the upstream's /_replicate (Authorization: Bearer).
    #[arg(long, env = "RMF_DASH_UPSTREAM_TOKEN", hide_env_values = true)]
    upstream_token: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8001", env = "RMF_DASH_LISTEN")]
    listen: std::net::SocketAddr,
    /// URL prefix of every route, when served behind a proxy (like /api).
    #[arg(long, default_value = "", env = "RMF_DASH_PREFIX")]
    prefix: String,
    /// HMAC secret of the JWTs.
    #[arg(long, env = "RMF_DASH_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// RSA public key (PEM) of the JWTs.
    #[arg(long, env = "RMF_DASH_JWT_PUBLIC_KEY", conflicts_with = "jwt_secret")]
    jwt_public_key: Option<String>,
    /// Expected audience of the JWTs.
    #[arg(long, default_value = "rmf_api_server", env = "RMF_DASH_JWT_AUD")]
    jwt_aud: String,
    /// Expected issuer of the JWTs (checked when given).
    #[arg(long, env = "RMF_DASH_JWT_ISS")]
    jwt_iss: Option<String>,
    /// No authentication (local demos only: a warning is logged).
    #[arg(long, env = "RMF_DASH_NO_AUTH")]
    no_auth: bool,
    #[command(flatten)]
    rooms: RoomArgs,
    #[command(flatten)]
    edge: EdgeArgs,
    #[command(flatten)]
    listener: ListenerArgs,
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    json: JsonArgs,
    /// Milliseconds over which changes from upstream are gathered before they are delivered:
    /// each client's share of a batch leaves in one write. 0 delivers what has arrived at once;
    /// 20-50 saves 20-35% of the CPU when clients follow many busy rooms, for that much latency
    /// (BENCHMARKS.md, "Proxy load test").
    #[arg(long, default_value_t = 0, env = "RMF_DASH_BATCH_MS", value_parser = clap::value_parser!(u64).range(0..=1000))]
    batch_ms: u64,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Everything stored, as canonical JSON lines (sorted, without write timestamps).
    Dump(StoreTarget),
    /// Applies retention now (per table, relative to the store's checkpoint).
    Prune(PruneArgs),
    /// What every table holds: size on disk, rows, site time spanned, bytes per site hour,
    /// retention; and the WAL.
    Stats(StatsArgs),
}

#[derive(Args)]
struct StoreTarget {
    /// PostgreSQL URL of the store (default: the private PostgreSQL of --data-dir).
    #[arg(long, env = "RMF_DASH_DATABASE_URL")]
    database_url: Option<String>,
    /// Data directory of the private PostgreSQL.
    #[arg(long, default_value = "rmf-dash-data", env = "RMF_DASH_DATA_DIR")]
    data_dir: std::path::PathBuf,
}

#[derive(Args)]
struct PruneArgs {
    #[command(flatten)]
    target: StoreTarget,
    #[command(flatten)]
    retention: RetentionArgs,
}

#[derive(Args)]
struct StatsArgs {
    #[command(flatten)]
    target: StoreTarget,
    #[command(flatten)]
    retention: RetentionArgs,
    /// Run ANALYZE first, so that the row counts are exact.
    #[arg(long)]
    analyze: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// How long the store keeps each table (`store prune`, and what `store stats` reports).
#[derive(Args, Clone)]
struct RetentionArgs {
    /// Keep this much of the input log (whole days are dropped).
    #[arg(long, default_value = "7days", env = "RMF_DASH_INPUT_LOG_RETENTION", value_parser = humantime::parse_duration)]
    input_log_retention: std::time::Duration,
    /// Keep this much output history (whole days are dropped).
    #[arg(long, default_value = "7days", env = "RMF_DASH_HISTORY_RETENTION", value_parser = humantime::parse_duration)]
    history_retention: std::time::Duration,
    /// Keep this much of the task and fleet logs.
    #[arg(long, default_value = "30days", env = "RMF_DASH_LOGS_RETENTION", value_parser = humantime::parse_duration)]
    logs_retention: std::time::Duration,
    /// Keep this much of the alerts.
    #[arg(long, default_value = "90days", env = "RMF_DASH_ALERTS_RETENTION", value_parser = humantime::parse_duration)]
    alerts_retention: std::time::Duration,
}

impl RetentionArgs {
    fn retention(&self) -> rmf_dash::store::prune::Retention {
        rmf_dash::store::prune::Retention {
            input_log: self.input_log_retention,
            history: self.history_retention,
            logs: self.logs_retention,
            alerts: self.alerts_retention,
        }
    }
}

/// Store options of `serve` and `replay`.
#[derive(Args, Clone)]
struct StoreArgs {
    /// Data directory of the private PostgreSQL run when no --database-url is given.
    #[arg(long, default_value = "rmf-dash-data", env = "RMF_DASH_DATA_DIR")]
    data_dir: std::path::PathBuf,
    /// Write to the store at least every N ms.
    #[arg(long, default_value_t = 200, env = "RMF_DASH_FLUSH_MS")]
    flush_ms: u64,
    /// Write to the store as soon as this many rows wait.
    #[arg(long, default_value_t = 50_000, env = "RMF_DASH_FLUSH_ROWS")]
    flush_rows: usize,
    /// Memory bound (MiB) of the rows held while the database is slow or away; beyond it the
    /// oldest are dropped (logged, counted, recorded in store_gaps).
    #[arg(long, default_value_t = 256, env = "RMF_DASH_STORE_BUFFER_MB")]
    store_buffer_mb: usize,
    /// The site: the main processes of one site share its store, one of them active (holding
    /// the site's leadership lock), the others standby.
    #[arg(long, default_value = "default", env = "RMF_DASH_SITE_NAME")]
    site_name: String,
    /// How often a standby tries to take the leadership (ms).
    #[arg(long, default_value_t = 500, env = "RMF_DASH_LEADER_RETRY_MS")]
    leader_retry_ms: u64,
}

impl StoreArgs {
    fn writer(&self, url: String) -> rmf_dash::store::WriterConfig {
        rmf_dash::store::WriterConfig {
            flush_ms: self.flush_ms.max(1),
            flush_rows: self.flush_rows.max(1),
            max_buffer_bytes: self.store_buffer_mb.max(1) << 20,
            leader: rmf_dash::store::leader::LeaderConfig {
                site: self.site_name.clone(),
                retry: std::time::Duration::from_millis(self.leader_retry_ms.clamp(10, 60_000)),
            },
            ..rmf_dash::store::WriterConfig::new(url)
        }
    }
}

/// The store to use: none (`--no-db`), the given URL, or the private PostgreSQL of `data_dir`
/// (started here and stopped when the returned guard is dropped, unless another process owns it).
fn store_url(
    no_db: bool,
    url: Option<String>,
    data_dir: &std::path::Path,
) -> Result<(Option<rmf_dash::store::LocalPg>, Option<String>)> {
    if no_db {
        return Ok((None, None));
    }
    if let Some(url) = url {
        return Ok((None, Some(url)));
    }
    let pg = rmf_dash::store::LocalPg::start(data_dir, Default::default())?;
    let url = pg.url().to_string();
    Ok((Some(pg), Some(url)))
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000", env = "RMF_DASH_LISTEN")]
    listen: std::net::SocketAddr,
    /// URL prefix of every route, when served behind a proxy (like /api).
    #[arg(long, default_value = "", env = "RMF_DASH_PREFIX")]
    prefix: String,
    /// Feed the server from a recording (.mcap, .db3 or rosbag2 folder).
    #[arg(long, env = "RMF_DASH_REPLAY")]
    replay: Option<String>,
    /// Replay speed: 1 = real time, a factor, or `max`.
    #[arg(long, default_value = "1", env = "RMF_DASH_SPEED")]
    speed: rmf_dash::ingest::source::Pacing,
    /// Run without persistence.
    #[arg(long, env = "RMF_DASH_NO_DB")]
    no_db: bool,
    /// PostgreSQL URL of the store.
    #[arg(long, env = "RMF_DASH_DATABASE_URL")]
    database_url: Option<String>,
    /// HMAC secret of the JWTs.
    #[arg(long, env = "RMF_DASH_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// RSA public key (PEM) of the JWTs.
    #[arg(long, env = "RMF_DASH_JWT_PUBLIC_KEY", conflicts_with = "jwt_secret")]
    jwt_public_key: Option<String>,
    /// Expected audience of the JWTs.
    #[arg(long, default_value = "rmf_api_server", env = "RMF_DASH_JWT_AUD")]
    jwt_aud: String,
    /// Expected issuer of the JWTs (checked when given).
    #[arg(long, env = "RMF_DASH_JWT_ISS")]
    jwt_iss: Option<String>,
    /// No authentication (local demos only: a warning is logged).
    #[arg(long, env = "RMF_DASH_NO_AUTH")]
    no_auth: bool,
    #[command(flatten)]
    rooms: RoomArgs,
    #[command(flatten)]
    edge: EdgeArgs,
    #[command(flatten)]
    listener: ListenerArgs,
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    names: NameArgs,
    #[command(flatten)]
    json: JsonArgs,
    /// User made an admin at start (with a store; users are otherwise created without roles on
    /// their first request).
    #[arg(long, default_value = "admin", env = "RMF_DASH_ADMIN_USER")]
    admin_user: String,
    /// Token fleet adapters may give on /_internal (?token= or Authorization: Bearer); with
    /// client authentication on, a valid client JWT is accepted there too.
    #[arg(long, env = "RMF_DASH_INTERNAL_TOKEN", hide_env_values = true)]
    internal_token: Option<String>,
    /// Leave /_internal open to any adapter although clients must authenticate (labs only: a
    /// warning is logged at start). Without it, /_internal requires the internal token or a
    /// valid client JWT whenever authentication is on.
    #[arg(
        long,
        env = "RMF_DASH_INTERNAL_OPEN",
        conflicts_with = "internal_token"
    )]
    internal_open: bool,
    /// How commands reach RMF: `loopback` (an in-process RMF stand-in that records what is
    /// published and answers task requests; tests and demos) or `none` (commands refused).
    #[arg(
        long,
        value_enum,
        default_value = "loopback",
        env = "RMF_DASH_RMF_LINK"
    )]
    rmf_link: rmf_dash::rmf_link::LinkKind,
    /// Join the site's ROS 2 graph as node `rmf_dash`: ingest the live RMF topics and send
    /// commands over ROS 2 (instead of --rmf-link); every message must have the layout of
    /// --rmf-release. Needs a build with `--features ros2`.
    #[arg(long, env = "RMF_DASH_ROS2")]
    ros2: bool,
    /// Wait for RMF's answer to a task request (ms); an acknowledgement restarts it.
    #[arg(long, default_value_t = 5000, env = "RMF_DASH_TASK_TIMEOUT_MS")]
    task_timeout_ms: u64,
    /// Largest /_internal message in bytes; a larger one closes its connection (code 1009).
    #[arg(
        long,
        default_value_t = rmf_dash::ingest::internal::DEFAULT_MAX_FRAME,
        env = "RMF_DASH_INTERNAL_MAX_FRAME"
    )]
    internal_max_frame: usize,
    /// Frames a second each /_internal connection may send (0: no limit); the excess is dropped.
    #[arg(
        long,
        default_value_t = rmf_dash::ingest::internal::DEFAULT_RATE,
        env = "RMF_DASH_INTERNAL_RATE"
    )]
    internal_rate: u32,
    /// Frames each /_internal connection may send at once, above the rate.
    #[arg(
        long,
        default_value_t = rmf_dash::ingest::internal::DEFAULT_BURST,
        env = "RMF_DASH_INTERNAL_BURST"
    )]
    internal_burst: u32,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    retention: RetentionArgs,
    /// Apply the retention to the store this often while active (0: never; `store prune` does
    /// it by hand).
    #[arg(long, default_value = "1h", env = "RMF_DASH_PRUNE_EVERY", value_parser = humantime::parse_duration)]
    prune_every: std::time::Duration,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    release: ReleaseArgs,
    #[command(flatten)]
    schedule: ScheduleArgs,
}

#[derive(Args)]
struct ScheduleArgs {
    /// Time zone of scheduled tasks' local times and except dates (an IANA name).
    #[arg(long, default_value = "UTC", env = "RMF_DASH_TIMEZONE")]
    timezone: chrono_tz::Tz,
    /// Occurrences of scheduled tasks missed by more than this (server down or standby) are not
    /// dispatched late.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, env = "RMF_DASH_SCHEDULE_CATCH_UP")]
    schedule_catch_up: std::time::Duration,
    /// After becoming active, wait this long before settling the occurrences a dead process
    /// claimed but left unconfirmed (for their task states to arrive).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, env = "RMF_DASH_SCHEDULE_RESEND_AFTER")]
    schedule_resend_after: std::time::Duration,
    /// Test hook: a fake clock for scheduled tasks, `start=<RFC 3339>,origin=<unix ms>,rate=<x>`.
    #[arg(long, hide = true, env = "RMF_DASH_TEST_CLOCK")]
    test_clock: Option<String>,
}

impl ScheduleArgs {
    fn config(&self) -> Result<rmf_dash::scheduled::dispatch::ScheduleConfig> {
        use rmf_dash::scheduled::{clock::Clock, dispatch::Pause};
        let clock = match &self.test_clock {
            Some(spec) => Clock::parse_fake(spec)?,
            None => Clock::wall(),
        };
        // Test hook: stop the dispatcher at a point of the claim/answer window.
        let pause = std::env::var("RMF_DASH_TEST_SCHEDULE_PAUSE")
            .ok()
            .and_then(|p| Pause::parse(&p));
        Ok(rmf_dash::scheduled::dispatch::ScheduleConfig {
            tz: self.timezone,
            clock,
            catch_up: self.schedule_catch_up,
            resend_after: self.schedule_resend_after,
            pause,
        })
    }
}

#[derive(Args)]
struct BenchArgs {
    #[arg(long, value_enum, default_value = "1k")]
    site: rmf_dash::bench::BenchSite,
    /// Length of the generated trace (every section but soak: see --soak-hours).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// Smoke run (hotel site, 30 s; soak: 3 minutes): finishes in well under 2 minutes.
    #[arg(long)]
    quick: bool,
    /// Write the JSON report here.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Where to generate the trace (default: a temporary directory).
    #[arg(long)]
    workdir: Option<std::path::PathBuf>,
    /// Only these sections: decode, engine, latency, ingest, fanout, store, soak (comma
    /// separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// socket.io clients of the fan-out section (100 with --quick).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Site hours of the soak section's trace (a 1k site: about 1.1 GB of MCAP in --workdir per
    /// hour, removed after).
    #[arg(long, default_value_t = 4)]
    soak_hours: u32,
    /// The soak section also runs with the store writer into a private PostgreSQL in --workdir
    /// (about 0.2 GB per site hour of the 1k site).
    #[arg(long)]
    soak_store: bool,
    /// The soak section's trace: read from this file when it exists, else generated into it;
    /// kept either way (a before/after pair then generates it once).
    #[arg(long, value_name = "FILE")]
    soak_trace: Option<std::path::PathBuf>,
    /// The soak engine's --ended-task-retention, in seconds (0: ended tasks are kept, as before
    /// eviction existed).
    #[arg(long, default_value_t = rmf_dash::engine::DEFAULT_TASK_RETENTION_MS / 1000, value_name = "SECS")]
    soak_retention: u64,
}

#[derive(Args)]
struct ReplayArgs {
    /// An .mcap file, a .db3 file, or a rosbag2 folder.
    file: String,
    /// Run without persistence.
    #[arg(long, conflicts_with = "database_url")]
    no_db: bool,
    /// PostgreSQL URL of the store (default: a private PostgreSQL in --data-dir). A store that
    /// already holds part of this recording resumes after its checkpoint.
    #[arg(long, env = "RMF_DASH_DATABASE_URL")]
    database_url: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// Print every output change: `jsonl` = {"time","room","diff","value"} per line.
    #[arg(long, value_parser = ["jsonl"])]
    emit: Option<String>,
    /// Replay speed: `max` (default) or a factor of real time (1 = real time).
    #[arg(long, default_value = "max", env = "RMF_DASH_SPEED")]
    speed: rmf_dash::ingest::source::Pacing,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    release: ReleaseArgs,
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Site configuration file (TOML): the derived events' `[derived.<section>]` and the flags
    /// this command keeps (`[serve]`, `[replay]`; the command line and environment win). See
    /// README, "Site configuration".
    #[arg(long, env = "RMF_DASH_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Engine worker threads in this process.
    #[arg(long, default_value_t = 1, env = "RMF_DASH_WORKERS")]
    workers: usize,
    /// Logical time granularity in ms.
    #[arg(long, default_value_t = 10, env = "RMF_DASH_TICK_MS")]
    tick_ms: u64,
    /// This process's index in a timely cluster (with --hosts).
    #[arg(long, requires = "hosts")]
    process: Option<usize>,
    /// File with one host:port per cluster process (with --process).
    #[arg(long, requires = "process")]
    hosts: Option<String>,
    /// Snapshot the engine's state every SECS of logical time: the latest is where the engine
    /// is rebuilt from after a worker panic and, with a store, where a restart starts (0: never;
    /// not in a cluster).
    #[arg(
        long,
        default_value_t = rmf_dash::engine::DEFAULT_SNAPSHOT_EVERY_S,
        env = "RMF_DASH_SNAPSHOT_EVERY",
        value_name = "SECS"
    )]
    snapshot_every: u64,
    /// Inputs kept since the latest engine snapshot, to rebuild the engine in place after a
    /// worker panic; at this many a snapshot is taken at once.
    #[arg(long, default_value_t = rmf_dash::engine::DEFAULT_RECOVERY_INPUTS, env = "RMF_DASH_RECOVERY_INPUTS")]
    recovery_inputs: usize,
    /// Quarantined inputs (ones that made an engine worker panic) kept in memory.
    #[arg(long, default_value_t = rmf_dash::quarantine::DEFAULT_MAX_ENTRIES, env = "RMF_DASH_MAX_QUARANTINED")]
    max_quarantined: usize,
    /// How long a task stays in memory after it ended (completed, failed, canceled, killed), in
    /// seconds of logical time; then the engine and the hub forget it and reads go to the store
    /// (0: kept for ever).
    #[arg(
        long,
        default_value_t = rmf_dash::engine::DEFAULT_TASK_RETENTION_MS / 1000,
        env = "RMF_DASH_ENDED_TASK_RETENTION",
        value_name = "SECS"
    )]
    ended_task_retention: u64,
}

impl EngineArgs {
    fn config(&self) -> anyhow::Result<rmf_dash::engine::EngineConfig> {
        let cluster = match (&self.process, &self.hosts) {
            (Some(p), Some(h)) => {
                let hosts = rmf_dash::engine::read_hosts(h)?;
                anyhow::ensure!(
                    *p < hosts.len(),
                    "--process {p} but {h} lists {} hosts",
                    hosts.len()
                );
                Some((*p, hosts))
            }
            _ => None,
        };
        anyhow::ensure!(
            self.workers >= 1 && self.workers <= 256,
            "--workers must be 1..=256"
        );
        anyhow::ensure!(
            self.snapshot_every <= 86_400,
            "--snapshot-every must be at most 86400 s"
        );
        Ok(rmf_dash::engine::EngineConfig {
            workers: self.workers,
            snapshot_every_ms: (self.snapshot_every > 0 && cluster.is_none())
                .then(|| self.snapshot_every * 1000),
            cluster,
            recovery_inputs: self.recovery_inputs,
            quarantine: std::sync::Arc::new(rmf_dash::quarantine::Quarantine::new(
                self.max_quarantined,
            )),
            task_retention_ms: (self.ended_task_retention > 0)
                .then(|| self.ended_task_retention.saturating_mul(1000)),
            derived: derived_config(self.config.as_deref())?,
        })
    }
}

#[derive(Subcommand)]
enum TraceCommand {
    /// Generate a realistic rosbag2 MCAP recording of a simulated RMF site.
    Gen(GenArgs),
    /// Topics, types, counts, rates, duration and RMF layout of a recording.
    Info {
        /// An .mcap file, a .db3 file, or a rosbag2 folder.
        file: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Decoded messages as JSON lines {"log_time", "topic", "type", "message"}.
    Dump {
        /// An .mcap file, a .db3 file, or a rosbag2 folder.
        file: String,
        /// Only this topic (repeatable).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Stop after N messages.
        #[arg(long)]
        limit: Option<u64>,
        /// Print byte arrays in full instead of {"len", "crc32"} beyond 64 bytes.
        #[arg(long)]
        full_bytes: bool,
        #[command(flatten)]
        release: ReleaseArgs,
    },
}

#[derive(Args, Clone, Copy)]
struct ReleaseArgs {
    /// RMF message layout for sources without schemas, when payloads fit both layouts.
    #[arg(
        long,
        value_enum,
        env = "RMF_DASH_RMF_RELEASE",
        default_value = "jazzy"
    )]
    rmf_release: RmfRelease,
}

impl ReleaseArgs {
    fn policy(self) -> ReleasePolicy {
        ReleasePolicy {
            preferred: self.rmf_release,
            strict: false,
        }
    }
}

#[derive(Args)]
struct GenArgs {
    #[command(flatten)]
    site: trace::generate::SiteArgs,
    /// Output MCAP file.
    #[arg(short = 'o', long = "output")]
    output: std::path::PathBuf,
    /// Also write the /_internal websocket frames (one JSON frame per line) to this file
    /// (default: the output path with extension .ws.jsonl).
    #[arg(long)]
    ws_out: Option<std::path::PathBuf>,
    /// Do not write the websocket frames file.
    #[arg(long, conflicts_with = "ws_out")]
    no_ws: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RMF_DASH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Open connections are bounded by --max-connections, not by a soft limit of 1,024 files.
    if let Some(files) = rmf_dash::listener::raise_fd_limit() {
        tracing::debug!(files, "open-file limit");
    }
    let cli = match with_site_flags(std::env::args_os().collect()) {
        Ok(argv) => Cli::parse_from(argv),
        Err(e) => {
            eprintln!("error: {}", rmf_dash::error::chain(&e));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", rmf_dash::error::chain(&*e));
            ExitCode::from(2)
        }
    }
}

/// `argv` with the flags the site file (`--config`) keeps for the command inserted after the
/// command's name (see [`rmf_dash::site`]).
fn with_site_flags(
    mut argv: Vec<std::ffi::OsString>,
) -> Result<Vec<std::ffi::OsString>, rmf_dash::site::SiteError> {
    use clap::CommandFactory;
    let Some(name) = argv.get(1).and_then(|a| a.to_str()) else {
        return Ok(argv);
    };
    let cli = Cli::command();
    let Some(command) = cli
        .find_subcommand(name)
        .filter(|c| ["serve", "replay"].contains(&c.get_name()))
    else {
        return Ok(argv);
    };
    let Some(path) = rmf_dash::site::config_path(&argv[2..]) else {
        return Ok(argv);
    };
    let flags = rmf_dash::site::SiteFile::load(&path)?.flags(command, &argv[2..])?;
    argv.splice(2..2, flags);
    Ok(argv)
}

/// The derived events' configuration: a site file's `[derived.*]` over the defaults.
fn derived_config(
    path: Option<&std::path::Path>,
) -> Result<rmf_dash_dataflows::derived::Config, rmf_dash::site::SiteError> {
    match path {
        Some(path) => rmf_dash::site::SiteFile::load(path)?.derived(),
        None => Ok(Default::default()),
    }
}

/// `rmf-dash events`: every registered event with its configuration (a site file's or the
/// defaults).
fn run_events(args: EventsArgs) -> Result<ExitCode> {
    use rmf_dash_dataflows::derived::registry;
    let config = derived_config(args.config.as_deref())?;
    let events: Vec<serde_json::Value> = registry()
        .iter()
        .map(|d| {
            let parsed = config.parsed(&d.config);
            serde_json::json!({
                "name": d.name,
                "room": d.room,
                "kind": d.kind,
                "persistence": d.persistence,
                "inputs": d.inputs,
                "section": format!("derived.{}", d.config.section),
                "config": parsed.map(|p| &p.shown),
                "lookback_ms": parsed.map(|p| p.lookback_ms),
            })
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<22} {:<38} {:<7} {:<8} {:>11}  {:<24} config",
        "event", "room", "kind", "persist", "lookback ms", "inputs"
    );
    for e in &events {
        let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        let inputs: Vec<&str> = e["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i.as_str())
            .collect();
        println!(
            "{:<22} {:<38} {:<7} {:<8} {:>11}  {:<24} [{}] {}",
            text("name"),
            text("room"),
            text("kind"),
            text("persistence"),
            e["lookback_ms"].as_u64().unwrap_or_default(),
            inputs.join(","),
            text("section"),
            e["config"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => run_demo(),
        Some(Command::Trace(t)) => run_trace(t),
        Some(Command::Replay(r)) => run_replay(r),
        Some(Command::Bench(b)) => run_bench(b),
        Some(Command::Serve(s)) => run_serve(*s),
        Some(Command::Proxy(p)) => run_proxy(p),
        Some(Command::Events(e)) => run_events(e),
        Some(Command::Store(s)) => run_store(s),
        Some(Command::BenchLoad(l)) => {
            rmf_dash::bench::load::run(rmf_dash::bench::load::LoadConfig {
                addr: l.addr,
                mode: l.mode,
                clients: l.clients,
                rooms: l.rooms,
                per_client: l.per_client,
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_store(cmd: StoreCommand) -> Result<ExitCode> {
    let target = match &cmd {
        StoreCommand::Dump(t) => t,
        StoreCommand::Prune(p) => &p.target,
        StoreCommand::Stats(a) => &a.target,
    };
    let (_local, url) = store_url(false, target.database_url.clone(), &target.data_dir)?;
    let url = url.context("no store")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (client, _) = rmf_dash::store::pipeline::open(&url).await?;
        match &cmd {
            StoreCommand::Dump(_) => {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
                rmf_dash::store::dump::dump(&client, &mut out).await?;
                out.flush()?;
            }
            StoreCommand::Prune(p) => {
                let pruned =
                    rmf_dash::store::prune::prune(&client, &p.retention.retention()).await?;
                println!(
                    "dropped {} partitions ({}), {} log rows, {} alerts",
                    pruned.partitions.len(),
                    pruned.partitions.join(", "),
                    pruned.log_rows,
                    pruned.alert_rows
                );
            }
            StoreCommand::Stats(a) => {
                let stats =
                    rmf_dash::store::stats::stats(&client, &a.retention.retention(), a.analyze)
                        .await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&stats)?);
                } else {
                    print!("{}", rmf_dash::store::stats::render(&stats));
                }
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The demo's recording: a hotel with every scenario, an hour long.
const DEMO_GEN: &[&str] = &[
    "--preset",
    "hotel",
    "--scenario",
    "all",
    "--duration",
    "60m",
    "--no-ws",
];

/// `rmf-dash` alone: the demo site. Generates the demo recording when missing (in
/// `RMF_DASH_DEMO_DIR`, default `./rmf-dash-data`), replays it at real time without
/// authentication (local only) into a private PostgreSQL in the same directory (or the
/// `RMF_DASH_DATABASE_URL` store) and prints the URL of the live view.
fn run_demo() -> Result<ExitCode> {
    let dir = std::path::PathBuf::from(
        std::env::var_os("RMF_DASH_DEMO_DIR").unwrap_or_else(|| "rmf-dash-data".into()),
    );
    let recording = dir.join("demo.mcap");
    if !recording.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Written aside, then renamed: an interrupted run leaves no half recording behind.
        let partial = dir.join("demo.partial.mcap");
        eprintln!(
            "rmf-dash demo: generating the demo recording {} (rmf-dash trace gen {})",
            recording.display(),
            DEMO_GEN.join(" ")
        );
        let mut argv = vec!["rmf-dash", "trace", "gen", "-o"];
        let partial_str = partial.to_string_lossy().into_owned();
        argv.push(&partial_str);
        argv.extend_from_slice(DEMO_GEN);
        if let Some(Command::Trace(t)) = Cli::try_parse_from(argv)?.command {
            run_trace(t)?;
        }
        std::fs::rename(&partial, &recording).with_context(|| {
            format!("renaming {} to {}", partial.display(), recording.display())
        })?;
    }
    let path = recording.to_string_lossy().into_owned();
    // The demo's private PostgreSQL lives beside its recording; a restarted demo resumes from it.
    let db = dir.join("db").to_string_lossy().into_owned();
    let serve = [
        "rmf-dash",
        "serve",
        "--replay",
        &path,
        "--no-auth",
        "--data-dir",
        &db,
    ];
    let Some(Command::Serve(args)) = Cli::try_parse_from(serve)?.command else {
        anyhow::bail!("the demo's serve arguments do not parse");
    };
    eprintln!("rmf-dash demo: replaying {path} at real time (Ctrl-C stops)");
    serve_with(*args, true)
}

fn run_proxy(args: ProxyArgs) -> Result<ExitCode> {
    args.json.apply();
    let prefix = args.prefix.trim_end_matches('/').to_string();
    anyhow::ensure!(
        prefix.is_empty() || prefix.starts_with('/'),
        "--prefix must start with /"
    );
    let config = rmf_dash::proxy::ProxyConfig {
        upstreams: args.upstream,
        upstream_token: args.upstream_token,
        listen: args.listen,
        prefix,
        jwt_secret: args.jwt_secret,
        jwt_public_key: args.jwt_public_key,
        jwt_aud: args.jwt_aud,
        jwt_iss: args.jwt_iss,
        no_auth: args.no_auth,
        room_permissions: args.rooms.room_permission,
        batch: std::time::Duration::from_millis(args.batch_ms),
        edge: args.edge.config(),
        listener: args.listener.config(),
        hub: args.hub.bounds(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(rmf_dash::proxy::run(config))?;
    Ok(ExitCode::SUCCESS)
}

fn run_serve(args: ServeArgs) -> Result<ExitCode> {
    serve_with(args, false)
}

/// Runs the server; `demo` prints where its live view is once it listens.
fn serve_with(args: ServeArgs, demo: bool) -> Result<ExitCode> {
    args.json.apply();
    anyhow::ensure!(
        !(args.no_db && args.database_url.is_some()),
        "--no-db and --database-url exclude each other"
    );
    anyhow::ensure!(
        !args.no_db || args.rooms.room_permission.is_empty(),
        "--room-permission needs the users' store: it cannot be used with --no-db"
    );
    let (local, url) = store_url(args.no_db, args.database_url.clone(), &args.store.data_dir)?;
    let prefix = args.prefix.trim_end_matches('/').to_string();
    anyhow::ensure!(
        prefix.is_empty() || prefix.starts_with('/'),
        "--prefix must start with /"
    );
    let config = rmf_dash::serve::ServeConfig {
        listen: args.listen,
        prefix,
        replay: args.replay,
        speed: args.speed,
        policy: args.release.policy(),
        tick_ms: args.engine.tick_ms,
        engine: args.engine.config()?,
        jwt_secret: args.jwt_secret,
        jwt_public_key: args.jwt_public_key,
        jwt_aud: args.jwt_aud,
        jwt_iss: args.jwt_iss,
        no_auth: args.no_auth,
        internal_token: args.internal_token,
        internal_open: args.internal_open,
        rmf_link: args.rmf_link,
        task_timeout_ms: args.task_timeout_ms,
        internal: rmf_dash::ingest::internal::InternalConfig {
            max_frame: args.internal_max_frame,
            rate: args.internal_rate,
            burst: args.internal_burst,
        },
        prune: url
            .clone()
            .filter(|_| !args.prune_every.is_zero())
            .map(|url| rmf_dash::store::prune::Periodic {
                url,
                retention: args.retention.retention(),
                every: args.prune_every,
            }),
        store: url.map(|u| args.store.writer(u)),
        admin_user: args.admin_user,
        ros2: args.ros2,
        schedule: args.schedule.config()?,
        room_permissions: args.rooms.room_permission,
        edge: args.edge.config(),
        listener: args.listener.config(),
        hub: args.hub.bounds(),
        names: args.names.bounds(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let view = if config.prefix.is_empty() {
        "/".to_string()
    } else {
        config.prefix.clone()
    };
    let result = runtime.block_on(rmf_dash::serve::run_announced(config, |addr| {
        tracing::info!("live view at http://{addr}{view}");
        if demo {
            println!("\nrmf-dash demo site is running: open http://{addr}{view}\n");
        }
    }));
    if let Err(rmf_dash::serve::ServeError::Deposed(why)) = &result {
        // Nothing more is written; the state in memory is stale: exit at once for the
        // supervisor to restart this process, as a standby.
        tracing::error!(
            "stepped down ({why}); exiting with status {} (restart me: I come back as a standby)",
            rmf_dash::store::leader::STEP_DOWN_EXIT
        );
        std::process::exit(i32::from(rmf_dash::store::leader::STEP_DOWN_EXIT));
    }
    drop(runtime);
    // The private PostgreSQL stops after the server (and its writer) have.
    drop(local);
    result?;
    Ok(ExitCode::SUCCESS)
}

fn run_bench(args: BenchArgs) -> Result<ExitCode> {
    let temp;
    let workdir = match &args.workdir {
        Some(w) => w.clone(),
        None => {
            temp = std::env::temp_dir().join(format!("rmf-dash-bench-{}", std::process::id()));
            std::fs::create_dir_all(&temp)?;
            temp.clone()
        }
    };
    let opts = rmf_dash::bench::BenchOptions {
        site: args.site,
        duration: args.duration,
        quick: args.quick,
        tick_ms: 10,
        only: args.only,
        clients: args.clients,
        soak_hours: args.soak_hours,
        soak_store: args.soak_store,
        soak_trace: args.soak_trace,
        soak_task_retention_ms: (args.soak_retention > 0)
            .then(|| args.soak_retention.saturating_mul(1000)),
    };
    let report = rmf_dash::bench::run(&opts, &workdir);
    if args.workdir.is_none() {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    let report = report?;
    print!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", out.display()))?;
        println!("report written to {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// A duplicate of stdout for data, with the process's stdout then pointed at stderr.
fn stdout_for_data() -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    let data = std::io::stdout().as_fd().try_clone_to_owned()?;
    // SAFETY: dup2 on the process's own standard descriptors, both open; no Rust object owns
    // descriptor 1 exclusively (std's Stdout writes to it by number).
    let rc = unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
    anyhow::ensure!(
        rc >= 0,
        "redirecting stdout: {}",
        std::io::Error::last_os_error()
    );
    Ok(data)
}

fn run_replay(args: ReplayArgs) -> Result<ExitCode> {
    let opts = rmf_dash::replay::ReplayOptions {
        pacing: args.speed,
        policy: args.release.policy(),
        tick_ms: args.engine.tick_ms,
        engine: args.engine.config()?,
    };
    let emit = match args.emit {
        // timely's cluster set-up prints to stdout: keep the data on its own descriptor and
        // send anything else written to stdout to stderr.
        Some(_) if opts.engine.cluster.is_some() => {
            Some(Box::new(std::fs::File::from(stdout_for_data()?)) as Box<dyn Write + Send>)
        }
        Some(_) => Some(Box::new(std::io::stdout()) as Box<dyn Write + Send>),
        None => None,
    };
    let summary = if args.no_db {
        rmf_dash::replay::run(&args.file, &opts, emit)?
    } else {
        anyhow::ensure!(
            opts.engine.cluster.is_none(),
            "a replay into the store runs on one process: pass --no-db with --hosts"
        );
        // Before starting a private PostgreSQL for nothing.
        anyhow::ensure!(
            std::path::Path::new(&args.file).exists(),
            "{}: no such file or directory",
            args.file
        );
        let (local, url) = store_url(false, args.database_url.clone(), &args.store.data_dir)?;
        let url = url.context("no store")?;
        let summary = rmf_dash::replay::into_store(&args.file, &opts, args.store.writer(url), emit);
        drop(local);
        summary?
    };
    if summary.dropped > 0 || summary.invalid > 0 {
        tracing::warn!(
            dropped = summary.dropped,
            invalid = summary.invalid,
            "some messages were not used"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_trace(cmd: TraceCommand) -> Result<ExitCode> {
    match cmd {
        TraceCommand::Gen(args) => {
            let ws = if args.no_ws {
                None
            } else {
                Some(
                    args.ws_out
                        .unwrap_or_else(|| args.output.with_extension("ws.jsonl")),
                )
            };
            let config = args.site.config().map_err(anyhow::Error::msg)?;
            let report = trace::generate::generate(&config, &args.output, ws.as_deref())
                .with_context(|| format!("generating {}", args.output.display()))?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        TraceCommand::Info { file, json } => {
            let info = trace::info::run(&file)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{info}");
            }
            Ok(ExitCode::SUCCESS)
        }
        TraceCommand::Dump {
            file,
            topics,
            limit,
            full_bytes,
            release,
        } => {
            let opts = trace::dump::DumpOptions {
                topics,
                limit,
                full_bytes,
                policy: release.policy(),
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let summary = match trace::dump::run(&file, &opts, &mut out) {
                Ok(s) => s,
                // A closed pipe (`| head`) is not an error.
                Err(trace::TraceError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS);
                }
                Err(e) => return Err(e.into()),
            };
            out.flush().ok();
            if summary.failed > 0 {
                eprintln!(
                    "{} messages could not be decoded (see the warnings above); {} written",
                    summary.failed, summary.written
                );
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
