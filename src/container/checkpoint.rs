//! CheckpointContainer: the forensic checkpoint kubelet takes of a running
//! container (its `/checkpoint` API). Docker checkpoints the process tree
//! with CRIU (experimental daemon, `criu` on the runtime's path) and the
//! container keeps running. pinshim then writes the archive CRI-O and
//! containerd write, which checkpointctl reads:
//!
//! - `checkpoint/`: CRIU's images;
//! - `config.dump`: who the container was (ID, name, image, times);
//! - `spec.dump`: its OCI runtime spec, from the runtime's bundle;
//! - `rootfs-diff.tar`: what it wrote to its writable layer, and
//!   `deleted.files`: what it removed from the image's files.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ContainerError, ContainerService, invalid};
use crate::docker::{ContainerDetails, DockerError};
use crate::labels;
use crate::time::{format_rfc3339_nanos, now_nanos};

/// The checkpoint's name in Docker, and the archive's CRIU directory.
const CHECKPOINT: &str = "checkpoint";

impl ContainerService {
    pub async fn checkpoint(&self, id: &str, location: &str, timeout: i64) -> Result<(), ContainerError> {
        let location = PathBuf::from(location);
        if !location.is_absolute() || location.file_name().is_none() {
            return Err(invalid("location must be an absolute path to the archive to write"));
        }
        if !location.parent().is_some_and(Path::is_dir) {
            return Err(invalid(&format!("the directory of {} does not exist", location.display())));
        }
        let details = self.running(id).await?;
        if !self.docker.info().await?.experimental {
            return Err(ContainerError::CheckpointUnsupported(
                "the Docker engine runs without experimental features, which checkpoints need \
                 (\"experimental\": true in daemon.json, and CRIU 4.1 or later where runc finds it)"
                    .to_string(),
            ));
        }
        // One directory per checkpoint: two of the same container may overlap.
        let work = PathBuf::from(&self.root_dir).join("checkpoints").join(format!("{}.{}", details.id, now_nanos()));
        let taken = async {
            fs::create_dir_all(&work).map_err(|e| ContainerError::Checkpoint(format!("{}: {e}", work.display())))?;
            let dir = work.display().to_string();
            // A failed dump is the engine's 500 with CRIU's words; every other
            // Docker error keeps its own code (Unavailable, NotFound, …).
            self.docker.checkpoint(&details.id, &dir, CHECKPOINT).await.map_err(|e| match e {
                DockerError::Server(reason) => ContainerError::Checkpoint(reason),
                other => other.into(),
            })?;
            let (work, location, details) = (work.clone(), location.clone(), details.clone());
            tokio::task::spawn_blocking(move || write_archive(&work, &location, &details))
                .await
                .map_err(|e| ContainerError::Checkpoint(e.to_string()))?
        };
        let result = match timeout {
            t if t > 0 => tokio::time::timeout(Duration::from_secs(t as u64), taken)
                .await
                .unwrap_or_else(|_| Err(ContainerError::CheckpointTimeout(details.id.clone()))),
            _ => taken.await,
        };
        let _ = fs::remove_dir_all(&work);
        if result.is_ok() {
            tracing::info!(container_id = %details.id, archive = %location.display(), "container checkpointed");
        }
        result
    }
}

fn write_archive(work: &Path, location: &Path, d: &ContainerDetails) -> Result<(), ContainerError> {
    let failed = |what: &str, e: io::Error| ContainerError::Checkpoint(format!("{what}: {e}"));
    let spec = bundle_spec(d.state.pid).map_err(|e| failed("the container's OCI spec", e))?;
    let upper = match d.upper_dir.is_empty() {
        true => crate::mountinfo::upper_dir(d.state.pid).unwrap_or_default(),
        false => d.upper_dir.clone(),
    };
    let (diff, deleted) = rootfs_diff(Path::new(&upper)).map_err(|e| failed("the container's writable layer", e))?;
    let partial = location.with_extension("partial");
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| failed(&partial.display().to_string(), e))?;
    let mut archive = tar::Builder::new(file);
    let written = (|| {
        archive.append_dir_all(CHECKPOINT, work.join(CHECKPOINT))?;
        append_bytes(&mut archive, "config.dump", &config_dump(d))?;
        append_bytes(&mut archive, "spec.dump", &spec)?;
        append_bytes(&mut archive, "rootfs-diff.tar", &diff)?;
        if !deleted.is_empty() {
            append_bytes(&mut archive, "deleted.files", &serde_json::to_vec(&deleted).unwrap_or_default())?;
        }
        archive.into_inner()?.sync_all()
    })();
    match written.and_then(|()| fs::rename(&partial, location)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&partial);
            Err(failed(&location.display().to_string(), e))
        }
    }
}

fn append_bytes(archive: &mut tar::Builder<fs::File>, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime((now_nanos() / 1_000_000_000).max(0) as u64);
    header.set_cksum();
    archive.append_data(&mut header, name, bytes)
}

/// The OCI spec the runtime runs the container with: `config.json` in the
/// bundle, which is the working directory of the shim that parents the
/// container's first process.
fn bundle_spec(pid: i64) -> io::Result<Vec<u8>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it do not.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let parent = after_name.split_whitespace().nth(1).unwrap_or_default();
    fs::read(PathBuf::from(format!("/proc/{parent}/cwd")).join("config.json"))
}

/// What checkpointctl reads as the container's metadata.
fn config_dump(d: &ContainerDetails) -> Vec<u8> {
    let l = &d.labels;
    let canonical = labels::get(l, labels::CANONICAL_IMAGE_ID);
    let json = serde_json::json!({
        "id": d.id,
        "name": labels::get(l, labels::NAME),
        "rootfsImage": labels::get(l, labels::IMAGE_REQUESTED),
        "rootfsImageRef": labels::get(l, labels::IMAGE_ID),
        "rootfsImageName": if canonical.is_empty() { labels::get(l, labels::IMAGE_USER_SPECIFIED) } else { canonical },
        "runtime": "runc",
        "createdTime": format_rfc3339_nanos(d.created_at),
        "checkpointedTime": format_rfc3339_nanos(now_nanos()),
    });
    serde_json::to_vec_pretty(&json).unwrap_or_default()
}

/// The writable layer as a tar of what the container added or changed,
/// and the paths it deleted (overlay whiteouts: character devices 0:0).
fn rootfs_diff(upper: &Path) -> io::Result<(Vec<u8>, Vec<String>)> {
    let mut diff = tar::Builder::new(Vec::new());
    diff.follow_symlinks(false);
    let mut deleted = Vec::new();
    if !upper.as_os_str().is_empty() {
        walk(upper, Path::new(""), &mut diff, &mut deleted)?;
    }
    Ok((diff.into_inner()?, deleted))
}

fn walk(root: &Path, relative: &Path, diff: &mut tar::Builder<Vec<u8>>, deleted: &mut Vec<String>) -> io::Result<()> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(root.join(relative))?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = relative.join(entry.file_name());
        let meta = fs::symlink_metadata(entry.path())?;
        if meta.file_type().is_char_device() && meta.rdev() == 0 {
            deleted.push(name.display().to_string());
            continue;
        }
        diff.append_path_with_name(entry.path(), &name)?;
        if meta.is_dir() {
            walk(root, &name, diff, deleted)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_holds_new_files_and_lists_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc/app")).unwrap();
        fs::write(dir.path().join("etc/app/conf"), "x=1\n").unwrap();
        std::os::unix::fs::symlink("conf", dir.path().join("etc/app/link")).unwrap();
        let whiteout = nix::sys::stat::mknod(
            &dir.path().join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        );
        let (diff, deleted) = rootfs_diff(dir.path()).unwrap();
        let mut names: Vec<String> = tar::Archive::new(diff.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["etc", "etc/app", "etc/app/conf", "etc/app/link"]);
        if whiteout.is_ok() {
            assert_eq!(deleted, ["gone"]);
        }
    }

    #[test]
    fn an_absent_layer_is_an_empty_diff() {
        let (diff, deleted) = rootfs_diff(Path::new("")).unwrap();
        assert!(tar::Archive::new(diff.as_slice()).entries().unwrap().next().is_none());
        assert!(deleted.is_empty());
    }
}
