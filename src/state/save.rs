//! Saving the state (xscp(7) §5.9): atomically and durably, on a thread of its own, so
//! that the hub only copies its state and never waits for the disk.
//!
//! The file is written as `<file>.tmp` beside it, flushed to disk, renamed over `<file>`,
//! and the directory flushed: at every moment `<file>` is the previous complete save or the
//! new one. The hub asks for a save with a [`SaveHandle`]; one save runs at a time, and a
//! periodic save asked for while one runs is skipped (the next interval takes a newer
//! state anyway).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::format::{self, Deferred, Saved};

/// The temporary file a save writes before renaming it over `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    beside(path, ".tmp")
}

/// The lock file beside `path`: `<file>.lock`.
fn lock_path(path: &Path) -> PathBuf {
    beside(path, ".lock")
}

/// `path` with `suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The directory `path` is in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Creates `path`, readable by its owner only: mailboxes are people's messages. It must
/// not exist: a file or link left there (by an interrupted save, or by someone else) is
/// never written through, so a link cannot redirect the save, nor a file made by someone
/// else keep its own permissions.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Removes a temporary file left by a save that was interrupted (a crash, a power cut);
/// true if there was one. A link is removed, not what it points to.
fn remove_leftover(tmp: &Path) -> io::Result<bool> {
    match fs::remove_file(tmp) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The lock that keeps other servers off a state file while this one runs ([`lock`]).
#[derive(Debug)]
pub struct Lock {
    /// `<file>.lock`, open and locked.
    file: File,
    /// The state file.
    state: PathBuf,
}

/// Locks the state file `path` for this process (an advisory lock on `<file>.lock`, held
/// while the returned [`Lock`] lives), so that two servers never share one state file:
/// each would overwrite the other's saves. Fails if another process holds it.
pub fn lock(path: &Path) -> io::Result<Lock> {
    let lock_file = lock_path(path);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&lock_file)?;
    match file.try_lock() {
        Ok(()) => Ok(Lock {
            file,
            state: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::other(format!(
            "{} is locked: another xscpd uses this state file (give each server its own \
             --state)",
            lock_file.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

impl Lock {
    /// Before a save: the lock still keeps other servers off the file. A lock file removed
    /// or replaced while this server runs lets a second server start on the same state
    /// file, so it is locked again; if another server holds it by then this one must not
    /// save (it would overwrite that server's saves): `Err` says why.
    fn confirm(&mut self) -> Result<(), String> {
        if self.in_place() {
            return Ok(());
        }
        let name = lock_path(&self.state);
        match lock(&self.state) {
            Ok(again) => {
                log::warn!(
                    "{} was removed or replaced while this server ran: locked again",
                    name.display()
                );
                *self = again;
                Ok(())
            }
            Err(e) => Err(format!(
                "{} was removed or replaced while this server ran, and it cannot be locked \
                 again: {e}",
                name.display()
            )),
        }
    }

    /// Is `<file>.lock` on disk the file this lock holds?
    #[cfg(unix)]
    fn in_place(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), fs::metadata(lock_path(&self.state))) {
            (Ok(held), Ok(there)) => held.dev() == there.dev() && held.ino() == there.ino(),
            _ => false,
        }
    }

    /// (Elsewhere a locked file cannot be removed.)
    #[cfg(not(unix))]
    fn in_place(&self) -> bool {
        true
    }
}

/// Writes `state`, taken at `at`, to `path` atomically and durably: `<path>.tmp`, fsync,
/// rename over `path`, fsync of the directory. On an error `path` is as it was and the
/// temporary file is removed.
pub fn write_atomic(path: &Path, state: &Saved, at: SystemTime) -> io::Result<()> {
    let tmp = temp_path(path);
    let written = (|| {
        remove_leftover(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 16, create_private(&tmp)?);
        format::encode(state, at, &mut out)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::new(
            e.kind(),
            format!("{e} (the file keeps the previous save)"),
        ));
    }
    File::open(dir_of(path))
        .and_then(|dir| dir.sync_all())
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{e} (flushing the directory after the rename: the new save is in \
                     place, but a power cut may undo it)"
                ),
            )
        })
}

/// Checks at start that saves can be written beside `path` (creates and removes the
/// temporary file; `path` itself is not touched). A temporary file left by an interrupted
/// save is removed, and logged: `path` still holds the save before it.
pub fn check_writable(path: &Path) -> io::Result<()> {
    let tmp = temp_path(path);
    if remove_leftover(&tmp)? {
        log::warn!(
            "removed {}, left by a save that was interrupted; {} holds the save before it",
            tmp.display(),
            path.display()
        );
    }
    create_private(&tmp)?;
    fs::remove_file(&tmp)
}

/// A save for the saver thread.
struct Job {
    state: Saved,
    /// Holds whose mailboxes the saver gathers (connected clients' copies).
    deferred: Vec<Deferred>,
    /// When the hub took the state.
    at: SystemTime,
    /// The save at shutdown: the thread ends after it.
    last: bool,
}

/// The hub's side of the saver: asks for saves, never waits for one to be written (except
/// the last, at shutdown).
#[derive(Clone, Debug)]
pub struct SaveHandle {
    jobs: Sender<Job>,
    /// A save is being written.
    busy: Arc<AtomicBool>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job(last: {})", self.last)
    }
}

impl SaveHandle {
    /// Is the saver free to take a periodic save? (Ask before copying the state.)
    pub fn idle(&self) -> bool {
        !self.busy.load(Ordering::Acquire)
    }

    /// Hands a periodic save to the saver, `deferred` holds to be gathered there; false
    /// (and nothing saved) if it is busy.
    pub fn save(&self, state: Saved, deferred: Vec<Deferred>, at: SystemTime) -> bool {
        if self.busy.swap(true, Ordering::AcqRel) {
            return false;
        }
        let sent = self.jobs.try_send(Job {
            state,
            deferred,
            at,
            last: false,
        });
        if sent.is_err() {
            self.busy.store(false, Ordering::Release);
        }
        sent.is_ok()
    }

    /// Hands the save at shutdown to the saver, waiting for room if a periodic save is
    /// still queued; the saver ends after writing it.
    pub fn save_last(&self, state: Saved, at: SystemTime) {
        let job = Job {
            state,
            deferred: Vec::new(),
            at,
            last: true,
        };
        if self.jobs.send(job).is_err() {
            log::error!("state not saved at shutdown: the saver has stopped");
        }
    }
}

/// The saver thread, writing each save handed to it to the state file.
pub struct Saver {
    handle: SaveHandle,
    /// Whether the save at shutdown was written, once the saver ends.
    done: Receiver<bool>,
    thread: JoinHandle<()>,
}

impl Saver {
    /// Starts the saver for `path`, after checking that saves can be written there. With
    /// `lock` (the file's, [`lock`]) each save first makes sure it still holds.
    pub fn start(path: PathBuf, mut lock: Option<Lock>) -> io::Result<Saver> {
        check_writable(&path)?;
        let (jobs, rx) = bounded::<Job>(1);
        let (done_tx, done) = bounded::<bool>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&busy);
        let thread = thread::Builder::new()
            .name("xscp-saver".into())
            .spawn(move || {
                let mut last_written = false;
                for mut job in rx {
                    let deferred = std::mem::take(&mut job.deferred);
                    job.state
                        .holds
                        .extend(deferred.into_iter().map(Deferred::gather));
                    // In expiry order, as a person reads it and the restore takes it back.
                    job.state.holds.sort_by_key(|h| h.until);
                    let written = match lock.as_mut().map(Lock::confirm) {
                        Some(Err(why)) => {
                            log::error!("cannot save state to {}: {why}", path.display());
                            false
                        }
                        _ => write(&path, &job),
                    };
                    flag.store(false, Ordering::Release);
                    if job.last {
                        last_written = written;
                        break;
                    }
                }
                let _ = done_tx.send(last_written);
            })?;
        Ok(Saver {
            handle: SaveHandle { jobs, busy },
            done,
            thread,
        })
    }

    /// The hub's side.
    pub fn handle(&self) -> SaveHandle {
        self.handle.clone()
    }

    /// Waits up to `bound` for the saver to write the last save and end. False if the
    /// last save was not written, or not in time (the saver is left to finish or die with
    /// the process).
    pub fn finish(self, bound: Duration) -> bool {
        let Saver {
            handle,
            done,
            thread,
        } = self;
        drop(handle);
        match done.recv_timeout(bound) {
            Ok(written) => {
                let _ = thread.join();
                written
            }
            Err(_) => {
                log::error!("the state was not saved within {bound:?}");
                false
            }
        }
    }
}

/// Writes one save, and logs it: the shutdown's at info, the periodic ones at debug; a
/// failure at error. True if it was written.
fn write(path: &Path, job: &Job) -> bool {
    let started = Instant::now();
    let (holds, lines, lost) = job.state.counts();
    match write_atomic(path, &job.state, job.at) {
        Ok(()) => {
            let took = started.elapsed().as_secs_f64() * 1000.0;
            let what = format!(
                "state saved to {}: {holds} holds, {lines} lines, {lost} lost ({took:.1} ms)",
                path.display()
            );
            if job.last {
                log::info!("{what}");
            } else {
                log::debug!("{what}");
            }
            true
        }
        Err(e) => {
            log::error!("cannot save state to {}: {e}", path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::protocol::nick::Nick;
    use crate::state::{NO_SENDER, SavedHold, load};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xscp-save-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create a temporary directory");
        dir
    }

    fn one_hold() -> Saved {
        Saved {
            holds: vec![SavedHold {
                nick: Nick::parse("alice").expect("nickname"),
                ip: IpAddr::from([127, 0, 0, 1]),
                until: SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000),
                session: 1,
                lost: 2,
                wire: Arc::new(b"chatm bob alice hi\r\n".to_vec()),
                senders: Arc::new(vec![NO_SENDER]),
            }],
        }
    }

    #[test]
    fn a_save_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = temp_dir("atomic");
        let path = dir.join("state");
        fs::write(&path, "old").expect("write");
        write_atomic(&path, &one_hold(), SystemTime::now()).expect("saved");
        assert_eq!(load(&path).expect("loads"), Some(one_hold()));
        assert!(!temp_path(&path).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_failed_save_leaves_the_old_file() {
        let dir = temp_dir("failed");
        let path = dir.join("state");
        fs::write(&path, "old").expect("write");
        // The temporary file's name is taken by a directory: the save cannot be written.
        fs::create_dir(temp_path(&path)).expect("mkdir");
        assert!(write_atomic(&path, &one_hold(), SystemTime::now()).is_err());
        assert_eq!(fs::read(&path).expect("read"), b"old");
    }

    #[test]
    fn the_saver_writes_the_last_save_and_ends() {
        let dir = temp_dir("saver");
        let path = dir.join("state");
        let saver = Saver::start(path.clone(), None).expect("start");
        let handle = saver.handle();
        assert!(handle.idle());
        handle.save_last(one_hold(), SystemTime::now());
        drop(handle);
        assert!(saver.finish(Duration::from_secs(20)));
        assert_eq!(load(&path).expect("loads"), Some(one_hold()));
    }

    #[test]
    #[cfg(unix)]
    fn a_link_left_where_the_temporary_file_goes_is_not_written_through() {
        let dir = temp_dir("link");
        let path = dir.join("state");
        let victim = dir.join("victim");
        fs::write(&victim, "not yours").expect("write");
        std::os::unix::fs::symlink(&victim, temp_path(&path)).expect("symlink");
        write_atomic(&path, &one_hold(), SystemTime::now()).expect("saved");
        assert_eq!(fs::read(&victim).expect("read"), b"not yours");
        let meta = fs::symlink_metadata(&path).expect("metadata");
        assert!(meta.file_type().is_file(), "the state file is a link");
        assert_eq!(load(&path).expect("loads"), Some(one_hold()));
    }

    #[test]
    fn a_temporary_file_left_by_an_interrupted_save_is_removed_at_start() {
        let dir = temp_dir("leftover");
        let path = dir.join("state");
        fs::write(temp_path(&path), "half a save").expect("write");
        check_writable(&path).expect("writable");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_second_lock_on_the_same_state_file_is_refused() {
        let dir = temp_dir("lock");
        let path = dir.join("state");
        let held = lock(&path).expect("the first lock");
        let e = lock(&path).expect_err("a second lock");
        assert!(e.to_string().contains("another xscpd"), "{e}");
        drop(held);
        assert!(lock(&path).is_ok(), "the lock is free again");
    }

    /// Runs a saver for `path` with `lock` through its last save; says if it wrote it.
    fn last_save(path: &Path, lock: Lock) -> bool {
        let saver = Saver::start(path.to_path_buf(), Some(lock)).expect("start");
        let handle = saver.handle();
        handle.save_last(one_hold(), SystemTime::now());
        drop(handle);
        saver.finish(Duration::from_secs(20))
    }

    /// A state file in a fresh directory, locked, whose lock file was then removed.
    fn lock_removed(test: &str) -> (PathBuf, Lock) {
        let path = temp_dir(test).join("state");
        let held = lock(&path).expect("the first lock");
        fs::remove_file(lock_path(&path)).expect("remove the lock file");
        (path, held)
    }

    #[test]
    #[cfg(unix)]
    fn a_lock_file_removed_meanwhile_is_locked_again_before_a_save() {
        let (path, held) = lock_removed("lock-again");
        assert!(last_save(&path, held), "saved");
        assert_eq!(load(&path).expect("loads"), Some(one_hold()));
        // The saver ended with the new lock file locked; it is free again now.
        assert!(lock_path(&path).exists());
        assert!(lock(&path).is_ok());
    }

    #[test]
    #[cfg(unix)]
    fn a_server_whose_lock_file_another_took_over_does_not_save() {
        let (path, held) = lock_removed("lock-taken");
        let _other = lock(&path).expect("a second server locks the new lock file");
        fs::write(&path, "the other server's save").expect("write");
        assert!(!last_save(&path, held), "refused");
        assert_eq!(fs::read(&path).expect("read"), b"the other server's save");
    }

    #[test]
    fn a_last_save_that_fails_is_reported() {
        let dir = temp_dir("last-fails");
        let path = dir.join("state");
        let saver = Saver::start(path.clone(), None).expect("start");
        // The temporary file's name is taken by a directory: the save cannot be written.
        fs::create_dir(temp_path(&path)).expect("mkdir");
        let handle = saver.handle();
        handle.save_last(one_hold(), SystemTime::now());
        drop(handle);
        assert!(!saver.finish(Duration::from_secs(20)));
        assert!(!path.exists());
    }

    #[test]
    fn a_saver_that_cannot_write_does_not_start() {
        let dir = temp_dir("unwritable");
        assert!(Saver::start(dir.join("no-such-dir").join("state"), None).is_err());
    }
}
