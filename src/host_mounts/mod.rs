//! Mounts pinshim makes on the host for a container where Docker cannot:
//! a bind with per-mount flags (`noexec`, `nosuid`, …), which a Docker
//! bind mount cannot carry, and an image's filesystem (its layers as a
//! read-only overlay) on engines that cannot mount images. Each is made
//! under `<root-dir>/mounts/<key>/<n>`, and Docker binds that path.
//!
//! The container's labels record every prepared bind (see `labels`), so
//! removal unmounts them, and a restart remakes what a reboot took and
//! removes what a crash left behind.

mod options;

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use serde::{Deserialize, Serialize};

use crate::{labels, mountinfo};

pub use options::{ACCEPTED, FlagChange};

const MOUNTS_DIR: &str = "mounts";

/// A mount a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    /// A host path with mount options.
    Bind { source: PathBuf, options: Vec<String> },
    /// Layer directories, top first, mounted read-only as one tree.
    Layers(Vec<PathBuf>),
}

/// A mount made on the host: what Docker binds (`target`), and what it
/// shows: a host path (`source`, with `options`) or an image's `layers`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PreparedBind {
    pub target: PathBuf,
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub source: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<PathBuf>,
}

fn is_empty_path(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

/// The kernel takes at most a page of mount options: an image with more
/// layers than fit is refused.
const MAX_MOUNT_DATA: usize = 4095;

/// The prepared binds a container's labels record.
pub fn recorded(container_labels: &std::collections::HashMap<String, String>) -> Vec<PreparedBind> {
    labels::get_json(container_labels, labels::HOST_MOUNTS)
}

/// The label value recording `binds`.
pub fn label_value(binds: &[PreparedBind]) -> String {
    serde_json::to_string(binds).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum HostMountError {
    #[error("mount of {}: {reason}", host_path.display())]
    Options { host_path: PathBuf, reason: String },
    #[error("cannot prepare the mount of {} at {}: {reason}", host_path.display(), target.display())]
    Mount { host_path: PathBuf, target: PathBuf, reason: String },
    #[error("cannot remove prepared mounts at {}: {reason}", path.display())]
    Release { path: PathBuf, reason: String },
    #[error("cannot generate a mount key: {0}")]
    Key(io::Error),
}

#[derive(Debug, Clone)]
pub struct HostMounts {
    dir: PathBuf,
}

impl HostMounts {
    pub fn new(root_dir: &Path) -> Self {
        HostMounts { dir: root_dir.join(MOUNTS_DIR) }
    }

    /// Makes each bind under a new key, in order; on any failure the ones
    /// already made are undone.
    pub fn prepare(&self, requests: &[MountRequest]) -> Result<Vec<PreparedBind>, HostMountError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let key_dir = self.dir.join(crate::random::hex(8).map_err(HostMountError::Key)?);
        let mut prepared = Vec::with_capacity(requests.len());
        for (n, request) in requests.iter().enumerate() {
            let target = key_dir.join(n.to_string());
            let made = match request {
                MountRequest::Bind { source, options } => {
                    PreparedBind { target, source: source.clone(), options: options.clone(), ..Default::default() }
                }
                MountRequest::Layers(layers) => PreparedBind { target, layers: layers.clone(), ..Default::default() },
            };
            if let Err(e) = make(&made) {
                if let Err(undo) = self.release(&prepared).and_then(|()| remove_key_dir(&key_dir)) {
                    tracing::warn!(error = %undo, "cannot undo a half-prepared mount");
                }
                return Err(e);
            }
            prepared.push(made);
        }
        Ok(prepared)
    }

    /// Unmounts the binds and removes their directory. Idempotent.
    pub fn release(&self, binds: &[PreparedBind]) -> Result<(), HostMountError> {
        // Most containers have none: no mount table to read for them.
        if !binds.iter().any(|b| b.target.starts_with(&self.dir)) {
            return Ok(());
        }
        let mounted = mountinfo::mount_points()
            .map_err(|e| HostMountError::Release { path: self.dir.clone(), reason: e.to_string() })?;
        let mut key_dirs = HashSet::new();
        for bind in binds.iter().filter(|b| b.target.starts_with(&self.dir)) {
            unmake(bind, &mounted)?;
            key_dirs.extend(bind.target.parent().map(Path::to_path_buf));
        }
        key_dirs.iter().try_for_each(|dir| remove_key_dir(dir))
    }

    /// Like `release`, for callers past the point of failing: what is left
    /// is removed by the next start, so a failure is logged.
    pub fn release_or_warn(&self, binds: &[PreparedBind]) {
        if let Err(e) = self.release(binds) {
            tracing::warn!(error = %e, "cannot remove a container's prepared mounts");
        }
    }

    /// Releases what a removed container's labels record.
    pub fn release_recorded(&self, container_labels: &std::collections::HashMap<String, String>) {
        self.release_or_warn(&recorded(container_labels));
    }

    /// After a restart, with the prepared binds of every container there
    /// is: remakes those a reboot took, and removes key directories no
    /// container names (left by a crash between prepare and create). A
    /// directory made after `listed` (when the containers were listed)
    /// belongs to a create still under way and is left alone.
    pub fn reconcile(&self, in_use: &[PreparedBind], listed: SystemTime) {
        let mounted = match mountinfo::mount_points() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the mount table; prepared mounts are not checked");
                return;
            }
        };
        for bind in in_use.iter().filter(|b| b.target.starts_with(&self.dir)) {
            if !mounted.contains(&bind.target)
                && let Err(e) = make(bind)
            {
                tracing::warn!(error = %e, "cannot remake a container's prepared mount");
            }
        }
        let used: HashSet<&Path> = in_use.iter().filter_map(|b| b.target.parent()).collect();
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        let older = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).is_ok_and(|t| t < listed);
        for dir in entries.flatten().map(|e| e.path()).filter(|p| !used.contains(p.as_path()) && older(p)) {
            let left = leftover_binds(&dir);
            match self.release(&left).and_then(|()| remove_key_dir(&dir)) {
                Ok(()) => tracing::info!(path = %dir.display(), "removed prepared mounts no container uses"),
                Err(e) => tracing::warn!(error = %e, "cannot remove prepared mounts no container uses"),
            }
        }
    }
}

fn make(mount: &PreparedBind) -> Result<(), HostMountError> {
    if mount.layers.is_empty() { make_bind(mount) } else { make_layers(mount) }
}

/// Mounts the layers at `target`, read-only: one layer is a read-only
/// bind of it, several an overlay with only lower layers.
fn make_layers(mount: &PreparedBind) -> Result<(), HostMountError> {
    let failed = |reason: String| HostMountError::Mount {
        host_path: mount.layers[0].clone(),
        target: mount.target.clone(),
        reason,
    };
    fs::create_dir_all(&mount.target).map_err(|e| failed(e.to_string()))?;
    if let [layer] = mount.layers.as_slice() {
        return bind_with(layer, &mount.target, &FlagChange::read_only()).map_err(failed);
    }
    let lower: Vec<String> = mount.layers.iter().map(|l| l.display().to_string()).collect();
    let data = format!("lowerdir={}", lower.join(":"));
    if data.len() > MAX_MOUNT_DATA {
        return Err(failed(format!("{} layers name more than a page of mount options", lower.len())));
    }
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount_overlay(&mount.target, flags, &data).map_err(|e| failed(format!("overlay: {e}")))
}

fn mount_overlay(target: &Path, flags: MsFlags, data: &str) -> nix::Result<()> {
    nix::mount::mount(Some("overlay"), target, Some("overlay"), flags, Some(data))
}

/// Binds `source` at `target` (a directory or a file, as the source is)
/// and remounts it with the options.
fn make_bind(bind: &PreparedBind) -> Result<(), HostMountError> {
    let failed =
        |reason: String| HostMountError::Mount { host_path: bind.source.clone(), target: bind.target.clone(), reason };
    let change = FlagChange::parse(&bind.options)
        .map_err(|reason| HostMountError::Options { host_path: bind.source.clone(), reason })?;
    let meta = fs::metadata(&bind.source).map_err(|e| failed(e.to_string()))?;
    if let Some(parent) = bind.target.parent() {
        fs::create_dir_all(parent).map_err(|e| failed(e.to_string()))?;
    }
    let created = if meta.is_dir() { fs::create_dir(&bind.target) } else { fs::File::create(&bind.target).map(drop) };
    match created {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(failed(e.to_string())),
        _ => {}
    }
    bind_with(&bind.source, &bind.target, &change).map_err(failed)
}

/// A recursive bind of `source` at `target`, remounted with `change`.
fn bind_with(source: &Path, target: &Path, change: &FlagChange) -> Result<(), String> {
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| format!("bind: {e}"))?;
    let remounted = nix::sys::statvfs::statvfs(target).map_err(|e| e.to_string()).and_then(|now| {
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | change.apply(now.flags());
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(|e| format!("remount: {e}"))
    });
    if let Err(reason) = remounted {
        let _ = umount2(target, MntFlags::MNT_DETACH);
        return Err(reason);
    }
    Ok(())
}

fn unmake(bind: &PreparedBind, mounted: &HashSet<PathBuf>) -> Result<(), HostMountError> {
    let failed = |reason: String| HostMountError::Release { path: bind.target.clone(), reason };
    if mounted.contains(&bind.target) {
        // Detached: a process still using it keeps it until it lets go,
        // but it is gone from the host's view now.
        umount2(&bind.target, MntFlags::MNT_DETACH).map_err(|e| failed(e.to_string()))?;
    }
    let removed = match fs::symlink_metadata(&bind.target) {
        Ok(meta) if meta.is_dir() => fs::remove_dir(&bind.target),
        Ok(_) => fs::remove_file(&bind.target),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(failed(e.to_string())),
        _ => Ok(()),
    }
}

fn remove_key_dir(dir: &Path) -> Result<(), HostMountError> {
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(HostMountError::Release { path: dir.to_path_buf(), reason: e.to_string() })
        }
        _ => Ok(()),
    }
}

/// The targets in a key directory nobody records any more.
fn leftover_binds(dir: &Path) -> Vec<PreparedBind> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().map(|e| PreparedBind { target: e.path(), ..Default::default() }).collect()
}
