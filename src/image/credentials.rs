//! Registry credentials: from the CRI `AuthConfig`, else from Docker's
//! `config.json` (including credential helpers), as `docker pull` finds them.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::ImageError;
use super::reference::DEFAULT_REGISTRY;
use crate::docker::RegistryAuth;

/// Names under which Docker files credentials for Docker Hub.
const DOCKER_HUB_KEYS: &[&str] =
    &["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"];
/// Username a credential helper returns for an identity (refresh) token.
const TOKEN_USERNAME: &str = "<token>";

/// Credentials for one registry. `Debug` never prints a secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub server_address: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub identity_token: Option<String>,
    pub registry_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("server_address", &self.server_address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("identity_token", &self.identity_token.as_ref().map(|_| "<redacted>"))
            .field("registry_token", &self.registry_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    /// The same credentials in the form Docker's pull takes.
    pub fn for_docker(&self) -> RegistryAuth {
        RegistryAuth {
            server_address: self.server_address.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            identity_token: self.identity_token.clone(),
            registry_token: self.registry_token.clone(),
        }
    }
}

/// The fields of a CRI `AuthConfig`, unvalidated.
#[derive(Default)]
pub struct AuthFields {
    pub username: String,
    pub password: String,
    pub auth: String,
    pub server_address: String,
    pub identity_token: String,
    pub registry_token: String,
}

impl Credentials {
    /// Builds credentials from CRI `AuthConfig` fields; `None` when all are
    /// empty. `auth` is base64 `user:password` and wins over the plain fields.
    pub fn from_auth_fields(f: AuthFields, registry: &str) -> Result<Option<Self>, ImageError> {
        let (username, password) = if f.auth.is_empty() { (f.username, f.password) } else { decode_basic(&f.auth)? };
        let creds = Credentials {
            server_address: if f.server_address.is_empty() { registry.to_string() } else { f.server_address },
            username: non_empty(username),
            password: non_empty(password),
            identity_token: non_empty(f.identity_token),
            registry_token: non_empty(f.registry_token),
        };
        let empty = creds.username.is_none() && creds.identity_token.is_none() && creds.registry_token.is_none();
        Ok((!empty).then_some(creds))
    }

    /// A stable digest of the secret material, so that pulls with different
    /// credentials never share one result.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [&self.username, &self.password, &self.identity_token, &self.registry_token] {
            h.update(part.as_deref().unwrap_or_default().as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn decode_basic(auth: &str) -> Result<(String, String), ImageError> {
    let bad = || ImageError::InvalidCredentials("auth is not base64 of user:password".to_string());
    let bytes = BASE64.decode(auth.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (user, pass) = text.split_once(':').ok_or_else(bad)?;
    Ok((user.to_string(), pass.to_string()))
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, ConfigEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct ConfigEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
    #[serde(default, rename = "registrytoken")]
    registry_token: String,
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Where Docker's client configuration lives: `$DOCKER_CONFIG`, else `~/.docker`.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: Option<PathBuf>,
}

impl DockerConfig {
    pub fn from_env() -> Self {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        DockerConfig { path: dir.map(|d| d.join("config.json")) }
    }

    /// Credentials for `registry`, read afresh so a `docker login` applies
    /// without a restart. A missing file means no credentials.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credentials>, ImageError> {
        let Some(path) = &self.path else { return Ok(None) };
        let text = match tokio::fs::read(path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ImageError::InvalidCredentials(format!("cannot read {}: {e}", path.display()))),
        };
        let config: ConfigFile = serde_json::from_slice(&text)
            .map_err(|e| ImageError::InvalidCredentials(format!("cannot parse {}: {e}", path.display())))?;
        let keys = config_keys(registry);
        let helper = keys.iter().find_map(|k| config.cred_helpers.get(*k)).or(config.creds_store.as_ref());
        if let Some(helper) = helper {
            return run_helper(helper, keys[0], registry).await;
        }
        let entry = config.auths.iter().find(|(k, _)| keys.contains(&normalise_key(k)) || keys.contains(&k.as_str()));
        let Some((_, entry)) = entry else { return Ok(None) };
        let fields = AuthFields {
            username: entry.username.clone(),
            password: entry.password.clone(),
            auth: entry.auth.clone(),
            server_address: registry.to_string(),
            identity_token: entry.identity_token.clone(),
            registry_token: entry.registry_token.clone(),
        };
        Credentials::from_auth_fields(fields, registry)
    }
}

/// The keys a registry may be filed under; the first is what helpers get.
fn config_keys(registry: &str) -> Vec<&str> {
    if registry == DEFAULT_REGISTRY { DOCKER_HUB_KEYS.to_vec() } else { vec![registry] }
}

/// `https://host:port/v1/` → `host:port`.
fn normalise_key(key: &str) -> &str {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// Asks `docker-credential-<helper> get`, the protocol Docker uses.
async fn run_helper(helper: &str, server: &str, registry: &str) -> Result<Option<Credentials>, ImageError> {
    let program = format!("docker-credential-{helper}");
    let failed = |why: String| ImageError::InvalidCredentials(format!("credential helper {program}: {why}"));
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(server.as_bytes()).await.map_err(|e| failed(e.to_string()))?;
    }
    let out = child.wait_with_output().await.map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        // Helpers answer "credentials not found" with a failure exit.
        return Ok(None);
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout).map_err(|e| failed(e.to_string()))?;
    let (username, identity_token) = if reply.username == TOKEN_USERNAME {
        (None, Some(reply.secret.clone()))
    } else {
        (Some(reply.username), None)
    };
    Ok(Some(Credentials {
        server_address: registry.to_string(),
        password: username.as_ref().map(|_| reply.secret),
        username,
        identity_token,
        registry_token: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_field_wins_and_decodes() {
        let fields = AuthFields { username: "x".into(), auth: BASE64.encode("alice:s3cret"), ..Default::default() };
        let c = Credentials::from_auth_fields(fields, "r:5000").unwrap().unwrap();
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        assert_eq!(c.server_address, "r:5000");
    }

    #[test]
    fn empty_fields_mean_anonymous() {
        assert!(Credentials::from_auth_fields(AuthFields::default(), "r").unwrap().is_none());
    }

    #[test]
    fn bad_auth_is_rejected() {
        let fields = AuthFields { auth: "!!!".into(), ..Default::default() };
        assert!(Credentials::from_auth_fields(fields, "r").is_err());
    }

    #[test]
    fn debug_redacts_secrets() {
        let c =
            Credentials { password: Some("hunter2".into()), registry_token: Some("tok".into()), ..Default::default() };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("tok\""));
    }

    #[test]
    fn keys_normalise() {
        assert_eq!(normalise_key("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(normalise_key("127.0.0.1:5001"), "127.0.0.1:5001");
    }

    #[tokio::test]
    async fn reads_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let body = format!(r#"{{"auths":{{"http://127.0.0.1:5001":{{"auth":"{}"}}}}}}"#, BASE64.encode("u:p"));
        std::fs::write(&path, body).unwrap();
        let config = DockerConfig { path: Some(path) };
        let c = config.lookup("127.0.0.1:5001").await.unwrap().unwrap();
        assert_eq!((c.username.as_deref(), c.password.as_deref()), (Some("u"), Some("p")));
        assert!(config.lookup("other:5000").await.unwrap().is_none());
    }
}
