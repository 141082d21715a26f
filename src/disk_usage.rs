//! Disk use of a directory tree: Docker's image store for `ImageFsInfo`,
//! a container's writable layer for its stats. A walk costs time
//! proportional to the tree, so results are cached.

use std::collections::{HashMap, HashSet};
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

/// The name of the file Docker's overlay2 driver puts in a layer once its
/// content is final (image layers, a container's init layer).
const FINISHED_MARK: &str = "committed";

/// Bytes and inodes of a finished layer, measured once.
#[derive(Debug, Clone, Copy)]
struct Finished {
    bytes: u64,
    inodes: u64,
}

type FinishedLayers = Arc<std::sync::Mutex<HashMap<PathBuf, Finished>>>;

pub struct FsUsageCache {
    last: Measured,
    /// A walk for a stale figure is under way in the background.
    refreshing: Arc<AtomicBool>,
    max_age: Duration,
    /// Finished layers below the store, walked once rather than at every
    /// renewal: with many pods most of the store is image and init layers.
    finished: FinishedLayers,
}

impl Default for FsUsageCache {
    fn default() -> Self {
        Self::with_max_age(MAX_AGE)
    }
}

impl FsUsageCache {
    pub fn with_max_age(max_age: Duration) -> Self {
        FsUsageCache { last: Arc::default(), refreshing: Arc::default(), max_age, finished: Arc::default() }
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
                let (last, refreshing) = (self.last.clone(), self.refreshing.clone());
                tokio::spawn(refresh(last, refreshing, self.finished.clone(), dirs.to_vec(), mountpoint));
            }
            return Ok(usage.clone());
        }
        let usage = measure(self.finished.clone(), dirs.to_vec(), mountpoint).await?;
        *last = Some((Instant::now(), usage.clone()));
        Ok(usage)
    }
}

async fn refresh(
    last: Measured,
    refreshing: Arc<AtomicBool>,
    finished: FinishedLayers,
    dirs: Vec<PathBuf>,
    mountpoint: String,
) {
    match measure(finished, dirs, mountpoint).await {
        Ok(usage) => *last.lock().await = Some((Instant::now(), usage)),
        Err(e) => tracing::debug!(error = %e, "image store walk failed; keeping the last figure"),
    }
    refreshing.store(false, Ordering::SeqCst);
}

async fn measure(finished: FinishedLayers, dirs: Vec<PathBuf>, mountpoint: String) -> std::io::Result<FsUsage> {
    let (used_bytes, inodes_used) = tokio::task::spawn_blocking(move || {
        let mut finished = finished.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        dirs.iter().try_fold((0, 0), |(bytes, inodes), dir| {
            walk_store(dir, &mut finished).map(|(b, i)| (bytes + b, inodes + i))
        })
    })
    .await
    .map_err(std::io::Error::other)??;
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    Ok(FsUsage { mountpoint, used_bytes, inodes_used, timestamp })
}

/// Bytes allocated and inodes used below `root`, counting hard links once.
pub fn walk(root: &Path) -> std::io::Result<(u64, u64)> {
    let dev = std::fs::symlink_metadata(root)?.dev();
    Ok(walk_below(root, dev, &mut HashSet::new()))
}

/// `walk` for an image store: a layer directory directly below `root` that
/// carries the finished mark is measured once and remembered in `finished`,
/// the rest are walked every time. A hard link between a finished layer and
/// another directory counts in both; overlay2 layers share none.
fn walk_store(root: &Path, finished: &mut HashMap<PathBuf, Finished>) -> std::io::Result<(u64, u64)> {
    let dev = std::fs::symlink_metadata(root)?.dev();
    let mut seen = HashSet::new();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut present = HashSet::new();
    for entry in std::fs::read_dir(root)?.flatten() {
        let Some(meta) = counted(&entry, dev, &mut seen) else { continue };
        bytes += meta.blocks() * 512;
        inodes += 1;
        if !meta.is_dir() {
            continue;
        }
        let path = entry.path();
        let layer = match finished.get(&path) {
            Some(layer) => *layer,
            None => {
                // Marked before the walk, so the walk saw the final content.
                let is_finished = path.join(FINISHED_MARK).exists();
                let (bytes, inodes) = walk_below(&path, dev, &mut seen);
                let layer = Finished { bytes, inodes };
                if is_finished {
                    finished.insert(path.clone(), layer);
                }
                layer
            }
        };
        bytes += layer.bytes;
        inodes += layer.inodes;
        present.insert(path);
    }
    // Removed layers are forgotten.
    finished.retain(|path, _| present.contains(path));
    Ok((bytes, inodes))
}

/// Bytes and inodes of the entries below `root` on device `dev`; inodes
/// with several links count once across every walk that shares `seen`.
fn walk_below(root: &Path, dev: u64, seen: &mut HashSet<u64>) -> (u64, u64) {
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Some(meta) = counted(&entry, dev, &mut *seen) else { continue };
            bytes += meta.blocks() * 512;
            inodes += 1;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    (bytes, inodes)
}

/// The metadata of an entry that counts: on device `dev`, not gone (files
/// vanish while Docker works), and not an inode with several links seen before.
fn counted(entry: &std::fs::DirEntry, dev: u64, seen: &mut HashSet<u64>) -> Option<std::fs::Metadata> {
    let meta = entry.metadata().ok().filter(|m| m.dev() == dev)?;
    (meta.nlink() <= 1 || seen.insert(meta.ino())).then_some(meta)
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

    #[test]
    fn a_finished_layer_is_walked_once_and_forgotten_when_removed() {
        let store = tempfile::tempdir().unwrap();
        let (image, container) = (store.path().join("image"), store.path().join("container"));
        for layer in [&image, &container] {
            std::fs::create_dir_all(layer.join("diff")).unwrap();
        }
        std::fs::write(image.join(FINISHED_MARK), b"").unwrap();
        let mut finished = HashMap::new();
        let first = walk_store(store.path(), &mut finished).unwrap();
        assert_eq!(first, walk(store.path()).unwrap(), "the same figure as a plain walk");
        assert!(finished.contains_key(&image) && !finished.contains_key(&container));

        std::fs::write(image.join("diff/late"), b"x").unwrap();
        std::fs::write(container.join("diff/new"), b"x").unwrap();
        let second = walk_store(store.path(), &mut finished).unwrap();
        assert_eq!(second.1, first.1 + 1, "only the unfinished layer is walked again");

        std::fs::remove_dir_all(&image).unwrap();
        walk_store(store.path(), &mut finished).unwrap();
        assert!(finished.is_empty(), "a removed layer is forgotten");
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
