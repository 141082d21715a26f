//! Pinned pod network namespaces: `/proc/<pid>/ns/net` of a pod's infra
//! process bind-mounted onto `<dir>/<sandbox id>`, as containerd and CRI-O
//! do, so the namespace and its name outlive the process. CNI ADD, CHECK
//! and DEL all get that one path; without it a DEL after the infra process
//! died gets no namespace, and the bridge plugin skips its NAT teardown.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statfs::{NSFS_MAGIC, statfs};

/// The pins of one pinshim instance, each a file named after its sandbox.
#[derive(Debug, Clone)]
pub struct NetnsPins {
    dir: PathBuf,
}

impl NetnsPins {
    /// Pins under `dir`, created on first use. It must be owned by this
    /// instance alone: start-up reconciliation releases every pin in it
    /// whose sandbox is gone.
    pub fn new(dir: PathBuf) -> Self {
        NetnsPins { dir }
    }

    /// Where the sandbox's namespace is (or would be) pinned.
    pub fn path(&self, sandbox_id: &str) -> PathBuf {
        self.dir.join(sandbox_id)
    }

    /// Pins the network namespace of process `pid` for the sandbox and
    /// returns the path. Pinning again is fine: the old pin is replaced.
    pub async fn pin(&self, sandbox_id: &str, pid: i64) -> io::Result<PathBuf> {
        let (dir, path) = (self.dir.clone(), self.path(sandbox_id));
        let source = PathBuf::from(format!("/proc/{pid}/ns/net"));
        blocking(move || {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
            release_blocking(&path)?;
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o400).open(&path)?;
            let pinned = bind(&source, &path);
            if pinned.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            pinned.map(|()| path)
        })
        .await
    }

    /// Whether `path` holds a pinned namespace (a file with no mount, as a
    /// reboot leaves, does not).
    pub async fn is_pinned(&self, sandbox_id: &str) -> bool {
        let path = self.path(sandbox_id);
        blocking(move || Ok(is_netns(&path))).await.unwrap_or(false)
    }

    /// Unmounts and deletes the pin; an absent one is fine.
    pub async fn release(&self, sandbox_id: &str) -> io::Result<()> {
        let path = self.path(sandbox_id);
        blocking(move || release_blocking(&path)).await
    }

    /// The sandbox IDs that have a pin file, mounted or not.
    pub async fn pinned(&self) -> io::Result<Vec<String>> {
        let dir = self.dir.clone();
        blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                other => other?,
            };
            let names = entries.filter_map(|e| e.ok()?.file_name().into_string().ok());
            Ok(names.filter(|n| !n.starts_with('.')).collect())
        })
        .await
    }
}

/// Binds the namespace onto `target`, then makes the mount unbindable:
/// a recursive bind of a parent directory into a container (a hostPath of
/// `/var/lib`, say) then leaves it out, so no container holds a copy that
/// would keep the namespace alive after the pin is released.
fn bind(source: &Path, target: &Path) -> io::Result<()> {
    let none: Option<&str> = None;
    mount(Some(source), target, none, MsFlags::MS_BIND, none).map_err(errno("bind mount"))?;
    let unbindable = mount(none, target, none, MsFlags::MS_UNBINDABLE, none);
    if let Err(e) = unbindable {
        let _ = umount2(target, MntFlags::MNT_DETACH);
        return Err(errno("make unbindable")(e));
    }
    Ok(())
}

fn release_blocking(path: &Path) -> io::Result<()> {
    // A pin mounted twice (a crash between two pins) needs one unmount each.
    while is_netns(path) {
        umount2(path, MntFlags::MNT_DETACH).map_err(errno("unmount"))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn is_netns(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

fn errno(what: &'static str) -> impl Fn(nix::Error) -> io::Error {
    move |e| io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unmounted_files_are_not_pins_and_release_deletes_them() {
        let dir = tempfile::tempdir().unwrap();
        let pins = NetnsPins::new(dir.path().join("netns"));
        assert!(pins.pinned().await.unwrap().is_empty());
        std::fs::create_dir(dir.path().join("netns")).unwrap();
        std::fs::write(pins.path("abc"), "").unwrap();
        assert_eq!(pins.pinned().await.unwrap(), ["abc"]);
        assert!(!pins.is_pinned("abc").await);
        pins.release("abc").await.unwrap();
        pins.release("abc").await.unwrap();
        assert!(pins.pinned().await.unwrap().is_empty());
    }
}
