//! The attachment cache: the config ADD used and the result it returned,
//! kept per attachment in `<cache_dir>/results/<network>-<container>-<ifname>`
//! in libcni's `cniCacheV1` format. DEL and CHECK read it back, so they use
//! the same config after the config directory changed or pinshim restarted,
//! and entries left by another libcni runtime sharing the directory work too.
//!
//! While an ADD runs, the same record sits in `<cache_dir>/pending/`, updated
//! after each plugin: a crash mid-ADD leaves the config and the latest result,
//! so DEL can still undo it (the firewall plugin finds its rules only through
//! `prevResult`). Only a `results` entry means the ADD finished.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use super::config::{NetworkConfig, parse_single};
use super::error::CniError;

/// The `kind` libcni writes and accepts.
const KIND: &str = "cniCacheV1";

/// One cache file, field for field as libcni writes it (`config` is base64).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheFile {
    kind: String,
    container_id: String,
    config: String,
    if_name: String,
    network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    netns: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cni_args: Vec<[String; 2]>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

/// What an attachment was made with, as stored and read back.
#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub(crate) network: NetworkConfig,
    pub(crate) container_id: String,
    pub(crate) ifname: String,
    pub(crate) netns: String,
    pub(crate) cni_args: Vec<(String, String)>,
    pub(crate) capability_args: Map<String, Value>,
    pub(crate) result: Option<Value>,
}

/// A cache file found for a container, usable or not.
#[derive(Debug)]
pub(crate) enum Cached {
    Usable { path: PathBuf, attachment: Box<Attachment> },
    Unusable { path: PathBuf, reason: String },
}

/// The `results` (finished ADDs) or `pending` (ADDs under way) directory.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub(crate) fn new(cache_dir: &Path) -> Self {
        Self { dir: cache_dir.join("results") }
    }

    /// Records of ADDs that have not finished, in the same format.
    pub(crate) fn pending(cache_dir: &Path) -> Self {
        Self { dir: cache_dir.join("pending") }
    }

    /// Which of `container_ids` have an entry on `ifname`, from one listing.
    pub(crate) async fn holding(&self, container_ids: &[&str], ifname: &str) -> Result<Vec<String>, CniError> {
        let names = self.names().await?;
        let held = |id: &str| names.iter().any(|n| n.ends_with(&format!("-{id}-{ifname}")));
        Ok(container_ids.iter().filter(|id| held(id)).map(|id| id.to_string()).collect())
    }

    async fn names(&self) -> Result<Vec<String>, CniError> {
        let io_err = |source| CniError::Cache { path: self.dir.clone(), source };
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(e)),
        };
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io_err)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Where libcni keeps the entry of one attachment.
    pub(crate) fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(format!("{network}-{container_id}-{ifname}"))
    }

    /// Writes the entry for `attachment`, replacing any older one atomically.
    pub(crate) async fn store(&self, attachment: &Attachment) -> Result<(), CniError> {
        let path = self.path(&attachment.network.name, &attachment.container_id, &attachment.ifname);
        let io_err = |source| CniError::Cache { path: path.clone(), source };
        let body = serde_json::to_vec(&encode(attachment)).map_err(|e| io_err(e.into()))?;
        tokio::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).await.map_err(io_err)?;
        let file_name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let temp = self.dir.join(format!(".{file_name}.tmp"));
        write_private(&temp, &body).await.map_err(io_err)?;
        tokio::fs::rename(&temp, &path).await.map_err(io_err)
    }

    /// Every entry for `container_id` on `ifname`, sorted by file name.
    pub(crate) async fn find(&self, container_id: &str, ifname: &str) -> Result<Vec<Cached>, CniError> {
        let suffix = format!("-{container_id}-{ifname}");
        let mut paths: Vec<PathBuf> =
            self.names().await?.into_iter().filter(|n| n.ends_with(&suffix)).map(|n| self.dir.join(n)).collect();
        paths.sort();
        let mut found = Vec::new();
        for path in paths {
            found.extend(read_entry(path, container_id, ifname).await);
        }
        Ok(found)
    }

    /// Deletes one entry; an entry already gone is fine.
    pub(crate) async fn remove(&self, path: &Path) -> Result<(), CniError> {
        match tokio::fs::remove_file(path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CniError::Cache { path: path.to_path_buf(), source: e })
            }
            _ => Ok(()),
        }
    }
}

async fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut options = tokio::fs::OpenOptions::new();
    let mut file = options.write(true).create(true).truncate(true).mode(0o600).open(path).await?;
    file.write_all(body).await?;
    file.sync_all().await
}

/// Reads one file; `None` when it belongs to another container or interface
/// whose name merely ends the same way.
async fn read_entry(path: PathBuf, container_id: &str, ifname: &str) -> Option<Cached> {
    let decoded = match tokio::fs::read(&path).await {
        Ok(bytes) => decode(&bytes),
        Err(e) => Err(format!("cannot read: {e}")),
    };
    match decoded {
        Ok(a) if a.container_id != container_id || a.ifname != ifname => None,
        Ok(attachment) => Some(Cached::Usable { path, attachment: Box::new(attachment) }),
        Err(reason) => Some(Cached::Unusable { path, reason }),
    }
}

fn encode(attachment: &Attachment) -> CacheFile {
    CacheFile {
        kind: KIND.to_string(),
        container_id: attachment.container_id.clone(),
        config: BASE64.encode(&attachment.network.bytes),
        if_name: attachment.ifname.clone(),
        network_name: attachment.network.name.clone(),
        netns: attachment.netns.clone(),
        cni_args: attachment.cni_args.iter().map(|(k, v)| [k.clone(), v.clone()]).collect(),
        capability_args: attachment.capability_args.clone(),
        result: attachment.result.clone(),
    }
}

fn decode(bytes: &[u8]) -> Result<Attachment, String> {
    let file: CacheFile = serde_json::from_slice(bytes).map_err(|e| format!("not a cache entry: {e}"))?;
    if file.kind != KIND {
        return Err(format!("unknown cache entry kind {:?}", file.kind));
    }
    let config = BASE64.decode(&file.config).map_err(|e| format!("config is not base64: {e}"))?;
    let network = parse_single(&config).map_err(|e| format!("invalid cached config: {e}"))?;
    Ok(Attachment {
        network,
        container_id: file.container_id,
        ifname: file.if_name,
        netns: file.netns,
        cni_args: file.cni_args.into_iter().map(|[k, v]| (k, v)).collect(),
        capability_args: file.capability_args,
        result: file.result,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::network::config::parse_list;

    fn attachment(container_id: &str) -> Attachment {
        let conf = r#"{"cniVersion":"1.0.0","name":"podnet","plugins":[{"type":"bridge"}]}"#;
        Attachment {
            network: parse_list(conf.as_bytes()).unwrap(),
            container_id: container_id.into(),
            ifname: "eth0".into(),
            netns: "/proc/7/ns/net".into(),
            cni_args: vec![("IgnoreUnknown".into(), "1".into())],
            capability_args: json!({"portMappings": []}).as_object().unwrap().clone(),
            result: Some(json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]})),
        }
    }

    #[test]
    fn paths_follow_libcni_naming() {
        let cache = Cache::new(Path::new("/var/lib/cni"));
        assert_eq!(cache.path("podnet", "abc", "eth0"), Path::new("/var/lib/cni/results/podnet-abc-eth0"));
    }

    #[tokio::test]
    async fn round_trip_keeps_config_args_and_result() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let stored = attachment("abc");
        cache.store(&stored).await.unwrap();
        let found = cache.find("abc", "eth0").await.unwrap();
        let [Cached::Usable { path, attachment }] = found.as_slice() else { panic!("{found:?}") };
        assert_eq!(path, &cache.path("podnet", "abc", "eth0"));
        assert_eq!(attachment.network.bytes, stored.network.bytes);
        assert_eq!((&attachment.netns, &attachment.cni_args), (&stored.netns, &stored.cni_args));
        assert_eq!((&attachment.capability_args, &attachment.result), (&stored.capability_args, &stored.result));
        cache.remove(path).await.unwrap();
        cache.remove(path).await.unwrap();
        assert!(cache.find("abc", "eth0").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn file_is_in_libcni_format() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache.store(&attachment("abc")).await.unwrap();
        let raw: Value = serde_json::from_slice(&std::fs::read(cache.path("podnet", "abc", "eth0")).unwrap()).unwrap();
        assert_eq!(raw["kind"], "cniCacheV1");
        assert_eq!(raw["containerId"], "abc");
        assert_eq!(raw["ifName"], "eth0");
        assert_eq!(raw["networkName"], "podnet");
        assert_eq!(raw["cniArgs"], json!([["IgnoreUnknown", "1"]]));
        let config = BASE64.decode(raw["config"].as_str().unwrap()).unwrap();
        assert_eq!(config, attachment("abc").network.bytes);
    }

    #[tokio::test]
    async fn find_skips_other_containers_and_flags_corrupt_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache.store(&attachment("abc")).await.unwrap();
        cache.store(&attachment("x-abc")).await.unwrap();
        std::fs::write(cache.path("oldnet", "abc", "eth0"), "{garbage").unwrap();
        let found = cache.find("abc", "eth0").await.unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(matches!(&found[0], Cached::Unusable { path, .. } if path.ends_with("oldnet-abc-eth0")));
        assert!(matches!(&found[1], Cached::Usable { attachment, .. } if attachment.container_id == "abc"));
    }
}
