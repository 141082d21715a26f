//! Opening a container's log file without leaving its log directory.
//!
//! pinshim writes as root into a directory the CRI client names, so the
//! path is checked twice: lexically at CreateContainer (`validate::inside`)
//! and here against the file system, which may have changed since. No
//! symlink is followed below the log directory (neither a directory nor the
//! file), and only regular files are written.
//!
//! Which existing files may be appended to: kubelet gives every attempt of a
//! container a new path (`<name>/<restart count>.log`) and deletes a
//! container's log with it, so a new container never inherits a file with
//! content. A non-empty file there is an operator's file or another
//! container's log, and is refused. The one exception is the container's own
//! file, which pinshim claims when it first opens it (see `LogManager`):
//! after a restart of pinshim or a rotation, its copy keeps appending.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

/// Why a log file is not opened.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The path is not one pinshim may write: the client's fault.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Whether an existing non-empty file may be appended to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Refuse,
    Append,
}

/// Checks, creating nothing, that `path` could be opened under `root`: what
/// CreateContainer asks before anything is made.
pub fn check(root: &Path, path: &Path) -> Result<(), LogError> {
    walk(root, path, false)?;
    existing_file(path, Existing::Refuse)
}

/// Opens `path` under `root` for appending, creating it and its missing
/// directories below `root`.
pub fn open(root: &Path, path: &Path, existing: Existing) -> Result<File, LogError> {
    std::fs::create_dir_all(root)?;
    walk(root, path, true)?;
    existing_file(path, existing)?;
    // O_NOFOLLOW: a symlink swapped in since the check is not followed;
    // O_NONBLOCK: a FIFO swapped in fails (ENXIO) rather than hang.
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) => refused(path, "is a symlink; pinshim does not follow it"),
            _ => LogError::Io(e),
        })?;
    if !file.metadata()?.is_file() {
        return Err(refused(path, "is not a regular file"));
    }
    Ok(file)
}

/// Goes through the directories between `root` and the file, refusing a
/// symlink or a non-directory, and creating what is missing when `create`.
fn walk(root: &Path, path: &Path, create: bool) -> Result<(), LogError> {
    let relative = path.strip_prefix(root).map_err(|_| refused(path, "is outside the log directory"))?;
    let parent = relative.parent().unwrap_or(Path::new(""));
    let mut dir = root.to_path_buf();
    for component in parent.components() {
        let Component::Normal(part) = component else {
            return Err(refused(path, "is not a clean path inside the log directory"));
        };
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(refused(path, &format!("goes through symlink {}", dir.display())));
            }
            Ok(_) => return Err(refused(path, &format!("goes through {}, which is not a directory", dir.display()))),
            Err(e) if e.kind() == ErrorKind::NotFound && !create => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => match std::fs::create_dir(&dir) {
                Ok(()) => {}
                // Made meanwhile (kubelet, or a racing start): checked on the next open.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// An absent or empty regular file is fine; anything else by the rule above.
fn existing_file(path: &Path, existing: Existing) -> Result<(), LogError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if meta.file_type().is_symlink() {
        return Err(refused(path, "is a symlink; pinshim does not follow it"));
    }
    if !meta.is_file() {
        return Err(refused(path, "is not a regular file"));
    }
    if meta.len() > 0 && existing == Existing::Refuse {
        return Err(refused(path, "already exists and is not this container's log; refusing to append to it"));
    }
    Ok(())
}

fn refused(path: &Path, why: &str) -> LogError {
    LogError::Refused(format!("{} {why}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(result: Result<impl std::fmt::Debug, LogError>) -> String {
        match result {
            Err(LogError::Refused(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn creates_directories_and_appends_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("c/0.log");
        check(root.path(), &path).unwrap();
        assert!(!root.path().join("c").exists(), "check creates nothing");
        open(root.path(), &path, Existing::Refuse).unwrap();
        assert!(path.is_file());
    }

    #[test]
    fn never_follows_a_symlink_out() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("c")).unwrap();
        let through_dir = root.path().join("c/0.log");
        assert!(refusal(check(root.path(), &through_dir)).contains("symlink"));
        assert!(refusal(open(root.path(), &through_dir, Existing::Append)).contains("symlink"));

        let target = outside.path().join("victim");
        std::fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, root.path().join("1.log")).unwrap();
        assert!(refusal(open(root.path(), &root.path().join("1.log"), Existing::Append)).contains("symlink"));
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1, "nothing written outside");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
    }

    #[test]
    fn existing_files_only_when_they_are_ours() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("0.log");
        std::fs::write(&path, "not a log\n").unwrap();
        assert!(refusal(check(root.path(), &path)).contains("already exists"));
        assert!(refusal(open(root.path(), &path, Existing::Refuse)).contains("already exists"));
        open(root.path(), &path, Existing::Append).unwrap();

        let empty = root.path().join("empty.log");
        std::fs::write(&empty, "").unwrap();
        open(root.path(), &empty, Existing::Refuse).unwrap();

        std::fs::create_dir(root.path().join("dir.log")).unwrap();
        assert!(refusal(open(root.path(), &root.path().join("dir.log"), Existing::Append)).contains("regular"));
        assert!(refusal(check(root.path(), Path::new("/elsewhere/0.log"))).contains("outside"));
    }
}
