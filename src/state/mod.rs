//! The state file of `--state` (xscp(7) §5.9): holds and mailboxes that outlive the process.
//!
//! - `format.rs`: the file's text, encoded and decoded (pure; never panics on a bad file);
//! - `utc.rs`: the UTC times it writes;
//! - `restore.rs`: what of a loaded state the bounds in force now let back in (pure);
//! - `save.rs`: the atomic, durable write, on a thread of its own ([`Saver`]).
//!
//! The hub hands a [`Saved`] to the saver and takes one back at start; it never waits for
//! the disk. This module knows the protocol's types (nicknames, lines) and nothing of the
//! hub or the network.

use std::fmt;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

mod format;
mod restore;
mod save;
mod utc;

pub use format::{
    Copies, Deferred, FormatError, Gathered, MAGIC, NO_SENDER, Saved, SavedHold, Senders, VERSION,
    Wire,
};
pub use restore::{Bounds, prepare};
pub use save::{Lock, SaveHandle, Saver, check_writable, lock, temp_path, write_atomic};

/// The state file could not be loaded: the server must not start (exit 2), and the file
/// stays as it is.
#[derive(Debug)]
pub enum LoadError {
    /// It exists but cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// It was read but is not a state file of this version.
    Format {
        /// The file.
        path: PathBuf,
        /// The first wrong line and what is wrong.
        error: FormatError,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { path, error } => {
                write!(f, "cannot read state file {}: {error}", path.display())
            }
            LoadError::Format { path, error } => {
                write!(f, "state file {} {error}", path.display())
            }
        }
    }
}

/// The most symbolic links [`resolve`] follows (as Linux's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// The file the state path `path` names: `path` itself, or if it is a symbolic link, the
/// file it points to (link after link, a relative target taken from the link's
/// directory). The server reads, locks and saves that file, so that its lock, its
/// temporary file and its saves are beside it whatever path or link names it: a second
/// server given the file or another link to it finds the lock, and a save leaves the link
/// a link. A link to nothing yet names a missing file, which the first save creates where
/// the link points. Fails on a loop of links.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => return Ok(path),
        }
    }
    Err(io::Error::other(format!(
        "more than {MAX_LINKS} symbolic links in a row"
    )))
}

/// Reads the state file at `path`: `Ok(None)` if there is none (an empty state), the
/// state if it parses, else why not (also when it is no regular file: a directory, a
/// pipe, a device). Reads only; the file is never changed here.
pub fn load(path: &Path) -> Result<Option<Saved>, LoadError> {
    // Only a regular file is read: a named pipe or a device would be read from forever
    // (or until someone writes), before the server listens.
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(LoadError::Read {
                path: path.to_path_buf(),
                error: io::Error::other("not a regular file"),
            });
        }
        _ => {}
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(LoadError::Read {
                path: path.to_path_buf(),
                error,
            });
        }
    };
    format::decode(&bytes)
        .map(Some)
        .map_err(|error| LoadError::Format {
            path: path.to_path_buf(),
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xscp-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        dir
    }

    #[test]
    fn a_missing_file_is_no_state() {
        let dir = temp_dir("missing");
        assert!(matches!(load(&dir.join("none")), Ok(None)));
    }

    #[test]
    #[cfg(unix)]
    fn a_link_is_followed_to_the_file_it_points_to() {
        use std::os::unix::fs::symlink;
        let dir = temp_dir("links");
        let file = dir.join("state");
        assert_eq!(resolve(&file).expect("a missing file"), file);
        // A relative target is taken from the link's directory, link after link; the
        // file need not exist yet.
        symlink("state", dir.join("one")).expect("symlink");
        symlink("one", dir.join("two")).expect("symlink");
        assert_eq!(resolve(&dir.join("two")).expect("followed"), file);
        std::fs::write(&file, "x").expect("write");
        assert_eq!(resolve(&dir.join("two")).expect("followed"), file);
        symlink(&file, dir.join("absolute")).expect("symlink");
        assert_eq!(resolve(&dir.join("absolute")).expect("followed"), file);
        // A loop is an error, not a hang.
        symlink("loop", dir.join("loop")).expect("symlink");
        assert!(resolve(&dir.join("loop")).is_err());
    }

    #[test]
    fn a_bad_file_names_itself_and_its_line() {
        let dir = temp_dir("bad");
        let path = dir.join("state");
        std::fs::write(&path, "xscpd-state 1\nbogus\n").expect("write");
        let e = load(&path).expect_err("refused");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("state file {} line 2: ", path.display())),
            "{text}"
        );
        let e = load(&dir).expect_err("a directory");
        assert!(e.to_string().starts_with("cannot read state file"), "{e}");
    }
}
