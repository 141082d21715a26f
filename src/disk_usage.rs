//! Disk use of a directory tree: Docker's image store for `ImageFsInfo`,
//! a container's writable layer for its stats. A walk costs time
//! proportional to the tree, so results are cached.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

type Measured = Arc<Mutex<Option<(Instant, FsUsage)>>>;

pub struct FsUsageCache {
    last: Measured,
    /// A walk for a stale figure is under way in the background.
    refreshing: Arc<AtomicBool>,
    max_age: Duration,
}

impl Default for FsUsageCache {
    fn default() -> Self {
        Self::with_max_age(MAX_AGE)
    }
}

impl FsUsageCache {
    pub fn with_max_age(max_age: Duration) -> Self {
        FsUsageCache { last: Arc::default(), refreshing: Arc::default(), max_age }
    }

    /// Usage of `dirs` together, reported at the first of them. The first
    /// answer waits for a walk; later ones are the last figure (its
    /// timestamp says when it was taken), and a stale one sets off a new
    /// walk in the background, so no caller waits for a walk again.
    pub async fn usage(&self, dirs: &[PathBuf]) -> std::io::Result<FsUsage> {
        let mut last = self.last.lock().await;
        let mountpoint = dirs.first().map(|d| d.display().to_string()).unwrap_or_default();
        if let Some((at, usage)) = last.as_ref()
            && usage.mountpoint == mountpoint
        {
            if at.elapsed() >= self.max_age && !self.refreshing.swap(true, Ordering::SeqCst) {
                tokio::spawn(refresh(self.last.clone(), self.refreshing.clone(), dirs.to_vec(), mountpoint));
            }
            return Ok(usage.clone());
        }
        let usage = measure(dirs.to_vec(), mountpoint).await?;
        *last = Some((Instant::now(), usage.clone()));
        Ok(usage)
    }
}

async fn refresh(last: Measured, refreshing: Arc<AtomicBool>, dirs: Vec<PathBuf>, mountpoint: String) {
    match measure(dirs, mountpoint).await {
        Ok(usage) => *last.lock().await = Some((Instant::now(), usage)),
        Err(e) => tracing::debug!(error = %e, "image store walk failed; keeping the last figure"),
    }
    refreshing.store(false, Ordering::SeqCst);
}

async fn measure(dirs: Vec<PathBuf>, mountpoint: String) -> std::io::Result<FsUsage> {
    let (used_bytes, inodes_used) = tokio::task::spawn_blocking(move || {
        dirs.iter().try_fold((0, 0), |(bytes, inodes), dir| walk(dir).map(|(b, i)| (bytes + b, inodes + i)))
    })
    .await
    .map_err(std::io::Error::other)??;
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    Ok(FsUsage { mountpoint, used_bytes, inodes_used, timestamp })
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

    #[tokio::test]
    async fn a_stale_figure_is_served_while_a_walk_renews_it() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        let cache = FsUsageCache::with_max_age(Duration::ZERO);
        let first = cache.usage(&dirs).await.unwrap();
        std::fs::write(dir.path().join("new"), b"x").unwrap();
        assert_eq!(cache.usage(&dirs).await.unwrap(), first, "served at once, stale");
        for _ in 0..200 {
            if cache.usage(&dirs).await.unwrap().inodes_used == first.inodes_used + 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the background walk never renewed the figure");
    }
}
