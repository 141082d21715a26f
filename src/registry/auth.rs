//! Credentials, bearer tokens and their cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderValue;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

/// Token lifetime when the token server names none (distribution's default).
pub(crate) const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Upper bound of the early-refresh margin, for long-lived tokens.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// What a caller authenticates with. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Sent as basic auth to registries that ask for it, and to token servers.
    Basic { username: String, password: String },
    /// A registry token, sent as-is as `Authorization: Bearer`.
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &"<redacted>").finish()
            }
            Credentials::Bearer(_) => f.debug_tuple("Bearer").field(&"<redacted>").finish(),
        }
    }
}

impl Credentials {
    /// A digest of the secret material: tokens fetched with different
    /// credentials must never be shared.
    pub(crate) fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        match self {
            Credentials::Basic { username, password } => {
                for part in ["basic", username, password] {
                    h.update(part.as_bytes());
                    h.update([0]);
                }
            }
            Credentials::Bearer(token) => {
                h.update(b"bearer\0");
                h.update(token.as_bytes());
            }
        }
        hex::encode(h.finalize())
    }
}

/// An `Authorization` value, marked sensitive. The error names only the
/// kind of value, never the value.
fn sensitive(value: String, what: &str) -> Result<HeaderValue, String> {
    let mut v =
        HeaderValue::try_from(value).map_err(|_| format!("the {what} contains bytes not allowed in a header"))?;
    v.set_sensitive(true);
    Ok(v)
}

pub(crate) fn basic_header(username: &str, password: &str) -> Result<HeaderValue, String> {
    sensitive(format!("Basic {}", BASE64.encode(format!("{username}:{password}"))), "username or password")
}

pub(crate) fn bearer_header(token: &str) -> Result<HeaderValue, String> {
    sensitive(format!("Bearer {token}"), "bearer token")
}

/// The scopes to ask a token server for: pull on `repository`, plus what
/// the registry's challenge named if that differs.
pub(crate) fn token_scopes(repository: &str, challenge_scope: Option<&str>) -> Vec<String> {
    let mut scopes = vec![format!("repository:{repository}:pull")];
    scopes.extend(challenge_scope.into_iter().flat_map(str::split_whitespace).map(str::to_string));
    scopes.sort();
    scopes.dedup();
    scopes
}

/// What a token is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub realm: String,
    pub service: Option<String>,
    pub scopes: Vec<String>,
    /// `Credentials::fingerprint`, empty for anonymous tokens.
    pub credentials: String,
}

/// Token server answer. Docker's servers send `token`, OAuth2 ones
/// `access_token`; some send both.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long it lives; `None` when the answer has no token.
    pub fn into_token(self) -> Option<(String, Duration)> {
        let token = self.token.filter(|t| !t.is_empty()).or(self.access_token.filter(|t| !t.is_empty()))?;
        let lifetime = self.expires_in.filter(|s| *s > 0).map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        Some((token, lifetime))
    }
}

struct CachedToken {
    token: String,
    /// Dropped from the cache from here on, a little before the server's expiry.
    stale_at: Instant,
}

/// Bearer tokens by what they were issued for, kept until shortly before
/// they expire.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<TokenKey, CachedToken>>,
}

impl TokenCache {
    pub fn get(&self, key: &TokenKey) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).filter(|t| t.stale_at > Instant::now()).map(|t| t.token.clone())
    }

    /// Stores a token counted from now; the clock started before the
    /// request would be safer, but the margin covers a round trip.
    pub fn insert(&self, key: TokenKey, token: String, lifetime: Duration) {
        let now = Instant::now();
        let margin = (lifetime / 10).min(MAX_REFRESH_MARGIN);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, t| t.stale_at > now);
        entries.insert(key, CachedToken { token, stale_at: now + lifetime - margin });
    }

    pub fn remove(&self, key: &TokenKey) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: &str) -> TokenKey {
        TokenKey {
            realm: "https://auth/token".into(),
            service: Some("reg".into()),
            scopes: vec![scope.into()],
            credentials: String::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_expire_shortly_before_the_server_says() {
        let cache = TokenCache::default();
        cache.insert(key("a"), "t1".into(), Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(53)).await;
        assert_eq!(cache.get(&key("a")).as_deref(), Some("t1"));
        assert_eq!(cache.get(&key("b")), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.get(&key("a")), None, "refreshed 6 s (a tenth) before expiry");

        // Long lifetimes keep at most a 30 s margin.
        cache.insert(key("long"), "t2".into(), Duration::from_secs(3600));
        tokio::time::advance(Duration::from_secs(3569)).await;
        assert!(cache.get(&key("long")).is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(cache.get(&key("long")).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn stale_entries_are_pruned_and_removal_works() {
        let cache = TokenCache::default();
        cache.insert(key("a"), "t".into(), Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(120)).await;
        cache.insert(key("b"), "t".into(), Duration::from_secs(60));
        assert_eq!(cache.len(), 1);
        cache.remove(&key("b"));
        assert_eq!(cache.get(&key("b")), None);
    }

    #[test]
    fn token_responses() {
        let parse = |s: &str| serde_json::from_str::<TokenResponse>(s).unwrap().into_token();
        assert_eq!(parse(r#"{"token":"a","expires_in":300}"#), Some(("a".into(), Duration::from_secs(300))));
        assert_eq!(parse(r#"{"access_token":"b"}"#), Some(("b".into(), DEFAULT_TOKEN_LIFETIME)));
        assert_eq!(
            parse(r#"{"token":"","access_token":"c","expires_in":0}"#),
            Some(("c".into(), DEFAULT_TOKEN_LIFETIME))
        );
        assert_eq!(parse(r#"{"issued_at":"2020-01-01T00:00:00Z"}"#), None);
    }

    #[test]
    fn scopes_add_what_the_registry_asked_for() {
        assert_eq!(token_scopes("a/b", None), ["repository:a/b:pull"]);
        assert_eq!(token_scopes("a/b", Some("repository:a/b:pull")), ["repository:a/b:pull"]);
        assert_eq!(
            token_scopes("a/b", Some("repository:a/b:pull,push registry:catalog:*")),
            ["registry:catalog:*", "repository:a/b:pull", "repository:a/b:pull,push"]
        );
    }

    #[test]
    fn debug_and_errors_redact_secrets() {
        let basic = Credentials::Basic { username: "alice".into(), password: "hunter2".into() };
        let bearer = Credentials::Bearer("tok-s3cret".into());
        let shown = format!("{basic:?} {bearer:?} {basic:#?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("hunter2") && !shown.contains("tok-s3cret"), "{shown}");
        assert_ne!(basic.fingerprint(), bearer.fingerprint());
        assert!(!basic.fingerprint().contains("hunter2"));

        let err = bearer_header("bad\ntoken-s3cret").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        let header = basic_header("alice", "hunter2").unwrap();
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("hunter2"));
    }
}
