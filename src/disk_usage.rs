//! Disk use of a directory tree: Docker's image store for `ImageFsInfo`,
//! a container's writable layer for its stats. A walk costs time
//! proportional to the tree, so results are cached.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;

/// kubelet asks every 10 s or so; answers this fresh are good enough.
const MAX_AGE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub struct FsUsage {
    pub mountpoint: String,
    pub used_bytes: u64,
    pub inodes_used: u64,
    /// Nanoseconds since the epoch when measured.
    pub timestamp: i64,
}

#[derive(Default)]
pub struct FsUsageCache {
    last: Mutex<Option<(Instant, FsUsage)>>,
}

impl FsUsageCache {
    /// Usage of `dirs` together, reported at the first of them; measured
    /// afresh when the cached figure is stale or was for other directories.
    pub async fn usage(&self, dirs: &[PathBuf]) -> std::io::Result<FsUsage> {
        let mut last = self.last.lock().await;
        let mountpoint = dirs.first().map(|d| d.display().to_string()).unwrap_or_default();
        if let Some((at, usage)) = last.as_ref()
            && at.elapsed() < MAX_AGE
            && usage.mountpoint == mountpoint
        {
            return Ok(usage.clone());
        }
        let owned = dirs.to_vec();
        let (used_bytes, inodes_used) = tokio::task::spawn_blocking(move || {
            owned.iter().try_fold((0, 0), |(bytes, inodes), dir| walk(dir).map(|(b, i)| (bytes + b, inodes + i)))
        })
        .await
        .map_err(std::io::Error::other)??;
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
        let usage = FsUsage { mountpoint, used_bytes, inodes_used, timestamp };
        *last = Some((Instant::now(), usage.clone()));
        Ok(usage)
    }
}

/// Bytes allocated and inodes used below `root`, counting hard links once.
pub fn walk(root: &Path) -> std::io::Result<(u64, u64)> {
    let mut seen = HashSet::new();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    let root_meta = std::fs::symlink_metadata(root)?;
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            // Files vanish while Docker works; skip what is gone.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != root_meta.dev() {
                continue;
            }
            if meta.nlink() > 1 && !seen.insert(meta.ino()) {
                continue;
            }
            bytes += meta.blocks() * 512;
            inodes += 1;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok((bytes, inodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_files_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 10_000]).unwrap();
        std::fs::hard_link(dir.path().join("sub/a"), dir.path().join("b")).unwrap();
        let usage = FsUsageCache::default().usage(&[dir.path().to_path_buf()]).await.unwrap();
        assert_eq!(usage.inodes_used, 2, "dir + one file; the hard link counts once");
        assert!(usage.used_bytes >= 10_000);
    }
}
