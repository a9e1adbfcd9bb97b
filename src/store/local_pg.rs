//! The private PostgreSQL: with no database URL, rmf-dash runs its own cluster from the machine's
//! server binaries (`/usr/lib/postgresql/<newest>/bin`) in a data directory, created with
//! `initdb` on first start. It listens on a unix socket in that directory only
//! (`listen_addresses = ''`) and runs as the `postgres` system user when rmf-dash runs as root
//! (PostgreSQL refuses root). Tests make throwaway clusters the same way, one temporary
//! directory each.
//!
//! One process owns the cluster ([`owner`]: an OS lock in the data directory, held for the
//! owner's life): the owner started it, or took over a cluster whose owner is gone (killed), and
//! stops it when the [`LocalPg`] is dropped. Any other process on the same directory (`store
//! dump` beside a running `serve`, a second `serve`) is a client: it connects to the running
//! cluster and never stops it; when the cluster does not accept connections it refuses with an
//! error naming the directory and the owner's pid.

mod owner;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use owner::{Claim, Holder, OwnerLock, State};

use super::StoreError;

/// How long a client waits for a cluster its owner is still creating or starting.
const CLIENT_WAIT: Duration = Duration::from_secs(60);

/// Options of a private cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOptions {
    /// No fsync (throwaway clusters of tests and benches only: a power cut may lose data).
    pub unsafe_fast: bool,
}

/// A running private cluster: owned by this process (stopped on drop) or by another one (this
/// process is a client: left running).
#[derive(Debug)]
pub struct LocalPg {
    pgdata: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    url: String,
    role: Role,
}

#[derive(Debug)]
enum Role {
    /// This process holds the owner lock: it started (or took over) the cluster and stops it.
    Owner(OwnerLock),
    /// Another process holds it (what its lock file said).
    Client(Holder),
}

/// This process's relation to a private cluster, for `/metrics`: 0 none, 1 owner, 2 client.
static PROCESS_ROLE: AtomicU8 = AtomicU8::new(0);

/// Whether this process owns the private cluster it uses (`None`: it uses none).
pub fn private_cluster_owner() -> Option<bool> {
    match PROCESS_ROLE.load(Ordering::Relaxed) {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding the server binaries.
pub fn find_bin() -> Result<PathBuf, StoreError> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| StoreError::NoServerBinaries)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| bin.join(b).is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|f| f.1).ok_or(StoreError::NoServerBinaries)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl LocalPg {
    /// Starts (creating it on first use) the cluster of `data_dir` and owns it, or, when
    /// another process owns it, waits until it accepts connections and uses it as a client.
    pub fn start(data_dir: &Path, options: LocalOptions) -> Result<LocalPg, StoreError> {
        let bin = find_bin()?;
        std::fs::create_dir_all(data_dir)?;
        let data_dir = data_dir.canonicalize()?;
        let pgdata = data_dir.join("postgresql");
        let socket = pgdata.join(".s.PGSQL.5432");
        if socket.as_os_str().len() > 100 {
            return Err(local(
                &pgdata,
                "the path is too long for a unix socket: choose a shorter --data-dir",
            ));
        }
        let url = format!("host={} user=postgres dbname=postgres", pgdata.display());
        let deadline = Instant::now() + CLIENT_WAIT;
        let mut waiting = false;
        loop {
            let holder = match owner::claim(&data_dir) {
                Ok(Claim::Owner(lock)) => {
                    let pg = LocalPg::with(pgdata, bin, url, Role::Owner(lock));
                    return pg.own(&data_dir, options);
                }
                Ok(Claim::HeldBy(holder)) => holder,
                Err(e) => {
                    let lock = owner::path(&data_dir);
                    return Err(local(&pgdata, &format!("{}: {e}", lock.display())));
                }
            };
            match client_ready(holder, &socket, deadline) {
                Ok(true) => {
                    return Ok(LocalPg::with(pgdata, bin, url, Role::Client(holder)).join());
                }
                Ok(false) => {}
                Err(why) => return Err(refuse(&data_dir, &pgdata, holder, &why)),
            }
            if !waiting {
                tracing::info!(
                    dir = %data_dir.display(),
                    owner_pid = %holder.pid_text(),
                    "waiting for the private PostgreSQL its owner is starting"
                );
                waiting = true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn with(pgdata: PathBuf, bin: PathBuf, url: String, role: Role) -> LocalPg {
        LocalPg {
            pgdata,
            bin,
            as_postgres: is_root(),
            url,
            role,
        }
    }

    /// As the owner: creates the cluster if needed, starts it or takes over the one left
    /// running by an owner that is gone.
    fn own(self, data_dir: &Path, options: LocalOptions) -> Result<LocalPg, StoreError> {
        let lock = self.owner_lock()?;
        if !self.pgdata.join("PG_VERSION").is_file() {
            self.init(data_dir, options)?;
        }
        if self.status_running() {
            tracing::info!(
                dir = %self.pgdata.display(),
                previous_owner_pid = %lock.previous.pid_text(),
                lock = %lock.path().display(),
                "took over the private PostgreSQL left running by an owner that is gone: this \
                 process owns it now and stops it at exit"
            );
            lock.set(State::Running)?;
        } else {
            self.start_server()?;
        }
        PROCESS_ROLE.store(1, Ordering::Relaxed);
        Ok(self)
    }

    /// As a client of the cluster another process owns.
    fn join(self) -> LocalPg {
        if let Role::Client(holder) = &self.role {
            tracing::info!(
                dir = %self.pgdata.display(),
                owner_pid = %holder.pid_text(),
                "the private PostgreSQL belongs to another process (it holds the owner lock): \
                 connecting as a client; it keeps running when this process exits"
            );
        }
        PROCESS_ROLE.store(2, Ordering::Relaxed);
        self
    }

    /// Whether this process owns the cluster (and stops it on drop).
    pub fn is_owner(&self) -> bool {
        matches!(self.role, Role::Owner(_))
    }

    fn owner_lock(&self) -> Result<&OwnerLock, StoreError> {
        match &self.role {
            Role::Owner(lock) => Ok(lock),
            Role::Client(_) => Err(self.not_owner()),
        }
    }

    fn not_owner(&self) -> StoreError {
        let pid = match &self.role {
            Role::Client(h) => h.pid_text(),
            Role::Owner(_) => std::process::id().to_string(),
        };
        local(
            &self.pgdata,
            &format!("only its owner (process {pid}) starts or stops it"),
        )
    }

    /// The connection string (unix socket in the data directory).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cluster's directory.
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, mut c: Command, what: &str) -> Result<(), StoreError> {
        let out = c.output()?;
        if out.status.success() {
            return Ok(());
        }
        Err(local(
            &self.pgdata,
            &format!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        ))
    }

    fn init(&self, data_dir: &Path, options: LocalOptions) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.pgdata)?;
        if self.as_postgres {
            for dir in [data_dir, self.pgdata.as_path()] {
                let mut c = Command::new("chown");
                c.arg("postgres:postgres").arg(dir);
                self.run(c, "chown")?;
            }
        }
        let mut c = self.command("initdb");
        c.arg("-D").arg(&self.pgdata).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        if options.unsafe_fast {
            c.arg("--no-sync");
        }
        self.run(c, "initdb")?;
        let mut conf = format!(
            "\n# rmf-dash private cluster: unix socket in this directory only\n\
             listen_addresses = ''\nunix_socket_directories = '{}'\n",
            self.pgdata.display()
        );
        if options.unsafe_fast {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.pgdata.join("postgresql.conf"))?
            .write_all(conf.as_bytes())?;
        tracing::info!(dir = %self.pgdata.display(), bin = %self.bin.display(), "private PostgreSQL created");
        Ok(())
    }

    fn status_running(&self) -> bool {
        let mut c = self.command("pg_ctl");
        c.arg("status").arg("-D").arg(&self.pgdata);
        c.output().is_ok_and(|o| o.status.success())
    }

    /// Starts the server (after [`LocalPg::stop_server`]; tests of outages). Owner only.
    pub fn start_server(&self) -> Result<(), StoreError> {
        let lock = self.owner_lock()?;
        lock.set(State::Starting)?;
        let mut c = self.command("pg_ctl");
        c.arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(self.pgdata.join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        self.run(c, "pg_ctl start")?;
        lock.set(State::Running)?;
        tracing::info!(
            dir = %self.pgdata.display(),
            lock = %lock.path().display(),
            "private PostgreSQL started: this process owns it and stops it at exit"
        );
        Ok(())
    }

    /// Stops the server (fast shutdown: open transactions are rolled back). Owner only.
    pub fn stop_server(&self) -> Result<(), StoreError> {
        let lock = self.owner_lock()?;
        lock.set(State::Stopped)?;
        let mut c = self.command("pg_ctl");
        c.arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        self.run(c, "pg_ctl stop")?;
        tracing::info!(dir = %self.pgdata.display(), "private PostgreSQL stopped");
        Ok(())
    }
}

impl Drop for LocalPg {
    /// The owner stops the cluster (then the lock goes with the file); a client leaves it.
    fn drop(&mut self) {
        match &self.role {
            Role::Owner(lock) => {
                if !self.status_running() {
                    let _ = lock.set(State::Stopped);
                } else if let Err(e) = self.stop_server() {
                    tracing::warn!("{e}");
                }
            }
            Role::Client(holder) => tracing::debug!(
                dir = %self.pgdata.display(),
                owner_pid = %holder.pid_text(),
                "leaving the private PostgreSQL running for its owner"
            ),
        }
        PROCESS_ROLE.store(0, Ordering::Relaxed);
    }
}

/// Whether a client may use the cluster `holder` owns now (`Ok(false)`: not yet, it is being
/// started); `Err`: why it cannot.
fn client_ready(holder: Holder, socket: &Path, deadline: Instant) -> Result<bool, String> {
    match (
        holder.state,
        std::os::unix::net::UnixStream::connect(socket),
    ) {
        (Some(State::Running), Ok(_)) => Ok(true),
        (Some(State::Running), Err(e)) => Err(format!("connecting to it: {e}")),
        (Some(State::Stopped), _) => Err("its owner stopped it".to_string()),
        _ if Instant::now() >= deadline => Err(format!(
            "still not started after {} s",
            CLIENT_WAIT.as_secs()
        )),
        _ => Ok(false),
    }
}

/// The error of a client that cannot use the cluster another process owns.
fn refuse(data_dir: &Path, pgdata: &Path, holder: Holder, why: &str) -> StoreError {
    local(
        pgdata,
        &format!(
            "it belongs to process {} (the holder of {}) and does not accept connections ({why}): \
             only that process starts or stops it; wait for it, stop it, or give --database-url",
            holder.pid_text(),
            owner::path(data_dir).display()
        ),
    )
}

fn local(dir: &Path, message: &str) -> StoreError {
    StoreError::Local {
        dir: dir.display().to_string(),
        message: message.to_string(),
    }
}
