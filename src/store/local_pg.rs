//! The private PostgreSQL: with no database URL, rmf-dash runs its own cluster from the machine's
//! server binaries (`/usr/lib/postgresql/<newest>/bin`) in a data directory, created with
//! `initdb` on first start. It listens on a unix socket in that directory only
//! (`listen_addresses = ''`), runs as the `postgres` system user when rmf-dash runs as root
//! (PostgreSQL refuses root), and is stopped when the [`LocalPg`] is dropped. A cluster left
//! running by a killed rmf-dash is found (`pg_ctl status`) and reused. Tests make throwaway
//! clusters the same way, one temporary directory each.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::StoreError;

/// Options of a private cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOptions {
    /// No fsync (throwaway clusters of tests and benches only: a power cut may lose data).
    pub unsafe_fast: bool,
}

/// A running private cluster; stopped on drop.
#[derive(Debug)]
pub struct LocalPg {
    pgdata: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    url: String,
    running: bool,
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
    /// Starts (creating it on first use) the cluster of `data_dir`.
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
        let mut pg = LocalPg {
            url: format!("host={} user=postgres dbname=postgres", pgdata.display()),
            pgdata,
            bin,
            as_postgres: is_root(),
            running: false,
        };
        if !pg.pgdata.join("PG_VERSION").is_file() {
            pg.init(&data_dir, options)?;
        }
        if pg.status_running() {
            tracing::info!(dir = %pg.pgdata.display(), "reusing the private PostgreSQL left running");
        } else {
            pg.start_server()?;
        }
        pg.running = true;
        Ok(pg)
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

    /// Starts the server (after [`LocalPg::stop_server`]; tests of outages).
    pub fn start_server(&self) -> Result<(), StoreError> {
        let mut c = self.command("pg_ctl");
        c.arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(self.pgdata.join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        self.run(c, "pg_ctl start")?;
        tracing::info!(dir = %self.pgdata.display(), "private PostgreSQL started");
        Ok(())
    }

    /// Stops the server (fast shutdown: open transactions are rolled back).
    pub fn stop_server(&self) -> Result<(), StoreError> {
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
    fn drop(&mut self) {
        if self.running
            && self.status_running()
            && let Err(e) = self.stop_server()
        {
            tracing::warn!("{e}");
        }
    }
}

fn local(dir: &Path, message: &str) -> StoreError {
    StoreError::Local {
        dir: dir.display().to_string(),
        message: message.to_string(),
    }
}
