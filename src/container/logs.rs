//! Copies each container's output from Docker into its CRI log file, and
//! reopens the file on ReopenContainerLog. One task per container; the
//! newest timestamp written is what lets a restarted pinshim catch up
//! without losing or repeating a line.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::cri_log::CriLogFile;
use crate::docker::Docker;

type ReopenReply = oneshot::Sender<std::io::Result<()>>;

/// Where each container's last written timestamp is kept across reopens,
/// for when the new file is still empty at a restart.
const POSITION_SUFFIX: &str = ".pos";

pub struct LogManager {
    docker: Docker,
    positions: PathBuf,
    followers: Mutex<HashMap<String, mpsc::Sender<ReopenReply>>>,
}

impl LogManager {
    pub fn new(docker: Docker, positions: PathBuf) -> Arc<Self> {
        Arc::new(LogManager { docker, positions, followers: Mutex::default() })
    }

    /// Starts copying container `id`'s output to `path`, unless that already runs.
    pub fn follow(self: &Arc<Self>, id: &str, path: PathBuf) {
        let (tx, rx) = mpsc::channel(1);
        {
            let mut followers = self.lock();
            if followers.get(id).is_some_and(|f| !f.is_closed()) {
                return;
            }
            followers.insert(id.to_string(), tx);
        }
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = this.copy(&id, path, rx).await {
                tracing::warn!(container_id = %id, error = %e, "log copy stopped");
            }
            this.lock().retain(|k, tx| k != &id || !tx.is_closed());
        });
    }

    /// Makes the follower of `id` reopen its file. `false` when no
    /// follower runs (the container is not running).
    pub async fn reopen(&self, id: &str) -> Result<bool, std::io::Error> {
        let Some(tx) = self.lock().get(id).cloned() else { return Ok(false) };
        let (reply, answer) = oneshot::channel();
        if tx.send(reply).await.is_err() {
            return Ok(false);
        }
        answer.await.map_or(Ok(false), |r| r.map(|()| true))
    }

    async fn copy(&self, id: &str, path: PathBuf, mut reopen: mpsc::Receiver<ReopenReply>) -> std::io::Result<()> {
        let position_file = self.positions.join(format!("{id}{POSITION_SUFFIX}"));
        let known = tokio::fs::read_to_string(&position_file).await.ok().and_then(|s| s.trim().parse().ok());
        let mut log = CriLogFile::open(&path, known.unwrap_or(0)).await?;
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
        let _ = tokio::fs::remove_file(self.positions.join(format!("{id}{POSITION_SUFFIX}"))).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<ReopenReply>>> {
        // Entries are inserted and removed whole; a panic elsewhere leaves the map usable.
        self.followers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn save_position(path: &std::path::Path, nanos: i64) {
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
