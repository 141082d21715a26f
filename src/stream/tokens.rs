//! One-time tokens that name a pending streaming session in its URL.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a URL handed out by Exec, Attach or PortForward stays valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Outstanding tokens at most; more requests wait for old ones to expire.
pub const MAX_TOKENS: usize = 1000;

/// What a token grants.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamRequest {
    Exec {
        container_id: String,
        cmd: Vec<String>,
        flags: crate::docker::StdioFlags,
    },
    Attach {
        container_id: String,
        flags: crate::docker::StdioFlags,
    },
    /// `ports`: what PortForwardRequest named; empty grants any port.
    PortForward {
        sandbox_id: String,
        pid: i64,
        ports: Vec<u16>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("too many pending streaming sessions ({MAX_TOKENS}); retry later")]
    Full,
    #[error("cannot generate a token: {0}")]
    Random(String),
}

#[derive(Default)]
pub struct TokenStore {
    pending: Mutex<HashMap<String, (StreamRequest, Instant)>>,
}

impl TokenStore {
    /// Files `request` under a new random token.
    pub fn insert(&self, request: StreamRequest) -> Result<String, TokenError> {
        // 128 random bits, URL-safe.
        let token = crate::random::hex(16).map_err(|e| TokenError::Random(e.to_string()))?;
        let mut pending = self.lock();
        pending.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
        if pending.len() >= MAX_TOKENS {
            return Err(TokenError::Full);
        }
        pending.insert(token.clone(), (request, Instant::now()));
        Ok(token)
    }

    /// Takes the request a token grants; a token works once, within its TTL.
    pub fn take(&self, token: &str) -> Option<StreamRequest> {
        let (request, at) = self.lock().remove(token)?;
        (at.elapsed() < TOKEN_TTL).then_some(request)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (StreamRequest, Instant)>> {
        // Entries are inserted and removed whole; a panic elsewhere leaves the map usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf() -> StreamRequest {
        StreamRequest::PortForward { sandbox_id: "s".into(), pid: 1, ports: vec![80] }
    }

    #[test]
    fn tokens_work_once() {
        let store = TokenStore::default();
        let token = store.insert(pf()).unwrap();
        assert_eq!(token.len(), 32);
        assert_eq!(store.take(&token), Some(pf()));
        assert_eq!(store.take(&token), None);
        assert_eq!(store.take("unknown"), None);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let store = TokenStore::default();
        let token = store.insert(pf()).unwrap();
        if let Some(entry) = store.lock().get_mut(&token) {
            entry.1 = Instant::now().checked_sub(TOKEN_TTL + Duration::from_secs(1)).unwrap();
        }
        assert_eq!(store.take(&token), None);
    }

    #[test]
    fn outstanding_tokens_are_bounded() {
        let store = TokenStore::default();
        for _ in 0..MAX_TOKENS {
            store.insert(pf()).unwrap();
        }
        assert_eq!(store.insert(pf()), Err(TokenError::Full));
    }
}
