//! The owner lock of a private cluster: `<data-dir>/owner.lock`, an exclusive `flock` that the
//! process which started (or took over) the cluster holds for its whole life. Nothing but its
//! holder ever stops the cluster; any other process on the same data directory is a client.
//!
//! The kernel releases the lock when its holder dies (however it dies), so a cluster whose lock
//! is free was left running by a process that is gone and may be taken over. The file's text,
//! `<pid> <state>`, is for the others to read: who owns the cluster and whether it accepts
//! connections yet (`starting`, `running`, `stopped`). It is written in place (never
//! truncated first), so a reader never sees an empty file while the holder lives. The
//! descriptor is close-on-exec (std's default): `pg_ctl` and the postmaster it starts never
//! inherit the lock.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The lock file of `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("owner.lock")
}

/// Whether the owner's cluster accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being created or started.
    Starting,
    /// Started: clients may connect.
    Running,
    /// Stopped by its owner (an outage test, or the owner is exiting).
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Stopped => "stopped",
        }
    }

    fn parse(s: &str) -> Option<State> {
        [State::Starting, State::Running, State::Stopped]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// What the lock file says: the pid and state written by its (last) holder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub state: Option<State>,
}

impl Holder {
    fn parse(text: &str) -> Holder {
        let mut words = text.split_whitespace();
        Holder {
            pid: words.next().and_then(|p| p.parse().ok()),
            state: words.next().and_then(State::parse),
        }
    }

    /// The pid as a log or error shows it.
    pub fn pid_text(&self) -> String {
        self.pid
            .map_or_else(|| "unknown".to_string(), |p| p.to_string())
    }
}

/// The lock, held by this process until dropped.
#[derive(Debug)]
pub struct OwnerLock {
    file: File,
    path: PathBuf,
    /// What the file said when the lock was taken: the previous owner, gone.
    pub previous: Holder,
}

/// The outcome of [`claim`].
#[derive(Debug)]
pub enum Claim {
    /// This process owns the cluster now.
    Owner(OwnerLock),
    /// Another process holds the lock.
    HeldBy(Holder),
}

/// Tries once to take the lock of `data_dir` (never waits).
pub fn claim(data_dir: &Path) -> std::io::Result<Claim> {
    let path = path(data_dir);
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
    {
        Ok(f) => f,
        // A client without write access to the directory can still read who owns it.
        Err(e) if e.kind() == ErrorKind::PermissionDenied => File::open(&path)?,
        Err(e) => return Err(e),
    };
    if !try_flock(&file)? {
        return Ok(Claim::HeldBy(read(&path)));
    }
    let previous = read(&path);
    let lock = OwnerLock {
        file,
        path,
        previous,
    };
    lock.set(State::Starting)?;
    Ok(Claim::Owner(lock))
}

/// What the lock file of `path` says now (nothing when it cannot be read).
fn read(path: &Path) -> Holder {
    std::fs::read_to_string(path)
        .map(|t| Holder::parse(&t))
        .unwrap_or_default()
}

/// `flock(LOCK_EX | LOCK_NB)`: `false` when another open file holds it.
fn try_flock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor `file` owns and keeps open for the whole call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(e),
    }
}

impl OwnerLock {
    /// Writes `<pid> <state>` for the clients to read.
    pub fn set(&self, state: State) -> std::io::Result<()> {
        // Padded to a fixed width so that a shorter text fully covers a longer one.
        let text = format!("{:<10} {:<8}\n", std::process::id(), state.as_str());
        self.file.write_all_at(text.as_bytes(), 0)?;
        self.file.set_len(text.len() as u64)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_sees_the_holder_and_takes_the_lock_once_it_is_gone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let Claim::Owner(lock) = claim(dir.path()).expect("claim") else {
            panic!("a fresh directory's lock is free");
        };
        assert_eq!(lock.previous, Holder::default());
        lock.set(State::Running).expect("write");
        // flock conflicts between two open files even in one process.
        let Claim::HeldBy(holder) = claim(dir.path()).expect("claim") else {
            panic!("the lock is held");
        };
        assert_eq!(holder.pid, Some(std::process::id()));
        assert_eq!(holder.state, Some(State::Running));
        lock.set(State::Stopped).expect("write");
        drop(lock);
        let Claim::Owner(next) = claim(dir.path()).expect("claim") else {
            panic!("the lock was released");
        };
        assert_eq!(next.previous.state, Some(State::Stopped));
    }

    #[test]
    fn the_file_text_is_parsed_leniently() {
        assert_eq!(Holder::parse(""), Holder::default());
        assert_eq!(
            Holder::parse("42         starting\n"),
            Holder {
                pid: Some(42),
                state: Some(State::Starting)
            }
        );
        assert_eq!(Holder::parse("x y").pid_text(), "unknown");
    }
}
