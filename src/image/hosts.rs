//! Registry host configuration: which endpoints to try for a registry and
//! how to talk to them, read from containerd-style `hosts.toml` files, with
//! Docker's `certs.d` layout as the fallback.
//!
//! # Where the configuration is looked up
//!
//! For a registry `host:port` the config dir is searched the way containerd
//! searches it:
//!
//! 1. `<config_dir>/host_port_/hosts.toml`, then `<config_dir>/host:port/hosts.toml`
//!    (a registry without a port has only `<config_dir>/host/`);
//! 2. `<config_dir>/_default/hosts.toml`, unless the config dir has a directory of
//!    the registry's own (one holding only certificates still takes precedence);
//! 3. otherwise a single endpoint, the registry itself, trusting the files in
//!    Docker's layout: `*.crt` are CAs, `*.cert` + `*.key` (same stem) are client
//!    pairs. They are read from the registry's directories in the config dir
//!    and from `<docker_certs_dir>/host:port/`.
//!
//! Docker Hub is `docker.io` in directory names; its default upstream is
//! `https://registry-1.docker.io`.
//!
//! # The file
//!
//! ```toml
//! server = "https://registry.example.com"   # upstream, tried last; default: the registry itself
//! ca = "upstream-ca.pem"                    # top-level keys describe the `server` entry
//!
//! [host."https://mirror.internal:5000"]     # tried first, in file order
//! capabilities = ["pull", "resolve"]        # default: pull + resolve ("push" is accepted, unused)
//! ca = ["ca1.pem", "/etc/pki/ca2.pem"]      # relative paths: against the file's directory
//! client = [["client.cert", "client.key"]]  # or "both.pem", or ["both1.pem", "both2.pem"]
//! skip_verify = false
//!
//! [host."https://mirror.internal:5000".header]
//! x-mirror-token = "abc"                    # or ["v1", "v2"]: one header per value
//!
//! [host."https://odd.example.com/api/v2/upstream"]
//! capabilities = ["pull"]
//! override_path = true                      # the URL path is the API root, no "/v2" appended
//! ```
//!
//! A `client` array of plain strings lists files that each hold both the
//! certificate and its key, as containerd reads it; a cert/key pair in two
//! files is written as a nested array. Unknown keys are ignored with a
//! warning; values of the wrong type and bad URLs are errors.
//!
//! Files are cached and parsed again when their modification time, length
//! or inode changes, so a call costs a few `stat`s. The calls block on the
//! file system; the files are small.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

pub use crate::registry::{Capabilities, RegistryHost};

const HOSTS_FILE: &str = "hosts.toml";
const DEFAULT_DIR: &str = "_default";
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_UPSTREAM: &str = "registry-1.docker.io";

/// Prefix of the files pinshim itself writes into a certs.d directory
/// (Docker's trust, kept in line with hosts.toml): never configuration.
pub const OWNED_PREFIX: &str = "pinshim-";

/// Why the host configuration of a registry could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostsError {
    #[error("invalid registry name {0:?}")]
    InvalidRegistry(String),
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{} is not valid TOML: {reason}", path.display())]
    Syntax { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// Identity of a file's contents as far as `stat` can tell. A file replaced
/// by rename gets a new inode even when size and mtime happen to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp { modified: meta.modified().ok(), len: meta.len(), inode }
    }
}

/// Renders a TOML error on one line, with the line and column it points at.
pub(crate) fn describe_toml_error(err: &toml::de::Error, text: &str) -> String {
    let message = err.message().trim().replace('\n', "; ");
    match err.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// A parsed `hosts.toml`, independent of the registry it is used for (the
/// `_default` file serves many).
#[derive(Debug)]
struct HostsFile {
    /// The `[host."…"]` entries, in file order.
    mirrors: Vec<RegistryHost>,
    /// The top-level settings; its URL is empty when `server` is absent.
    server: RegistryHost,
}

struct CachedFile {
    stamp: FileStamp,
    parsed: Result<Arc<HostsFile>, HostsError>,
}

/// A cached view of a hosts config dir and Docker's certs dir.
pub struct HostsConfig {
    config_dir: PathBuf,
    docker_certs_dir: PathBuf,
    files: Mutex<HashMap<PathBuf, CachedFile>>,
}

impl HostsConfig {
    pub fn new(config_dir: PathBuf, docker_certs_dir: PathBuf) -> Self {
        HostsConfig { config_dir, docker_certs_dir, files: Mutex::new(HashMap::new()) }
    }

    /// The endpoints to try for `registry` ("host" or "host:port" as in an
    /// image reference, "docker.io" for Docker Hub), in order: the
    /// `[host."…"]` entries of its hosts.toml, then the `server` (by default
    /// the registry itself). Never empty.
    ///
    /// `insecure` makes the registry's default URL plain HTTP; URLs written
    /// in hosts.toml keep their scheme (none written means HTTPS).
    pub fn hosts_for(&self, registry: &str, insecure: bool) -> Result<Vec<RegistryHost>, HostsError> {
        validate_registry(registry)?;
        let own_dirs: Vec<PathBuf> = dir_names(registry).iter().map(|n| self.config_dir.join(n)).collect();

        for dir in &own_dirs {
            if let Some(file) = self.load(&dir.join(HOSTS_FILE))? {
                return Ok(expand(&file, registry, insecure));
            }
        }
        // A registry directory without hosts.toml still shadows `_default`:
        // it says how to trust this registry, so a catch-all must not override it.
        let mut own_exists = false;
        for dir in &own_dirs {
            own_exists |= is_dir(dir)?;
        }
        if !own_exists && let Some(file) = self.load(&self.config_dir.join(DEFAULT_DIR).join(HOSTS_FILE))? {
            return Ok(expand(&file, registry, insecure));
        }

        let mut cert_dirs = own_dirs;
        cert_dirs.push(self.docker_certs_dir.join(registry));
        let mut host = RegistryHost {
            url: default_url(registry, insecure),
            capabilities: Capabilities::PULL_AND_RESOLVE,
            ..RegistryHost::default()
        };
        let mut seen = Vec::new();
        for dir in cert_dirs {
            // The two roots may be the same directory; read each one once.
            let Ok(real) = dir.canonicalize() else { continue };
            if seen.contains(&real) {
                continue;
            }
            load_cert_dir(&dir, &mut host)?;
            seen.push(real);
        }
        Ok(vec![host])
    }

    /// The parsed file at `path`, `None` when there is no such file. Parsed
    /// again only when its stamp changed; failures are cached likewise.
    fn load(&self, path: &Path) -> Result<Option<Arc<HostsFile>>, HostsError> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let meta = match fs::metadata(path) {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => return Ok(None),
            Err(e) if is_absent(&e) => {
                files.remove(path);
                return Ok(None);
            }
            Err(e) => return Err(read_error(path, &e)),
        };
        // Taken before reading: a write racing with the read changes the
        // stamp again, so the next call reads the file anew.
        let stamp = FileStamp::of(&meta);
        if let Some(cached) = files.get(path)
            && cached.stamp == stamp
        {
            return cached.parsed.clone().map(Some);
        }
        let parsed = match fs::read_to_string(path) {
            Ok(text) => parse_hosts_file(&text, path).map(Arc::new),
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => Err(read_error(path, &e)),
        };
        if let Err(e) = &parsed {
            tracing::warn!(error = %e, "registry host configuration is unusable");
        }
        files.insert(path.to_path_buf(), CachedFile { stamp, parsed: parsed.clone() });
        parsed.map(Some)
    }
}

/// The endpoints a parsed file yields for `registry`.
fn expand(file: &HostsFile, registry: &str, insecure: bool) -> Vec<RegistryHost> {
    let mut hosts = file.mirrors.clone();
    let mut server = file.server.clone();
    if server.url.is_empty() {
        server.url = default_url(registry, insecure);
        // The default upstream follows the distribution API layout.
        server.override_path = false;
    }
    hosts.push(server);
    hosts
}

fn default_url(registry: &str, insecure: bool) -> String {
    let scheme = if insecure { "http" } else { "https" };
    let host = if registry == DOCKER_HUB { DOCKER_HUB_UPSTREAM } else { registry };
    format!("{scheme}://{host}")
}

/// Registry names become path components, so anything that could leave the
/// config dir, or name the `_default` catch-all, is refused.
fn validate_registry(registry: &str) -> Result<(), HostsError> {
    let bad = registry.is_empty()
        || registry.starts_with('.')
        || registry.starts_with('_')
        || registry.chars().any(|c| c == '/' || c == '\\' || c.is_whitespace() || c.is_control());
    if bad { Err(HostsError::InvalidRegistry(registry.to_string())) } else { Ok(()) }
}

/// Directory names for `registry` in containerd's search order: the
/// colon-free `host_port_` form first, then `host:port`.
fn dir_names(registry: &str) -> Vec<String> {
    match split_port(registry) {
        Some((host, port)) => vec![format!("{host}_{port}_"), registry.to_string()],
        None => vec![registry.to_string()],
    }
}

fn split_port(registry: &str) -> Option<(&str, &str)> {
    let (host, port) = registry.rsplit_once(':')?;
    // "[::1]" alone has colons but no port; a port follows the bracket.
    let bracketed_ok = !host.starts_with('[') || host.ends_with(']');
    let numeric = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    (!host.is_empty() && numeric && bracketed_ok).then_some((host, port))
}

fn is_dir(path: &Path) -> Result<bool, HostsError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(meta.is_dir()),
        Err(e) if is_absent(&e) => Ok(false),
        Err(e) => Err(read_error(path, &e)),
    }
}

fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

fn read_error(path: &Path, e: &io::Error) -> HostsError {
    HostsError::Read { path: path.to_path_buf(), reason: e.to_string() }
}

/// Adds the CAs and client pairs found in `dir`, laid out as Docker expects:
/// `*.crt` CAs, `*.cert` client certificates each with a `*.key` of the same stem.
fn load_cert_dir(dir: &Path, host: &mut RegistryHost) -> Result<(), HostsError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(read_error(dir, &e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| read_error(dir, &e))?;
        // Follows symlinks, as Docker does; sub-directories are skipped.
        if fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    // Files pinshim itself wrote for Docker mirror a hosts.toml; reading them
    // back as configuration would keep them alive after it changes.
    names.retain(|n| !n.starts_with(OWNED_PREFIX));
    for name in &names {
        if name.ends_with(".crt") {
            host.ca_files.push(dir.join(name));
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let key = format!("{stem}.key");
            if !names.contains(&key) {
                return Err(HostsError::Invalid {
                    path: dir.join(name),
                    reason: format!("client certificate has no matching key {key}"),
                });
            }
            host.client_pairs.push((dir.join(name), Some(dir.join(key))));
        } else if let Some(stem) = name.strip_suffix(".key")
            && !names.iter().any(|n| n.strip_suffix(".cert") == Some(stem))
        {
            tracing::warn!(file = %dir.join(name).display(), "key file without a matching .cert ignored");
        }
    }
    Ok(())
}

/// Parses one `hosts.toml`; `path` locates relative paths and names the file in errors.
fn parse_hosts_file(text: &str, path: &Path) -> Result<HostsFile, HostsError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| HostsError::Syntax { path: path.to_path_buf(), reason: describe_toml_error(&e, text) })?;
    let base = path.parent().unwrap_or(Path::new(""));
    let invalid = |reason: String| HostsError::Invalid { path: path.to_path_buf(), reason };

    let mut mirrors = Vec::new();
    if let Some(hosts) = table.get("host") {
        let hosts = hosts.as_table().ok_or_else(|| invalid("`host` must be a table of host tables".into()))?;
        for (url, settings) in hosts {
            let name = format!("host.{url:?}");
            let settings = settings.as_table().ok_or_else(|| invalid(format!("`{name}` must be a table")))?;
            let mut host = parse_settings(settings, &name, &[], base, path)?;
            host.url = normalize_url(url, host.override_path).map_err(|r| invalid(format!("`{name}`: {r}")))?;
            mirrors.push(host);
        }
    }

    let mut server = parse_settings(&table, "", &["server", "host"], base, path)?;
    if let Some(url) = table.get("server") {
        let url = url.as_str().ok_or_else(|| invalid("`server` must be a string".into()))?;
        server.url = normalize_url(url, server.override_path).map_err(|r| invalid(format!("`server`: {r}")))?;
    }
    Ok(HostsFile { mirrors, server })
}

/// Reads the per-endpoint settings of `table` (a host table, or the top
/// level for the server). `prefix` names the table in messages; keys in
/// `skip` are handled by the caller. The URL is left empty.
fn parse_settings(
    table: &toml::Table,
    prefix: &str,
    skip: &[&str],
    base: &Path,
    path: &Path,
) -> Result<RegistryHost, HostsError> {
    let mut host = RegistryHost { capabilities: Capabilities::PULL_AND_RESOLVE, ..RegistryHost::default() };
    for (key, value) in table {
        let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let invalid = |what: &str| HostsError::Invalid { path: path.to_path_buf(), reason: format!("`{name}` {what}") };
        match key.as_str() {
            k if skip.contains(&k) => {}
            "capabilities" => {
                let list = string_list(value).ok_or_else(|| invalid("must be an array of strings"))?;
                // An empty list means the default, as in containerd.
                if !list.is_empty() {
                    host.capabilities = Capabilities::default();
                }
                for capability in list {
                    match capability.to_ascii_lowercase().as_str() {
                        "pull" => host.capabilities.pull = true,
                        "resolve" => host.capabilities.resolve = true,
                        // Nothing here pushes; accepted so shared files stay valid.
                        "push" => {}
                        other => return Err(invalid(&format!("has an unknown capability {other:?}"))),
                    }
                }
            }
            "ca" => {
                let list = string_or_list(value).ok_or_else(|| invalid("must be a string or an array of strings"))?;
                host.ca_files = list.iter().map(|p| resolve_path(base, p)).collect();
            }
            "client" => host.client_pairs = client_pairs(value, base).ok_or_else(|| invalid(CLIENT_FORMS))?,
            "skip_verify" => host.skip_verify = value.as_bool().ok_or_else(|| invalid("must be a boolean"))?,
            "override_path" => host.override_path = value.as_bool().ok_or_else(|| invalid("must be a boolean"))?,
            "header" => {
                let headers = value.as_table().ok_or_else(|| invalid("must be a table"))?;
                for (header, values) in headers {
                    let values = string_or_list(values).ok_or_else(|| HostsError::Invalid {
                        path: path.to_path_buf(),
                        reason: format!("`{name}.{header}` must be a string or an array of strings"),
                    })?;
                    host.headers.extend(values.into_iter().map(|v| (header.clone(), v)));
                }
            }
            "dial_timeout" | "proxy" => {
                tracing::warn!(file = %path.display(), key = %name, "hosts.toml setting is not supported and is ignored");
            }
            _ => tracing::warn!(file = %path.display(), key = %name, "unknown hosts.toml key ignored"),
        }
    }
    Ok(host)
}

const CLIENT_FORMS: &str = "must be a path, an array of paths, or an array of [certificate, key] pairs (key \"\" when the certificate file holds it)";

fn client_pairs(value: &toml::Value, base: &Path) -> Option<Vec<(PathBuf, Option<PathBuf>)>> {
    if let Some(single) = value.as_str() {
        return Some(vec![(resolve_path(base, single), None)]);
    }
    let mut pairs = Vec::new();
    for item in value.as_array()? {
        if let Some(combined) = item.as_str() {
            pairs.push((resolve_path(base, combined), None));
            continue;
        }
        let pair = string_list(item)?;
        let [cert, key] = pair.as_slice() else { return None };
        let key = (!key.is_empty()).then(|| resolve_path(base, key));
        pairs.push((resolve_path(base, cert), key));
    }
    Some(pairs)
}

fn string_list(value: &toml::Value) -> Option<Vec<String>> {
    value.as_array()?.iter().map(|v| v.as_str().map(str::to_string)).collect()
}

fn string_or_list(value: &toml::Value) -> Option<Vec<String>> {
    match value.as_str() {
        Some(single) => Some(vec![single.to_string()]),
        None => string_list(value),
    }
}

fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

/// Checks and tidies an endpoint URL. A missing scheme means HTTPS. Unless
/// the path overrides the API root, a trailing "/v2" is dropped because the
/// caller appends it.
fn normalize_url(raw: &str, override_path: bool) -> Result<String, String> {
    let raw = raw.trim();
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("https".to_string(), raw),
    };
    if scheme != "https" && scheme != "http" {
        return Err(format!("unsupported scheme {scheme:?} (http or https)"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!("{raw:?} must not have a query or fragment"));
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(format!("{raw:?} has no valid host"));
    }
    let mut path = path.trim_end_matches('/');
    if !override_path {
        path = path.strip_suffix("/v2").unwrap_or(path);
    }
    Ok(format!("{scheme}://{authority}{path}"))
}

#[cfg(test)]
#[path = "hosts_tests.rs"]
mod tests;
