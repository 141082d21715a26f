//! Copies each container's output from Docker into its CRI log file, and
//! reopens the file on ReopenContainerLog. One task per container; the
//! newest timestamp written is what lets a restarted pinshim catch up
//! without losing or repeating a line.
//!
//! kubelet opens the file as soon as StartContainer returns and reads it as
//! soon as the container has exited, so the file is opened before the
//! container starts, and anything reporting an exit first waits (briefly)
//! for the copy to reach the end of the container's output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::cri_log::CriLogFile;
use super::log_open::{Existing, LogError};
use crate::docker::Docker;

type ReopenReply = oneshot::Sender<Result<(), LogError>>;

/// Where each container's last written timestamp is kept across reopens,
/// for when the new file is still empty at a restart. Its presence also
/// marks the log file as this container's own (see `log_open`).
const POSITION_SUFFIX: &str = ".pos";

/// How long an exit report waits for the copy to catch up. Docker ends the
/// log stream right after the container's last output; past this the
/// report goes out anyway rather than stall kubelet on a wedged copy.
pub const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// The copy task of one container.
struct Follower {
    reopen: mpsc::Sender<ReopenReply>,
    /// Dropped by the task when it ends.
    running: watch::Receiver<()>,
}

pub struct LogManager {
    docker: Docker,
    positions: PathBuf,
    followers: Mutex<HashMap<String, Follower>>,
}

/// A container's log file, opened ahead of its start.
pub struct OpenedLog {
    path: PathBuf,
    file: CriLogFile,
}

impl LogManager {
    pub fn new(docker: Docker, positions: PathBuf) -> Arc<Self> {
        Arc::new(LogManager { docker, positions, followers: Mutex::default() })
    }

    /// Opens (creating) container `id`'s log file at `path` inside `root`
    /// before its first start, resuming after what it already holds. A
    /// non-empty file is appended to only when this container claimed it
    /// before (a start after an earlier start).
    pub async fn open(&self, id: &str, root: &Path, path: PathBuf) -> Result<OpenedLog, LogError> {
        let claimed = tokio::fs::try_exists(self.position_file(id)).await.unwrap_or(false);
        self.open_as(id, root, path, if claimed { Existing::Append } else { Existing::Refuse }).await
    }

    async fn open_as(&self, id: &str, root: &Path, path: PathBuf, existing: Existing) -> Result<OpenedLog, LogError> {
        let position_file = self.position_file(id);
        let position = tokio::fs::read_to_string(&position_file).await.ok();
        let known = position.as_deref().and_then(|s| s.trim().parse().ok());
        let file = CriLogFile::open(root, &path, known.unwrap_or(0), existing).await?;
        if position.is_none() {
            claim(&position_file).await?;
        }
        Ok(OpenedLog { path, file })
    }

    fn position_file(&self, id: &str) -> PathBuf {
        self.positions.join(format!("{id}{POSITION_SUFFIX}"))
    }

    /// Opens the log file of a container that already started (its file
    /// passed `open` then, so it is its own) and starts copying into it,
    /// unless a copy runs: after a restart of pinshim, or a lost copier.
    pub async fn follow(self: &Arc<Self>, id: &str, root: &Path, path: PathBuf) -> Result<(), LogError> {
        if self.is_following(id) {
            return Ok(());
        }
        let log = self.open_as(id, root, path, Existing::Append).await?;
        self.follow_opened(id, log);
        Ok(())
    }

    /// Starts copying container `id`'s output into `log`, unless a copy runs.
    pub fn follow_opened(self: &Arc<Self>, id: &str, log: OpenedLog) {
        let (reopen, reopen_rx) = mpsc::channel(1);
        let (alive, running) = watch::channel(());
        {
            let mut followers = self.lock();
            if followers.get(id).is_some_and(|f| !f.reopen.is_closed()) {
                return;
            }
            followers.insert(id.to_string(), Follower { reopen, running });
        }
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let path = log.path.clone();
            if let Err(e) = this.copy(&id, log, reopen_rx).await {
                tracing::warn!(container_id = %id, path = %path.display(), error = %e, "log copy stopped");
            }
            this.lock().retain(|k, f| k != &id || !f.reopen.is_closed());
            drop(alive);
        });
    }

    fn is_following(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|f| !f.reopen.is_closed())
    }

    /// Waits, at most `limit`, until no copy runs for any of `ids`: for
    /// exited containers, until their whole output is in their files.
    pub async fn drained(&self, ids: &[&str], limit: Duration) {
        let mut waits: Vec<watch::Receiver<()>> = {
            let followers = self.lock();
            ids.iter().filter_map(|id| followers.get(*id).map(|f| f.running.clone())).collect()
        };
        if waits.is_empty() {
            return;
        }
        let all = futures::future::join_all(waits.iter_mut().map(|rx| async move {
            // Only ever changes by closing: the task ended.
            while rx.changed().await.is_ok() {}
        }));
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!(containers = ?ids, "log copy still behind the container's exit; reporting the exit anyway");
        }
    }

    /// Makes the follower of `id` reopen its file. `false` when no
    /// follower runs (the container is not running).
    pub async fn reopen(&self, id: &str) -> Result<bool, LogError> {
        let Some(tx) = self.lock().get(id).map(|f| f.reopen.clone()) else { return Ok(false) };
        let (reply, answer) = oneshot::channel();
        if tx.send(reply).await.is_err() {
            return Ok(false);
        }
        answer.await.map_or(Ok(false), |r| r.map(|()| true))
    }

    async fn copy(&self, id: &str, opened: OpenedLog, mut reopen: mpsc::Receiver<ReopenReply>) -> std::io::Result<()> {
        let position_file = self.position_file(id);
        let OpenedLog { path, file: mut log } = opened;
        let since_secs = log.last_nanos / 1_000_000_000;
        let mut entries = self.docker.follow_logs(id, since_secs).await.map_err(std::io::Error::other)?;
        tracing::debug!(container_id = %id, path = %path.display(), since_secs, "copying container output");
        let outcome = loop {
            tokio::select! {
                entry = entries.next() => match entry {
                    Some(Ok(chunk)) => {
                        if let Err(e) = log.write_entry(chunk.stream, &chunk.data).await {
                            break Err(e);
                        }
                    }
                    Some(Err(e)) => break Err(std::io::Error::other(e)),
                    None => break Ok(()),
                },
                Some(reply) = reopen.recv() => {
                    let result = log.reopen().await;
                    tracing::debug!(container_id = %id, "log file reopened");
                    save_position(&position_file, log.last_nanos).await;
                    let _ = reply.send(result);
                }
            }
        };
        log.sync().await?;
        save_position(&position_file, log.last_nanos).await;
        outcome
    }

    /// Forgets a removed container's position file.
    pub async fn forget(&self, id: &str) {
        let _ = tokio::fs::remove_file(self.position_file(id)).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Follower>> {
        // Entries are inserted and removed whole; a panic elsewhere leaves the map usable.
        self.followers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records that container's log file as its own, before anything is written.
async fn claim(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::write(path, "0").await
}

async fn save_position(path: &Path, nanos: i64) {
    if nanos == 0 {
        return;
    }
    if let Some(dir) = path.parent() {
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    let tmp = path.with_extension("tmp");
    if tokio::fs::write(&tmp, nanos.to_string()).await.is_ok() {
        let _ = tokio::fs::rename(&tmp, path).await;
    }
}
