//! Image provenance policy: which registries images may come from and which
//! digests must never run, read from a TOML file that is re-read on change.
//!
//! ```toml
//! # Registries images may come from, as they appear in normalised references
//! # ("docker.io", "127.0.0.1:5000"). `*` matches any characters except '/',
//! # `**` matches anything. Empty or absent: every registry is allowed.
//! allowed_registries = ["127.0.0.1:5000", "*.example.com", "registry.k8s.io"]
//!
//! # Refuse images whose tag cannot be resolved to a registry digest (default true).
//! require_digest_resolution = true
//!
//! # Short form for digests denied without a reason.
//! denied_digests = ["sha256:1111111111111111111111111111111111111111111111111111111111111111"]
//!
//! # Digests that must never run, each with an optional reason.
//! [[deny]]
//! digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
//! reason = "CVE-2024-0001"
//! ```
//!
//! In TOML every key after a `[[deny]]` header belongs to that entry, so the
//! top-level keys must come before the first `[[deny]]`. Unknown keys are
//! errors, so a misspelt rule cannot silently allow everything. Registry
//! names are compared without regard to ASCII case.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;

use super::hosts::{FileStamp, describe_toml_error};
use super::reference::Digest;

const TOP_LEVEL_KEYS: &[&str] = &["allowed_registries", "deny", "denied_digests", "require_digest_resolution"];

/// Why a policy file is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file {} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot read policy file {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("invalid policy file {}: {source}", path.display())]
    Invalid { path: PathBuf, source: InvalidPolicy },
}

/// Why a policy text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPolicy(String);

/// The outcome of checking an image against the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// `rule` says in words which rule refused the image.
    Denied {
        rule: String,
    },
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    allowed_registries: Vec<Glob>,
    /// Denied digest → reason ("" when none was given).
    denied: BTreeMap<String, String>,
    require_digest_resolution: bool,
}

impl Default for Policy {
    /// Allows every registry and digest, and still requires tags to resolve.
    fn default() -> Self {
        Policy { allowed_registries: Vec::new(), denied: BTreeMap::new(), require_digest_resolution: true }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    allowed_registries: Vec<String>,
    #[serde(default)]
    deny: Vec<RawDeny>,
    #[serde(default)]
    denied_digests: Vec<String>,
    #[serde(default)]
    require_digest_resolution: Option<bool>,
}

#[derive(Deserialize)]
struct RawDeny {
    digest: String,
    #[serde(default)]
    reason: Option<String>,
    /// Collected rather than refused by serde, so the error can explain
    /// the common slip of writing a top-level key after `[[deny]]`.
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

impl Policy {
    /// Parses the text of a policy file.
    pub fn from_toml(text: &str) -> Result<Policy, InvalidPolicy> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| InvalidPolicy(describe_toml_error(&e, text)))?;

        let allowed_registries = raw.allowed_registries.iter().map(|p| Glob::new(p)).collect::<Result<_, _>>()?;

        let mut denied = BTreeMap::new();
        for rule in raw.deny {
            if let Some(key) = rule.other.keys().next() {
                let hint = if TOP_LEVEL_KEYS.contains(&key.as_str()) {
                    "; top-level keys must be written before the first [[deny]]"
                } else {
                    ""
                };
                return Err(InvalidPolicy(format!(
                    "unknown key `{key}` in the [[deny]] entry for {}{hint}",
                    rule.digest
                )));
            }
            validate_digest(&rule.digest)?;
            let reason = rule.reason.unwrap_or_default();
            // A digest listed twice keeps a reason if any entry gives one.
            let slot: &mut String = denied.entry(rule.digest).or_default();
            if slot.is_empty() {
                *slot = reason;
            }
        }
        for digest in raw.denied_digests {
            validate_digest(&digest)?;
            denied.entry(digest).or_default();
        }

        Ok(Policy {
            allowed_registries,
            denied,
            require_digest_resolution: raw.require_digest_resolution.unwrap_or(true),
        })
    }

    /// Checks an image from `registry` (as in a normalised reference, e.g.
    /// "docker.io") with `digest`, when known. Denied digests are reported
    /// before registries, being the more specific rule.
    pub fn check(&self, registry: &str, digest: Option<&str>) -> Verdict {
        if let Some(digest) = digest
            && let Some(reason) = self.is_denied_digest(digest)
        {
            let rule = if reason.is_empty() {
                format!("digest {digest} is denied")
            } else {
                format!("digest {digest} is denied ({reason})")
            };
            return Verdict::Denied { rule };
        }
        if !self.is_registry_allowed(registry) {
            return Verdict::Denied { rule: format!("registry {registry} is not in allowed_registries") };
        }
        Verdict::Allowed
    }

    /// Whether images from `registry` may be used at all.
    pub fn is_registry_allowed(&self, registry: &str) -> bool {
        if self.allowed_registries.is_empty() {
            return true;
        }
        let registry = registry.to_ascii_lowercase();
        self.allowed_registries.iter().any(|g| g.matches(&registry))
    }

    pub fn require_digest_resolution(&self) -> bool {
        self.require_digest_resolution
    }

    /// The reason `digest` is denied ("" when the rule gave none), or `None`
    /// when it is not denied.
    pub fn is_denied_digest(&self, digest: &str) -> Option<&str> {
        // Digests are lowercase by spec; folding keeps an odd spelling from slipping past.
        self.denied.get(&digest.to_ascii_lowercase()).map(String::as_str)
    }
}

/// The same rule image references follow: `sha256:` and 64 lowercase hex digits.
fn validate_digest(digest: &str) -> Result<(), InvalidPolicy> {
    Digest::parse(digest)
        .map(|_| ())
        .map_err(|_| InvalidPolicy(format!("{digest:?} is not a digest (sha256: followed by 64 lowercase hex digits)")))
}

/// A registry pattern: `*` stands for any run of characters other than
/// '/', `**` (or longer runs of stars) for any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(u8),
    Star,
    DoubleStar,
}

impl Glob {
    fn new(pattern: &str) -> Result<Glob, InvalidPolicy> {
        if pattern.is_empty() || pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidPolicy(format!("{pattern:?} in allowed_registries is not a registry pattern")));
        }
        let mut tokens = Vec::new();
        let bytes = pattern.to_ascii_lowercase().into_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'*' {
                let run = bytes[i..].iter().take_while(|&&b| b == b'*').count();
                tokens.push(if run == 1 { Token::Star } else { Token::DoubleStar });
                i += run;
            } else {
                tokens.push(Token::Literal(bytes[i]));
                i += 1;
            }
        }
        Ok(Glob { tokens })
    }

    /// Matches the whole of `text` (already lowercase). A row of the usual
    /// dynamic programme: `reach[j]` tells whether the tokens so far can
    /// consume exactly the first `j` bytes.
    fn matches(&self, text: &str) -> bool {
        let text = text.as_bytes();
        let mut reach = vec![false; text.len() + 1];
        reach[0] = true;
        for token in &self.tokens {
            let mut next = vec![false; text.len() + 1];
            match *token {
                Token::Literal(c) => {
                    for j in 0..text.len() {
                        next[j + 1] = reach[j] && text[j] == c;
                    }
                }
                Token::Star | Token::DoubleStar => {
                    let crosses_slash = *token == Token::DoubleStar;
                    next[0] = reach[0];
                    for j in 0..text.len() {
                        next[j + 1] = reach[j + 1] || (next[j] && (crosses_slash || text[j] != b'/'));
                    }
                }
            }
            reach = next;
        }
        reach[text.len()]
    }
}

/// What `stat` said about the policy file when it was last read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    File(FileStamp),
    Missing,
    Unreadable(String),
}

#[derive(Default)]
struct State {
    seen: Option<Seen>,
    good: Option<Arc<Policy>>,
    error: Option<PolicyError>,
}

/// A policy file, or the permissive default when no file is configured.
pub struct PolicyFile {
    path: Option<PathBuf>,
    default: Arc<Policy>,
    state: Mutex<State>,
}

impl PolicyFile {
    /// Without a path the policy is the permissive default: every registry
    /// and digest allowed, tags still required to resolve to a digest.
    pub fn new(path: Option<PathBuf>) -> Self {
        PolicyFile { path, default: Arc::new(Policy::default()), state: Mutex::new(State::default()) }
    }

    /// The policy in force. The file is read again whenever `stat` shows it
    /// changed. When the new contents are unusable the last good policy
    /// stays in force and the problem is logged once per change; only when
    /// no version of the file was ever good is the error returned.
    ///
    /// A file that disappears is treated like a broken one: the last good
    /// policy stays, so deleting it does not lift every restriction.
    pub fn current(&self) -> Result<Arc<Policy>, PolicyError> {
        let Some(path) = &self.path else { return Ok(Arc::clone(&self.default)) };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = observe(path);
        if state.seen.as_ref() != Some(&seen) {
            match load(path, &seen) {
                Ok(policy) => {
                    if state.error.is_some() || state.good.is_some() {
                        tracing::info!(path = %path.display(), "image policy reloaded");
                    }
                    state.good = Some(Arc::new(policy));
                    state.error = None;
                }
                Err(e) => {
                    if state.good.is_some() {
                        tracing::error!(error = %e, "image policy file is unusable; keeping the previous policy");
                    } else {
                        tracing::error!(error = %e, "image policy file is unusable");
                    }
                    state.error = Some(e);
                }
            }
            state.seen = Some(seen);
        }
        match (&state.good, &state.error) {
            (Some(good), _) => Ok(Arc::clone(good)),
            (None, Some(e)) => Err(e.clone()),
            // Unreachable: a look always leaves a policy or an error behind.
            (None, None) => Ok(Arc::clone(&self.default)),
        }
    }
}

fn observe(path: &Path) -> Seen {
    match fs::metadata(path) {
        Ok(meta) => Seen::File(FileStamp::of(&meta)),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Seen::Missing,
        Err(e) => Seen::Unreadable(e.to_string()),
    }
}

fn load(path: &Path, seen: &Seen) -> Result<Policy, PolicyError> {
    let text = match seen {
        Seen::Missing => return Err(PolicyError::NotFound { path: path.to_path_buf() }),
        Seen::Unreadable(reason) => return Err(PolicyError::Read { path: path.to_path_buf(), reason: reason.clone() }),
        // Read after the stamp was taken: a write racing with the read
        // changes the stamp, and the next call reads the file again.
        Seen::File(_) => fs::read_to_string(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => PolicyError::NotFound { path: path.to_path_buf() },
            _ => PolicyError::Read { path: path.to_path_buf(), reason: e.to_string() },
        })?,
    };
    Policy::from_toml(&text).map_err(|source| PolicyError::Invalid { path: path.to_path_buf(), source })
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
