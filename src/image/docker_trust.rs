//! Keeps Docker's per-registry trust (`/etc/docker/certs.d/<host>/`) in
//! line with what hosts.toml says, so Docker's pull of a host trusts exactly
//! what pinshim's own requests to it trust. Only files named `pinshim-*`
//! are written or removed; anything an operator put there stays.
//!
//! - `ca` files are copied as `pinshim-ca-<n>.crt` (Docker reads `*.crt` as CAs);
//! - `client` pairs as `pinshim-client-<n>.cert` / `.key`;
//! - `skip_verify`: Docker has no per-host switch for it short of
//!   `insecure-registries`, so the certificate the host presents right now is
//!   pinned as `pinshim-pinned.crt`; re-pinned before every pull from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::hosts::{OWNED_PREFIX, RegistryHost};

#[derive(Debug, thiserror::Error)]
#[error("cannot update docker trust in {path}: {source}")]
pub struct TrustError {
    path: PathBuf,
    source: std::io::Error,
}

pub struct DockerTrust {
    certs_dir: PathBuf,
}

impl DockerTrust {
    pub fn new(certs_dir: PathBuf) -> Self {
        DockerTrust { certs_dir }
    }

    /// Makes `<certs_dir>/<authority>/pinshim-*` hold exactly what `host`
    /// asks Docker to trust; `pinned` is the presented certificate (DER) for
    /// a `skip_verify` host.
    pub async fn sync(&self, authority: &str, host: &RegistryHost, pinned: Option<&[u8]>) -> Result<(), TrustError> {
        let dir = self.certs_dir.join(authority);
        let wanted =
            wanted_files(&dir, host, pinned).await.map_err(|source| TrustError { path: dir.clone(), source })?;
        if wanted.is_empty() && !dir.exists() {
            return Ok(());
        }
        write_owned(&dir, &wanted).await.map_err(|source| TrustError { path: dir, source })
    }
}

/// File name → contents, for every file the host's settings call for.
async fn wanted_files(
    dir: &Path,
    host: &RegistryHost,
    pinned: Option<&[u8]>,
) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    // Files that already live in Docker's directory need no copy.
    let elsewhere = |p: &PathBuf| !p.starts_with(dir);
    for (n, ca) in host.ca_files.iter().filter(|p| elsewhere(p)).enumerate() {
        files.insert(format!("{OWNED_PREFIX}ca-{n}.crt"), tokio::fs::read(ca).await?);
    }
    for (n, (cert, key)) in host.client_pairs.iter().filter(|(c, _)| elsewhere(c)).enumerate() {
        let cert_pem = tokio::fs::read(cert).await?;
        let key_pem = match key {
            Some(key) => tokio::fs::read(key).await?,
            // The key sits in the certificate file; Docker wants it apart.
            None => cert_pem.clone(),
        };
        files.insert(format!("{OWNED_PREFIX}client-{n}.cert"), cert_pem);
        files.insert(format!("{OWNED_PREFIX}client-{n}.key"), key_pem);
    }
    if let Some(der) = pinned {
        files.insert(format!("{OWNED_PREFIX}pinned.crt"), pem("CERTIFICATE", der).into_bytes());
    }
    Ok(files)
}

async fn write_owned(dir: &Path, wanted: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(OWNED_PREFIX) && !wanted.contains_key(&name) {
            tracing::info!(file = %entry.path().display(), "removing docker trust no longer configured");
            tokio::fs::remove_file(entry.path()).await?;
        }
    }
    for (name, contents) in wanted {
        let path = dir.join(name);
        if tokio::fs::read(&path).await.is_ok_and(|current| &current == contents) {
            continue;
        }
        // Written aside and renamed, so Docker never reads half a file.
        let partial = dir.join(format!(".{name}.partial"));
        tokio::fs::write(&partial, contents).await?;
        if name.ends_with(".key") {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600)).await?;
        }
        tokio::fs::rename(&partial, &path).await?;
        tracing::info!(file = %path.display(), "docker trust updated from hosts.toml");
    }
    Ok(())
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_what_is_configured_and_removes_only_its_own_leftovers() {
        let root = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let ca = src.path().join("ca.pem");
        std::fs::write(&ca, "CA").unwrap();
        let (cert, key) = (src.path().join("c.pem"), src.path().join("k.pem"));
        std::fs::write(&cert, "CERT").unwrap();
        std::fs::write(&key, "KEY").unwrap();
        let trust = DockerTrust::new(root.path().to_path_buf());
        let dir = root.path().join("reg:5000");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("operator.crt"), "MINE").unwrap();

        let host = RegistryHost { ca_files: vec![ca], client_pairs: vec![(cert, Some(key))], ..Default::default() };
        trust.sync("reg:5000", &host, Some(b"\x01\x02")).await.unwrap();
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        assert_eq!(read("pinshim-ca-0.crt"), "CA");
        assert_eq!(read("pinshim-client-0.cert"), "CERT");
        assert_eq!(read("pinshim-client-0.key"), "KEY");
        assert!(read("pinshim-pinned.crt").starts_with("-----BEGIN CERTIFICATE-----\nAQI=\n"));

        trust.sync("reg:5000", &RegistryHost::default(), None).await.unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, vec!["operator.crt"]);
    }

    #[tokio::test]
    async fn nothing_is_created_for_hosts_without_tls_settings() {
        let root = tempfile::tempdir().unwrap();
        DockerTrust::new(root.path().to_path_buf()).sync("plain:5000", &RegistryHost::default(), None).await.unwrap();
        assert!(!root.path().join("plain:5000").exists());
    }
}
