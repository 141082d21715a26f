//! Which digest each tag was resolved to, per image: the memory Docker
//! lacks (its RepoDigests is an unordered set that only grows). Kept in one
//! small JSON file under the root dir, replaced atomically on every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::error::ImageError;

const FILE_NAME: &str = "tag-digests.json";

/// One resolution: `tag` pointed at `digest`, which Docker holds as `image_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub digest: String,
    pub image_id: String,
    /// Seconds since the epoch; the newest record wins when an image is
    /// looked up by ID and several tags lead to it.
    pub resolved_at: u64,
}

/// The records, keyed by fully qualified tag reference (`registry/repo:tag`).
pub struct TagRecords {
    path: PathBuf,
    records: Mutex<BTreeMap<String, TagRecord>>,
}

impl TagRecords {
    /// Loads the records kept under `dir`, creating the directory.
    pub async fn open(dir: &Path) -> Result<Self, ImageError> {
        let path = dir.join(FILE_NAME);
        let failed =
            |e: &dyn std::fmt::Display| ImageError::Records { path: path.display().to_string(), reason: e.to_string() };
        tokio::fs::create_dir_all(dir).await.map_err(|e| failed(&e))?;
        let records = match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| failed(&e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(failed(&e)),
        };
        Ok(TagRecords { path, records: Mutex::new(records) })
    }

    /// Records that `tag` now resolves to `digest` / `image_id`.
    pub async fn remember(&self, tag: &str, digest: &str, image_id: &str) -> Result<(), ImageError> {
        let mut records = self.records.lock().await;
        let resolved_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let record = TagRecord { digest: digest.to_string(), image_id: image_id.to_string(), resolved_at };
        if records.get(tag).is_some_and(|r| r.digest == record.digest && r.image_id == record.image_id) {
            return Ok(());
        }
        records.insert(tag.to_string(), record);
        self.persist(&records).await
    }

    /// The record for `tag`, if it still describes `image_id`.
    pub async fn for_tag(&self, tag: &str, image_id: &str) -> Option<TagRecord> {
        self.records.lock().await.get(tag).filter(|r| r.image_id == image_id).cloned()
    }

    /// Every tag that was resolved to `image_id`, newest first.
    pub async fn for_image(&self, image_id: &str) -> Vec<(String, TagRecord)> {
        let records = self.records.lock().await;
        let mut found: Vec<_> =
            records.iter().filter(|(_, r)| r.image_id == image_id).map(|(t, r)| (t.clone(), r.clone())).collect();
        found.sort_by(|a, b| b.1.resolved_at.cmp(&a.1.resolved_at).then_with(|| a.0.cmp(&b.0)));
        found
    }

    /// The image a tag of `repository` was last resolved to `digest` for:
    /// how a digest pulled through a mirror is found under the upstream name.
    pub async fn for_digest(&self, repository: &str, digest: &str) -> Option<String> {
        let records = self.records.lock().await;
        let mut found: Vec<&TagRecord> = records
            .iter()
            .filter(|(tag, r)| r.digest == digest && tag.rsplit_once(':').is_some_and(|(repo, _)| repo == repository))
            .map(|(_, r)| r)
            .collect();
        found.sort_by_key(|r| std::cmp::Reverse(r.resolved_at));
        found.first().map(|r| r.image_id.clone())
    }

    /// Drops every record of a removed image.
    pub async fn forget_image(&self, image_id: &str) -> Result<(), ImageError> {
        let mut records = self.records.lock().await;
        let before = records.len();
        records.retain(|_, r| r.image_id != image_id);
        if records.len() == before {
            return Ok(());
        }
        self.persist(&records).await
    }

    /// Write to a temporary file, sync, rename: a crash leaves the old file
    /// or the new one, never a torn one.
    async fn persist(&self, records: &BTreeMap<String, TagRecord>) -> Result<(), ImageError> {
        let failed = |e: &dyn std::fmt::Display| ImageError::Records {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        };
        let body = serde_json::to_vec_pretty(records).map_err(|e| failed(&e))?;
        let tmp = self.path.with_extension("json.tmp");
        let file = tokio::fs::File::create(&tmp).await.map_err(|e| failed(&e))?;
        let mut file = tokio::io::BufWriter::new(file);
        tokio::io::AsyncWriteExt::write_all(&mut file, &body).await.map_err(|e| failed(&e))?;
        tokio::io::AsyncWriteExt::flush(&mut file).await.map_err(|e| failed(&e))?;
        file.get_ref().sync_all().await.map_err(|e| failed(&e))?;
        tokio::fs::rename(&tmp, &self.path).await.map_err(|e| failed(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn survives_reopen_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let records = TagRecords::open(dir.path()).await.unwrap();
        records.remember("r/a:1", "sha256:d1", "sha256:i1").await.unwrap();
        records.remember("r/a:2", "sha256:d2", "sha256:i1").await.unwrap();
        records.remember("r/b:1", "sha256:d3", "sha256:i2").await.unwrap();

        let reopened = TagRecords::open(dir.path()).await.unwrap();
        assert_eq!(reopened.for_tag("r/a:1", "sha256:i1").await.unwrap().digest, "sha256:d1");
        assert!(reopened.for_tag("r/a:1", "sha256:other").await.is_none());
        assert_eq!(reopened.for_image("sha256:i1").await.len(), 2);

        reopened.forget_image("sha256:i1").await.unwrap();
        let again = TagRecords::open(dir.path()).await.unwrap();
        assert!(again.for_image("sha256:i1").await.is_empty());
        assert_eq!(again.for_image("sha256:i2").await.len(), 1);
    }
}
